"""What every kind of target answers: where the API is (its id, stage, URLs), how to reach AWS or
the emulator (session, clients, transport), and which registry holds its connections.

A command chooses one target (wsctl.targets.resolve) and asks it; it never asks which kind it has.
"""

from dataclasses import dataclass, field
from functools import cached_property

from .. import aws
from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus

# How the fan-out engine calls the management API (wsctl.fanout.transport): lean (pre-built HTTP/1.1
# requests on a keep-alive pool with a cached SigV4 signer, the default) or boto3 (kept for parity tests and moto's in-process mock).
TRANSPORTS = ("lean", "boto3")

NO_REGISTRY = ("AWS has no call that lists a WebSocket API's connections, so %s needs the API's registry "
               "(the DynamoDB table its $connect writes) and none was found%s: name it with --registry TABLE "
               "(and --registry-key, --registry-user, --registry-room where wsctl cannot tell), or save it "
               "once with `wsctl target add`")


class NoRegistry(WsctlError):
    def __init__(self, what: str, why: str = ""):
        super().__init__(NO_REGISTRY % (what, " (%s)" % why if why else ""), ExitStatus.USAGE)


@dataclass
class Target:
    """The common part. Kinds: StackTarget (a stack `wsctl deploy` made), ApiTarget (any API, by id,
    name or URL, or saved with `wsctl target add`), LocalTarget (a running emulator)."""
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    transport: str = "lean"  # how the management API is called (TRANSPORTS; the hidden --transport)
    boto_session: object = field(default=None, repr=False)  # a ready boto3.Session (tests hook its events)
    registry_given: object = field(default=None, repr=False)  # targets.discovery.RegistryOptions from the CLI
    _clients: dict = field(default_factory=dict, repr=False)

    kind = "?"  # aws or local; every kind also has `stage`, the stage the command acts on
    local = False  # only the emulator has a gateway to ask (sockets it holds)

    def __post_init__(self):
        if self.transport not in TRANSPORTS:
            raise UsageError("--transport %r: use %s" % (self.transport, " or ".join(TRANSPORTS)))

    # -- AWS (or the emulator) --------------------------------------------------------------
    @cached_property
    def session(self):
        if self.boto_session is not None:
            return self.boto_session
        sess = aws.session(self.profile, self.region)
        if not sess.region_name:
            raise WsctlError("no AWS region: pass --region or set AWS_REGION (or use --local for the emulator)")
        return sess

    @property
    def region_name(self) -> str:
        return self.session.region_name

    def client(self, service: str, **config):
        key = (service, repr(sorted(config.items())))  # values may be dicts (retries)
        if key not in self._clients:
            self._clients[key] = aws.client(self.session, service, self._endpoint_for(service), **config)
        return self._clients[key]

    def _endpoint_for(self, service: str) -> str | None:
        return self.endpoint_url

    def management_client(self):
        """A boto3 client of the target's management API, for the few calls that need no fan-out
        (made once: discovery asks it once per candidate table)."""
        return self._management_client

    @cached_property
    def _management_client(self):
        return aws.client(self.session, "apigatewaymanagementapi", self.management_endpoint, connect_timeout=5,
                          read_timeout=10, retries={"mode": "standard", "total_max_attempts": 2})

    @cached_property
    def account(self) -> tuple[str, str]:
        """(partition, account id) of the caller, for ARNs."""
        identity = self.client("sts").get_caller_identity()
        return identity["Arn"].split(":")[1], identity["Account"]

    # -- the API ------------------------------------------------------------------------------
    @property
    def api_id(self) -> str:
        raise NotImplementedError

    @property
    def management_endpoint(self) -> str:
        raise NotImplementedError

    @property
    def ws_url(self) -> str:
        raise NotImplementedError

    @property
    def ca_bundle(self) -> str | None:
        """What a TLS client of the management API and the wss:// URL must trust (None: the system's)."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def route_keys(self) -> list[str]:
        """The API's route keys (GetRoutes)."""
        found = []
        for page in self.client("apigatewayv2").get_paginator("get_routes").paginate(ApiId=self.api_id):
            found += [route["RouteKey"] for route in page.get("Items", [])]
        return found

    def forbidden_where(self) -> str:
        """The resource a 403 from the management API is about, for the error line."""
        from ..names import partition

        return "arn:%s:execute-api:%s:<account>:%s/%s/*/@connections/*" % (partition(self.region_name), self.region_name,
                                                                           self.api_id, self.stage)

    # -- wsctl's own API (tokens, server-side fan-out) ------------------------------------------------
    @property
    def bundled(self) -> bool:
        """Whether the target runs wsctl's own API (its registry, its tokens, its function)."""
        return False

    def keyset(self) -> str:
        raise WsctlError("%s is not wsctl's own API: its tokens are its own (give the handshake's token or "
                         "headers yourself: connect --token or -H)" % self.describe())

    @property
    def audience_stack(self) -> str:
        raise WsctlError("%s is not wsctl's own API" % self.describe())

    @property
    def function_name(self) -> str:
        raise UsageError("--server-side runs wsctl's own function; %s is not wsctl's API" % self.describe())

    # -- the registry -----------------------------------------------------------------------------------
    @cached_property
    def registry(self):
        """The registry's layout (wsctl.registry.layout.Layout); raises NoRegistry when there is none."""
        layout = self._registry()
        if layout is None:
            raise NoRegistry("this command", self._no_registry_reason())
        return layout

    def has_registry(self) -> bool:
        try:
            self.registry
        except NoRegistry:
            return False
        return True

    def _registry(self):
        raise NotImplementedError

    def _no_registry_reason(self) -> str:
        return ""

    def reader(self):
        """The registry's reader (wsctl.registry.RegistryReader) on the target's DynamoDB."""
        from ..registry import DATA_CONFIG, RegistryReader

        return RegistryReader(self.client("dynamodb", **DATA_CONFIG), self.registry)

    def gateway_connections(self) -> list[dict] | None:
        """The sockets the gateway holds, where it can be asked (the emulator); None on AWS."""
        return None


__all__ = ["Target", "TRANSPORTS", "NoRegistry"]
