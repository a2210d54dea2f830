"""The planner on its own, against an in-memory remote state: no moto, no boto3 calls.

`FakeAws` keeps a stack as `RemoteState` data and answers each boto3 method a plan uses the
way AWS changes its resources, so the real `apply` runs plans against it. Every step is one
call whose parameters botocore's model accepts; planners do not change their inputs; and any
sequence of deploys (auth modes, rotations, routes made one-way and back, settings) converges:
the next plan is empty.
"""

import copy
import dataclasses
import json
import string

import pytest
from botocore.exceptions import ClientError
from botocore.session import get_session
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsctl.apispec import default_spec
from wsctl.deploy import plan as planner
from wsctl.deploy.apply import apply
from wsctl.deploy.model import Action, Call, Fmt, NewKeyset, Ref, RotatedKeyset, resolve
from wsctl.deploy.plan import StackConfig, make_plan
from wsctl.deploy.remote import RemoteState
from wsctl.errors import WsctlError

STACK, STAGE, REGION = "mem", "dev", "eu-west-1"
CODE = b"PK fake bundle"


def config(auth="jwt", spec=None, **changes) -> StackConfig:
    return StackConfig(stack=STACK, stage=STAGE, region=REGION, spec=spec or default_spec(auth), code=CODE, **changes)


