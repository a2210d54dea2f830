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
table, log group and key parameter. Tagging at creation needs its own
permission in every service (iam:TagRole, lambda:TagResource, ...).
GetCallerIdentity needs none, and the key parameter uses SSM's AWS-managed KMS
key, whose key policy admits callers through SSM (no kms: actions).
"""

from urllib.parse import quote

from .. import names
from ..targets.apis import find_api

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


def deployer_policy(partition: str, region: str, account: str, stack: str, stage: str,
                    api_id: str | None = None) -> dict:
    """The bootstrap policy (`api_id` None), or the one scoped to the stack's API."""
    arn = {"partition": partition, "region": region, "account": account}
    apigateway = "arn:{partition}:apigateway:{region}::".format(**arn)
    function = "arn:{partition}:lambda:{region}:{account}:function:".format(**arn) + names.function_name(stack)
    role = "arn:{partition}:iam::{account}:role/".format(**arn) + names.role_name(stack, region)
    table = "arn:{partition}:dynamodb:{region}:{account}:table/".format(**arn) + names.table_name(stack)
    log_groups = "arn:{partition}:logs:{region}:{account}:log-group:".format(**arn)
    parameter = "arn:{partition}:ssm:{region}:{account}:parameter".format(**arn) + names.signing_key_param(stack)
    connections = "arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/*/@connections/*".format(
        api=api_id or "*", stage=stage, **arn)
    statements = _api_statements(apigateway, stack, api_id) + [
        {"Sid": "HandlerRole", "Effect": "Allow",
         "Action": ["iam:GetRole", "iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole",
                    "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
         "Resource": [role]},
        {"Sid": "PassTheRoleToLambdaOnly", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": [role],
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "Function", "Effect": "Allow",
         "Action": ["lambda:GetFunction", "lambda:ListTags", "lambda:CreateFunction", "lambda:TagResource",
                    "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:GetPolicy",
                    "lambda:AddPermission", "lambda:RemovePermission", "lambda:DeleteFunction",
                    "lambda:InvokeFunction"],
         "Resource": [function]},
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
         "Resource": [log_groups + names.log_group(stack), log_groups + names.log_group(stack) + ":*"]},
        {"Sid": "SigningKey", "Effect": "Allow",
         "Action": ["ssm:GetParameter", "ssm:PutParameter", "ssm:AddTagsToResource", "ssm:ListTagsForResource",
                    "ssm:DeleteParameter"],
         "Resource": [parameter]},
        {"Sid": "Connections", "Effect": "Allow", "Action": ["execute-api:ManageConnections"],
         "Resource": [connections]},
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def deployer_policy_for(target) -> tuple[dict, str | None]:
    """The policy for the target's stack and stage, in the caller's account and partition: scoped
    to the stack's API when it exists, the bootstrap policy before. Also the API's id (or None)."""
    identity = target.client("sts").get_caller_identity()
    api = find_api(target.client("apigatewayv2"), target.stack)
    api_id = api["ApiId"] if api else None
    return deployer_policy(identity["Arn"].split(":")[1], target.region_name, identity["Account"],
                           target.stack, target.stage, api_id), api_id
