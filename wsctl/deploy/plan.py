"""Desired stack + remote state -> an ordered list of steps (pure data, no AWS calls).

Like Chalice's planner: every mutating call `apply` will make is a Step here,
one API call per step, so `--dry-run` prints exactly what `deploy` would do,
and a stack that already matches plans nothing. Each planner reads the
desired stack, the remote state and the context of ids known before apply,
and returns its steps; none changes its inputs. Values that exist only once an
earlier step has run (a new API's id) are `Ref`/`Fmt` placeholders resolved
by `apply`.
"""

import hashlib
import json
from dataclasses import dataclass, field

from lambda_src import keys

from .. import limits, names
from ..apispec import ApiSpec
from ..errors import WsctlError
from . import bundle, options, stages
from .model import Action, Call, Fmt, Kind, NewKeyset, Plan, Ref, Retry, RotatedKeyset, Step, known, resolve
from .remote import RemoteState
from .role import plan_role, role_warnings

__all__ = ["StackConfig", "Plan", "Step", "Call", "Action", "Ref", "Fmt", "make_plan", "resolve", "known"]

ROUTES_SID = "wsctl-routes"
AUTHORIZER_SID = "wsctl-authorizer"


@dataclass(frozen=True)
class StackConfig:
    stack: str
    stage: str
    region: str
    spec: ApiSpec
    code: bytes = field(repr=False)
    allow_client_broadcast: bool = False
    ttl_seconds: int = limits.DEFAULT_TTL_SECONDS
    log_retention_days: int = limits.DEFAULT_LOG_RETENTION_DAYS
    memory_mb: int = limits.HANDLER_MEMORY_MB
    timeout_s: int = limits.HANDLER_TIMEOUT_S
    rotate_key: bool = False
    role_arn: str | None = None  # --role-arn: the user's role, which wsctl neither creates nor changes
    permissions_boundary: str | None = None  # set on the role wsctl creates
    throttle: tuple = limits.STAGE_THROTTLE  # the stage's default route throttling
    reserved_concurrency: int | None = None  # None: as it is; options.UNRESERVED: no reservation

    @property
    def auth(self) -> str:
        return self.spec.auth


# -- the desired stack ---------------------------------------------------------
def base_context(config: StackConfig, remote: RemoteState) -> dict:
    """Coordinates and the ids of what exists already; apply adds the ids of what it creates."""
    ctx = {"partition": remote.partition, "region": config.region, "account": remote.account,
           "stack": config.stack, Kind.STAGE: config.stage,
           **names.stack_arns(remote.partition, config.region, remote.account, config.stack)}
    ctx["role_arn"] = config.role_arn or ctx["role_arn"]
    ctx["integration_uri"] = ("arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/"
                              "{function_arn}/invocations").format(**ctx)
    if remote.api:
        ctx["api_id"] = remote.api["ApiId"]
    integration = _our_integration(remote)
    if integration is not None:
        ctx["integration_id"] = integration["IntegrationId"]
    authorizer = _our_authorizer(config, remote)
    if authorizer is not None:
        ctx["authorizer_id"] = authorizer["AuthorizerId"]
    for route in remote.routes:
        ctx["route:" + route["RouteKey"]] = route["RouteId"]
    return ctx


def _our_integration(remote: RemoteState) -> dict | None:
    return next((i for i in remote.integrations if i.get("IntegrationType") == "AWS_PROXY"), None)


def authorizer_name(stack: str) -> str:
    return "%s-jwt" % names.function_name(stack)


def _our_authorizer(config: StackConfig, remote: RemoteState) -> dict | None:
    return next((a for a in remote.authorizers if a.get("Name") == authorizer_name(config.stack)), None)


def function_settings(config: StackConfig, auth: str | None = None) -> dict:
    """The function's configuration; `auth` "switching" for the step that opens an auth switch."""
    return {"Runtime": limits.HANDLER_RUNTIME, "Handler": limits.HANDLER, "Role": Fmt("{role_arn}"),
            "MemorySize": config.memory_mb, "Timeout": config.timeout_s,
            "Description": "wsctl stack %s: WebSocket handler" % config.stack,
            "Environment": {"Variables": names.handler_environment(config.stack, auth or config.auth,
                                                                  config.ttl_seconds, config.allow_client_broadcast)}}


