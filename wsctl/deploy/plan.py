"""Desired stack + remote state -> an ordered list of steps (pure data, no AWS calls).

Like Chalice's planner: every mutating call `apply` will make is a Step here,
so `--dry-run` prints exactly what `deploy` would do, and a stack that already
matches plans nothing. Values that exist only once an earlier step has run
(a new API's id) are `Ref`/`Fmt` placeholders resolved by `apply`.
"""

import hashlib
import json
from dataclasses import dataclass, field

from .. import stack as names
from ..apispec import ApiSpec
from ..errors import WsctlError
from . import bundle
from .remote import RemoteState

RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
ROUTES_SID = "wsctl-routes"
# API Gateway answers 401 without invoking the authorizer when any listed identity
# source is missing, and botocore requires at least one. The token may come from
# the query string or the Authorization header, so neither can be listed: Host is
# present on every handshake, and the authorizer itself answers 401 when there is
# no token at all.
IDENTITY_SOURCE = ("route.request.header.Host",)
AUTHORIZER_SID = "wsctl-authorizer"
HANDLER_ACTIONS = {  # exactly what the handler calls, and nothing else
    "dynamodb": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query",
                 "dynamodb:Scan", "dynamodb:BatchWriteItem"],
    "execute-api": ["execute-api:ManageConnections"],
    "ssm": ["ssm:GetParameter"],
    "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
}


@dataclass(frozen=True)
class StackConfig:
    stack: str
    stage: str
    region: str
    spec: ApiSpec
    code: bytes = field(repr=False)
    allow_client_broadcast: bool = False
    ttl_seconds: int = 7500
    log_retention_days: int = 14
    memory_mb: int = 256
    timeout_s: int = 29
    rotate_key: bool = False

    @property
    def auth(self) -> str:
        return self.spec.auth


@dataclass(frozen=True)
class Ref:
    """A value an earlier step produces (an id), looked up in the apply context."""
    name: str


@dataclass(frozen=True)
class Fmt:
    """A string built from the apply context with str.format."""
    template: str


def resolve(value, context: dict):
    if isinstance(value, Ref):
        return context[value.name]
    if isinstance(value, Fmt):
        return value.template.format(**context)
    if isinstance(value, dict):
        return {k: resolve(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, context) for v in value]
    return value


def known(value, context: dict) -> bool:
    """Can `value` be resolved with what is known before apply?"""
    try:
        resolve(value, context)
        return True
    except KeyError:
        return False


@dataclass
class Step:
    resource: str
    name: str
    action: str  # create | update | delete | adopt | deploy
    detail: str
    op: str
    args: dict = field(default_factory=dict, repr=False)


@dataclass
class Plan:
    steps: list
    context: dict  # ids and coordinates known before apply; apply adds the new ones

    @property
    def empty(self) -> bool:
        return not self.steps


# -- the desired stack ---------------------------------------------------------
def base_context(config: StackConfig, remote: RemoteState) -> dict:
    ctx = {"partition": remote.partition, "region": config.region, "account": remote.account,
           "stack": config.stack, "stage": config.stage}
    ctx["role_arn"] = "arn:{partition}:iam::{account}:role/".format(**ctx) + names.role_name(config.stack, config.region)
    ctx["function_arn"] = "arn:{partition}:lambda:{region}:{account}:function:".format(**ctx) + names.function_name(config.stack)
    ctx["table_arn"] = "arn:{partition}:dynamodb:{region}:{account}:table/".format(**ctx) + names.table_name(config.stack)
    ctx["log_group_arn"] = "arn:{partition}:logs:{region}:{account}:log-group:".format(**ctx) + names.log_group(config.stack)
    ctx["parameter_arn"] = "arn:{partition}:ssm:{region}:{account}:parameter".format(**ctx) + names.signing_key_param(config.stack)
    ctx["integration_uri"] = ("arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
                              "{function_arn}/invocations").format(**ctx)
    if remote.api:
        ctx["api_id"] = remote.api["ApiId"]
    return ctx


TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def role_policy(config: StackConfig) -> dict:
    """Least privilege: this table and its index, this stage's @connections (POST, the only
    method the handler uses), this stack's key parameter, this function's log group."""
    statements = [
        {"Sid": "Registry", "Effect": "Allow", "Action": HANDLER_ACTIONS["dynamodb"],
         "Resource": [Fmt("{table_arn}"), Fmt("{table_arn}/index/GSI1")]},
        {"Sid": "Connections", "Effect": "Allow", "Action": HANDLER_ACTIONS["execute-api"],
         "Resource": [Fmt("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/POST/@connections/*")]},
        {"Sid": "Logs", "Effect": "Allow", "Action": HANDLER_ACTIONS["logs"],
         "Resource": [Fmt("{log_group_arn}:*")]},
    ]
    if config.auth == "jwt":
        statements.insert(2, {"Sid": "SigningKey", "Effect": "Allow", "Action": HANDLER_ACTIONS["ssm"],
                              "Resource": [Fmt("{parameter_arn}")]})
    return {"Version": "2012-10-17", "Statement": statements}


def function_settings(config: StackConfig) -> dict:
    return {"Runtime": RUNTIME, "Handler": bundle.HANDLER, "Role": Fmt("{role_arn}"),
            "MemorySize": config.memory_mb, "Timeout": config.timeout_s,
            "Description": "wsctl stack %s: WebSocket handler" % config.stack,
            "Environment": {"Variables": names.handler_environment(config.stack, config.auth, config.ttl_seconds,
                                                              config.allow_client_broadcast)}}


def api_fingerprint(config: StackConfig) -> str:
    """What a stage deployment freezes; a stage whose deployment has another value is redeployed."""
    shape = {"rse": config.spec.route_selection_expression, "auth": config.auth,
             "routes": sorted((r.key, r.two_way) for r in config.spec.routes),
             "timeout": config.spec.integration_timeout_ms, "handler": bundle.HANDLER}
    return "wsctl " + hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def _normalise(document) -> str:
    def norm(value):
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            return items[0] if len(items) == 1 and not isinstance(items[0], dict) else items
        return value
    if isinstance(document, str):
        document = json.loads(document)
    return json.dumps(norm(document), sort_keys=True)


# -- the plan -------------------------------------------------------------------
def make_plan(config: StackConfig, remote: RemoteState) -> Plan:
    if remote.foreign:
        kind, name = remote.foreign[0]
        raise WsctlError("%s %s exists but does not belong to stack %r (no %s=%s tag): choose another "
                         "--stack, or delete or tag it yourself" % (kind, name, config.stack, names.TAG_KEY,
                                                                   config.stack))
    ctx = base_context(config, remote)
    steps: list[Step] = []
    tags = names.tags(config.stack)
    api_changed = _plan_api(config, remote, ctx, steps, tags)
    _plan_role(config, remote, ctx, steps, tags)
    _plan_table(config, remote, steps, tags)
    _plan_log_group(config, remote, steps, tags)
    _plan_parameter(config, remote, steps, tags)
    _plan_function(config, remote, ctx, steps, tags)
    api_changed |= _plan_api_children(config, remote, ctx, steps)
    _plan_stage(config, remote, ctx, steps, tags, api_changed)
    _plan_permissions(config, remote, ctx, steps)
    return Plan(steps=steps, context=ctx)


def _plan_api(config, remote, ctx, steps, tags) -> bool:
    name = names.api_name(config.stack)
    rse = config.spec.route_selection_expression
    if remote.api is None:
        steps.append(Step("WebSocket API", name, "create", "route selection %s" % rse, "create_api",
                          {"Name": name, "ProtocolType": "WEBSOCKET", "RouteSelectionExpression": rse,
                           "Tags": tags}))
        return True
    if remote.api.get("RouteSelectionExpression") != rse:
        steps.append(Step("WebSocket API", name, "update", "route selection -> %s" % rse, "update_api",
                          {"ApiId": Ref("api_id"), "RouteSelectionExpression": rse}))
        return True
    return False