class FakeAws:
    """A stack in memory, changed by the same calls AWS takes."""

    def __init__(self):
        self.state = RemoteState(account="111122223333", partition="aws")
        self.deployments: dict = {}
        self.stage_names: dict = {}  # stage -> deployment id
        self.stage_settings: dict = {}  # stage -> DefaultRouteSettings
        self.keyset: str | None = None
        self.ids = iter("".join(p) for p in __import__("itertools").product(string.ascii_lowercase, repeat=4))
        self.calls: list[tuple[str, str]] = []

    def read(self, stage: str = STAGE) -> RemoteState:
        state = copy.deepcopy(self.state)
        state.stages = sorted(self.stage_names)
        if stage in self.stage_names:
            state.stage = {"StageName": stage, "DeploymentId": self.stage_names[stage],
                           "DefaultRouteSettings": dict(self.stage_settings.get(stage, {}))}
            state.deployment = self.deployments[self.stage_names[stage]]
        state.route_responses = {rid: rs for rid, rs in state.route_responses.items() if rs}
        return state

    def __call__(self, service: str):
        return FakeClient(self, service)

    def new_id(self) -> str:
        return next(self.ids)

    # -- API Gateway ----------------------------------------------------------------------------
    def create_api(self, Name, ProtocolType, RouteSelectionExpression, Tags):
        self.state.api = {"ApiId": self.new_id(), "Name": Name, "ProtocolType": ProtocolType,
                          "RouteSelectionExpression": RouteSelectionExpression, "Tags": Tags}
        return {"ApiId": self.state.api["ApiId"]}

    def update_api(self, ApiId, RouteSelectionExpression):
        self.state.api["RouteSelectionExpression"] = RouteSelectionExpression

    def create_integration(self, ApiId, **args):
        integration = dict(args, IntegrationId=self.new_id())
        self.state.integrations.append(integration)
        return integration

    def update_integration(self, ApiId, IntegrationId, **args):
        next(i for i in self.state.integrations if i["IntegrationId"] == IntegrationId).update(args)

    def create_authorizer(self, ApiId, **args):
        authorizer = dict(args, AuthorizerId=self.new_id())
        self.state.authorizers.append(authorizer)
        return authorizer

    def update_authorizer(self, ApiId, AuthorizerId, **args):
        next(a for a in self.state.authorizers if a["AuthorizerId"] == AuthorizerId).update(args)

    def delete_authorizer(self, ApiId, AuthorizerId):
        if any(r.get("AuthorizerId") == AuthorizerId for r in self.state.routes):
            raise error("ConflictException", "is referenced")
        self.state.authorizers = [a for a in self.state.authorizers if a["AuthorizerId"] != AuthorizerId]

    def create_route(self, ApiId, RouteKey, **args):
        if any(r["RouteKey"] == RouteKey for r in self.state.routes):
            raise error("ConflictException", "route exists")
        route = dict(args, RouteKey=RouteKey, RouteId=self.new_id())
        self.state.routes.append(route)
        return route

    def update_route(self, ApiId, RouteId, **args):
        route = next(r for r in self.state.routes if r["RouteId"] == RouteId)
        route.update(args)
        if args.get("AuthorizationType") == "NONE" and "AuthorizerId" not in args:
            route.pop("AuthorizerId", None)  # AWS detaches the authorizer

    def delete_route(self, ApiId, RouteId):
        self.state.routes = [r for r in self.state.routes if r["RouteId"] != RouteId]
        self.state.route_responses.pop(RouteId, None)

    def create_route_response(self, ApiId, RouteId, RouteResponseKey):
        self.state.route_responses.setdefault(RouteId, []).append(
            {"RouteResponseId": self.new_id(), "RouteResponseKey": RouteResponseKey})

    def delete_route_response(self, ApiId, RouteId, RouteResponseId):
        self.state.route_responses[RouteId] = [r for r in self.state.route_responses.get(RouteId, [])
                                               if r["RouteResponseId"] != RouteResponseId]

    def create_deployment(self, ApiId, Description, StageName=None):
        deployment = {"DeploymentId": self.new_id(), "Description": Description}
        self.deployments[deployment["DeploymentId"]] = deployment
        if StageName:
            self.stage_names[StageName] = deployment["DeploymentId"]
        return deployment

    def create_stage(self, ApiId, StageName, DeploymentId, Tags, DefaultRouteSettings):
        if StageName in self.stage_names:
            raise error("ConflictException", "stage exists")
        self.stage_names[StageName] = DeploymentId
        self.stage_settings[StageName] = dict(DefaultRouteSettings)

    def update_stage(self, ApiId, StageName, DefaultRouteSettings):
        self.stage_settings[StageName].update(DefaultRouteSettings)

    def delete_api(self, ApiId):
        self.state.api, self.state.integrations, self.state.authorizers, self.state.routes = None, [], [], []
        self.state.route_responses, self.stage_names = {}, {}

    # -- IAM, DynamoDB, logs, SSM -------------------------------------------------------------------
    def create_role(self, RoleName, AssumeRolePolicyDocument, Tags, Description):
        self.state.role = {"RoleName": RoleName, "AssumeRolePolicyDocument": json.loads(AssumeRolePolicyDocument),
                           "Tags": Tags}
        return {"Role": dict(self.state.role, Arn="arn:aws:iam::111122223333:role/" + RoleName)}

    def update_assume_role_policy(self, RoleName, PolicyDocument):
        self.state.role["AssumeRolePolicyDocument"] = json.loads(PolicyDocument)

    def put_role_policy(self, RoleName, PolicyName, PolicyDocument):
        self.state.role_policy = json.loads(PolicyDocument)
        self.state.role_policy_names = sorted(set(self.state.role_policy_names) | {PolicyName})

    def delete_role_policy(self, RoleName, PolicyName):
        self.state.role_policy_names.remove(PolicyName)
        self.state.role_policy = None

    def delete_role(self, RoleName):
        if self.state.role_policy_names:
            raise error("DeleteConflict", "policies attached")
        self.state.role = None

    def create_table(self, **args):
        self.state.table = {"TableName": args["TableName"], "KeySchema": args["KeySchema"],
                            "GlobalSecondaryIndexes": args["GlobalSecondaryIndexes"], "TableStatus": "ACTIVE"}

    def update_time_to_live(self, TableName, TimeToLiveSpecification):
        if (self.state.ttl or {}).get("TimeToLiveStatus") in ("ENABLED", "DISABLING"):
            raise error("ValidationException", "TimeToLive is already enabled")
        self.state.ttl = {"TimeToLiveStatus": "ENABLED", "AttributeName": TimeToLiveSpecification["AttributeName"]}

    def delete_table(self, TableName):
        self.state.table = self.state.ttl = None

    def create_log_group(self, logGroupName, tags):
        self.state.log_group, self.state.log_group_tags = {"logGroupName": logGroupName}, dict(tags)

    def put_retention_policy(self, logGroupName, retentionInDays):
        self.state.log_group["retentionInDays"] = retentionInDays

    def tag_log_group(self, logGroupName, tags):
        self.state.log_group_tags.update(tags)

    def delete_log_group(self, logGroupName):
        self.state.log_group, self.state.log_group_tags = None, {}

    def put_parameter(self, Name, Value, Type, **args):
        if self.state.parameter is not None and not args.get("Overwrite"):
            raise error("ParameterAlreadyExists", Name)
        assert Type == "SecureString" and isinstance(Value, str)
        self.keyset, self.state.parameter = Value, {"Name": Name, "Type": Type}

    def get_parameter(self, Name, WithDecryption):
        return {"Parameter": {"Name": Name, "Value": self.keyset}}

    def delete_parameter(self, Name):
        if self.state.parameter is None:
            raise error("ParameterNotFound", Name)
        self.state.parameter, self.keyset = None, None

    # -- Lambda -----------------------------------------------------------------------------------------
    def create_function(self, FunctionName, Code, Tags, Architectures, **settings):
        from wsctl.deploy import bundle

        self.state.function = dict(settings, FunctionName=FunctionName, Tags=Tags,
                                   CodeSha256=bundle.sha256_b64(Code["ZipFile"]), State="Active")

    def update_function_code(self, FunctionName, ZipFile):
        from wsctl.deploy import bundle

        self.state.function["CodeSha256"] = bundle.sha256_b64(ZipFile)

    def update_function_configuration(self, FunctionName, **settings):
        self.state.function.update(settings)

    def add_permission(self, FunctionName, StatementId, Action, Principal, SourceArn):
        if StatementId in self.state.permissions:
            raise error("ResourceConflictException", "statement exists")
        self.state.permissions[StatementId] = {"Sid": StatementId, "Condition": {"ArnLike": {"AWS:SourceArn": SourceArn}}}

    def remove_permission(self, FunctionName, StatementId):
        if self.state.permissions.pop(StatementId, None) is None:
            raise error("ResourceNotFoundException", StatementId)

    def put_function_concurrency(self, FunctionName, ReservedConcurrentExecutions):
        self.state.reserved_concurrency = ReservedConcurrentExecutions

    def delete_function_concurrency(self, FunctionName):
        self.state.reserved_concurrency = None

    def delete_function(self, FunctionName):
        self.state.function, self.state.permissions, self.state.reserved_concurrency = None, {}, None


