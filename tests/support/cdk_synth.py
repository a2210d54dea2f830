"""A real CDK synth for the tests: `node app.js` with aws-cdk-lib and constructs from npm.

The packages are installed once per machine into a cache folder outside the repository
(NPM_TEST_CACHE, default ~/.cache/wsctl-tests), under a name that holds their versions,
so every test session and worker shares one copy; `.ci/run` installs them before the suite
(`python tests/support/cdk_synth.py`). An app run directly (not through the CDK CLI) writes
no asset metadata; `cli_context=True` passes the context the CDK CLI passes, so the assembly
is what `cdk synth` writes.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = ("aws-cdk-lib@2.278.0", "constructs@10.8.1")  # pinned: the tests read what this synth writes
# What the CDK CLI sets for an app by default (aws-cdk-cli toolkit-lib environment.ts).
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True,
               "aws:cdk:version-reporting": True}


def cache_root() -> Path:
    return Path(os.environ.get("NPM_TEST_CACHE") or Path.home() / ".cache" / "wsctl-tests")


def cdk_modules() -> Path:
    """node_modules holding aws-cdk-lib and constructs (installed on first use, under a lock)."""
    root = cache_root()
    folder = root / ("cdk-" + "-".join(p.replace("@", "").replace("/", "_") for p in PACKAGES))
    modules = folder / "node_modules"
    if (modules / "aws-cdk-lib" / "package.json").is_file():
        return modules
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".cdk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing the same copy
        if not (modules / "aws-cdk-lib" / "package.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=".cdk-", dir=root))
            try:
                subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev",
                                "--no-package-lock", "--prefix", str(staging), *PACKAGES],
                               check=True, capture_output=True, text=True, timeout=600)
                shutil.rmtree(folder, ignore_errors=True)
                staging.rename(folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return modules


def synth(app: Path, out: Path, *, cli_context: bool = True, env: dict | None = None) -> Path:
    """Run the CDK app `app` (a .js file) and return its cloud assembly folder `out`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    environment.update(NODE_PATH=str(cdk_modules()), CDK_OUTDIR=str(out), **(env or {}))
    if cli_context:
        environment["CDK_CONTEXT_JSON"] = json.dumps(CLI_CONTEXT)
    done = subprocess.run(["node", str(app)], cwd=app.parent, env=environment, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0 or not (out / "manifest.json").is_file():
        raise RuntimeError("cdk synth of %s failed:\n%s\n%s" % (app, done.stdout, done.stderr))
    return out


if __name__ == "__main__":
    print("aws-cdk-lib for the tests:", cdk_modules(), file=sys.stderr)
