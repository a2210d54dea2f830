"""The AWS SDKs Lambda's runtimes provide, installed once per machine for the emulator's functions.

Lambda's Python runtimes carry boto3 and botocore; nodejs18.x and later carry the AWS SDK
for JavaScript v3, nodejs16.x and older carried v2. A function finds its runtime's SDK
after its own code (PYTHONPATH, NODE_PATH): its own copy wins, and nothing else of the
machine's is there (never wsctl's own packages).

Each SDK is installed with its ecosystem's tool (npm, pip) into
<cache_root>/<family>/<version>-<hash of what is installed>: a change of version or
package list installs a new folder. Two emulators starting at once are safe: the install
runs under an exclusive lock, into a temporary folder renamed into place when complete.
"""

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...errors import WsctlError

INSTALL_TIMEOUT_S = 600


@dataclass(frozen=True)
class Sdk:
    title: str  # "the AWS SDK for JavaScript v3", as the messages name it
    family: str  # the cache's folder for this SDK's versions
    version: str
    packages: tuple  # npm packages, or pip distributions, all at `version`
    tool: str  # "npm" or "pip"

    @property
    def retry_hint(self) -> str:
        return "check that %s can reach its registry (%s), then start the emulator again" % (
            self.tool, "npm config get registry" if self.tool == "npm" else "pip config list")


# One exact version for every package: the newest release published for all of them
# (`npm view @aws-sdk/<package> versions`).
NODE_V3 = Sdk("the AWS SDK for JavaScript v3", "node-sdk", "3.1164.0", (
    "@aws-sdk/client-apigatewaymanagementapi",
    "@aws-sdk/client-dynamodb",
    "@aws-sdk/client-lambda",
    "@aws-sdk/client-s3",
    "@aws-sdk/client-sns",
    "@aws-sdk/client-sqs",
    "@aws-sdk/client-ssm",
    "@aws-sdk/client-sts",
    "@aws-sdk/lib-dynamodb",
), "npm")
# v2 is one package; its last release (AWS ended its support on 2025-09-08).
NODE_V2 = Sdk("the AWS SDK for JavaScript v2", "node-sdk", "2.1693.0", ("aws-sdk",), "npm")
# Lambda's Python runtimes carry a boto3 some months behind PyPI, updated with the runtime and not
# published any more (it differs by region and runtime release): this is the one wsctl records.
PYTHON = Sdk("boto3 (the AWS SDK for Python)", "python-sdk", "1.40.76", ("boto3", "botocore"), "pip")

# What a runtime gets, and what the banner says about it.
DEPRECATED_NODE = "nodejs16.x and older are deprecated on AWS Lambda (nodejs16.x since 2024-06-12)"


def for_runtime(runtime: str) -> Sdk | None:
    """The SDK a runtime provides: boto3 for python3.x, v3 for nodejs18.x and later, v2 before."""
    if runtime.startswith("python"):
        return PYTHON
    match = re.fullmatch(r"nodejs(\d+)\.x", runtime)
    if match:
        return NODE_V3 if int(match.group(1)) >= 18 else NODE_V2
    return None


def cache_root(home: Path) -> Path:
    """Where the SDKs are kept: the wsctl home, or WSCTL_SDK_CACHE (one copy for several homes: a
    test session's or a CI machine's emulators)."""
    return Path(os.environ.get("WSCTL_SDK_CACHE") or home)


def location(cache_root: Path, sdk: Sdk) -> Path:
    what = [sdk.version, sorted(sdk.packages)]
    if sdk.tool == "pip":
        what.append("py%d.%d" % sys.version_info[:2])  # pip picks dependencies (urllib3) by Python version
    digest = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]
    return Path(cache_root) / sdk.family / ("%s-%s" % (sdk.version, digest))


def search_path(folder: Path, sdk: Sdk) -> Path:
    """The folder a function searches (NODE_PATH, PYTHONPATH) for an SDK installed at `folder`."""
    return folder / "node_modules" if sdk.tool == "npm" else folder


def ensure(cache_root: Path, sdk: Sdk, say) -> Path:
    """The folder to search for `sdk`, installing it first if needed (blocking)."""
    target = location(cache_root, sdk)
    if _complete(target, sdk):
        return search_path(target, sdk)
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _complete(target, sdk):  # another emulator installed it while this one waited
            return search_path(target, sdk)
        for stale in base.glob(".installing-*"):  # left by an install that was killed
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        command = _command(sdk)
        say("installing %s %s for %s functions (once, into %s)" % (
            sdk.title, sdk.version, "Node" if sdk.tool == "npm" else "Python", target))
        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=base))
        try:
            _install(sdk, command, staging)
            staging.chmod(0o755)  # mkdtemp makes it private
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return search_path(target, sdk)


def _complete(folder: Path, sdk: Sdk) -> bool:
    if sdk.tool == "npm":
        return all((folder / "node_modules" / name / "package.json").is_file() for name in sdk.packages)
    return all((folder / name / "__init__.py").is_file() for name in sdk.packages)


def _command(sdk: Sdk) -> list[str]:
    """The install command (without its target folder), or a one-line error when the tool is missing."""
    if sdk.tool == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise WsctlError("Node functions need %s, installed once with npm, and npm is not on PATH: install "
                             "Node.js with npm, then start the emulator again" % sdk.title)
        return [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev", "--no-package-lock",
                "--no-progress", "--loglevel=error", "--prefix"]
    if importlib.util.find_spec("pip") is None:
        raise WsctlError("Python functions need %s as Lambda's runtime provides it, installed once with pip, and "
                         "wsctl's Python (%s) has no pip: `%s -m ensurepip`, then start the emulator again"
                         % (sdk.title, sys.executable, sys.executable))
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
            "--no-warn-script-location", "--target"]


def _install(sdk: Sdk, command: list[str], folder: Path) -> None:
    if sdk.tool == "npm":
        manifest = {"name": "wsctl-" + sdk.family, "private": True,
                    "description": "%s for wsctl's Node functions" % sdk.title,
                    "dependencies": {name: sdk.version for name in sdk.packages}}
        (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                   npm_config_audit="false", npm_config_progress="false")
        argv = command + [str(folder)]
    else:
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        argv = command + [str(folder)] + ["%s==%s" % (name, sdk.version) for name in sdk.packages]
    try:
        done = subprocess.run(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WsctlError("installing %s with %s took more than %d s; %s"
                         % (sdk.title, sdk.tool, INSTALL_TIMEOUT_S, sdk.retry_hint)) from None
    except OSError as error:
        raise WsctlError("cannot run %s to install %s (%s); %s"
                         % (sdk.tool, sdk.title, error.strerror, sdk.retry_hint)) from None
    if done.returncode != 0 or not _complete(folder, sdk):
        raise WsctlError("installing %s with %s failed: %s; %s" % (
            sdk.title, sdk.tool, _last_error(done.stderr, done.stdout, done.returncode), sdk.retry_hint))


def _last_error(stderr: str, stdout: str, returncode: int) -> str:
    """The tool's error in one line: npm's code and the first line that says what went wrong, or
    pip's first ERROR line."""
    lines = [line.strip() for line in (stderr or "").splitlines() + (stdout or "").splitlines() if line.strip()]
    messages = []
    code = None
    for line in lines:
        if line.startswith("ERROR: "):  # pip
            messages.append(line[7:].strip())
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
    return lines[-1] if lines else "exited with status %d" % returncode