def error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Fake")


class FakeClient:
    def __init__(self, aws: FakeAws, service: str):
        self.aws, self.service = aws, service

    def get_waiter(self, name):
        return type("Waiter", (), {"wait": lambda self, **_: None})()

    def __getattr__(self, method):
        def call(**params):
            self.aws.calls.append((self.service, method))
            return getattr(self.aws, method)(**params) or {}
        return call


def converge(aws: FakeAws, stack_config: StackConfig):
    plan = make_plan(stack_config, aws.read())
    apply(plan, aws)
    return plan


# -- one call per step, in botocore's own terms ------------------------------------------------------
_MODELS = {}


def _placeholder_free(value):
    if isinstance(value, (Ref, Fmt)):
        return "id-from-an-earlier-step"
    if isinstance(value, (NewKeyset, RotatedKeyset)):
        return "{}"
    if isinstance(value, dict):
        return {k: _placeholder_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholder_free(v) for v in value]
    return value


def assert_botocore_accepts(call: Call) -> None:
    service = {"logs": "logs"}.get(call.service, call.service)
    if service not in _MODELS:
        _MODELS[service] = get_session().get_service_model(service)
    operation = _MODELS[service].operation_model(call.operation)
    params = _placeholder_free(call.params)
    if call.method == "put_role_policy":
        params["PolicyDocument"] = json.dumps(params["PolicyDocument"])
    report = ParamValidator().validate(params, operation.input_shape)
    assert not report.has_errors(), "%s: %s" % (call.operation, report.generate_report())