def _plan_role(config, remote, ctx, steps, tags):
    name = names.role_name(config.stack, config.region)
    policy = role_policy(config)
    if remote.role is None:
        steps.append(Step("IAM role", name, "create", "assumed by lambda.amazonaws.com", "create_role",
                          {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(TRUST_POLICY),
                           "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                           "Description": "wsctl stack %s: the handler's role" % config.stack}))
    elif _normalise(remote.role.get("AssumeRolePolicyDocument", {})) != _normalise(TRUST_POLICY):
        steps.append(Step("IAM role", name, "update", "trust policy", "update_assume_role_policy",
                          {"RoleName": name, "PolicyDocument": json.dumps(TRUST_POLICY)}))
    if remote.role_policy is None or not known(policy, ctx) or \
            _normalise(remote.role_policy) != _normalise(resolve(policy, ctx)):
        steps.append(Step("IAM policy", name, "create" if remote.role_policy is None else "update",
                          "least privilege: table, @connections POST on stage %s, key, logs" % config.stage,
                          "put_role_policy", {"RoleName": name, "PolicyName": name, "PolicyDocument": policy}))


def _plan_table(config, remote, steps, tags):
    from lambda_src import keys

    name = names.table_name(config.stack)
    if remote.table is None:
        steps.append(Step("DynamoDB table", name, "create", "PK/SK + GSI1, on demand, TTL on ttl",
                          "create_table", dict(keys.table_definition(name),
                                               Tags=[{"Key": k, "Value": v} for k, v in tags.items()])))
    else:
        wanted = keys.table_definition(name)
        have_keys = sorted((k["AttributeName"], k["KeyType"]) for k in remote.table.get("KeySchema", []))
        want_keys = sorted((k["AttributeName"], k["KeyType"]) for k in wanted["KeySchema"])
        have_gsi = {g["IndexName"] for g in remote.table.get("GlobalSecondaryIndexes", [])}
        if have_keys != want_keys or keys.GSI1 not in have_gsi:
            raise WsctlError("table %s exists with another key schema: destroy the stack or use another --stack" % name)
    ttl = remote.ttl or {}
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != keys.TTL_ATTRIBUTE:
        steps.append(Step("DynamoDB TTL", name, "update", "expire items on attribute ttl", "enable_ttl",
                          {"TableName": name, "TimeToLiveSpecification": {"Enabled": True,
                                                                          "AttributeName": keys.TTL_ATTRIBUTE}}))


def _plan_log_group(config, remote, steps, tags):
    name = names.log_group(config.stack)
    days = config.log_retention_days
    if remote.log_group is None:
        steps.append(Step("log group", name, "create", "retention %d days" % days, "create_log_group",
                          {"logGroupName": name, "tags": tags, "retentionInDays": days}))
        return
    if remote.log_group_tags.get(names.TAG_KEY) != config.stack:
        # Lambda creates this group by itself on first invocation; it is the function's by name.
        steps.append(Step("log group", name, "adopt", "tag it with the stack", "tag_log_group",
                          {"logGroupName": name, "tags": tags}))
    if remote.log_group.get("retentionInDays") != days:
        steps.append(Step("log group", name, "update", "retention %d days" % days, "put_retention_policy",
                          {"logGroupName": name, "retentionInDays": days}))


def _plan_parameter(config, remote, steps, tags):
    name = names.signing_key_param(config.stack)
    if config.auth == "jwt" and remote.parameter is None:
        steps.append(Step("SSM parameter", name, "create", "SecureString: a new signing key", "create_signing_key",
                          {"Name": name, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}))
    elif config.auth == "jwt" and config.rotate_key:
        steps.append(Step("SSM parameter", name, "update",
                          "rotate the signing key (tokens of the old key verify until they expire, 24 h at most)",
                          "rotate_signing_key", {"Name": name}))
    elif config.auth == "none" and remote.parameter is not None:
        steps.append(Step("SSM parameter", name, "delete", "no authorizer with --auth none", "delete_parameter",
                          {"Name": name}))


def _plan_function(config, remote, ctx, steps, tags):
    name = names.function_name(config.stack)
    settings = function_settings(config)
    sha = bundle.sha256_b64(config.code)
    if remote.function is None:
        steps.append(Step("Lambda function", name, "create",
                          "%s, %s, code %s (%d KB)" % (RUNTIME, bundle.HANDLER, sha[:12], len(config.code) // 1024),
                          "create_function",
                          dict(settings, FunctionName=name, Code={"ZipFile": config.code},
                               Architectures=[ARCHITECTURE], Tags=tags)))
        return
    if remote.function.get("CodeSha256") != sha:
        steps.append(Step("Lambda code", name, "update", "code %s -> %s" % (
            remote.function.get("CodeSha256", "")[:12], sha[:12]), "update_function_code",
            {"FunctionName": name, "ZipFile": config.code}))
    wanted = resolve(settings, ctx)
    have = {key: remote.function.get(key) for key in wanted}
    have["Environment"] = {"Variables": (remote.function.get("Environment") or {}).get("Variables", {})}
    changed = sorted(key for key in wanted if have[key] != wanted[key])
    if changed:
        steps.append(Step("Lambda configuration", name, "update", ", ".join(changed),
                          "update_function_configuration", dict(settings, FunctionName=name)))


def _plan_api_children(config, remote, ctx, steps) -> bool:
    """Integration, authorizer, routes and route responses; True if anything changes."""
    before = len(steps)
    spec = config.spec
    name = names.api_name(config.stack)
    # integration: one AWS_PROXY integration for every route
    integration = next((i for i in remote.integrations if i.get("IntegrationType") == "AWS_PROXY"), None)
    integration_args = {"IntegrationUri": ctx["integration_uri"], "TimeoutInMillis": spec.integration_timeout_ms}
    if integration is None:
        steps.append(Step("integration", name, "create", "AWS_PROXY -> %s" % names.function_name(config.stack),
                          "create_integration", dict(integration_args, ApiId=Ref("api_id"),
                                                     IntegrationType="AWS_PROXY", IntegrationMethod="POST")))
    else:
        ctx["integration_id"] = integration["IntegrationId"]
        if any(integration.get(k) != v for k, v in integration_args.items()):
            steps.append(Step("integration", name, "update", "target or timeout", "update_integration",
                              dict(integration_args, ApiId=Ref("api_id"), IntegrationId=Ref("integration_id"))))

    # authorizer: a REQUEST authorizer backed by the same function
    authorizer_name = "%s-jwt" % names.function_name(config.stack)
    authorizer = next((a for a in remote.authorizers if a.get("Name") == authorizer_name), None)
    authorizer_args = {"AuthorizerType": "REQUEST", "AuthorizerUri": ctx["integration_uri"],
                       "IdentitySource": list(IDENTITY_SOURCE)}
    if authorizer is not None:
        ctx["authorizer_id"] = authorizer["AuthorizerId"]
    if config.auth == "jwt":
        if authorizer is None:
            steps.append(Step("authorizer", authorizer_name, "create", "REQUEST, JWT in ?token= or Bearer header",
                              "create_authorizer", dict(authorizer_args, ApiId=Ref("api_id"), Name=authorizer_name)))
        elif any(authorizer.get(k) != v for k, v in authorizer_args.items()):
            steps.append(Step("authorizer", authorizer_name, "update", "type, target or identity source",
                              "update_authorizer", dict(authorizer_args, ApiId=Ref("api_id"),
                                                        AuthorizerId=Ref("authorizer_id"))))

    # routes
    existing = {r["RouteKey"]: r for r in remote.routes}
    for route in spec.routes:
        wanted = {"Target": Fmt("integrations/{integration_id}"), "AuthorizationType": "NONE"}
        if route.key == "$connect" and config.auth == "jwt":
            wanted.update(AuthorizationType="CUSTOM", AuthorizerId=Ref("authorizer_id"))
        if route.two_way:
            wanted["RouteResponseSelectionExpression"] = "$default"
        have = existing.pop(route.key, None)
        if have is None:
            steps.append(Step("route", route.key, "create", _route_detail(route, wanted), "create_route",
                              dict(wanted, ApiId=Ref("api_id"), RouteKey=route.key, TwoWay=route.two_way)))
            continue
        differs = any(not known(v, ctx) or have.get(k) != resolve(v, ctx) for k, v in wanted.items())
        differs |= wanted["AuthorizationType"] == "NONE" and bool(have.get("AuthorizerId"))
        differs |= not route.two_way and bool(have.get("RouteResponseSelectionExpression"))
        if differs:
            steps.append(Step("route", route.key, "update", _route_detail(route, wanted), "update_route",
                              dict(wanted, ApiId=Ref("api_id"), RouteId=have["RouteId"])))
        if route.two_way and not any(r.get("RouteResponseKey") == "$default"
                                     for r in remote.route_responses.get(have["RouteId"], [])):
            steps.append(Step("route response", route.key, "create", "two-way: the handler's body answers",
                              "create_route_response", {"ApiId": Ref("api_id"), "RouteId": have["RouteId"],
                                                        "RouteResponseKey": "$default"}))
    for key, have in sorted(existing.items()):
        steps.append(Step("route", key, "delete", "not in the route definition", "delete_route",
                          {"ApiId": Ref("api_id"), "RouteId": have["RouteId"]}))
    if config.auth == "none" and authorizer is not None:
        steps.append(Step("authorizer", authorizer_name, "delete", "--auth none", "delete_authorizer",
                          {"ApiId": Ref("api_id"), "AuthorizerId": authorizer["AuthorizerId"]}))
    return len(steps) > before


def _route_detail(route, wanted) -> str:
    parts = ["auth %s" % wanted["AuthorizationType"].lower()]
    if route.two_way:
        parts.append("two-way")
    return ", ".join(parts)


def _plan_stage(config, remote, ctx, steps, tags, api_changed: bool):
    fingerprint = api_fingerprint(config)
    deployed = (remote.deployment or {}).get("Description")
    if remote.stage is None:
        steps.append(Step("deployment", config.stage, "deploy", fingerprint, "create_deployment",
                          {"ApiId": Ref("api_id"), "Description": fingerprint}))
        steps.append(Step("stage", config.stage, "create", "serving the new deployment", "create_stage",
                          {"ApiId": Ref("api_id"), "StageName": config.stage, "DeploymentId": Ref("deployment_id"),
                           "Tags": tags}))
    elif api_changed or deployed != fingerprint:
        steps.append(Step("deployment", config.stage, "deploy", "routes changed" if api_changed else
                          "stage serves an older deployment", "create_deployment",
                          {"ApiId": Ref("api_id"), "Description": fingerprint, "StageName": config.stage}))


def _plan_permissions(config, remote, ctx, steps):
    function = names.function_name(config.stack)
    wanted = {ROUTES_SID: Fmt("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/*")}
    if config.auth == "jwt":
        wanted[AUTHORIZER_SID] = Fmt("arn:{partition}:execute-api:{region}:{account}:{api_id}/authorizers/{authorizer_id}")
    for sid, source in wanted.items():
        have = remote.permissions.get(sid)
        have_source = ((have or {}).get("Condition") or {}).get("ArnLike", {}).get("AWS:SourceArn")
        if have is not None and known(source, ctx) and have_source == resolve(source, ctx):
            continue
        steps.append(Step("Lambda permission", sid, "create" if have is None else "update",
                          "apigateway.amazonaws.com may invoke, from this %s only" % (
                              "API's stage" if sid == ROUTES_SID else "authorizer"),
                          "add_permission", {"FunctionName": function, "StatementId": sid,
                                             "Action": "lambda:InvokeFunction",
                                             "Principal": "apigateway.amazonaws.com", "SourceArn": source,
                                             "Replace": have is not None}))
    if config.auth == "none" and AUTHORIZER_SID in remote.permissions:
        steps.append(Step("Lambda permission", AUTHORIZER_SID, "delete", "--auth none", "remove_permission",
                          {"FunctionName": function, "StatementId": AUTHORIZER_SID}))
