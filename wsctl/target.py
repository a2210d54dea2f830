"""Where a command acts: AWS (profile, region, endpoint) or the running local emulator.

Resolved once per command from the global options. The emulator writes where
it listens to a state file (owner-only: it holds the local signing key) that
`wsctl --local ...` in another terminal reads.
"""

import json
import os
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import aws, names
from .errors import UsageError, WsctlError
from .limits import LOCAL_KEY, LOCAL_REGION

LOCAL_CREDENTIALS = {"aws_access_key_id": LOCAL_KEY, "aws_secret_access_key": LOCAL_KEY}  # boto3's arguments
# How the fan-out engine calls the management API (wsctl.fanout.transport): lean (aiohttp and a
# cached SigV4 signer, the default) or boto3 (kept for parity tests and moto's in-process mock).
TRANSPORTS = ("lean", "boto3")


# -- the local emulators' state files ---------------------------------------
# $WSCTL_HOME (default ~/.wsctl) holds one folder per running emulator, by name:
#   local/<name>/state.json   where it listens, its CA bundle, its signing keys (owner-only)
#   local/<name>/tls/         its certificate, key and CA bundle
#   local/<name>/moto.log     its embedded DynamoDB's log
# so several emulators (other projects, other terminals) run at once and `--local --name`
# picks one. A state file whose process is gone is stale: noticed and cleared when read.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def home() -> Path:
    return Path(os.environ.get("WSCTL_HOME") or Path.home() / ".wsctl")


def local_root(base: Path | None = None) -> Path:
    return Path(base or home()) / "local"


def instance_dir(name: str, base: Path | None = None) -> Path:
    return local_root(base) / name


def state_path(name: str, base: Path | None = None) -> Path:
    return instance_dir(name, base) / "state.json"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError("--name %r: use 1-40 lowercase letters, digits, - or _, starting with a letter or digit"
                         % name)
    return name


def name_for(folder: Path) -> str:
    """The default name of a project's emulator: its folder's name, made a valid name."""
    text = re.sub(r"[^a-z0-9_-]+", "-", Path(folder).name.lower()).strip("-_")[:40].strip("-_")
    return text or "local"


