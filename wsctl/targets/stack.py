"""A stack that `wsctl deploy` made: its API found by name and tag, its registry wsctl's own layout
in the stack's table, its function and signing key known by name."""

from dataclasses import dataclass
from functools import cached_property

from .. import names
from ..errors import WsctlError
from ..registry.layout import wsctl_layout
from . import apis
from .base import Target


@dataclass
class StackTarget(Target):
    stack: str = names.DEFAULT_STACK
    stage: str = names.DEFAULT_STAGE

    kind = "aws"

    def describe(self) -> str:
        return "AWS %s, stack %s, stage %s" % (self.region_name, self.stack, self.stage)

    @cached_property
    def api_id(self) -> str:
        """The stack's API id, with its stage checked once: a post to a stage that does not exist
        would be refused with 403, which reads as a missing permission."""
        apigw = self.client("apigatewayv2")
        api = apis.find_api(apigw, self.stack)
        if api is None:
            raise WsctlError("stack %r is not deployed in %s (no API %s tagged %s=%s): run `wsctl deploy` "
                             "or check --stack/--region" % (self.stack, self.region_name, names.api_name(self.stack),
                                                             names.TAG_KEY, self.stack))
        apis.choose_stage(apis.stage_names(apigw, api["ApiId"]), self.stage, api["ApiId"], "the stack serves")
        return api["ApiId"]

    @property
    def management_endpoint(self) -> str:
        api_id = self.api_id  # the stack must exist, whatever serves its management API
        if self.endpoint_url:  # another emulator (moto's server serves @connections at its root)
            return self.endpoint_url
        return names.management_url(api_id, self.region_name, self.stage)

    @property
    def ws_url(self) -> str:
        return names.ws_url(self.api_id, self.region_name, self.stage)

    @property
    def bundled(self) -> bool:
        return True

    def keyset(self) -> str:
        """The stack's signing key set (never printed)."""
        ssm = self.client("ssm")
        try:
            return ssm.get_parameter(Name=names.signing_key_param(self.stack), WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise WsctlError("stack %r has no signing key in %s (deployed with --auth none, or not deployed)"
                             % (self.stack, self.region_name)) from None

    @property
    def audience_stack(self) -> str:
        return self.stack

    @property
    def function_name(self) -> str:
        return names.function_name(self.stack)

    @property
    def table(self) -> str:
        return names.table_name(self.stack)

    def _registry(self):
        return wsctl_layout(self.table)


__all__ = ["StackTarget"]
