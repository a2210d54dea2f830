"""A function's code given as a zip file (a CDK zip asset, a Serverless `package.artifact`):
unpacked once into a cache folder named for the zip's content, as Lambda unpacks it into /var/task.

The cache is keyed by the bytes' SHA-256, so an unchanged zip is not unpacked again and a
rebuilt one gets a folder of its own; a folder appears whole (unpacked aside, then renamed) or
not at all. Entries that would land outside the folder (`../`, absolute paths) are refused.
"""

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from ..errors import UsageError


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _extract(archive: zipfile.ZipFile, where: str, into: Path) -> None:
    root = into.resolve()
    for entry in archive.infolist():
        target = (root / entry.filename).resolve()
        if target != root and root not in target.parents:
            raise UsageError("%s: the zip holds %r, which would land outside its folder" % (where, entry.filename))
        archive.extract(entry, root)
        mode = (entry.external_attr >> 16) & 0o777
        if mode and not entry.is_dir():  # keep executables executable (a `provided` bootstrap, say)
            os.chmod(target, mode | stat.S_IRUSR)


def unpacked(zip_path: Path, cache: Path, where: str) -> Path:
    """The folder holding `zip_path`'s files; `where` (the property that names the zip) prefixes errors."""
    try:
        folder = cache / _digest(zip_path)[:24]
        if folder.is_dir():
            return folder
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=cache))
        try:
            with zipfile.ZipFile(zip_path) as archive:
                _extract(archive, where, staging)
            try:
                staging.rename(folder)
            except OSError:
                if not folder.is_dir():  # not another emulator that unpacked the same zip meanwhile
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder
    except zipfile.BadZipFile:
        raise UsageError("%s: %s is not a zip file" % (where, zip_path)) from None
    except OSError as error:
        raise UsageError("%s: cannot unpack %s: %s" % (where, zip_path, error.strerror or error)) from None
