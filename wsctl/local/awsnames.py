"""AWS host names and calls, read (pure but for botocore's service models).

Which service a host name or a signed request names (`dynamodb.us-east-1.amazonaws.com`,
`abc123.execute-api.eu-west-1.amazonaws.com`, `sts.amazonaws.com.cn`, a SigV4 scope),
which operation a call is, the error document that answers a service the emulator does
not emulate, and the rules that send a function's connections to AWS host names to the
emulator (the runtimes' bootstraps apply them; they share no code with wsctl, so the
rules travel as regular expressions both Python and JavaScript read alike).
"""

import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from functools import lru_cache

# Every AWS partition's public endpoints: commercial and GovCloud (.amazonaws.com), China
# (.amazonaws.com.cn), and the dual-stack names (.api.aws).
SUFFIXES = ("amazonaws.com.cn", "amazonaws.com", "api.aws")
_SUFFIX = r"(?:amazonaws\.com(?:\.cn)?|api\.aws)"
_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# What the emulator serves itself, by the name in a host or a signature's scope.
EMULATED = {"dynamodb": "dynamodb", "ddb": "dynamodb", "ssm": "ssm", "lambda": "lambda",
            "execute-api": "execute-api"}


@dataclass(frozen=True)
class AwsHost:
    service: str  # the endpoint prefix: dynamodb, execute-api, s3, sts, ...
    region: str | None  # None for global names (sts.amazonaws.com)
    prefix: tuple = ()  # labels before the service: the API id, a bucket, an account id


def parse_host(host: str) -> AwsHost | None:
    """The service an AWS host name is for, or None when it is not an AWS host name."""
    name = host.lower().rstrip(".")
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name  # host:port
    suffix = next((s for s in SUFFIXES if name.endswith("." + s)), None)
    if suffix is None:
        return None
    labels = name[:-len(suffix) - 1].split(".")
    if not labels or not all(_LABEL.match(label) for label in labels):
        return None
    region = None
    if len(labels) > 1 and _REGION.match(labels[-1]):
        region = labels.pop()
    service = labels.pop()
    if service.endswith("-fips"):
        service = service[:-5]
    legacy = re.match(r"^s3-(.+)$", service)  # s3-us-west-2.amazonaws.com
    if legacy and _REGION.match(legacy.group(1)):
        service, region = "s3", legacy.group(1)
    if service == "dynamodb" and labels[-1:] == ["streams"]:
        service, labels = "dynamodbstreams", labels[:-1]
    return AwsHost(service, region, tuple(labels))


def signed_service(authorization: str) -> str | None:
    """The service of a SigV4 Authorization header's credential scope."""
    scope = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", authorization or "")
    return scope.group(1) if scope else None


def emulated(service: str) -> str | None:
    """The emulated service a host's or a scope's service name stands for (dynamodb, ssm, lambda,
    execute-api), or None."""
    return EMULATED.get(service)


def redirect_rules(front_door: tuple[str, int], gateway: tuple[str, int], api_host: str,
                   passthrough: bool) -> str:
    """The bootstraps' host map (JSON: [[regex, host, port], ...], first match wins): the API's own
    execute-api name goes to the gateway; sealed, every other AWS host name goes to the front door;
    with --aws-passthrough, only the names of the services the emulator serves do, and the rest
    reach AWS."""
    rules = [["^" + re.escape(api_host.lower()) + "$", *gateway]]
    if passthrough:
        rules.append([r"^(?:\d{12}\.ddb|dynamodb|ssm|lambda)(?:-fips)?\.[a-z0-9-]+\." + _SUFFIX + "$", *front_door])
    else:
        rules.append([r"^(?:[a-z0-9-]+\.)+" + _SUFFIX + "$", *front_door])
    return json.dumps(rules)


# -- naming a call ---------------------------------------------------------------------------------------
def operation(service: str, method: str, path: str, query, headers, body: bytes) -> str:
    """The operation a call is: X-Amz-Target's, the query protocol's Action, or the REST method and
    path matched against botocore's model of the service."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rpartition(".")[2]
    action = query.get("Action")
    if action is None and body and b"Action=" in body:
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
    return action or _rest_operation(service, method, path, query) or "%s %s" % (method, path)


@lru_cache(maxsize=64)
def _rest_operations(signing_name: str) -> tuple:
    """(method, path regex, query keys, operation) for a REST service, from botocore's own model."""
    import botocore.session  # the emulator has it loaded anyway; its models only when a call needs naming

    session = botocore.session.get_session()
    available = session.get_available_services()
    # The signing name is the service's own name for most services: look there first.
    for name in ([signing_name] if signing_name in available else []) + available:
        model = session.get_service_model(name)
        if signing_name not in (model.signing_name, model.endpoint_prefix):
            continue
        found = []
        for name_of_operation in model.operation_names:
            http = model.operation_model(name_of_operation).http
            path, _, query = http.get("requestUri", "/").partition("?")
            pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(path))
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
            keys = tuple(k.partition("=")[0] for k in query.split("&") if k)
            found.append((http.get("method", "POST"), re.compile(pattern + "/?$"), keys, name_of_operation))
        return tuple(sorted(found, key=lambda f: -len(f[2])))  # the most specific query first
    return ()


def _rest_operation(signing_name: str, method: str, path: str, query) -> str | None:
    for verb, pattern, keys, name in _rest_operations(signing_name):
        if verb == method and pattern.match(path) and all(k in query for k in keys):
            return name
    return None


def not_emulated(service: str, name: str, json_protocol: bool) -> tuple[int, dict, bytes]:
    """(status, headers, body) answering a call to a service the emulator does not serve, in the
    error shape the caller's protocol expects, so every SDK raises it as a service error naming
    the service and the operation."""
    message = ("%s %s is not emulated by wsctl local; functions are sealed from real AWS "
               "(start the emulator with --aws-passthrough to let them reach it)" % (service, name))
    if json_protocol:
        return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": "NotEmulated"}, \
            json.dumps({"__type": "NotEmulated", "message": message}).encode()
    if service == "s3":
        xml = "<Error><Code>NotEmulated</Code><Message>%s</Message></Error>" % message
    else:
        xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>NotEmulated</Code><Message>%s</Message></Error>"
               "<RequestId>%s</RequestId></ErrorResponse>" % (message, uuid.uuid4()))
    return 400, {"Content-Type": "text/xml"}, xml.encode()