def switching_auth(config: StackConfig, remote: RemoteState) -> bool:
    """Does this deploy change the auth mode of a stage in service? Then the function admits both
    kinds of $connect (AUTH_MODE=switching) from before the stage changes until after it has: the
    stage changes before the function's final environment when auth is removed, after the key,
    its grant and the authorizer are in place when auth is added, and no connection either mode
    would admit is refused meanwhile. A switch that stopped part-way is resumed the same way."""
    if remote.function is None or remote.stage is None:
        return False  # no stage serves connections yet: nothing to keep admitting
    env = (remote.function.get("Environment") or {}).get("Variables", {})
    connect = next((r for r in remote.routes if r.get("RouteKey") == "$connect"), None)
    stage_auth = None if connect is None else "jwt" if connect.get("AuthorizationType") == "CUSTOM" else "none"
    return env.get("AUTH_MODE") != config.auth or stage_auth not in (None, config.auth)


def api_fingerprint(config: StackConfig) -> str:
    """What a stage deployment freezes; a stage whose deployment has another value is redeployed."""
    shape = {"rse": config.spec.route_selection_expression, "auth": config.auth,
             "routes": sorted((r.key, r.two_way) for r in config.spec.routes),
             "timeout": config.spec.integration_timeout_ms, "handler": limits.HANDLER}
    return "wsctl " + hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


# -- the plan -------------------------------------------------------------------
def make_plan(config: StackConfig, remote: RemoteState) -> Plan:
    if remote.foreign:
        kind, name = remote.foreign[0]
        raise WsctlError("%s %s exists but does not belong to stack %r (no %s=%s tag): choose another "
                         "--stack, or delete or tag it yourself" % (kind, name, config.stack, names.TAG_KEY,
                                                                   config.stack))
    stages.check_deploy(config.stack, config.stage, remote.stages)
    ctx = base_context(config, remote)
    tags = names.tags(config.stack)
    switching = switching_auth(config, remote)
    api = plan_api(config, remote)
    routes = plan_integration(config, remote, ctx) + plan_authorizer(config, remote, ctx) + \
        plan_routes(config, remote, ctx)
    role, grant = plan_role(config, remote, ctx, tags)
    function, after_stage = plan_function(config, remote, ctx, tags, switching)
    if switching and config.auth == "none":
        after_stage += grant  # the authorizer reads the key until the stage stops calling it
    else:
        role += grant
    steps = (api + role + plan_table(config, remote, tags)
             + plan_log_group(config, remote, tags) + plan_parameter(config, remote, tags)
             + function + plan_concurrency(config, remote) + routes
             + plan_permissions(config, remote, ctx)
             + plan_stage(config, remote, tags, api_changed=bool(api or routes))
             + after_stage + plan_retirements(config, remote))
    ttl_steps, warnings = plan_ttl(config, remote)
    return Plan(steps=steps + ttl_steps, context=ctx, warnings=role_warnings(config, remote, ctx) + warnings,
                present=present_resources(config.stack, config.region, remote))


# The resources a stack owns at the top (everything else lives inside the API), in the order
# destroy removes them.
TOP_LEVEL = (Kind.API, "Lambda function", "log group", "SSM parameter", "DynamoDB table", "IAM role")


def top_level_names(stack: str, region: str) -> dict:
    return {Kind.API: names.api_name(stack), Kind.FUNCTION: names.function_name(stack),
            "log group": names.log_group(stack), Kind.PARAMETER: names.signing_key_param(stack),
            "DynamoDB table": names.table_name(stack), Kind.ROLE: names.role_name(stack, region)}


