"""The running local emulators' state: one typed value per emulator, written by `wsctl local up`
(wsctl.local) and read by every `--local` command, with one writer and one reader here.

$WSCTL_HOME (default ~/.wsctl) holds one folder per running emulator, by name:
  local/<name>/state.json   where it listens, its CA bundle, its signing keys (owner-only)
  local/<name>/tls/         its certificate, key and CA bundle
  local/<name>/moto.log     its embedded DynamoDB's log
so several emulators (other projects, other terminals) run at once and `--local --name` picks
one. A state file whose process is gone is stale: noticed and cleared when read.
"""

import json
import os
import re
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..errors import UsageError, WsctlError

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


@dataclass(frozen=True)
class FunctionInfo:
    """One of the emulator's functions as `status`, the banner and registry discovery see it."""
    name: str
    runtime: str
    handler: str
    code: str
    timeout: float
    memory: int
    environment: dict = field(default_factory=dict)  # the function's own variables (they may name its table)


@dataclass(frozen=True)
class EmulatorState:
    """Where one running emulator listens and what it runs."""
    name: str
    pid: int
    project: str
    stack: str
    stage: str
    region: str
    api_id: str
    ws_url: str
    wss_url: str
    management_endpoint: str
    tls_management_endpoint: str
    lambda_endpoint: str
    dynamodb_endpoint: str
    aws_endpoint: str
    backend: str  # moto (embedded) or external
    auth: str  # the bundled API's auth mode (jwt or none)
    ca_bundle: str
    origin: str  # where the API's description came from
    bundled: bool  # wsctl's own API: its registry (`table`), tokens and function
    started: float
    functions: tuple[FunctionInfo, ...] = ()
    routes: dict = field(default_factory=dict)  # route key -> function name
    authorizer: str | None = None
    tables: tuple[str, ...] = ()  # the tables the API's description declares (made in the embedded DynamoDB)
    table: str | None = None  # the bundled API's registry table
    not_emulated: tuple[str, ...] = ()
    aws_passthrough: bool = False
    keyset: str | None = None  # the bundled API's signing keys (why the file is owner-only)
    pid_started: str | None = None  # when the pid's process started, to tell it from a later one

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EmulatorState":
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, spec in known.items():  # a state an older wsctl wrote: what it lacks is empty
            if name not in values and spec.default is MISSING and spec.default_factory is MISSING:
                values[name] = {"str": "", "int": 0, "float": 0.0, "bool": False}.get(str(spec.type), None)
        values["functions"] = tuple(FunctionInfo(**{k: v for k, v in f.items()
                                                    if k in FunctionInfo.__dataclass_fields__})
                                    for f in data.get("functions") or ())
        for name in ("tables", "not_emulated"):
            values[name] = tuple(data.get(name) or ())
        return cls(**values)

    @property
    def running(self) -> bool:
        """Whether the emulator this state describes is still the process with that pid."""
        if self.pid <= 0 or not alive(self.pid):
            return False
        return self.pid_started is None or process_started(self.pid) in (None, self.pid_started)

    def row(self, now: float) -> dict:
        """`wsctl local ls`'s row; `started` in seconds since the epoch."""
        return {"name": self.name, "url": self.ws_url, "tlsUrl": self.wss_url, "project": self.project,
                "api": self.origin, "pid": self.pid, "started": self.started,
                "uptimeSeconds": round(now - self.started) if self.started else None, "caBundle": self.ca_bundle}


# -- processes ------------------------------------------------------------------------------------------
def process_started(pid: int) -> str | None:
    """When a process started (Linux: /proc/PID/stat field 22, in clock ticks since boot), to
    tell a live emulator from another process that was given its pid later."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
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


# -- the one writer and the one reader ------------------------------------------------------------------
def write_state(state: EmulatorState, base: Path | None = None) -> Path:
    """Write an emulator's state atomically, owner-only from the start: it holds the local signing key."""
    folder = instance_dir(state.name, base)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = state.to_json()
    if document["pid_started"] is None:
        document["pid_started"] = process_started(state.pid)
    return write_private_json(folder / "state.json", document)


def write_private_json(path: Path, document) -> Path:
    """A JSON file written atomically (a half-written one never exists), owner-only from the start."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(tmp, path)
    return path


def _load(path: Path) -> EmulatorState | None:
    try:
        data = json.loads(path.read_text())
        return EmulatorState.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def remove_state(pid: int, name: str | None = None) -> None:
    """Remove the state file(s) that still describe the emulator `pid`."""
    for path in ([state_path(name)] if name else sorted(local_root().glob("*/state.json"))):
        state = _load(path)
        if state is not None and state.pid == pid:
            try:
                path.unlink()
            except OSError:
                pass


def states(base: Path | None = None) -> tuple[list[EmulatorState], list[EmulatorState]]:
    """(the running emulators' states by name, the stale ones found and cleared)."""
    running, stale = [], []
    for path in sorted(local_root(base).glob("*/state.json")):
        state = _load(path)
        if state is None:
            continue
        if state.running:
            running.append(state)
        else:
            stale.append(state)
            try:
                path.unlink()
            except OSError:
                pass
    return running, stale


def rows(now: float | None = None) -> tuple[list[dict], list[EmulatorState]]:
    """`wsctl local ls`: (a row for each running emulator, the stale states found and cleared)."""
    running, stale = states()
    now = time.time() if now is None else now
    return [state.row(now) for state in running], stale


def find_state(pid: int, base: Path | None = None) -> EmulatorState | None:
    """The state of the emulator with this pid, once it has written it (tests and benchmarks wait on this)."""
    for path in sorted(local_root(base).glob("*/state.json")):
        state = _load(path)
        if state is not None and state.pid == pid:
            return state
    return None


def _stale_note(stale: list[EmulatorState]) -> str:
    if not stale:
        return ""
    return " (cleared the stale state of %s: the process is gone)" % ", ".join(
        "%s, pid %s" % (s.name, s.pid) for s in stale)


def read_state(name: str | None = None) -> EmulatorState:
    """The state of the emulator `--local` acts on: the one named, or the only one running."""
    running, stale = states()
    if name:
        check_name(name)
        for state in running:
            if state.name == name:
                return state
        if any(s.name == name for s in stale):
            raise WsctlError("the local emulator %r is no longer running%s: start it with `wsctl local up --name %s`"
                             % (name, _stale_note([s for s in stale if s.name == name]), name))
        raise WsctlError("no local emulator named %r is running (%s): see `wsctl local ls`" % (
            name, "running: " + ", ".join(s.name for s in running) if running else "none is"))
    if not running:
        raise WsctlError("no local emulator is running (no state in %s)%s: start one with `wsctl local up`"
                         % (local_root(), _stale_note(stale)))
    if len(running) > 1:
        raise UsageError("%d local emulators are running (%s): choose one with --name NAME (see `wsctl local ls`)"
                         % (len(running), ", ".join("%s at %s" % (s.name, s.ws_url) for s in running)))
    return running[0]


__all__ = ["EmulatorState", "FunctionInfo", "home", "local_root", "instance_dir", "state_path", "check_name",
           "name_for", "write_state", "read_state", "remove_state", "states", "rows", "find_state", "alive",
           "process_started"]