@pytest.mark.parametrize("auth", ["jwt", "none"])
def test_every_step_of_a_first_deploy_is_one_call_botocore_accepts(auth):
    plan = make_plan(config(auth), FakeAws().read())
    for step in plan.steps:
        assert isinstance(step.action, Action) and isinstance(step.call, Call)
        assert_botocore_accepts(step.call)
    methods = [s.op for s in plan.steps]
    assert methods.count("create_route_response") == sum(r.two_way for r in default_spec(auth).routes)
    assert methods.index("create_log_group") + 1 == methods.index("put_retention_policy")
    assert methods[-1] == "update_time_to_live"  # last: AWS may refuse a TTL change for an hour


def test_planners_return_their_steps_and_change_nothing_they_are_given():
    aws = FakeAws()
    converge(aws, config())
    state = aws.read()
    state.permissions[planner.ROUTES_SID]["Condition"]["ArnLike"]["AWS:SourceArn"] = "arn:aws:old"
    state.function["CodeSha256"] = "old"
    before = copy.deepcopy(state)
    stack_config = config("none")
    ctx = planner.base_context(stack_config, state)
    ctx_before = copy.deepcopy(ctx)
    steps = (planner.plan_routes(stack_config, state, ctx) + planner.plan_permissions(stack_config, state, ctx)
             + sum(planner.plan_function(stack_config, state, ctx, {}, switching=True), [])
             + sum(planner.plan_role(stack_config, state, ctx, {}), []) + planner.plan_retirements(stack_config, state))
    assert steps and state == before and ctx == ctx_before
    plan = make_plan(stack_config, state)
    assert state == before
    ops = [(s.op, s.name) for s in plan.steps]
    # replacing a permission is two calls: remove, then add
    assert ops.index(("remove_permission", planner.ROUTES_SID)) + 1 == ops.index(("add_permission", planner.ROUTES_SID))


def test_a_second_stage_is_refused_in_memory_too():
    aws = FakeAws()
    converge(aws, config())
    with pytest.raises(WsctlError, match="already serves stage dev.*--stack mem-prod --stage prod"):
        make_plan(dataclasses.replace(config(), stage="prod"), aws.read("prod"))