def present_resources(stack: str, region: str, remote: RemoteState) -> list:
    """(kind, name) of the stack's own top-level resources that exist (foreign ones excluded)."""
    exists = {Kind.API: remote.api is not None, Kind.FUNCTION: remote.function is not None,
              "log group": remote.log_group is not None and remote.log_group_tags.get(names.TAG_KEY) == stack,
              "SSM parameter": remote.parameter is not None, Kind.TABLE: remote.table is not None,
              "IAM role": remote.role is not None}
    foreign = {name for _, name in remote.foreign}
    return [(kind, name) for kind, name in top_level_names(stack, region).items()
            if exists[kind] and name not in foreign]


def plan_api(config, remote) -> list[Step]:
    name = names.api_name(config.stack)
    rse = config.spec.route_selection_expression
    if remote.api is None:
        return [Step(Kind.API, name, Action.CREATE, "route selection %s" % rse, Call(
            "apigatewayv2", "create_api", {"Name": name, "ProtocolType": "WEBSOCKET", "RouteSelectionExpression": rse,
                                           "Tags": names.tags(config.stack)}, outputs=(("api_id", "ApiId"),)))]
    if remote.api.get("RouteSelectionExpression") != rse:
        return [Step(Kind.API, name, Action.UPDATE, "route selection -> %s" % rse, Call(
            "apigatewayv2", "update_api", {"ApiId": Ref("api_id"), "RouteSelectionExpression": rse}))]
    return []


def plan_table(config, remote, tags) -> list[Step]:
    name = names.table_name(config.stack)
    if remote.table is None:
        return [Step(Kind.TABLE, name, Action.CREATE, "PK/SK + GSI1, on demand", Call(
            "dynamodb", "create_table", dict(keys.table_definition(name), Tags=names.tag_list(tags)),
            wait_after="table_exists"))]
    wanted = keys.table_definition(name)
    have_keys = sorted((k["AttributeName"], k["KeyType"]) for k in remote.table.get("KeySchema", []))
    want_keys = sorted((k["AttributeName"], k["KeyType"]) for k in wanted["KeySchema"])
    have_gsi = {g["IndexName"] for g in remote.table.get("GlobalSecondaryIndexes", [])}
    if have_keys != want_keys or keys.GSI1 not in have_gsi:
        raise WsctlError("table %s exists with another key schema: destroy the stack or use another --stack" % name)
    return []


def plan_ttl(config, remote) -> tuple[list[Step], list[str]]:
    """TTL on `ttl`, last of all: AWS allows one TTL change per table at a time (and, after
    disabling, none for up to an hour), so a table AWS will not change yet leaves a warning
    instead of an error, and the rest of the stack is deployed."""
    name = names.table_name(config.stack)
    attribute = keys.TTL_ATTRIBUTE
    ttl = remote.ttl or {}
    status, have = ttl.get("TimeToLiveStatus", "DISABLED"), ttl.get("AttributeName")
    if status in ("ENABLED", "ENABLING") and have == attribute:
        return [], []
    if status == "DISABLING":
        return [], ["table %s: its TTL is being disabled (DISABLING), and AWS lets TTL be enabled again only once "
                    "that has finished, which can take up to an hour: run `wsctl deploy` again then (until then "
                    "expired entries stay in the table, and every reader skips them)" % name]
    if status in ("ENABLED", "ENABLING"):
        return [], ["table %s has TTL on attribute %r, not %r: AWS allows one TTL attribute per table and changes "
                    "it only after TTL is disabled, then accepts a new one up to an hour later: run `aws dynamodb "
                    "update-time-to-live --table-name %s --time-to-live-specification Enabled=false,AttributeName=%s`"
                    ", then `wsctl deploy` once TTL shows DISABLED" % (name, have, attribute, name, have)]
    return [Step(Kind.TTL, name, Action.UPDATE, "expire items on attribute %s" % attribute, Call(
        "dynamodb", "update_time_to_live", {"TableName": name, "TimeToLiveSpecification": {
            "Enabled": True, "AttributeName": attribute}}))], []


