"""The AWS SDK for JavaScript v3 that Lambda's Node.js runtimes provide, installed once for
the emulator's Node functions (they find it through NODE_PATH; their own copy wins).

Installed with npm into <cache_root>/node-sdk/<version>-<hash of the package list>:
a change of the list or version installs a new folder. Two emulators starting at
once are safe: the install runs under an exclusive lock, into a temporary folder
that is renamed into place when complete.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import WsctlError

# One exact version for every package: the newest release published for all of them
# (`npm view @aws-sdk/<package> versions`).
SDK_VERSION = "3.1164.0"
SDK_PACKAGES = (
    "@aws-sdk/client-apigatewaymanagementapi",
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/client-lambda",
    "@aws-sdk/client-s3",
    "@aws-sdk/client-sns",
    "@aws-sdk/client-sqs",
    "@aws-sdk/client-ssm",
    "@aws-sdk/client-sts",
    "@aws-sdk/lib-dynamodb",
)
INSTALL_TIMEOUT_S = 600
RETRY_HINT = "check that npm can reach its registry (npm config get registry), then start the emulator again"


def sdk_folder(cache_root: Path) -> Path:
    digest = hashlib.sha256(json.dumps([SDK_VERSION, sorted(SDK_PACKAGES)]).encode()).hexdigest()[:12]
    return Path(cache_root) / "node-sdk" / ("%s-%s" % (SDK_VERSION, digest))


def cache_root(home: Path) -> Path:
    """Where the SDK is kept: the wsctl home, or WSCTL_NODE_SDK_CACHE (one copy for several homes:
    a test session's or a CI machine's emulators)."""
    return Path(os.environ.get("WSCTL_NODE_SDK_CACHE") or home)


def ensure_sdk(cache_root: Path, say) -> Path:
    """The node_modules folder holding the SDK, installing it first if needed (blocking)."""
    target = sdk_folder(cache_root)
    modules = target / "node_modules"
    if _complete(modules):
        return modules
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _complete(modules):  # another emulator installed it while this one waited
            return modules
        for stale in base.glob(".installing-*"):  # left by an install that was killed
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        npm = shutil.which("npm")
        if npm is None:
            raise WsctlError("Node functions need the AWS SDK for JavaScript v3, installed once with npm, and npm "
                             "is not on PATH: install Node.js with npm, then start the emulator again")
        say("installing the AWS SDK for JavaScript v3 for Node functions (once, into %s)" % target)
        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=base))
        try:
            _install(npm, staging)
            staging.chmod(0o755)  # mkdtemp makes it private
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return modules


def _complete(modules: Path) -> bool:
    return all((modules / name / "package.json").is_file() for name in SDK_PACKAGES)


def _install(npm: str, folder: Path) -> None:
    manifest = {"name": "wsctl-node-sdk", "private": True, "description": "AWS SDK v3 for wsctl's Node functions",
                "dependencies": {name: SDK_VERSION for name in SDK_PACKAGES}}
    (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false", npm_config_progress="false")
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev", "--no-package-lock",
               "--no-progress", "--loglevel=error", "--prefix", str(folder)]
    try:
        done = subprocess.run(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WsctlError("installing the AWS SDK for JavaScript v3 with npm took more than %d s; %s"
                         % (INSTALL_TIMEOUT_S, RETRY_HINT)) from None
    except OSError as error:
        raise WsctlError("cannot run npm to install the AWS SDK for JavaScript v3 (%s); %s"
                         % (error.strerror, RETRY_HINT)) from None
    if done.returncode != 0 or not _complete(folder / "node_modules"):
        raise WsctlError("installing the AWS SDK for JavaScript v3 with npm failed: %s; %s"
                         % (_last_error(done.stderr, done.stdout, done.returncode), RETRY_HINT))


def _last_error(stderr: str, stdout: str, returncode: int) -> str:
    """npm's error in one line: its code and the first line that says what went wrong."""
    lines = [line.strip() for line in (stderr or "").splitlines() + (stdout or "").splitlines() if line.strip()]
    messages = []
    code = None
    for line in lines:
        for prefix in ("npm error ", "npm ERR! "):
            if line.startswith(prefix):
                text = line[len(prefix):].strip()
                if text.startswith("code "):
                    code = code or text[5:].strip()
                elif text and not text.startswith(("syscall ", "errno ", "path ", "A complete log of this run",
                                                    "Log files were not written")):
                    messages.append(text)
    if messages:
        return "%s: %s" % (code, messages[0]) if code and code not in messages[0] else messages[0]
    if code:
        return code
    return lines[-1] if lines else "npm exited with status %d" % returncode
