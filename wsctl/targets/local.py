"""A running local emulator (`wsctl local up`), read from its state: its gateway and Lambda service on
loopback, its embedded DynamoDB, and the registry of the API it runs (wsctl's own, or the project's,
discovered from its tables and its functions' environment as on AWS)."""

import json
from dataclasses import dataclass
from functools import cached_property

from ..errors import WsctlError
from ..limits import LOCAL_KEY
from ..registry.layout import wsctl_layout
from ..registry.infer import tables_in_environment
from . import discovery
from .base import Target
from .emulator import EmulatorState, read_state

LOCAL_CREDENTIALS = {"aws_access_key_id": LOCAL_KEY, "aws_secret_access_key": LOCAL_KEY}  # boto3's arguments


@dataclass
class LocalTarget(Target):
    name: str | None = None  # --name: which running emulator (default: the only one)

    kind = "local"
    local = True

    @cached_property
    def state(self) -> EmulatorState:
        return read_state(self.name)

    @cached_property
    def session(self):
        if self.boto_session is not None:
            return self.boto_session
        import boto3  # only once a command talks to the emulator: every command imports the targets

        return boto3.Session(region_name=self.state.region, **LOCAL_CREDENTIALS)

    def _endpoint_for(self, service: str) -> str | None:
        state = self.state
        return {"dynamodb": state.dynamodb_endpoint, "apigatewaymanagementapi": state.management_endpoint,
                "lambda": state.lambda_endpoint}.get(service, state.aws_endpoint)

    def describe(self) -> str:
        return "local emulator at %s" % self.state.ws_url

    def forbidden_where(self) -> str:
        return "this stage"

    @property
    def stage(self) -> str:
        return self.state.stage

    @property
    def api_id(self) -> str:
        return self.state.api_id

    @property
    def management_endpoint(self) -> str:
        return self.state.management_endpoint

    @property
    def ws_url(self) -> str:
        return self.state.ws_url

    @property
    def ca_bundle(self) -> str | None:
        return self.state.ca_bundle

    def route_keys(self) -> list[str]:
        return list(self.state.routes)

    def view(self, name: str):
        """One of the running emulator's own views (connections, functions), from its loopback-only
        Lambda endpoint."""
        import urllib.error  # as costly to import as the rest of this module, which every command imports
        import urllib.request

        url = "%s/-/wsctl/%s" % (self.state.lambda_endpoint, name)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise WsctlError("cannot read the emulator's %s from %s: %s" % (name, url, getattr(error, "reason", error))) \
                from None

    def gateway_connections(self) -> list[dict]:
        return self.view("connections")

    # -- wsctl's own API -----------------------------------------------------------------------------
    @property
    def bundled(self) -> bool:
        return self.state.bundled

    def keyset(self) -> str:
        if not self.bundled:
            return super().keyset()
        if self.state.auth == "none" or not self.state.keyset:
            raise WsctlError("the local emulator runs with --auth none: connections need no token")
        return self.state.keyset

    @property
    def audience_stack(self) -> str:
        return self.state.stack if self.bundled else super().audience_stack

    @property
    def function_name(self) -> str:
        if not self.bundled:
            return super().function_name
        return self.state.routes.get("$default") or self.state.functions[0].name

    # -- the registry ------------------------------------------------------------------------------------
    @cached_property
    def finding(self) -> discovery.Finding:
        options = self.registry_given or discovery.RegistryOptions()
        if self.bundled and self.state.table and not options.table:
            layout = wsctl_layout(self.state.table)
            return discovery.Finding(layout, ["%s: wsctl's own registry" % layout.table])
        candidates = [(table, "the API's template") for table in self.state.tables]
        for function in self.state.functions:
            candidates += [(table, "%s's environment" % function.name)
                           for table in tables_in_environment(function.environment)]
        # a table that a function's environment names comes first: that is the one its code writes
        named = [c for c in candidates if c[1] != "the API's template"]
        return discovery.discover(self, named + candidates, options)

    def _registry(self):
        return self.finding.layout

    def _no_registry_reason(self) -> str:
        return self.finding.missing


__all__ = ["LocalTarget", "LOCAL_CREDENTIALS"]
