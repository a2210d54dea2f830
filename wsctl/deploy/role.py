"""The handler's execution role: the one wsctl makes and keeps least-privilege, or one the user
gives (`deploy --role-arn`), which wsctl then neither creates nor changes.

Organisations often let no one create a role outside a permissions boundary (a service control
policy requiring `iam:PermissionsBoundary`), or none at all: `--permissions-boundary ARN` is set
on the role wsctl makes, and `--role-arn ARN` uses an existing one, for which `--print-policy`
prints what it needs (`needs`).
"""

import json
import re

from .. import names
from ..errors import UsageError
from .model import Action, Call, Fmt, Kind, Step, known, resolve

HANDLER_ACTIONS = {  # exactly what the handler calls, and nothing else
    "dynamodb": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query",
                 "dynamodb:Scan", "dynamodb:BatchWriteItem"],
    "execute-api": ["execute-api:ManageConnections"],
    "ssm": ["ssm:GetParameter"],
    "logs": ["logs:CreateLogStream", "logs:PutLogEvents"],
}
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$")


def check_role_arn(arn: str | None) -> str | None:
    if arn is not None and not _ROLE_ARN.match(arn):
        raise UsageError("--role-arn %r is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)" % arn)
    return arn


def check_boundary_arn(arn: str | None, role_arn: str | None) -> str | None:
    if arn is None:
        return None
    if role_arn is not None:
        raise UsageError("--permissions-boundary is set on the role wsctl makes; with --role-arn the role is "
                         "yours, boundary and all")
    if not _POLICY_ARN.match(arn):
        raise UsageError("--permissions-boundary %r is not an IAM policy ARN (arn:aws:iam::123456789012:policy/NAME)"
                         % arn)
    return arn


def role_policy(auth: str) -> dict:
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
    if auth == "jwt":
        statements.insert(2, {"Sid": "SigningKey", "Effect": "Allow", "Action": HANDLER_ACTIONS["ssm"],
                              "Resource": [Fmt("{parameter_arn}")]})
    return {"Version": "2012-10-17", "Statement": statements}


def needs(auth: str, partition: str, region: str, account: str, stack: str, stage: str,
          api_id: str | None) -> dict:
    """What a role given with --role-arn must trust and allow, for this stack and stage (before
    the first deploy the API's id is not known: the grant names that stage of any API)."""
    ctx = dict(names.stack_arns(partition, region, account, stack), partition=partition, region=region,
               account=account, stage=stage, api_id=api_id or "*")
    return {"trustPolicy": TRUST_POLICY, "permissionsPolicy": resolve(role_policy(auth), ctx)}


def normalise(document) -> str:
    """A policy document as text that compares equal whatever IAM did to its lists and order."""
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


def plan_role(config, remote, ctx, tags) -> tuple[list[Step], list[Step]]:
    """(the role's steps, the step that puts its inline policy): the plan places the grant.
    Nothing for a role given with --role-arn."""
    if config.role_arn:
        return [], []
    name = names.role_name(config.stack, config.region)
    policy = role_policy(config.auth)
    steps, grant = [], []
    if remote.role is None:
        params = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps(TRUST_POLICY),
                  "Tags": names.tag_list(tags),
                  "Description": "wsctl stack %s: the handler's role" % config.stack}
        if config.permissions_boundary:
            params["PermissionsBoundary"] = config.permissions_boundary
        steps.append(Step(Kind.ROLE, name, Action.CREATE, "assumed by lambda.amazonaws.com%s" % (
            ", within boundary " + config.permissions_boundary if config.permissions_boundary else ""),
            Call("iam", "create_role", params)))
    else:
        if normalise(remote.role.get("AssumeRolePolicyDocument", {})) != normalise(TRUST_POLICY):
            steps.append(Step(Kind.ROLE, name, Action.UPDATE, "trust policy", Call(
                "iam", "update_assume_role_policy", {"RoleName": name, "PolicyDocument": json.dumps(TRUST_POLICY)})))
        have = (remote.role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if config.permissions_boundary and have != config.permissions_boundary:
            steps.append(Step(Kind.ROLE, name, Action.UPDATE, "permissions boundary %s" % config.permissions_boundary,
                              Call("iam", "put_role_permissions_boundary", {
                                  "RoleName": name, "PermissionsBoundary": config.permissions_boundary})))
    if remote.role_policy is None or not known(policy, ctx) or \
            normalise(remote.role_policy) != normalise(resolve(policy, ctx)):
        grant.append(Step(Kind.POLICY, name, Action.CREATE if remote.role_policy is None else Action.UPDATE,
                          "least privilege: table, @connections POST on stage %s, %slogs" % (
                              config.stage, "key, " if config.auth == "jwt" else ""), Call(
                              "iam", "put_role_policy", {"RoleName": name, "PolicyName": name,
                                                         "PolicyDocument": policy})))
    return steps, grant


def role_warnings(config, remote, ctx) -> list[str]:
    """A function that runs with a role given with --role-arn, deployed without it now."""
    have = (remote.function or {}).get("Role")
    if config.role_arn or not have or have == ctx["role_arn"]:
        return []
    return ["function %s runs with role %s, given with --role-arn: this deploy gives it the role wsctl makes, %s "
            "(pass --role-arn %s to keep the one it has)" % (names.function_name(config.stack), have,
                                                             names.role_name(config.stack, config.region), have)]
