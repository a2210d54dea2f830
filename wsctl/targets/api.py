"""Any WebSocket API, made by any tool: named by id, name or URL (--api), or saved with `wsctl
target add` (--target). Its stage is checked (or, when not given, is its only one), and its
registry is the one the user describes, the saved one, or the one discovery finds."""

from dataclasses import dataclass, field
from functools import cached_property

from .. import names
from ..errors import UsageError
from ..registry.layout import Layout, wsctl_layout
from ..registry.infer import tables_in_environment
from . import apis, discovery
from .base import Target


@dataclass
class ApiTarget(Target):
    ref: str = ""  # what --api (or the saved target) names
    requested_stage: str | None = None  # --stage, if given (else the URL's, or the API's only stage)
    management_url: str | None = None  # a custom domain's management endpoint, when given
    saved_name: str | None = None  # --target NAME (its `ref` is the API's id)
    saved_layout: Layout | None = field(default=None, repr=False)  # the registry `target add` found
    stack_candidates: tuple = ()  # (table, where) from `target add --template`

    kind = "aws"

    def __post_init__(self):
        super().__post_init__()
        self.parsed = apis.parse_ref(self.ref)
        if self.saved_name and not self.parsed.domain:
            self.parsed = apis.ApiRef(self.ref, api_id=self.ref)
        if self.region is None and self.parsed.region:
            self.region = self.parsed.region

    def describe(self) -> str:
        api = self.api
        label = api.get("Name") or api["ApiId"]
        name = "target %s: " % self.saved_name if self.saved_name else ""
        return "%sAWS %s, API %s (%s), stage %s" % (name, self.region_name, api["ApiId"], label, self.stage)

    # -- the API and its stage, read once ---------------------------------------------------------------
    @cached_property
    def _resolved(self) -> tuple[dict, str]:
        apigw = self.client("apigatewayv2")
        api, url_stage = apis.resolve(apigw, self.parsed, self.region_name)
        wanted = self.requested_stage
        if wanted is not None and url_stage is not None and wanted != url_stage:
            raise UsageError("--stage %s, but %s names the stage %s" % (wanted, self.ref, url_stage))
        stage = apis.choose_stage(apis.stage_names(apigw, api["ApiId"]), wanted or url_stage, api["ApiId"])
        return api, stage

    @property
    def api(self) -> dict:
        return self._resolved[0]

    @property
    def api_id(self) -> str:
        return self.api["ApiId"]

    @property
    def stage(self) -> str:
        return self._resolved[1]

    @property
    def wsctl_stack(self) -> str | None:
        """The stack, when wsctl made this API (its tag)."""
        return (self.api.get("Tags") or {}).get(names.TAG_KEY)

    @property
    def management_endpoint(self) -> str:
        if self.management_url:
            return self.management_url.rstrip("/")
        if self.parsed.domain:  # a custom domain's management API is at its mapping's path
            return "https://%s%s" % (self.parsed.domain, "/" + self.parsed.base_path if self.parsed.base_path else "")
        if self.endpoint_url:
            self.api_id  # noqa: B018 - the API must exist, whatever serves its management API
            return self.endpoint_url
        return names.management_url(self.api_id, self.region_name, self.stage)

    @property
    def ws_url(self) -> str:
        if self.parsed.domain:
            return "wss://%s%s" % (self.parsed.domain, "/" + self.parsed.base_path if self.parsed.base_path else "")
        return names.ws_url(self.api_id, self.region_name, self.stage)

    # -- wsctl's own, when its tag says so -----------------------------------------------------------------
    @property
    def bundled(self) -> bool:
        return self.wsctl_stack is not None

    def keyset(self) -> str:
        if not self.bundled:
            return super().keyset()
        from .stack import StackTarget

        return StackTarget(stack=self.wsctl_stack, stage=self.stage, profile=self.profile, region=self.region,
                           endpoint_url=self.endpoint_url, boto_session=self.session).keyset()

    @property
    def audience_stack(self) -> str:
        return self.wsctl_stack if self.bundled else super().audience_stack

    @property
    def function_name(self) -> str:
        return names.function_name(self.wsctl_stack) if self.bundled else super().function_name

    # -- the registry ------------------------------------------------------------------------------------
    @cached_property
    def finding(self) -> discovery.Finding:
        options = self.registry_given or discovery.RegistryOptions()
        if self.bundled and not options.table:
            layout = wsctl_layout(names.table_name(self.wsctl_stack))
            return discovery.Finding(layout, ["%s: wsctl's own registry (the API is stack %s's)" % (
                layout.table, self.wsctl_stack)])
        if self.saved_layout is not None and not options.table:
            return discovery.Finding(self.saved_layout, ["saved with the target: %s" % self.saved_layout.describe()])
        return discovery.discover(self, [] if options.table else self.candidate_tables(), options)

    def _registry(self):
        return self.finding.layout

    def _no_registry_reason(self) -> str:
        return self.finding.missing

    def candidate_tables(self) -> list[tuple[str, str]]:
        """Where the API's project names tables: the stack that made it, its functions' environment."""
        found = list(self.stack_candidates)
        functions = self.functions
        stack = self.made_by_stack
        if stack:
            found += [(table, "stack %s" % stack) for table in self.stack_tables(stack)]
        for function in functions:
            try:
                environment = self.client("lambda").get_function_configuration(FunctionName=function).get(
                    "Environment", {}).get("Variables", {})
            except Exception:  # noqa: BLE001 - a function we may not read: the others may tell
                continue
            found += [(table, "%s's environment" % function.rsplit(":", 1)[-1])
                      for table in tables_in_environment(environment)]
        return found

    @cached_property
    def functions(self) -> list[str]:
        """The Lambda functions behind the API's routes."""
        return apis.integration_functions(self.client("apigatewayv2"), self.api_id)

    @cached_property
    def made_by_stack(self) -> str | None:
        """The CloudFormation stack that made the API, if one did (discovery, status and policy ask it once)."""
        return apis.stack_that_made(self.client("cloudformation"), self.api, self.functions)

    def stack_tables(self, stack: str) -> list[str]:
        tables = []
        try:
            paginator = self.client("cloudformation").get_paginator("list_stack_resources")
            for page in paginator.paginate(StackName=stack):
                tables += [r["PhysicalResourceId"] for r in page.get("StackResourceSummaries", [])
                           if r.get("ResourceType") in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
                           and r.get("PhysicalResourceId")]
        except Exception:  # noqa: BLE001 - the functions' environment may still tell
            pass
        return tables


__all__ = ["ApiTarget"]