def plan_log_group(config, remote, tags) -> list[Step]:
    name = names.log_group(config.stack)
    days = config.log_retention_days
    retention = Step(Kind.LOG_GROUP, name, Action.UPDATE, "retention %d days" % days, Call(
        "logs", "put_retention_policy", {"logGroupName": name, "retentionInDays": days}))
    if remote.log_group is None:
        return [Step(Kind.LOG_GROUP, name, Action.CREATE, "tagged with the stack", Call(
            "logs", "create_log_group", {"logGroupName": name, "tags": tags})), retention]
    steps = []
    if remote.log_group_tags.get(names.TAG_KEY) != config.stack:
        # Lambda creates this group by itself on first invocation; it is the function's by name.
        steps.append(Step(Kind.LOG_GROUP, name, Action.ADOPT, "tag it with the stack", Call(
            "logs", "tag_log_group", {"logGroupName": name, "tags": tags})))
    if remote.log_group.get("retentionInDays") != days:
        steps.append(retention)
    return steps


def plan_parameter(config, remote, tags) -> list[Step]:
    name = names.signing_key_param(config.stack)
    if config.auth == "jwt" and remote.parameter is None:
        return [Step(Kind.PARAMETER, name, Action.CREATE, "SecureString: a new signing key", Call(
            "ssm", "put_parameter", {"Name": name, "Value": NewKeyset(), "Type": "SecureString",
                                     "Description": "wsctl: the stack's token signing keys",
                                     "Tags": names.tag_list(tags)}))]
    if config.auth == "jwt" and config.rotate_key:
        return [Step(Kind.PARAMETER, name, Action.UPDATE,
                     "rotate the signing key (tokens of the old key verify until they expire, 24 h at most)", Call(
                         "ssm", "put_parameter", {"Name": name, "Value": RotatedKeyset(name), "Type": "SecureString",
                                                  "Overwrite": True}))]
    return []


