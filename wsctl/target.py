"""Where a command acts: AWS (profile, region, endpoint) or the running local emulator.

Resolved once per command from the global options. The emulator writes where
it listens to a state file (owner-only: it holds the local signing key) that
`wsctl --local ...` in another terminal reads.
"""

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import stack as names
from .errors import WsctlError

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


# -- the local emulator's state file ----------------------------------------
def home() -> Path:
    return Path(os.environ.get("WSCTL_HOME") or Path.home() / ".wsctl")


def state_path() -> Path:
    return home() / "local.json"


def write_local_state(state: dict) -> Path:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start: the file holds the local signing key.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2)
    os.replace(tmp, path)
    return path


def remove_local_state(pid: int) -> None:
    """Remove the state file if it still describes the emulator `pid`."""
    try:
        if read_local_state(check_alive=False).get("pid") == pid:
            state_path().unlink()
    except (WsctlError, OSError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_local_state(check_alive: bool = True) -> dict:
    path = state_path()
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise WsctlError("no local emulator is running (no %s): start one with `wsctl local up`" % path) from None
    except (OSError, ValueError) as error:
        raise WsctlError("cannot read the emulator's state file %s: %s" % (path, error)) from None
    if check_alive and not _alive(int(state.get("pid", 0))):
        raise WsctlError("the local emulator (pid %s) is no longer running: start it with `wsctl local up`"
                         % state.get("pid"))
    return state


# -- targets -------------------------------------------------------------------
@dataclass
class Target:
    stack: str = names.DEFAULT_STACK
    stage: str = names.DEFAULT_STAGE
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    local: bool = False
    boto_session: object = field(default=None, repr=False)  # a ready boto3.Session (tests hook its events)
    _clients: dict = field(default_factory=dict, repr=False)

    @cached_property
    def local_state(self) -> dict:
        return read_local_state() if self.local else {}

    @cached_property
    def session(self):
        from . import aws

        if self.boto_session is not None:
            return self.boto_session
        if self.local:
            import boto3

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
        from . import aws

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
        import json as _json
        import urllib.error
        import urllib.request

        url = "%s/-/wsctl/%s" % (self.local_state["lambda_endpoint"], view)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return _json.loads(response.read())
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
        from .deploy.remote import find_api

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
