"""Read what a stack has on AWS now: read-only calls only (Get/List/Describe).

The result is plain data that `plan` compares with the desired stack. Each
resource is None when absent; a resource that exists under the stack's name
but lacks the stack's tag is reported in `foreign` so the plan can refuse.
"""

import json
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from .. import aws, names
from ..errors import WsctlError
from ..targets.apis import find_api
from .model import Kind


@dataclass
class RemoteState:
    account: str
    partition: str
    api: dict | None = None
    integrations: list = field(default_factory=list)
    authorizers: list = field(default_factory=list)
    routes: list = field(default_factory=list)
    route_responses: dict = field(default_factory=dict)  # route id -> [route responses]
    stages: list = field(default_factory=list)  # the API's stage names
    stage_details: dict = field(default_factory=dict)  # stage name -> its GetStages item (deployment, tags)
    stage: dict | None = None
    deployment: dict | None = None
    role: dict | None = None
    role_policy: dict | None = None
    role_policy_names: list = field(default_factory=list)  # every inline policy (destroy deletes them)
    table: dict | None = None
    ttl: dict | None = None
    log_group: dict | None = None
    log_group_tags: dict = field(default_factory=dict)
    parameter: dict | None = None
    function: dict | None = None  # get_function's Configuration, plus "Tags"
    reserved_concurrency: int | None = None  # the function's, if it has a reservation
    permissions: dict = field(default_factory=dict)  # statement id -> statement
    foreign: list = field(default_factory=list)  # (kind, name) taken by something not ours
    unread: list = field(default_factory=list)  # (kind, why) of what could not be read (tolerant reads)

    def unreadable(self, kind: str) -> str | None:
        return next((why for what, why in self.unread if what == kind), None)


def _missing(error: Exception, *codes: str) -> bool:
    return aws.error_code(error) in codes or aws.status_code(error) == 404


def _items(call, **kwargs) -> list:
    items, token = [], None
    while True:
        answer = call(**kwargs, **({"NextToken": token} if token else {}))
        items += answer.get("Items", [])
        token = answer.get("NextToken")
        if not token:
            return items


def read(clients, stack: str, stage: str, region: str, tolerant: bool = False) -> RemoteState:
    """The stack as AWS has it. `tolerant` (status, destroy): a read that fails is recorded in
    `unread` and the rest is still read, so a half-made stack can be shown and removed even
    where one listing call fails (an endpoint that lacks it, a missing permission)."""
    identity = clients("sts").get_caller_identity()
    state = RemoteState(account=identity["Account"], partition=identity["Arn"].split(":")[1])

    def section(kind: str, reader, *args) -> None:
        if not tolerant:
            reader(state, *args)
            return
        try:
            reader(state, *args)
        except Exception as error:  # noqa: BLE001 - any failed read is named, never fatal here
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            state.unread.append((kind, str(error) if isinstance(error, WsctlError)
                                 else aws.describe(error) or "%s: %s" % (type(error).__name__, error)))

    section(Kind.API, _read_api, clients("apigatewayv2"), stack, stage, section)
    section(Kind.ROLE, _read_role, clients("iam"), stack, region)
    section(Kind.TABLE, _read_table, clients("dynamodb"), stack)
    section(Kind.LOG_GROUP, _read_log_group, clients("logs"), stack)
    section(Kind.PARAMETER, _read_parameter, clients("ssm"), stack)
    section(Kind.FUNCTION, _read_function, clients("lambda"), stack)
    return state


def _read_role(state: RemoteState, iam, stack: str, region: str) -> None:
    role_name = names.role_name(stack, region)
    try:
        state.role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as error:
        if not _missing(error, "NoSuchEntity"):
            raise
        return
    tags = {t["Key"]: t["Value"] for t in state.role.get("Tags", [])}
    if tags.get(names.TAG_KEY) != stack:
        state.foreign.append((Kind.ROLE, role_name))
    state.role_policy_names = [name for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name)
                               for name in page.get("PolicyNames", [])]
    if role_name in state.role_policy_names:
        try:
            state.role_policy = iam.get_role_policy(RoleName=role_name, PolicyName=role_name)["PolicyDocument"]
        except ClientError as error:
            if not _missing(error, "NoSuchEntity"):
                raise