def plan_function(config, remote, ctx, tags, switching: bool = False) -> tuple[list[Step], list[Step]]:
    """(steps before the routes, steps once the stage has changed): an auth switch opens with the
    environment that admits both modes and ends, after the stage, with the new mode's."""
    name = names.function_name(config.stack)
    settings = function_settings(config)
    sha = bundle.sha256_b64(config.code)
    if remote.function is None:
        detail = "%s, %s, code %s (%d KB)" % (limits.HANDLER_RUNTIME, limits.HANDLER, sha[:12], len(config.code) // 1024)
        return [Step(Kind.FUNCTION, name, Action.CREATE, detail, Call(
            "lambda", "create_function", dict(settings, FunctionName=name, Code={"ZipFile": config.code},
                                              Architectures=[limits.HANDLER_ARCHITECTURE], Tags=tags),
            retry=(Retry.ROLE_PROPAGATION,), wait_after="function_active_v2"))], []
    steps = []
    if remote.function.get("CodeSha256") != sha:
        steps.append(Step(Kind.CODE, name, Action.UPDATE, "code %s -> %s" % (
            remote.function.get("CodeSha256", "")[:12], sha[:12]), Call(
                "lambda", "update_function_code", {"FunctionName": name, "ZipFile": config.code},
                wait_before="function_updated_v2", wait_after="function_updated_v2",
                retry=(Retry.LAMBDA_IN_PROGRESS,))))
    have = dict(remote.function, Environment={"Variables": (remote.function.get("Environment") or {}).get(
        "Variables", {})})
    if not switching:
        return steps + _configure(name, settings, have, ctx, ""), []
    opening = function_settings(config, auth="switching")
    steps += _configure(name, opening, have, ctx, " (AUTH_MODE switching: $connect admitted with or without the "
                                                  "authorizer while the stage changes)")
    final = _configure(name, settings, resolve(opening, ctx), ctx, " (AUTH_MODE %s, now that the stage has "
                                                                   "changed)" % config.auth)
    return steps, final


def _configure(name: str, settings: dict, have: dict, ctx: dict, why: str) -> list[Step]:
    """The configuration update that takes the function from `have` to `settings`, if they differ."""
    wanted = resolve(settings, ctx)
    changed = sorted(key for key in wanted if have.get(key) != wanted[key])
    if not changed:
        return []
    return [Step(Kind.CONFIGURATION, name, Action.UPDATE, ", ".join(changed) + why, Call(
        "lambda", "update_function_configuration", dict(settings, FunctionName=name),
        wait_before="function_updated_v2", wait_after="function_updated_v2",
        retry=(Retry.LAMBDA_IN_PROGRESS, Retry.ROLE_PROPAGATION)))]


def plan_integration(config, remote, ctx) -> list[Step]:
    """One AWS_PROXY integration for every route."""
    name = names.api_name(config.stack)
    args = {"IntegrationUri": ctx["integration_uri"], "TimeoutInMillis": config.spec.integration_timeout_ms}
    integration = _our_integration(remote)
    if integration is None:
        return [Step(Kind.INTEGRATION, name, Action.CREATE, "AWS_PROXY -> %s" % names.function_name(config.stack), Call(
            "apigatewayv2", "create_integration", dict(args, ApiId=Ref("api_id"), IntegrationType="AWS_PROXY",
                                                       IntegrationMethod="POST"),
            outputs=(("integration_id", "IntegrationId"),)))]
    if any(integration.get(k) != v for k, v in args.items()):
        return [Step(Kind.INTEGRATION, name, Action.UPDATE, "target or timeout", Call(
            "apigatewayv2", "update_integration", dict(args, ApiId=Ref("api_id"), IntegrationId=Ref("integration_id"))))]
    return []


def plan_authorizer(config, remote, ctx) -> list[Step]:
    """A REQUEST authorizer backed by the same function (jwt); with --auth none it is retired
    after the routes stop naming it (plan_retirements)."""
    if config.auth != "jwt":
        return []
    name = authorizer_name(config.stack)
    args = {"AuthorizerType": "REQUEST", "AuthorizerUri": ctx["integration_uri"],
            "IdentitySource": list(limits.HOST_IDENTITY_SOURCES)}
    authorizer = _our_authorizer(config, remote)
    if authorizer is None:
        return [Step(Kind.AUTHORIZER, name, Action.CREATE, "REQUEST, JWT in ?token= or Bearer header", Call(
            "apigatewayv2", "create_authorizer", dict(args, ApiId=Ref("api_id"), Name=name),
            outputs=(("authorizer_id", "AuthorizerId"),)))]
    if any(authorizer.get(k) != v for k, v in args.items()):
        return [Step(Kind.AUTHORIZER, name, Action.UPDATE, "type, target or identity source", Call(
            "apigatewayv2", "update_authorizer", dict(args, ApiId=Ref("api_id"), AuthorizerId=Ref("authorizer_id"))))]
    return []


def _wanted_route(config, route) -> dict:
    wanted = {"Target": Fmt("integrations/{integration_id}"), "AuthorizationType": "NONE"}
    if route.key == "$connect" and config.auth == "jwt":
        wanted.update(AuthorizationType="CUSTOM", AuthorizerId=Ref("authorizer_id"))
    if route.two_way:
        wanted["RouteResponseSelectionExpression"] = "$default"
    return wanted


def _create_route(route, wanted) -> list[Step]:
    ref = "route:" + route.key
    steps = [Step(Kind.ROUTE, route.key, Action.CREATE, _route_detail(route, wanted), Call(
        "apigatewayv2", "create_route", dict(wanted, ApiId=Ref("api_id"), RouteKey=route.key),
        outputs=((ref, "RouteId"),)))]
    if route.two_way:
        steps.append(_route_response(route.key, Ref(ref)))
    return steps


def _route_response(key, route_id) -> Step:
    return Step(Kind.ROUTE_RESPONSE, key, Action.CREATE, "two-way: the handler's body answers", Call(
        "apigatewayv2", "create_route_response", {"ApiId": Ref("api_id"), "RouteId": route_id,
                                                  "RouteResponseKey": "$default"}))


def plan_routes(config, remote, ctx) -> list[Step]:
    steps = []
    existing = {r["RouteKey"]: r for r in remote.routes}
    for route in config.spec.routes:
        wanted = _wanted_route(config, route)
        have = existing.pop(route.key, None)
        if have is None:
            steps += _create_route(route, wanted)
            continue
        responses = remote.route_responses.get(have["RouteId"], [])
        if not route.two_way and (have.get("RouteResponseSelectionExpression") or responses):
            # Made one-way: API Gateway has no call that clears a route's response selection,
            # so the route is replaced (the stage serves its deployment meanwhile).
            steps += [Step(Kind.ROUTE_RESPONSE, route.key, Action.DELETE, "one-way now", Call(
                "apigatewayv2", "delete_route_response", {"ApiId": Ref("api_id"), "RouteId": have["RouteId"],
                                                          "RouteResponseId": r["RouteResponseId"]},
                missing_ok=("NotFoundException",))) for r in responses]
            steps.append(Step(Kind.ROUTE, route.key, Action.DELETE, "replaced by a one-way route", Call(
                "apigatewayv2", "delete_route", {"ApiId": Ref("api_id"), "RouteId": have["RouteId"]},
                missing_ok=("NotFoundException",))))
            steps += _create_route(route, wanted)
            continue
        differs = any(not known(v, ctx) or have.get(k) != resolve(v, ctx) for k, v in wanted.items())
        differs |= wanted["AuthorizationType"] == "NONE" and bool(have.get("AuthorizerId"))
        if differs:
            steps.append(Step(Kind.ROUTE, route.key, Action.UPDATE, _route_detail(route, wanted), Call(
                "apigatewayv2", "update_route", dict(wanted, ApiId=Ref("api_id"), RouteId=have["RouteId"]))))
        if route.two_way and not any(r.get("RouteResponseKey") == "$default" for r in responses):
            steps.append(_route_response(route.key, have["RouteId"]))
    for key, have in sorted(existing.items()):
        steps.append(Step(Kind.ROUTE, key, Action.DELETE, "not in the route definition", Call(
            "apigatewayv2", "delete_route", {"ApiId": Ref("api_id"), "RouteId": have["RouteId"]},
            missing_ok=("NotFoundException",))))
    return steps


def _route_detail(route, wanted) -> str:
    parts = ["auth %s" % wanted["AuthorizationType"].lower()]
    if route.two_way:
        parts.append("two-way")
    return ", ".join(parts)


def plan_stage(config, remote, tags, api_changed: bool) -> list[Step]:
    fingerprint = api_fingerprint(config)
    deployed = (remote.deployment or {}).get("Description")
    rate, burst = config.throttle
    throttle = {"ThrottlingRateLimit": float(rate), "ThrottlingBurstLimit": int(burst)}
    if remote.stage is None:
        return [Step(Kind.DEPLOYMENT, config.stage, Action.DEPLOY, fingerprint, Call(
                    "apigatewayv2", "create_deployment", {"ApiId": Ref("api_id"), "Description": fingerprint},
                    outputs=(("deployment_id", "DeploymentId"),))),
                Step(Kind.STAGE, config.stage, Action.CREATE, "serving the new deployment, %s" % _throttled(rate, burst),
                     Call("apigatewayv2", "create_stage", {"ApiId": Ref("api_id"), "StageName": config.stage,
                                                           "DeploymentId": Ref("deployment_id"), "Tags": tags,
                                                           "DefaultRouteSettings": throttle}))]
    steps = []
    if api_changed or deployed != fingerprint:
        steps.append(Step(Kind.DEPLOYMENT, config.stage, Action.DEPLOY, "routes changed" if api_changed else
                          "stage serves an older deployment", Call(
                              "apigatewayv2", "create_deployment", {"ApiId": Ref("api_id"), "Description": fingerprint,
                                                                    "StageName": config.stage},
                              outputs=(("deployment_id", "DeploymentId"),))))
    have = remote.stage.get("DefaultRouteSettings") or {}
    if any(have.get(key) != value for key, value in throttle.items()):
        steps.append(Step(Kind.STAGE, config.stage, Action.UPDATE, _throttled(rate, burst), Call(
            "apigatewayv2", "update_stage", {"ApiId": Ref("api_id"), "StageName": config.stage,
                                             "DefaultRouteSettings": throttle})))
    return steps


def _throttled(rate: float, burst: int) -> str:
    return "throttled at %g requests/s, burst %d" % (rate, burst)


def plan_concurrency(config, remote) -> list[Step]:
    """The function's reserved concurrency: headroom for --server-side segments beside $connect and
    messages, and a cap on them all. Left as it is unless --reserved-concurrency says."""
    name = names.function_name(config.stack)
    wanted, have = config.reserved_concurrency, remote.reserved_concurrency
    if wanted is None or wanted == (have or options.UNRESERVED):
        return []
    if wanted == options.UNRESERVED:
        return [Step(Kind.CONCURRENCY, name, Action.UPDATE, "no reservation (the account's unreserved pool)",
                     Call("lambda", "delete_function_concurrency", {"FunctionName": name}))]
    return [Step(Kind.CONCURRENCY, name, Action.UPDATE, "reserve %d concurrent executions" % wanted, Call(
        "lambda", "put_function_concurrency", {"FunctionName": name, "ReservedConcurrentExecutions": wanted}))]


def plan_permissions(config, remote, ctx) -> list[Step]:
    function = names.function_name(config.stack)
    wanted = {ROUTES_SID: Fmt("arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/*")}
    if config.auth == "jwt":
        wanted[AUTHORIZER_SID] = Fmt("arn:{partition}:execute-api:{region}:{account}:{api_id}/authorizers/{authorizer_id}")
    steps = []
    for sid, source in wanted.items():
        have = remote.permissions.get(sid)
        have_source = ((have or {}).get("Condition") or {}).get("ArnLike", {}).get("AWS:SourceArn")
        if have is not None and known(source, ctx) and have_source == resolve(source, ctx):
            continue
        if have is not None:  # a statement id is added once: replacing it is remove, then add
            steps.append(Step(Kind.PERMISSION, sid, Action.DELETE, "to be replaced", Call(
                "lambda", "remove_permission", {"FunctionName": function, "StatementId": sid},
                missing_ok=("ResourceNotFoundException",))))
        steps.append(Step(Kind.PERMISSION, sid, Action.CREATE,
                          "apigateway.amazonaws.com may invoke, from this %s only" % (
                              "API's stage" if sid == ROUTES_SID else "authorizer"), Call(
                              "lambda", "add_permission", {"FunctionName": function, "StatementId": sid,
                                                           "Action": "lambda:InvokeFunction",
                                                           "Principal": "apigateway.amazonaws.com",
                                                           "SourceArn": source})))
    return steps


def plan_retirements(config, remote) -> list[Step]:
    """What --auth none no longer needs, removed once nothing refers to it: the authorizer
    (after the routes are detached and the stage redeployed), its permission, the key."""
    if config.auth != "none":
        return []
    steps = []
    authorizer = _our_authorizer(config, remote)
    if authorizer is not None:
        steps.append(Step(Kind.AUTHORIZER, authorizer_name(config.stack), Action.DELETE, "--auth none", Call(
            "apigatewayv2", "delete_authorizer", {"ApiId": Ref("api_id"), "AuthorizerId": authorizer["AuthorizerId"]},
            retry=(Retry.REFERENCED,), missing_ok=("NotFoundException",))))
    if AUTHORIZER_SID in remote.permissions:
        steps.append(Step(Kind.PERMISSION, AUTHORIZER_SID, Action.DELETE, "--auth none", Call(
            "lambda", "remove_permission", {"FunctionName": names.function_name(config.stack),
                                            "StatementId": AUTHORIZER_SID},
            missing_ok=("ResourceNotFoundException",))))
    if remote.parameter is not None:
        steps.append(Step(Kind.PARAMETER, names.signing_key_param(config.stack), Action.DELETE,
                          "no authorizer with --auth none", Call(
                              "ssm", "delete_parameter", {"Name": names.signing_key_param(config.stack)},
                              missing_ok=("ParameterNotFound",))))
    return steps
