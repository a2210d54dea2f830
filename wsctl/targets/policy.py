"""`wsctl policy`: the least-privilege IAM policy for the operating commands on one target, with
exact ARNs for its API, stage and registry table (never `*` where AWS allows a resource).

What the statements allow is what the commands call (tests/test_operator_policy.py records every
call of a run and checks each against this policy):
- @connections: PostToConnection, GetConnection, DeleteConnection (execute-api:ManageConnections on
  {api}/{stage}/{METHOD}/@connections/*);
- the registry: Scan, Query (the table and the indexes its layout queries), GetItem, BatchWriteItem
  (prune and gone entries), and DescribeTable/DescribeTimeToLive when the layout is discovered;
- finding the API and its stage: GetApi or GetApis, GetStages, GetApiMappings for a custom domain;
- discovery, when the registry is not saved or given: GetIntegrations, the functions' configuration,
  and the CloudFormation stack's resources.
"""

from ..errors import UsageError


def _apigw(partition: str, region: str, path: str) -> str:
    return "arn:%s:apigateway:%s::%s" % (partition, region, path)


def operator_policy(target) -> dict:
    if target.local:
        raise UsageError("the local emulator needs no IAM policy: its callers all use local credentials")
    partition, account = target.account
    region = target.region_name
    api_id, stage = target.api_id, target.stage
    statements = [{
        "Sid": "ManageTheStagesConnections", "Effect": "Allow", "Action": ["execute-api:ManageConnections"],
        "Resource": ["arn:%s:execute-api:%s:%s:%s/%s/%s/@connections/*" % (partition, region, account, api_id, stage,
                                                                            method)
                     for method in ("POST", "GET", "DELETE")]}]
    parsed = getattr(target, "parsed", None)
    if parsed is not None and (parsed.api_id or parsed.domain):  # a URL or a saved target: GetApi by id
        api_paths = ["/apis/%s" % api_id]
    else:  # a stack's API (by name and tag), or --api ID-OR-NAME: GetApis
        api_paths = ["/apis"]
    api_paths.append("/apis/%s/stages" % api_id)
    if parsed is not None and parsed.domain:
        api_paths.append("/domainnames/%s/apimappings" % parsed.domain)
    discovering = hasattr(target, "finding") and not target.bundled and not (
        getattr(target, "saved_layout", None) is not None or (target.registry_given and target.registry_given.key))
    if discovering:
        api_paths.append("/apis/%s/integrations" % api_id)
    statements.append({"Sid": "FindTheApiAndStage", "Effect": "Allow", "Action": ["apigateway:GET"],
                       "Resource": [_apigw(partition, region, path) for path in api_paths]})
    if target.has_registry():
        layout = target.registry
        table = "arn:%s:dynamodb:%s:%s:table/%s" % (partition, region, account, layout.table)
        indexes = sorted({lookup.index for lookup in (layout.user, layout.room) if lookup and lookup.index})
        read = ["dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem"]
        if discovering or target.registry_given:
            read += ["dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"]
        statements.append({"Sid": "ReadTheRegistry", "Effect": "Allow", "Action": read,
                           "Resource": [table] + ["%s/index/%s" % (table, index) for index in indexes]})
        statements.append({"Sid": "RemoveStaleEntries", "Effect": "Allow", "Action": ["dynamodb:BatchWriteItem"],
                           "Resource": [table]})
    if discovering:
        functions = target.functions
        if functions:
            statements.append({"Sid": "ReadTheFunctionsEnvironment", "Effect": "Allow",
                               "Action": ["lambda:GetFunctionConfiguration"], "Resource": functions})
        # Which stack made the API is asked by physical id, before any stack is known: any stack of
        # this account and region. Its tables are then read from that stack alone.
        stacks = "arn:%s:cloudformation:%s:%s:stack/" % (partition, region, account)
        statements.append({"Sid": "FindTheStackThatMadeTheApi", "Effect": "Allow",
                           "Action": ["cloudformation:DescribeStackResources"], "Resource": [stacks + "*"]})
        stack = target.made_by_stack
        if stack:
            statements.append({"Sid": "ReadThatStacksTables", "Effect": "Allow",
                               "Action": ["cloudformation:ListStackResources"],
                               "Resource": [stacks + stack + "/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


__all__ = ["operator_policy"]
