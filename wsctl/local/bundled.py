"""wsctl's own handler (lambda_src) as Lambda runs it: a code folder holding what the deployed
bundle holds (lambda_src and its dependencies, wsctl/deploy/bundle.py), as links into wsctl's
installation, so that, like any function, it imports its folder and the runtime's boto3 and
nothing else of wsctl's environment."""

import os
from pathlib import Path

from ..deploy import bundle


def code_folder(home: Path, source_package: str = "lambda_src") -> Path:
    folder = Path(home) / "bundled-code"
    folder.mkdir(parents=True, exist_ok=True)
    for package in (source_package, *bundle.DEPENDENCIES):
        source = bundle.package_dir(package)
        link = folder / package
        if link.is_symlink() and os.readlink(link) == str(source):
            continue
        # replaced in one step: another emulator of this home may be starting too
        staging = folder / (".%s-%d" % (package, os.getpid()))
        staging.unlink(missing_ok=True)
        staging.symlink_to(source, target_is_directory=True)
        os.replace(staging, link)
    return folder