def _read_table(state: RemoteState, ddb, stack: str) -> None:
    table = names.table_name(stack)
    try:
        state.table = ddb.describe_table(TableName=table)["Table"]
    except ClientError as error:
        if not _missing(error, "ResourceNotFoundException"):
            raise
        return
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=state.table["TableArn"]).get("Tags", [])}
    if tags.get(names.TAG_KEY) != stack:
        state.foreign.append((Kind.TABLE, table))
    state.ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]


def _read_log_group(state: RemoteState, logs, stack: str) -> None:
    group = names.log_group(stack)
    for candidate in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", []):
        if candidate["logGroupName"] == group:
            state.log_group = candidate
            state.log_group_tags = logs.list_tags_log_group(logGroupName=group).get("tags", {})


def _read_parameter(state: RemoteState, ssm, stack: str) -> None:
    param = names.signing_key_param(stack)
    try:
        state.parameter = ssm.get_parameter(Name=param, WithDecryption=False)["Parameter"]
    except ClientError as error:
        if not _missing(error, "ParameterNotFound"):
            raise
        return
    tags = {t["Key"]: t["Value"] for t in ssm.list_tags_for_resource(
        ResourceType="Parameter", ResourceId=param).get("TagList", [])}
    if tags.get(names.TAG_KEY) != stack:
        state.foreign.append((Kind.PARAMETER, param))


def _read_function(state: RemoteState, lam, stack: str) -> None:
    function = names.function_name(stack)
    try:
        answer = lam.get_function(FunctionName=function)
    except ClientError as error:
        if not _missing(error, "ResourceNotFoundException"):
            raise
        return
    state.function = dict(answer["Configuration"], Tags=answer.get("Tags", {}))
    state.reserved_concurrency = (answer.get("Concurrency") or {}).get("ReservedConcurrentExecutions")
    if state.function["Tags"].get(names.TAG_KEY) != stack:
        state.foreign.append((Kind.FUNCTION, function))
    try:
        policy = json.loads(lam.get_policy(FunctionName=function)["Policy"])
        state.permissions = {s.get("Sid"): s for s in policy.get("Statement", [])}
    except ClientError as error:
        if not _missing(error, "ResourceNotFoundException"):
            raise


def _read_api(state: RemoteState, apigw, stack: str, stage: str, section=None) -> None:
    state.api = find_api(apigw, stack)
    if state.api is None:
        return
    api_id = state.api["ApiId"]

    def part(kind, reader):
        if section is None:
            reader(state)
        else:  # a failed listing of one kind leaves the others readable
            section(kind, reader)

    def integrations(state):
        state.integrations = _items(apigw.get_integrations, ApiId=api_id)

    def authorizers(state):
        state.authorizers = _items(apigw.get_authorizers, ApiId=api_id)

    def routes(state):
        state.routes = _items(apigw.get_routes, ApiId=api_id)
        for route in state.routes:
            if route.get("RouteResponseSelectionExpression"):
                state.route_responses[route["RouteId"]] = _items(
                    apigw.get_route_responses, ApiId=api_id, RouteId=route["RouteId"])

    def stages(state):
        state.stage_details = {s["StageName"]: s for s in _items(apigw.get_stages, ApiId=api_id)}
        state.stages = sorted(state.stage_details)
        state.stage = state.stage_details.get(stage)  # GetStages gives each stage whole, as GetStage would
        if state.stage and state.stage.get("DeploymentId"):
            try:
                state.deployment = apigw.get_deployment(ApiId=api_id, DeploymentId=state.stage["DeploymentId"])
            except ClientError as error:
                if not _missing(error, "NotFoundException"):
                    raise

    part("integrations", integrations)
    part("authorizers", authorizers)
    part("routes", routes)
    part("stages", stages)