@pytest.mark.parametrize("ttl, warned", [
    ({"TimeToLiveStatus": "DISABLING", "AttributeName": "ttl"}, "DISABLING"),
    ({"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}, "'expiresAt', not 'ttl'"),
    ({"TimeToLiveStatus": "ENABLING", "AttributeName": "ttl"}, None),
])
def test_ttl_states_aws_will_not_change_are_warnings_not_steps(ttl, warned):
    aws = FakeAws()
    converge(aws, config())
    aws.state.ttl = ttl
    plan = make_plan(config(), aws.read())
    assert plan.steps == []
    assert [w for w in plan.warnings if warned and warned in w] == ([plan.warnings[0]] if warned else [])


def test_destroy_deletes_inline_policies_before_the_role():
    from wsctl.deploy import plan_destroy

    aws = FakeAws()
    converge(aws, config())
    target = type("T", (), {"stack": STACK, "stage": STAGE, "region_name": REGION})()
    plan = plan_destroy(target, aws.read())
    assert [s.op for s in plan.steps] == ["delete_api", "delete_function", "delete_log_group", "delete_parameter",
                                          "delete_table", "delete_role_policy", "delete_role"]
    apply(plan, aws)
    assert make_plan(config(), aws.read()).steps[0].op == "create_api"


# -- convergence ----------------------------------------------------------------------------------------
ROUTE_KEYS = [r.key for r in default_spec().routes if r.key not in ("$connect", "$disconnect")]

deploys = st.fixed_dictionaries({
    "auth": st.sampled_from(["jwt", "none"]),
    "rotate_key": st.booleans(),
    "one_way": st.sets(st.sampled_from(ROUTE_KEYS), max_size=3),
    "log_retention_days": st.sampled_from([7, 14, 30]),
    "ttl_seconds": st.sampled_from([600, 7500]),
    "allow_client_broadcast": st.booleans(),
    "throttle": st.sampled_from([(1000.0, 500), (250.5, 10)]),
    "reserved_concurrency": st.sampled_from([None, 0, 5, 20]),
})


def spec_of(auth: str, one_way: set):
    spec = default_spec(auth)
    return dataclasses.replace(spec, routes=tuple(dataclasses.replace(r, two_way=False) if r.key in one_way else r
                                                  for r in spec.routes))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(deploys, min_size=1, max_size=5))
def test_any_sequence_of_deploys_converges_and_the_next_plan_is_empty(sequence):
    aws = FakeAws()
    for wanted in sequence:
        one_way = wanted.pop("one_way")
        stack_config = config(spec=spec_of(wanted["auth"], one_way), **{k: v for k, v in wanted.items() if k != "auth"})
        converge(aws, stack_config)
        again = make_plan(dataclasses.replace(stack_config, rotate_key=False), aws.read())
        assert [(s.op, s.name) for s in again.steps] == []
        state = aws.read()
        assert (state.parameter is not None) == (wanted["auth"] == "jwt")
        assert bool(state.authorizers) == (wanted["auth"] == "jwt")
        for route in state.routes:
            two_way = route["RouteKey"] not in one_way and route["RouteKey"] not in ("$connect", "$disconnect")
            assert bool(route.get("RouteResponseSelectionExpression")) == two_way
            assert bool(state.route_responses.get(route["RouteId"])) == two_way


# -- the API Gateway and Lambda shapes a first plan builds (docs/apigw-websocket.md#deploying) ---------------
IDS = {"api_id": "a1b2c3d4e5", "integration_id": "int0001", "authorizer_id": "auth001", "deployment_id": "dep0001"}


def first_plan(auth: str):
    plan = make_plan(config(auth), FakeAws().read())
    ctx = dict(plan.context, **IDS)
    ctx.update({name: "rid-" + name[6:] for step in plan.steps for name, _ in step.call.outputs
                if name.startswith("route:")})
    calls = [(step.op, resolve(step.call.params, ctx)) for step in plan.steps]
    return plan, calls


def only(calls, op) -> dict:
    found = [params for method, params in calls if method == op]
    assert len(found) == 1, (op, found)
    return found[0]


@pytest.mark.parametrize("auth", ["jwt", "none"])
def test_a_first_plan_builds_a_websocket_api_with_one_proxy_integration_for_every_route(auth):
    _, calls = first_plan(auth)
    api = only(calls, "create_api")
    assert api["ProtocolType"] == "WEBSOCKET" and api["RouteSelectionExpression"] == "$request.body.action"
    integration = only(calls, "create_integration")
    assert integration["IntegrationType"] == "AWS_PROXY" and integration["IntegrationMethod"] == "POST"
    assert integration["IntegrationUri"] == (
        "arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/arn:aws:lambda:%s:111122223333:function:%s"
        "/invocations" % (REGION, REGION, only(calls, "create_function")["FunctionName"]))
    assert 50 <= integration["TimeoutInMillis"] <= 29000
    routes = {params["RouteKey"]: params for method, params in calls if method == "create_route"}
    assert set(routes) == {r.key for r in default_spec(auth).routes}
    assert {params["Target"] for params in routes.values()} == {"integrations/" + IDS["integration_id"]}


@pytest.mark.parametrize("auth", ["jwt", "none"])
def test_only_connect_is_authorized_and_by_a_request_authorizer(auth):
    _, calls = first_plan(auth)
    routes = {params["RouteKey"]: params for method, params in calls if method == "create_route"}
    for key, params in routes.items():
        if key == "$connect" and auth == "jwt":
            assert params["AuthorizationType"] == "CUSTOM" and params["AuthorizerId"] == IDS["authorizer_id"]
        else:
            assert params["AuthorizationType"] == "NONE" and "AuthorizerId" not in params
    authorizers = [params for method, params in calls if method == "create_authorizer"]
    if auth == "none":
        assert authorizers == []
        return
    (authorizer,) = authorizers
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["AuthorizerUri"] == only(calls, "create_integration")["IntegrationUri"]
    # WebSocket identity sources use the route.request.* syntax (HTTP APIs use $request.*).
    assert authorizer["IdentitySource"] and all(s.startswith("route.request.") for s in authorizer["IdentitySource"])


def test_two_way_routes_get_the_default_response_selection_and_a_default_route_response():
    _, calls = first_plan("jwt")
    routes = {params["RouteKey"]: params for method, params in calls if method == "create_route"}
    responses = {params["RouteId"]: params for method, params in calls if method == "create_route_response"}
    for route in default_spec("jwt").routes:
        if route.two_way:
            assert routes[route.key]["RouteResponseSelectionExpression"] == "$default"
            assert responses["rid-" + route.key]["RouteResponseKey"] == "$default"
        else:
            assert "RouteResponseSelectionExpression" not in routes[route.key]
            assert "rid-" + route.key not in responses


@pytest.mark.parametrize("auth", ["jwt", "none"])
def test_api_gateway_may_invoke_the_function_from_this_stage_and_this_authorizer_only(auth):
    _, calls = first_plan(auth)
    permissions = {params["StatementId"]: params for method, params in calls if method == "add_permission"}
    prefix = "arn:aws:execute-api:%s:111122223333:%s" % (REGION, IDS["api_id"])
    wanted = {planner.ROUTES_SID: prefix + "/%s/*" % STAGE}
    if auth == "jwt":
        wanted[planner.AUTHORIZER_SID] = prefix + "/authorizers/" + IDS["authorizer_id"]
    assert {sid: p["SourceArn"] for sid, p in permissions.items()} == wanted
    assert {(p["Action"], p["Principal"]) for p in permissions.values()} == {
        ("lambda:InvokeFunction", "apigateway.amazonaws.com")}


def test_the_handler_may_post_to_this_stages_connections_only():
    _, calls = first_plan("jwt")
    policy = only(calls, "put_role_policy")["PolicyDocument"]
    (statement,) = [s for s in policy["Statement"] if "execute-api:ManageConnections" in s["Action"]]
    assert statement["Action"] == ["execute-api:ManageConnections"]
    assert statement["Resource"] == ["arn:aws:execute-api:%s:111122223333:%s/%s/POST/@connections/*"
                                     % (REGION, IDS["api_id"], STAGE)]


def test_a_new_route_selection_expression_is_one_api_update_and_a_redeploy():
    aws = FakeAws()
    converge(aws, config())
    spec = dataclasses.replace(default_spec("jwt"), route_selection_expression="$request.body.type")
    plan = make_plan(config(spec=spec), aws.read())
    assert [s.op for s in plan.steps] == ["update_api", "create_deployment"]
    assert plan.steps[0].call.params["RouteSelectionExpression"] == "$request.body.type"
    assert plan.steps[1].call.params["StageName"] == STAGE  # a new deployment is live only once a stage serves it


def test_a_stage_serving_an_older_deployment_is_redeployed_and_nothing_else():
    aws = FakeAws()
    converge(aws, config())
    aws.deployments[aws.stage_names[STAGE]]["Description"] = "deployed by hand"
    plan = make_plan(config(), aws.read())
    assert [(s.op, s.detail) for s in plan.steps] == [("create_deployment", "stage serves an older deployment")]


def test_a_table_with_another_key_schema_is_refused():
    aws = FakeAws()
    converge(aws, config())
    aws.state.table["KeySchema"] = [{"AttributeName": "id", "KeyType": "HASH"}]
    with pytest.raises(WsctlError, match="exists with another key schema"):
        make_plan(config(), aws.read())


def test_a_log_group_lambda_created_by_itself_is_adopted_and_given_the_retention():
    aws = FakeAws()
    converge(aws, config())
    aws.state.log_group_tags = {}
    aws.state.log_group = {"logGroupName": aws.state.log_group["logGroupName"]}  # no retention: never expires
    plan = make_plan(config(), aws.read())
    assert [(s.op, s.action) for s in plan.steps] == [("tag_log_group", Action.ADOPT),
                                                      ("put_retention_policy", Action.UPDATE)]


def test_a_resource_of_the_same_name_that_is_not_the_stacks_is_refused_before_any_step():
    state = FakeAws().read()
    state.foreign = [("DynamoDB table", "wsctl-mem-connections")]
    with pytest.raises(WsctlError, match="DynamoDB table wsctl-mem-connections exists but does not belong"):
        make_plan(config(), state)


def test_what_each_command_says_of_a_stack_with_another_stage_or_several():
    from wsctl.deploy import stages
    from wsctl.errors import UsageError

    stages.check_deploy(STACK, "dev", ["dev"])
    stages.check_deploy(STACK, "dev", [])
    with pytest.raises(WsctlError, match=r"stack mem has stages dev and prod.*remove the other with "
                                         r"`wsctl destroy --stage prod --only-stage`, then deploy again"):
        stages.check_deploy(STACK, "dev", ["dev", "prod"])
    with pytest.raises(WsctlError, match=r"already serves stage dev and prod.*`wsctl deploy --stack mem-qa --stage qa`"):
        stages.check_deploy(STACK, "qa", ["dev", "prod"])
    stages.check_destroy(STACK, "dev", ["dev", "prod"], only_stage=False)  # the whole stack, the CLI asks first
    stages.check_destroy(STACK, "prod", ["dev", "prod"], only_stage=True)
    with pytest.raises(WsctlError, match=r"serves stage dev, not prod: `wsctl destroy --stage dev` removes it$"):
        stages.check_destroy(STACK, "prod", ["dev"], only_stage=False)
    with pytest.raises(UsageError, match="only stage of stack mem"):
        stages.check_destroy(STACK, "dev", ["dev"], only_stage=True)
    with pytest.raises(WsctlError, match=r"stage dev does not exist \(stack mem has no stage\)"):
        stages.check_destroy(STACK, "dev", [], only_stage=True)
    assert stages.status_notes(STACK, "dev", ["dev"]) == stages.status_notes(STACK, "dev", []) == []
    (note,) = stages.status_notes(STACK, "Prod_EU", ["dev"])
    assert "`wsctl deploy --stack mem-prod-eu --stage Prod_EU`" in note


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True), st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
def test_the_stack_suggested_for_another_stage_is_a_valid_name_of_its_own(stack, stage):
    from wsctl import names

    suggested = names.stack_for_stage(stack, stage)
    assert names.check_stack(suggested) == suggested and len(suggested) <= names.MAX_STACK
    assert suggested != stack


def test_every_log_retention_cloudwatch_documents_is_accepted_and_no_other():
    """The list is CloudWatch's own: PutRetentionPolicy's documentation in botocore's model."""
    from wsctl import limits
    from wsctl.deploy import options
    from wsctl.errors import UsageError

    text = get_session().get_service_model("logs").shape_for("Days").documentation
    documented = tuple(int(n) for n in text.split("Possible values are:")[1].split(".")[0].replace("and", "")
                       .split(","))
    assert limits.LOG_RETENTION_DAYS == documented and {2192, 2557, 2922, 3288} <= set(documented)
    for days in documented:
        assert options.check_log_retention(days) == days
    for days in (0, 2, 13, 2191, 3654):
        with pytest.raises(UsageError, match="2192, 2557, 2922, 3288, 3653"):
            options.check_log_retention(days)
