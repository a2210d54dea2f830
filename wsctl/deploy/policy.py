"""The least-privilege IAM policy for the identity that runs wsctl on one stack.

`wsctl deploy --print-policy` prints it. It covers deploy (first and later
runs, --rotate-key, --auth none), status, destroy and the operating commands
(connections, send, broadcast with and without --server-side, prune,
disconnect, token). tests/test_deploy_policy.py records every AWS call those
commands make on moto and fails if this policy does not allow one, so the two
cannot drift apart.

Resources are this stack's own wherever the service allows it. API Gateway
names an API by an id it chooses at creation, so there are two policies. The
bootstrap policy, before the first deploy, lets the deployer create an API
only when it is tagged as this stack's (the `aws:RequestTag` condition), but
manage `/apis/*` of the region. Once the API exists, the scoped policy names
it (`/apis/{id}` and below, its tags) and the exact `execute-api` ARN of its
stage's connections; it cannot create an API again (after a destroy, the
bootstrap policy can). Everything else names the stack's function, role,
table, log group and key parameter (and one read of the account's Lambda
concurrency, which has no resource). Tagging at creation needs its own
permission in every service (iam:TagRole, lambda:TagResource, ...).
GetCallerIdentity needs none, and the key parameter uses SSM's AWS-managed KMS
key, whose key policy admits callers through SSM (no kms: actions).
"""

from urllib.parse import quote

from .. import names
from ..targets.apis import find_api
from .role import needs

MANAGE = ["apigateway:GET", "apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"]


def _api_statements(apigateway: str, stack: str, api_id: str | None) -> list[dict]:
    find = {"Sid": "FindTheApi", "Effect": "Allow", "Action": ["apigateway:GET"], "Resource": [apigateway + "/apis"]}
    if api_id is None:
        tagged = {"StringEquals": {"aws:RequestTag/" + names.TAG_KEY: stack}}
        return [find,
                {"Sid": "CreateTheApiTaggedAsTheStacks", "Effect": "Allow", "Action": ["apigateway:POST"],
                 "Resource": [apigateway + "/apis"], "Condition": tagged},
                {"Sid": "ManageTheApi", "Effect": "Allow", "Action": MANAGE, "Resource": [apigateway + "/apis/*"]},
                {"Sid": "TagTheApiAndStage", "Effect": "Allow", "Action": ["apigateway:POST"],
                 "Resource": [apigateway + "/tags/*"], "Condition": tagged}]
    api = apigateway + "/apis/" + api_id
    tags = apigateway + "/tags/" + quote(api, safe="")  # the tagged resource's ARN, URL-encoded
    return [find,
            {"Sid": "ManageTheApi", "Effect": "Allow", "Action": MANAGE, "Resource": [api, api + "/*"]},
            {"Sid": "TagTheApiAndStage", "Effect": "Allow", "Action": ["apigateway:POST"],
             "Resource": [tags, tags + quote("/", safe="") + "*"]}]


