"""Deploying a stack: build (bundle), plan (pure), apply (boto3); and destroy, status.

`target.client(service)` supplies every boto3 client, so tests can hand in a
session whose event hooks count the calls.
"""

from dataclasses import dataclass

from .. import stack as names
from ..apispec import ApiSpec
from . import bundle, remote
from .plan import Plan, StackConfig, Step, make_plan


@dataclass
class DeployOptions:
    spec: ApiSpec
    allow_client_broadcast: bool = False
    ttl_seconds: int = 7500
    log_retention_days: int = 14
    rotate_key: bool = False


def stack_config(target, options: DeployOptions, code: bytes | None = None) -> StackConfig:
    return StackConfig(stack=target.stack, stage=target.stage, region=target.region_name, spec=options.spec,
                       code=code if code is not None else bundle.build(),
                       allow_client_broadcast=options.allow_client_broadcast,
                       ttl_seconds=options.ttl_seconds, log_retention_days=options.log_retention_days,
                       rotate_key=options.rotate_key)


def plan_deploy(target, options: DeployOptions) -> tuple[StackConfig, Plan]:
    config = stack_config(target, options)
    state = remote.read(target.client, target.stack, target.stage, target.region_name)
    return config, make_plan(config, state)


def run_plan(target, plan: Plan, progress=None) -> dict:
    from .apply import apply

    return apply(plan, target.client, progress)


def outputs(target, context: dict) -> dict:
    api_id = context["api_id"]
    region = target.region_name
    return {"stack": target.stack, "stage": target.stage, "region": region, "apiId": api_id,
            "url": names.ws_url(api_id, region, target.stage),
            "managementEndpoint": names.management_url(api_id, region, target.stage),
            "table": names.table_name(target.stack), "function": names.function_name(target.stack)}


def plan_destroy(target) -> Plan:
    """Everything the stack owns, newest first; resources not tagged with the stack are left alone."""
    state = remote.read(target.client, target.stack, target.stage, target.region_name)
    foreign = {name for _, name in state.foreign}
    steps = []
    if state.api:
        steps.append(Step("WebSocket API", names.api_name(target.stack), "delete",
                          "with its routes, integration, authorizer and stages", "delete_api",
                          {"ApiId": state.api["ApiId"]}))
    log_group_ours = state.log_group is not None and state.log_group_tags.get(names.TAG_KEY) == target.stack
    owned = [
        (state.function is not None, "Lambda function", names.function_name(target.stack), "delete_function",
         {"FunctionName": names.function_name(target.stack)}),
        (log_group_ours, "log group", names.log_group(target.stack), "delete_log_group",
         {"logGroupName": names.log_group(target.stack)}),
        (state.parameter is not None, "SSM parameter", names.signing_key_param(target.stack), "delete_parameter",
         {"Name": names.signing_key_param(target.stack)}),
        (state.table is not None, "DynamoDB table", names.table_name(target.stack), "delete_table",
         {"TableName": names.table_name(target.stack)}),
        (state.role is not None, "IAM role", names.role_name(target.stack, target.region_name), "delete_role",
         {"RoleName": names.role_name(target.stack, target.region_name)}),
    ]
    for present, kind, name, op, args in owned:
        if present and name not in foreign:
            steps.append(Step(kind, name, "delete", "", op, args))
    return Plan(steps=steps, context={})


def status(target) -> dict:
    """The stack's resources and their state, its URLs, and how many live registry entries it has."""
    state = remote.read(target.client, target.stack, target.stage, target.region_name)
    connect_route = next((r for r in state.routes if r.get("RouteKey") == "$connect"), None)
    auth = None
    if connect_route is not None:
        auth = "jwt" if connect_route.get("AuthorizationType") == "CUSTOM" else connect_route.get(
            "AuthorizationType", "NONE").lower()
    resources = [
        ("WebSocket API", names.api_name(target.stack), "present" if state.api else "missing"),
        ("stage", target.stage, ("deployed" if state.deployment or (state.stage or {}).get("DeploymentId")
                                 else "no deployment") if state.stage else "missing"),
        ("routes", "%d" % len(state.routes), ", ".join(sorted(r["RouteKey"] for r in state.routes)) or "none"),
        ("Lambda function", names.function_name(target.stack),
         "%s/%s" % (state.function.get("State", "?"), state.function.get("LastUpdateStatus", "?"))
         if state.function else "missing"),
        ("DynamoDB table", names.table_name(target.stack),
         state.table.get("TableStatus", "?") if state.table else "missing"),
        ("IAM role", names.role_name(target.stack, target.region_name), "present" if state.role else "missing"),
        ("log group", names.log_group(target.stack), "present" if state.log_group else "missing"),
        ("SSM parameter", names.signing_key_param(target.stack),
         "present (SecureString)" if state.parameter else "missing"),
    ]
    result = {"target": target.kind, "stack": target.stack, "stage": target.stage, "region": target.region_name,
              "deployed": state.api is not None,
              "auth": auth, "unsafe": auth is not None and auth != "jwt" and auth != "aws_iam",
              "resources": [{"resource": r, "name": n, "state": s} for r, n, s in resources],
              "foreign": ["%s %s" % f for f in state.foreign]}
    if state.api:
        result.update(outputs(target, {"api_id": state.api["ApiId"]}))
    if state.table:
        from ..registry import count_live

        result["liveConnections"] = count_live(target)
    return result
