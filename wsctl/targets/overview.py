"""What wsctl shows of the APIs people already have: the region's WebSocket APIs (`apis list`), one
API's status, and a target saved once (`target add`)."""

import time
from concurrent.futures import ThreadPoolExecutor

from .. import aws, names
from . import apis, saved



def made_by(api: dict, stack: str | None) -> str:
    tags = api.get("Tags") or {}
    if tags.get(names.TAG_KEY):
        return "wsctl (stack %s)" % tags[names.TAG_KEY]
    if stack:
        return "CloudFormation stack %s" % stack
    return "-"


def websocket_apis(target) -> list[dict]:
    """`apis list`: each WebSocket API with its stages' URLs, whether wsctl made it (its tag), and the
    CloudFormation stack that made it (its tag, or DescribeStackResources on it or its functions)."""
    apigw = target.client("apigatewayv2")
    region = target.region_name

    def row(api: dict) -> dict:
        stages = apis.stage_names(apigw, api["ApiId"])
        try:
            functions = apis.integration_functions(apigw, api["ApiId"])
        except Exception:  # noqa: BLE001 - the API alone may still tell
            functions = []
        stack = apis.stack_that_made(target.client("cloudformation"), api, functions)
        return {"apiId": api["ApiId"], "name": api.get("Name"),
                "stages": [{"stage": s, "url": names.ws_url(api["ApiId"], region, s)} for s in stages],
                "wsctlStack": (api.get("Tags") or {}).get(names.TAG_KEY), "cloudFormationStack": stack,
                "madeBy": made_by(api, stack)}

    found = apis.websocket_apis(apigw)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(found)))) as pool:
        return sorted(pool.map(row, found), key=lambda r: (r["name"] or "", r["apiId"]))


def api_status(target) -> dict:
    """`status` of an API named with --api or --target: where it is, and its registry."""
    finding = target.finding
    document = {"target": target.describe(), "apiId": target.api_id, "name": target.api.get("Name"),
                "stage": target.stage, "url": target.ws_url, "managementEndpoint": target.management_endpoint,
                "madeBy": made_by(target.api, target.made_by_stack),
                "registry": finding.layout.describe() if finding.layout else None, "found": finding.lines,
                "missing": finding.missing or None}
    if finding.layout:
        try:
            document["liveConnections"] = target.reader().count_live()
        except Exception as error:  # noqa: BLE001 - status shows what it can
            document["unread"] = "live connections: %s" % (aws.describe(error) or error)
    return document


def template_tables(template: str) -> list[str]:
    """The tables a project's template names (its functions' environment first, then its tables):
    where `wsctl target add --template` looks for the deployed API's registry."""
    from ..apispec.template import load_template
    from ..registry.infer import tables_in_environment

    spec = load_template(template, {}, stack_name=names.DEFAULT_STACK)
    found = [table for function in spec.functions for table in tables_in_environment(function.environment)]
    return found + [table.name for table in spec.tables if table.name not in found]


def save_target(target, name: str, template: str | None = None):
    """`target add`: resolve the API and stage, discover the registry once, save it under NAME."""
    saved.check_name(name)
    if template:
        target.stack_candidates = tuple((table, "the template %s" % template) for table in template_tables(template))
    finding = target.finding
    entry = saved.SavedTarget(
        name=name, api=target.api_id if not target.parsed.domain else target.ref, stage=target.stage,
        region=target.region_name, api_name=target.api.get("Name"), profile=target.profile,
        endpoint_url=target.endpoint_url, management_url=target.management_url,
        registry=finding.layout.to_dict() if finding.layout else None,
        found=list(finding.lines) + ([finding.missing] if finding.missing else []),
        saved_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return entry, saved.save(entry)


__all__ = ["websocket_apis", "api_status", "save_target", "made_by"]