def _role_statements(role: str, role_arn: str | None, boundary: str | None) -> list[dict]:
    """The role wsctl makes (created within `boundary` when one is given), or only passing the
    user's role (`role_arn`) to Lambda: wsctl then reads the name it would use, nothing more."""
    reads = ["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy"]
    passes = {"Sid": "PassTheRoleToLambdaOnly", "Effect": "Allow", "Action": ["iam:PassRole"],
              "Resource": [role_arn or role],
              "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}}
    if role_arn:
        return [{"Sid": "ReadTheRoleNameWsctlWouldUse", "Effect": "Allow", "Action": reads, "Resource": [role]},
                passes]
    manage = reads + ["iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:PutRolePolicy",
                      "iam:DeleteRolePolicy"]
    create = ["iam:CreateRole"]
    if boundary is None:
        return [{"Sid": "HandlerRole", "Effect": "Allow", "Action": manage + create, "Resource": [role]}, passes]
    return [{"Sid": "HandlerRole", "Effect": "Allow", "Action": manage, "Resource": [role]},
            {"Sid": "CreateTheRoleWithinTheBoundary", "Effect": "Allow",
             "Action": create + ["iam:PutRolePermissionsBoundary"], "Resource": [role],
             "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary}}},
            passes]


def deployer_policy(partition: str, region: str, account: str, stack: str, stage: str,
                    api_id: str | None = None, role_arn: str | None = None, boundary: str | None = None) -> dict:
    """The bootstrap policy (`api_id` None), or the one scoped to the stack's API."""
    arn = {"partition": partition, "region": region, "account": account}
    own = names.stack_arns(partition, region, account, stack)
    apigateway = "arn:{partition}:apigateway:{region}::".format(**arn)
    function, table, parameter = own["function_arn"], own["table_arn"], own["parameter_arn"]
    log_groups = "arn:{partition}:logs:{region}:{account}:log-group:".format(**arn)
    connections = "arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/*/@connections/*".format(
        api=api_id or "*", stage=stage, **arn)
    statements = _api_statements(apigateway, stack, api_id) + _role_statements(own["role_arn"], role_arn, boundary) + [
        {"Sid": "Function", "Effect": "Allow",
         "Action": ["lambda:GetFunction", "lambda:ListTags", "lambda:CreateFunction", "lambda:TagResource",
                    "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:GetPolicy",
                    "lambda:AddPermission", "lambda:RemovePermission", "lambda:DeleteFunction",
                    "lambda:InvokeFunction", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency"],
         "Resource": [function]},
        # broadcast --server-side: how many copies the account can run at once. A read that names no
        # resource (IAM allows it only on "*").
        {"Sid": "AccountConcurrency", "Effect": "Allow", "Action": ["lambda:GetAccountSettings"], "Resource": ["*"]},
        {"Sid": "Registry", "Effect": "Allow",
         "Action": ["dynamodb:DescribeTable", "dynamodb:ListTagsOfResource", "dynamodb:DescribeTimeToLive",
                    "dynamodb:CreateTable", "dynamodb:TagResource", "dynamodb:UpdateTimeToLive",
                    "dynamodb:DeleteTable", "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem",
                    "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
         "Resource": [table, table + "/index/*"]},
        {"Sid": "FindTheLogGroup", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": [log_groups + "*"]},
        {"Sid": "LogGroup", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:TagResource", "logs:TagLogGroup", "logs:ListTagsLogGroup",
                    "logs:ListTagsForResource", "logs:PutRetentionPolicy", "logs:DeleteLogGroup"],
         "Resource": [own["log_group_arn"], own["log_group_arn"] + ":*"]},
        {"Sid": "SigningKey", "Effect": "Allow",
         "Action": ["ssm:GetParameter", "ssm:PutParameter", "ssm:AddTagsToResource", "ssm:ListTagsForResource",
                    "ssm:DeleteParameter"],
         "Resource": [parameter]},
        {"Sid": "Connections", "Effect": "Allow", "Action": ["execute-api:ManageConnections"],
         "Resource": [connections]},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def deployer_policy_for(target, auth: str = "jwt", role_arn: str | None = None,
                        boundary: str | None = None) -> tuple[dict, str | None]:
    """What `--print-policy` prints for the target's stack and stage, in the caller's account and
    partition: the deployer's policy, scoped to the stack's API when it exists (the bootstrap
    policy before); with `role_arn`, with what that role must trust and allow beside it. Also
    the API's id (or None)."""
    identity = target.client("sts").get_caller_identity()
    partition, account = identity["Arn"].split(":")[1], identity["Account"]
    api = find_api(target.client("apigatewayv2"), target.stack)
    api_id = api["ApiId"] if api else None
    policy = deployer_policy(partition, target.region_name, account, target.stack, target.stage, api_id, role_arn,
                             boundary)
    if role_arn is None:
        return policy, api_id
    return {"deployerPolicy": policy, "role": dict(arn=role_arn, **needs(
        auth, partition, target.region_name, account, target.stack, target.stage, api_id))}, api_id
