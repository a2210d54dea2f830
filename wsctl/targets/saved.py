"""Named targets (`wsctl target add NAME --api ...`): an API, its stage, the AWS options that reach it and
the registry discovery found, saved once under $WSCTL_HOME/targets/NAME.json and used by every
command with --target NAME (or WSCTL_TARGET)."""

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus
from .emulator import home, write_private_json

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class SavedTarget:
    name: str
    api: str  # the API's id (or the custom domain URL it was named by)
    stage: str
    region: str
    api_name: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    management_url: str | None = None
    registry: dict | None = None  # Layout.to_dict(), or None when the API has none wsctl could find
    found: list = field(default_factory=list)  # what discovery saw, in words
    saved_at: str | None = None


def folder() -> Path:
    return home() / "targets"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError("target name %r: use 1-64 letters, digits, '.', '-' or '_'" % name)
    return name


def path_of(name: str) -> Path:
    return folder() / ("%s.json" % check_name(name))


def save(target: SavedTarget) -> Path:
    """Write atomically (a half-written target never exists), owner-only like the rest of the home."""
    path = path_of(target.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_private_json(path, asdict(target))


def load(name: str) -> SavedTarget:
    path = path_of(name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(all_names()) or "none is saved"
        raise WsctlError("no target named %r (%s): save one with `wsctl target add %s --api ...`"
                         % (name, known, name), ExitStatus.NOT_FOUND) from None
    except (OSError, ValueError) as error:
        raise WsctlError("cannot read the target %s (%s): %s" % (name, path, error)) from None
    known = SavedTarget.__dataclass_fields__
    return SavedTarget(**{k: v for k, v in data.items() if k in known})


def all_names() -> list[str]:
    return sorted(p.stem for p in folder().glob("*.json"))


def remove(name: str) -> None:
    try:
        path_of(name).unlink()
    except FileNotFoundError:
        raise WsctlError("no target named %r" % name, ExitStatus.NOT_FOUND) from None


__all__ = ["SavedTarget", "save", "load", "remove", "all_names", "check_name", "folder"]
