"""Execute a plan's steps with boto3, in order, resolving placeholders as ids appear.

The waits live here: IAM's propagation delay (a new role "cannot be assumed
by Lambda" for some seconds) and Lambda's Pending / InProgress states.
"""

import json
import time

from lambda_src import signing

from .plan import Plan, resolve

ROLE_PROPAGATION_SECONDS = 90


def apply(plan: Plan, clients, progress=None) -> dict:
    """Run every step; returns the final context (ids of everything created)."""
    ctx = dict(plan.context)
    for step in plan.steps:
        if progress:
            progress(step)
        OPS[step.op](clients, ctx, resolve(step.args, ctx))
    return ctx


def _tags_list(tags: dict) -> list:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# -- API Gateway ---------------------------------------------------------------
def create_api(clients, ctx, args):
    ctx["api_id"] = clients("apigatewayv2").create_api(**args)["ApiId"]


def update_api(clients, ctx, args):
    clients("apigatewayv2").update_api(**args)


def create_integration(clients, ctx, args):
    ctx["integration_id"] = clients("apigatewayv2").create_integration(**args)["IntegrationId"]


def update_integration(clients, ctx, args):
    clients("apigatewayv2").update_integration(**args)


def create_authorizer(clients, ctx, args):
    ctx["authorizer_id"] = clients("apigatewayv2").create_authorizer(**args)["AuthorizerId"]


def update_authorizer(clients, ctx, args):
    clients("apigatewayv2").update_authorizer(**args)


def delete_authorizer(clients, ctx, args):
    clients("apigatewayv2").delete_authorizer(**args)


def create_route(clients, ctx, args):
    two_way = args.pop("TwoWay")
    apigw = clients("apigatewayv2")
    route_id = apigw.create_route(**args)["RouteId"]
    if two_way:
        apigw.create_route_response(ApiId=args["ApiId"], RouteId=route_id, RouteResponseKey="$default")


def update_route(clients, ctx, args):
    clients("apigatewayv2").update_route(**args)


def delete_route(clients, ctx, args):
    clients("apigatewayv2").delete_route(**args)


def create_route_response(clients, ctx, args):
    clients("apigatewayv2").create_route_response(**args)


def create_deployment(clients, ctx, args):
    ctx["deployment_id"] = clients("apigatewayv2").create_deployment(**args)["DeploymentId"]


def create_stage(clients, ctx, args):
    clients("apigatewayv2").create_stage(**args)


# -- IAM -------------------------------------------------------------------------
def create_role(clients, ctx, args):
    ctx["role_arn"] = clients("iam").create_role(**args)["Role"]["Arn"]
    ctx["role_created_at"] = time.monotonic()


def update_assume_role_policy(clients, ctx, args):
    clients("iam").update_assume_role_policy(**args)


def put_role_policy(clients, ctx, args):
    clients("iam").put_role_policy(**dict(args, PolicyDocument=json.dumps(args["PolicyDocument"])))


# -- DynamoDB, logs, SSM -----------------------------------------------------------
def create_table(clients, ctx, args):
    ddb = clients("dynamodb")
    ddb.create_table(**args)
    ddb.get_waiter("table_exists").wait(TableName=args["TableName"], WaiterConfig={"Delay": 2, "MaxAttempts": 90})


def enable_ttl(clients, ctx, args):
    clients("dynamodb").update_time_to_live(**args)


def create_log_group(clients, ctx, args):
    logs = clients("logs")
    days = args.pop("retentionInDays")
    logs.create_log_group(**args)
    logs.put_retention_policy(logGroupName=args["logGroupName"], retentionInDays=days)


def tag_log_group(clients, ctx, args):
    clients("logs").tag_log_group(**args)


def put_retention_policy(clients, ctx, args):
    clients("logs").put_retention_policy(**args)


def create_signing_key(clients, ctx, args):
    # The key is generated here, at apply time, so it is never part of a printed plan.
    clients("ssm").put_parameter(Name=args["Name"], Value=signing.new_keyset(), Type="SecureString",
                                 Description="wsctl: the stack's token signing keys", Tags=args["Tags"])


