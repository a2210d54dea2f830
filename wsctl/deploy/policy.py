"""The least-privilege IAM policy for the identity that runs wsctl on one stack.

`wsctl deploy --print-policy` prints it. It covers deploy (first and later
runs, --rotate-key, --auth none), status, destroy and the operating commands
(connections, send, broadcast with and without --server-side, prune,
disconnect, token). tests/test_deploy_policy.py records every AWS call those
commands make on moto and fails if this policy does not allow one, so the two
cannot drift apart.

Resources are this stack's own wherever the service allows it. API Gateway
names an API by an id it chooses at creation, so the API statements cover
`/apis/*` of the region; everything else names the stack's function, role,
table, log group and key parameter. Tagging at creation needs its own
permission in every service (iam:TagRole, lambda:TagResource, ...).
GetCallerIdentity needs none, and the key parameter uses SSM's AWS-managed KMS
key, whose key policy admits callers through SSM (no kms: actions).
"""

from .. import names


def deployer_policy(partition: str, region: str, account: str, stack: str, stage: str) -> dict:
    arn = {"partition": partition, "region": region, "account": account}
    apigateway = "arn:{partition}:apigateway:{region}::".format(**arn)
    function = "arn:{partition}:lambda:{region}:{account}:function:".format(**arn) + names.function_name(stack)
    role = "arn:{partition}:iam::{account}:role/".format(**arn) + names.role_name(stack, region)
    table = "arn:{partition}:dynamodb:{region}:{account}:table/".format(**arn) + names.table_name(stack)
    log_groups = "arn:{partition}:logs:{region}:{account}:log-group:".format(**arn)
    parameter = "arn:{partition}:ssm:{region}:{account}:parameter".format(**arn) + names.signing_key_param(stack)
    connections = "arn:{partition}:execute-api:{region}:{account}:*/{stage}/*/@connections/*".format(stage=stage, **arn)
    statements = [
        {"Sid": "FindOrCreateTheApi", "Effect": "Allow", "Action": ["apigateway:GET", "apigateway:POST"],
         "Resource": [apigateway + "/apis"]},
        {"Sid": "ManageTheApi", "Effect": "Allow",
         "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
         "Resource": [apigateway + "/apis/*"]},
        {"Sid": "TagTheApiAndStage", "Effect": "Allow", "Action": ["apigateway:POST"],
         "Resource": [apigateway + "/tags/*"]},
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


def deployer_policy_for(target) -> dict:
    """The policy for the target's stack and stage, in the caller's account and partition."""
    identity = target.client("sts").get_caller_identity()
    return deployer_policy(identity["Arn"].split(":")[1], target.region_name, identity["Account"],
                           target.stack, target.stage)