def process_started(pid: int) -> str | None:
    """When a process started (Linux: /proc/PID/stat field 22, in clock ticks since boot), to
    tell a live emulator from another process that was given its pid later."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_local_state(state: dict) -> Path:
    """Write an emulator's state (state["name"] says where) atomically, owner-only from the start:
    the file holds the local signing key."""
    folder = instance_dir(state["name"])
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.setdefault("pid_started", process_started(int(state["pid"])))
    path = folder / "state.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2)
    os.replace(tmp, path)
    return path


def remove_local_state(pid: int, name: str | None = None) -> None:
    """Remove the state file(s) that still describe the emulator `pid`."""
    for path in ([state_path(name)] if name else sorted(local_root().glob("*/state.json"))):
        try:
            if json.loads(path.read_text()).get("pid") == pid:
                path.unlink()
        except (OSError, ValueError):
            pass


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running(state: dict) -> bool:
    """Whether the emulator a state file describes is still the process with that pid."""
    pid = int(state.get("pid") or 0)
    if pid <= 0 or not _alive(pid):
        return False
    recorded = state.get("pid_started")
    return recorded is None or process_started(pid) in (None, recorded)


def _load(path: Path) -> dict | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def local_states(base: Path | None = None) -> tuple[list[dict], list[dict]]:
    """(the running emulators' states by name, the stale ones found and cleared)."""
    alive, stale = [], []
    for path in sorted(local_root(base).glob("*/state.json")):
        state = _load(path)
        if state is None:
            continue
        state.setdefault("name", path.parent.name)
        if running(state):
            alive.append(state)
        else:
            stale.append(state)
            try:
                path.unlink()
            except OSError:
                pass
    return alive, stale


def emulators(now: float | None = None) -> tuple[list[dict], list[dict]]:
    """`wsctl local ls`: (a row for each running emulator, the stale states found and cleared);
    `started` in seconds since the epoch."""
    alive, stale = local_states()
    now = time.time() if now is None else now
    rows = [{"name": s["name"], "url": s["ws_url"], "tlsUrl": s.get("wss_url"), "project": s.get("project"),
             "api": s.get("origin"), "pid": s["pid"], "started": s.get("started"),
             "uptimeSeconds": round(now - s["started"]) if s.get("started") else None,
             "caBundle": s.get("ca_bundle")} for s in alive]
    return rows, stale


def find_local_state(pid: int, base: Path | None = None) -> dict | None:
    """The state of the emulator with this pid, once it has written it (tests and benchmarks wait on this)."""
    for path in sorted(local_root(base).glob("*/state.json")):
        state = _load(path)
        if state is not None and state.get("pid") == pid:
            return state
    return None


def _stale_note(stale: list[dict]) -> str:
    if not stale:
        return ""
    return " (cleared the stale state of %s: the process is gone)" % ", ".join(
        "%s, pid %s" % (s.get("name"), s.get("pid")) for s in stale)


def read_local_state(name: str | None = None) -> dict:
    """The state of the emulator `--local` acts on: the one named, or the only one running."""
    alive, stale = local_states()
    if name:
        check_name(name)
        for state in alive:
            if state["name"] == name:
                return state
        if any(s.get("name") == name for s in stale):
            raise WsctlError("the local emulator %r is no longer running%s: start it with `wsctl local up --name %s`"
                             % (name, _stale_note([s for s in stale if s.get("name") == name]), name))
        raise WsctlError("no local emulator named %r is running (%s): see `wsctl local ls`" % (
            name, "running: " + ", ".join(s["name"] for s in alive) if alive else "none is"))
    if not alive:
        raise WsctlError("no local emulator is running (no state in %s)%s: start one with `wsctl local up`"
                         % (local_root(), _stale_note(stale)))
    if len(alive) > 1:
        raise UsageError("%d local emulators are running (%s): choose one with --name NAME (see `wsctl local ls`)"
                         % (len(alive), ", ".join("%s at %s" % (s["name"], s["ws_url"]) for s in alive)))
    return alive[0]


# -- targets -------------------------------------------------------------------
@dataclass
class Target:
    stack: str = names.DEFAULT_STACK
    stage: str = names.DEFAULT_STAGE
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    local: bool = False
    local_name: str | None = None  # --name: which running emulator (default: the only one)
    transport: str = "lean"  # how the management API is called (TRANSPORTS; the hidden --transport)
    boto_session: object = field(default=None, repr=False)  # a ready boto3.Session (tests hook its events)
    _clients: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.transport not in TRANSPORTS:
            raise UsageError("--transport %r: use %s" % (self.transport, " or ".join(TRANSPORTS)))

    @cached_property
    def local_state(self) -> dict:
        return read_local_state(self.local_name) if self.local else {}

    @cached_property
    def session(self):
        if self.boto_session is not None:
            return self.boto_session
        if self.local:
            import boto3  # only once a command talks to AWS or the emulator: every command imports target

            return boto3.Session(region_name=self.local_state.get("region", LOCAL_REGION), **LOCAL_CREDENTIALS)
        sess = aws.session(self.profile, self.region)
        if not sess.region_name:
            raise WsctlError("no AWS region: pass --region or set AWS_REGION (or use --local for the emulator)")
        return sess

    @property
    def region_name(self) -> str:
        return self.session.region_name

    @property
    def kind(self) -> str:
        return "local" if self.local else "aws"

    def describe(self) -> str:
        if self.local:
            return "local emulator at %s" % self.local_state["ws_url"]
        return "AWS %s, stack %s, stage %s" % (self.region_name, self.stack, self.stage)

    # -- clients --------------------------------------------------------------
    def client(self, service: str, **config):
        key = (service, repr(sorted(config.items())))  # values may be dicts (retries)
        if key not in self._clients:
            self._clients[key] = aws.client(self.session, service, self._endpoint_for(service), **config)
        return self._clients[key]

    def _endpoint_for(self, service: str) -> str | None:
        if not self.local:
            return self.endpoint_url
        state = self.local_state
        if service == "dynamodb":
            return state["dynamodb_endpoint"]
        if service == "apigatewaymanagementapi":
            return state["management_endpoint"]
        if service == "lambda" and "lambda_endpoint" in state:
            return state["lambda_endpoint"]
        return state["aws_endpoint"]

    def local_view(self, view: str):
        """One of the running emulator's own views (connections, functions), from its loopback-only
        Lambda endpoint."""
        import urllib.error  # as costly to import as the rest of this module, which every command imports
        import urllib.request

        url = "%s/-/wsctl/%s" % (self.local_state["lambda_endpoint"], view)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise WsctlError("cannot read the emulator's %s from %s: %s" % (view, url, getattr(error, "reason", error))) \
                from None

    @property
    def bundled(self) -> bool:
        """Whether the target runs wsctl's own API (its registry, its tokens)."""
        return bool(self.local_state.get("bundled", True)) if self.local else True

    # -- the stack's coordinates ------------------------------------------------
    @property
    def table(self) -> str:
        if self.local and "table" not in self.local_state:
            raise WsctlError("the local emulator runs %s, whose registry is its own: wsctl's registry commands "
                             "need wsctl's API (`wsctl --local connections list` shows the gateway's view)"
                             % self.local_state.get("origin", "another API"))
        return self.local_state["table"] if self.local else names.table_name(self.stack)

    @cached_property
    def api_id(self) -> str:
        if self.local:
            return self.local_state["api_id"]
        from .deploy.remote import find_api  # deploy sits above target (and brings botocore)

        api = find_api(self.client("apigatewayv2"), self.stack)
        if api is None:
            raise WsctlError("stack %r is not deployed in %s (no API %s tagged %s=%s): run `wsctl deploy` "
                             "or check --stack/--region" % (self.stack, self.region_name,
                                                             names.api_name(self.stack), names.TAG_KEY, self.stack))
        return api["ApiId"]

    @property
    def management_endpoint(self) -> str:
        if self.local:
            return self.local_state["management_endpoint"]
        api_id = self.api_id  # the stack must exist, whatever serves its management API
        if self.endpoint_url:  # another emulator (moto's server serves @connections at its root)
            return self.endpoint_url
        return names.management_url(api_id, self.region_name, self.stage)

    @property
    def ws_url(self) -> str:
        if self.local:
            return self.local_state["ws_url"]
        return names.ws_url(self.api_id, self.region_name, self.stage)

    def keyset(self) -> str:
        """The stack's signing key set (never printed)."""
        if self.local:
            if self.local_state.get("auth") == "none":
                raise WsctlError("the local emulator runs with --auth none: connections need no token")
            return self.local_state["keyset"]
        ssm = self.client("ssm")
        try:
            return ssm.get_parameter(Name=names.signing_key_param(self.stack), WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise WsctlError("stack %r has no signing key in %s (deployed with --auth none, or not deployed)"
                             % (self.stack, self.region_name)) from None

    @property
    def function_name(self) -> str:
        """The function that serves the stack's routes (the emulator's own for wsctl's API)."""
        if self.local:
            return (self.local_state.get("routes") or {}).get("$default") or names.function_name(self.audience_stack)
        return names.function_name(self.stack)

    @property
    def audience_stack(self) -> str:
        """The stack name that tokens for this target must name in `aud`."""
        return self.local_state.get("stack", self.stack) if self.local else self.stack