def rotate_signing_key(clients, ctx, args):
    """A new current key; the previous one keeps verifying its tokens until they expire.
    Warm handler containers pick the new key up when a token names a key id they lack."""
    ssm = clients("ssm")
    current = ssm.get_parameter(Name=args["Name"], WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=args["Name"], Value=signing.rotate(current), Type="SecureString", Overwrite=True)


def delete_parameter(clients, ctx, args):
    _unless_missing(clients("ssm"), "delete_parameter", "ParameterNotFound", **args)


# -- Lambda -------------------------------------------------------------------------
def create_function(clients, ctx, args):
    lam = clients("lambda")
    deadline = time.monotonic() + ROLE_PROPAGATION_SECONDS
    delay = 1.0
    while True:
        try:
            lam.create_function(**args)
            break
        except lam.exceptions.InvalidParameterValueException as error:
            # A new role takes seconds to become assumable by Lambda (IAM propagation).
            if "assume" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 8)
    lam.get_waiter("function_active_v2").wait(FunctionName=args["FunctionName"])


def _wait_updated(lam, name):
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def _retry_in_progress(lam, call, **args):
    """Lambda refuses an update while another is InProgress: wait it out and retry."""
    for attempt in range(30):
        try:
            return call(**args)
        except lam.exceptions.ResourceConflictException:
            if attempt == 29:
                raise
            _wait_updated(lam, args["FunctionName"])
            time.sleep(1)


def update_function_code(clients, ctx, args):
    lam = clients("lambda")
    _wait_updated(lam, args["FunctionName"])
    _retry_in_progress(lam, lam.update_function_code, **args)
    _wait_updated(lam, args["FunctionName"])


def update_function_configuration(clients, ctx, args):
    lam = clients("lambda")
    _wait_updated(lam, args["FunctionName"])
    _retry_in_progress(lam, lam.update_function_configuration, **args)
    _wait_updated(lam, args["FunctionName"])


def add_permission(clients, ctx, args):
    lam = clients("lambda")
    if args.pop("Replace"):
        remove_permission(clients, ctx, {"FunctionName": args["FunctionName"], "StatementId": args["StatementId"]})
    lam.add_permission(**args)


def _unless_missing(client, operation: str, missing: str, **args) -> bool:
    """Call `operation`; a resource that is already gone is fine (destroy runs twice). True if it was there."""
    try:
        getattr(client, operation)(**args)
        return True
    except getattr(client.exceptions, missing):
        return False


def remove_permission(clients, ctx, args):
    _unless_missing(clients("lambda"), "remove_permission", "ResourceNotFoundException", **args)


# -- destroy ---------------------------------------------------------------------
def delete_api(clients, ctx, args):
    _unless_missing(clients("apigatewayv2"), "delete_api", "NotFoundException", **args)


def delete_function(clients, ctx, args):
    _unless_missing(clients("lambda"), "delete_function", "ResourceNotFoundException", **args)


def delete_log_group(clients, ctx, args):
    _unless_missing(clients("logs"), "delete_log_group", "ResourceNotFoundException", **args)


def delete_table(clients, ctx, args):
    ddb = clients("dynamodb")
    if _unless_missing(ddb, "delete_table", "ResourceNotFoundException", **args):
        ddb.get_waiter("table_not_exists").wait(TableName=args["TableName"], WaiterConfig={"Delay": 2, "MaxAttempts": 90})


def delete_role(clients, ctx, args):
    iam = clients("iam")
    try:
        for name in iam.list_role_policies(RoleName=args["RoleName"]).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=args["RoleName"], PolicyName=name)
        iam.delete_role(**args)
    except iam.exceptions.NoSuchEntityException:
        pass


# Step.op -> the function that performs it.
OPS = {fn.__name__: fn for fn in (
    create_api,
    update_api,
    create_integration,
    update_integration,
    create_authorizer,
    update_authorizer,
    delete_authorizer,
    create_route,
    update_route,
    delete_route,
    create_route_response,
    create_deployment,
    create_stage,
    create_role,
    update_assume_role_policy,
    put_role_policy,
    create_table,
    enable_ttl,
    create_log_group,
    tag_log_group,
    put_retention_policy,
    create_signing_key,
    rotate_signing_key,
    delete_parameter,
    create_function,
    update_function_code,
    update_function_configuration,
    add_permission,
    remove_permission,
    delete_api,
    delete_function,
    delete_log_group,
    delete_table,
    delete_role,
)}
