"""Finding WebSocket APIs on API Gateway: a stack's by its tag, any by id, name or URL, and the
region's list for `wsctl apis list`. Read-only calls (GetApis, GetApi, GetStages, GetApiMappings)."""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import aws, names
from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus

_EXECUTE_API = re.compile(r"^(?P<id>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
CFN_STACK_TAG = "aws:cloudformation:stack-name"


@dataclass(frozen=True)
class ApiRef:
    """What --api names, parsed (no AWS call): an id, a name, or a URL (execute-api or custom domain)."""
    text: str
    api_id: str | None = None  # known to be an id (a URL's host, a saved target)
    region: str | None = None  # from an execute-api host name
    stage: str | None = None  # from a URL's path
    domain: str | None = None  # a custom domain's host name
    base_path: str = ""  # a custom domain's path before /@connections (its API mapping key)


def parse_ref(text: str) -> ApiRef:
    text = (text or "").strip()
    if not text:
        raise UsageError("--api needs an API id, name, or its wss:// or https:// URL")
    if "://" not in text:
        return ApiRef(text)  # an id or a name: GetApis tells which
    parts = urlsplit(text)
    if parts.scheme not in ("wss", "https", "ws", "http") or not parts.hostname:
        raise UsageError("--api %r: a URL must be wss:// or https:// with a host name" % text)
    path = parts.path.strip("/")
    if "@connections" in path.split("/"):
        path = "/".join(path.split("/")[:path.split("/").index("@connections")])
    match = _EXECUTE_API.match(parts.hostname)
    if match:
        stage = path.split("/")[0] if path else None
        return ApiRef(text, api_id=match["id"], region=match["region"], stage=stage)
    return ApiRef(text, domain=parts.hostname, base_path=path)


def find_api(apigw, stack: str) -> dict | None:
    """The stack's WebSocket API: named wsctl-{stack} and tagged with the stack."""
    return next((api for api in websocket_apis(apigw) if api.get("Name") == names.api_name(stack)
                 and (api.get("Tags") or {}).get(names.TAG_KEY) == stack), None)


def integration_functions(apigw, api_id: str) -> list[str]:
    """The Lambda functions behind the API's routes (their integrations' URIs), as ARNs."""
    found = []
    for item in apigw.get_integrations(ApiId=api_id).get("Items", []):
        uri = item.get("IntegrationUri") or ""
        if ":lambda:path/" in uri and "/functions/" in uri:
            arn = uri.split("/functions/", 1)[1].split("/invocations", 1)[0]
            if arn not in found:
                found.append(arn)
    return found


def stack_that_made(cfn, api: dict, functions: list[str]) -> str | None:
    """The CloudFormation stack that made the API: its tag, else DescribeStackResources by the API's
    physical id, else by its functions' (where the API itself cannot be asked: CloudFormation doubles)."""
    tagged = (api.get("Tags") or {}).get(CFN_STACK_TAG)
    if tagged:
        return tagged
    for physical in [api["ApiId"]] + [f.rsplit(":", 1)[-1] for f in functions]:
        try:
            resources = cfn.describe_stack_resources(PhysicalResourceId=physical).get("StackResources", [])
        except Exception:  # noqa: BLE001 - not in a stack, or not allowed to ask
            continue
        if resources:
            return resources[0]["StackName"]
    return None


def websocket_apis(apigw) -> list[dict]:
    return [api for page in apigw.get_paginator("get_apis").paginate() for api in page.get("Items", ())
            if api.get("ProtocolType") == "WEBSOCKET"]


def stage_names(apigw, api_id: str) -> list[str]:
    return sorted(s["StageName"] for page in apigw.get_paginator("get_stages").paginate(ApiId=api_id)
                  for s in page.get("Items", ()))


def resolve(apigw, ref: ApiRef, region: str) -> tuple[dict, str | None]:
    """The API --api names (GetApi, GetApis or the custom domain's mappings), and the stage its URL
    names, if any."""
    if ref.domain:
        return _by_domain(apigw, ref)
    if ref.api_id:
        try:
            return _websocket(apigw.get_api(ApiId=ref.api_id), ref), ref.stage
        except Exception as error:  # noqa: BLE001 - botocore's ClientError
            if aws.error_code(error) != "NotFoundException":
                raise
            raise WsctlError("no API %s in %s (%s)" % (ref.api_id, region, ref.text), ExitStatus.NOT_FOUND) from None
    wanted = ref.text
    every = websocket_apis(apigw)
    matches = [api for api in every if api["ApiId"] == wanted] or [api for api in every if api.get("Name") == wanted]
    if not matches:
        raise WsctlError("no WebSocket API named or with the id %r in %s: see `wsctl apis list`" % (wanted, region),
                         ExitStatus.NOT_FOUND)
    if len(matches) > 1:
        raise UsageError("%d WebSocket APIs are named %r in %s (%s): give --api with the id" % (
            len(matches), wanted, region, ", ".join(api["ApiId"] for api in matches)))
    return matches[0], None


def _websocket(api: dict, ref: ApiRef) -> dict:
    if api.get("ProtocolType") != "WEBSOCKET":
        raise UsageError("the API %s (%s) is an %s API, not a WebSocket API" % (api["ApiId"], api.get("Name"),
                                                                            api.get("ProtocolType")))
    return api


def _by_domain(apigw, ref: ApiRef) -> tuple[dict, str | None]:
    try:
        mappings = apigw.get_api_mappings(DomainName=ref.domain).get("Items", [])
    except Exception as error:  # noqa: BLE001
        if aws.error_code(error) == "NotFoundException":
            raise WsctlError("%s is not a custom domain of API Gateway in this region (GetApiMappings: not found)"
                             % ref.domain, ExitStatus.NOT_FOUND) from None
        raise
    key = ref.base_path.split("/")[0] if ref.base_path else ""
    mapping = next((m for m in mappings if (m.get("ApiMappingKey") or "") == key), None)
    if mapping is None:
        raise WsctlError("the custom domain %s maps no API at /%s (mappings: %s)" % (
            ref.domain, key, ", ".join("/%s" % (m.get("ApiMappingKey") or "") for m in mappings) or "none"),
            ExitStatus.NOT_FOUND)
    return _websocket(apigw.get_api(ApiId=mapping["ApiId"]), ref), mapping["Stage"]


def choose_stage(stages: list[str], wanted: str | None, api: str, served_by: str = "the API has") -> str:
    """The stage a command acts on: the one given (it must exist), else the API's only one."""
    if wanted is not None:
        if wanted not in stages:
            raise WsctlError("stage %s does not exist (%s %s): give --stage" % (
                wanted, served_by, ", ".join(stages) if stages else "no stage"), ExitStatus.NOT_FOUND)
        return wanted
    if not stages:
        raise WsctlError("the API %s has no stage: it serves no connection" % api, ExitStatus.NOT_FOUND)
    if len(stages) > 1:
        raise UsageError("the API %s has %d stages (%s): choose one with --stage" % (api, len(stages),
                                                                                       ", ".join(stages)))
    return stages[0]


__all__ = ["ApiRef", "parse_ref", "find_api", "websocket_apis", "stage_names", "resolve", "choose_stage",
           "CFN_STACK_TAG"]
