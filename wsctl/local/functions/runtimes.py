"""How each runtime's environment is started, and the variables Lambda gives it (pure but for
a version probe).

python3.x runs on the local Python, nodejs*.x on the local `node`, provided.*
runs the function's own `bootstrap` executable unchanged (Go, Rust, or AWS's
runtime interface clients).
"""

import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from ...apispec import FunctionSpec
from . import sdks

HERE = Path(__file__).resolve().parent
PYTHON_BOOTSTRAP = HERE / "python" / "bootstrap.py"
NODE_BOOTSTRAP = HERE / "node" / "bootstrap.mjs"
# Lambda starts Node 20 and 22 with require(esm) off; NODE_OPTIONS can turn it back on.
NODE_FLAGS = ("--no-experimental-require-module",)


class RuntimeUnavailable(Exception):
    pass


def command(spec: FunctionSpec) -> list[str]:
    language = spec.language
    if language == "python":
        # -P: the bootstrap's own folder is not put on sys.path (it would shadow the function's modules);
        # -S: nor is this Python's site-packages (wsctl's own packages): the function's folder, the
        # runtime's boto3 (PYTHONPATH) and the standard library are what Lambda's runtime offers.
        return [sys.executable, "-u", "-P", "-S", str(PYTHON_BOOTSTRAP)]
    if language == "node":
        node = shutil.which("node")
        if node is None:
            raise RuntimeUnavailable("%s needs Node.js (`node` on PATH) for runtime %s" % (spec.name, spec.runtime))
        flags = () if "--experimental-require-module" in spec.environment.get("NODE_OPTIONS", "") else node_flags()
        return [node, *flags, str(NODE_BOOTSTRAP)]
    if language == "provided":
        return [str(spec.code_dir / "bootstrap")]
    raise RuntimeUnavailable("%s: runtime %s is not supported locally (python3.x, nodejs*.x and provided.* are)"
                             % (spec.name, spec.runtime))


def node_flags() -> tuple[str, ...]:
    """Lambda's flags for Node 20 and 22, where this node knows them (20.17+, 22.0+) and the
    function has not turned require(esm) back on through NODE_OPTIONS."""
    version = local_node_version()
    if version is None or not ((20, 17) <= version[:2] < (21, 0) or (22, 0) <= version[:2] < (23, 0)):
        return ()
    return NODE_FLAGS


def local_node_major() -> int | None:
    version = local_node_version()
    return version[0] if version else None


@lru_cache(maxsize=None)
def local_node_version() -> tuple[int, int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def version_note(runtime: str) -> str | None:
    """A banner note when the declared runtime differs from what runs it here."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    if match:
        local = "%d.%d" % sys.version_info[:2]
        declared = "%s.%s" % match.groups()
        return None if local == declared else "%s functions run on the local Python %s" % (runtime, local)
    match = re.fullmatch(r"nodejs(\d+)\.x", runtime)
    if match:
        local = local_node_major()
        if local is None:
            return "%s functions need Node.js, which is not on PATH" % runtime
        return None if int(match.group(1)) == local else "%s functions run on the local Node.js %d" % (runtime, local)
    if runtime.startswith("provided"):
        return None
    return None


def differences(runtime: str) -> list[str]:
    """How functions of this runtime differ here from Lambda, for the banner (each said once)."""
    notes = [note for note in (version_note(runtime),) if note]
    sdk = sdks.for_runtime(runtime)
    if sdk is sdks.NODE_V2:
        notes.append("%s: its functions get %s %s, which AWS no longer supports" % (
            sdks.DEPRECATED_NODE, sdk.title, sdk.version))
    elif sdk is not None:
        notes.append("%s functions get %s %s after their own code (Lambda's runtime has a version of its "
                     "own, which AWS updates)" % ("Python" if sdk is sdks.PYTHON else "nodejs18.x+", sdk.title,
                                                 sdk.version))
    if runtime.startswith("provided"):
        notes.append("%s bootstraps run as they are: they get AWS_ENDPOINT_URL_*, which current SDKs read, but a "
                     "hard-coded AWS endpoint in one is not sent to the emulator" % runtime.split(".")[0])
    return notes


def execution_env(spec: FunctionSpec) -> str | None:
    """AWS_EXECUTION_ENV: AWS_Lambda_python3.12, AWS_Lambda_nodejs20.x; absent on provided.*."""
    return None if spec.language == "provided" else "AWS_Lambda_" + spec.runtime


def variables(spec: FunctionSpec, *, runtime_api: str, region: str, log_stream: str, account_id: str,
              endpoints: dict, credentials: dict, ca_bundle: str | None, sdk_path: str | None,
              host_env: dict, extra_ca: str | None = None) -> dict:
    """The environment of one execution environment, as Lambda sets it (docs/lambda-runtime.md#environment-variables).

    Only a few host variables come through (PATH, locale, HOME for tools); never the operator's
    AWS_* settings: `credentials` and `endpoints` are what the function gets. `sdk_path` is where the
    runtime's AWS SDK is (sdks.py), searched after the function's own search path.
    """
    env = {k: v for k, v in host_env.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")}
    env.setdefault("LANG", "en_US.UTF-8")
    env.update(spec.environment)  # the function's own variables; reserved ones below win, as on AWS
    env.update({
        "_HANDLER": spec.handler,
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(spec.timeout_s)) if spec.timeout_s == int(spec.timeout_s)
        else str(spec.timeout_s),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + spec.name,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": str(HERE),
        "TZ": ":UTC",
        "AWS_ACCOUNT_ID": account_id,
    })
    env.update(credentials)
    execution = execution_env(spec)
    if execution:
        env["AWS_EXECUTION_ENV"] = execution
    for service, url in endpoints.items():
        env["AWS_ENDPOINT_URL" + ("_" + service if service else "")] = url
    if ca_bundle:
        env["AWS_CA_BUNDLE"] = ca_bundle
    # Node adds these to its own roots: the emulator's one certificate is enough, and Node's
    # start-up reads every certificate given (a 118-certificate bundle costs it about 23 ms).
    if extra_ca or ca_bundle:
        env["NODE_EXTRA_CA_CERTS"] = extra_ca or ca_bundle
    search = {"node": "NODE_PATH", "python": "PYTHONPATH"}.get(spec.language)
    if search and sdk_path:
        env[search] = os.pathsep.join(filter(None, (spec.environment.get(search), sdk_path)))
    for key, value in spec.environment.items():  # user settings the platform does not reserve win
        if key in ("NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT") or \
                key.startswith("AWS_ENDPOINT_URL"):
            env[key] = value
    return env
