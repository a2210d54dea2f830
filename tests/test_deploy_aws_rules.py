"""Deploy against the rules AWS enforces and moto does not (moto_shim adds them where it can):
one stage per stack, IAM propagation, partitions, auth and route changes, DynamoDB TTL.

Errors AWS answers only on a real account (a new role not yet assumable, an authorizer still
referenced) are injected at the botocore boundary: a `before-call` hook answers as AWS would,
so wsctl's own code runs unchanged. Waits run on a fake clock: no test really waits.
"""

import dataclasses
import json

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from wsctl.apispec import default_spec
from wsctl.cli import app as cli
from wsctl.deploy import DeployOptions, apply, plan_deploy, run_plan
from wsctl.errors import WsctlError
from wsctl.targets.stack import StackTarget as Target

STACK, REGION, ACCOUNT = "rules", "us-east-1", "123456789012"
FUNCTION = API = "wsctl-rules"
TABLE = "wsctl-rules-connections"
ROLE = "wsctl-rules-us-east-1"
runner = CliRunner()


class FakeClock:
    def __init__(self, interrupt_after: int | None = None):
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.interrupt_after = interrupt_after

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.now += seconds


def aws_error(code: str, message: str, status: int = 400):
    """A before-call answer: botocore raises it as AWS's own error."""
    return (AWSResponse("https://example.invalid", status, {}, None),
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}})


class Inject:
    """Answer the first `times` calls of `operation` with an AWS error (times=None: every call)."""

    def __init__(self, operation: str, code: str, message: str, status: int = 400, times: int | None = None):
        self.operation, self.answer, self.times, self.calls = operation, aws_error(code, message, status), times, 0

    def __call__(self, event_name, **_):
        if event_name.rsplit(".", 1)[-1] != self.operation:
            return None
        self.calls += 1
        if self.times is None or self.calls <= self.times:
            return self.answer
        return None


def injected_target(*injections, stage: str = "dev") -> Target:
    session = boto3.Session(region_name=REGION)
    for injection in injections:
        session.events.register("before-call", injection)
    return Target(stack=STACK, stage=stage, boto_session=session)


@pytest.fixture
def inject_everywhere(monkeypatch):
    """Register an injection on every boto3 session from now on (the CLI makes its own)."""
    def register(injection):
        monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS",
                            [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", injection)])
        return injection
    return register


def deploy(target=None, spec=None, clock=None, notes=None):
    target = target or Target(stack=STACK, region=REGION)
    _, plan = plan_deploy(target, DeployOptions(spec=spec or default_spec()))
    run_plan(target, plan, notify=(notes.append if notes is not None else None), clock=clock or FakeClock())
    return plan


def replan(spec=None):
    return plan_deploy(Target(stack=STACK, region=REGION), DeployOptions(spec=spec or default_spec()))[1]


def wsctl(*args, stack=STACK, region=REGION):
    return runner.invoke(cli, [*args, "--stack", stack, "--region", region])


def one_line_error(result, *texts, code=None):
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    for text in texts:
        assert text in line, line
    return line


def client(service, region=REGION):
    return boto3.client(service, region_name=region)


def api_id(name=API, region=REGION):
    (api,) = [a for a in client("apigatewayv2", region).get_apis()["Items"] if a["Name"] == name]
    return api["ApiId"]


def permission_sources(function=FUNCTION, region=REGION) -> set:
    policy = json.loads(client("lambda", region).get_policy(FunctionName=function)["Policy"])
    return {s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"]}


def role_policy_resources(role=ROLE, region=REGION) -> set:
    iam = client("iam", region)
    document = iam.get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    return {r for s in document["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                      else s["Resource"])}


# -- 1. one stack serves one stage -------------------------------------------------------------
def test_a_second_stage_of_a_stack_is_refused_and_the_first_keeps_working(aws):
    assert wsctl("deploy").exit_code == 0
    before = (permission_sources(), role_policy_resources())

    line = one_line_error(wsctl("deploy", "--stage", "prod"), "already serves stage dev",
                          "`wsctl deploy --stack rules-prod --stage prod`")
    assert line.count("\n") == 0
    assert (permission_sources(), role_policy_resources()) == before  # dev still answers and relays
    assert "arn:aws:execute-api:%s:%s:%s/dev/*" % (REGION, ACCOUNT, api_id()) in before[0]
    assert [s["StageName"] for s in client("apigatewayv2").get_stages(ApiId=api_id())["Items"]] == ["dev"]

    one_line_error(wsctl("destroy", "--stage", "prod", "--yes"), "serves stage dev, not prod",
                   "`wsctl destroy --stage dev` removes it")
    result = wsctl("status", "--stage", "prod", "-o", "json")
    assert result.exit_code == 6  # not deployed for this stage
    status = json.loads(result.stdout)
    assert (status["stages"], status["deployed"], status["servesStage"], status["partial"]) == (
        ["dev"], True, False, False)
    assert {r["resource"]: r["state"] for r in status["resources"]}["stage"] == "missing (the stack serves dev)"
    assert "url" not in status  # no URL for a stage that does not exist
    (note,) = status["notes"]
    assert "serves stage dev, not prod: `wsctl status --stage dev`" in note
    assert "`wsctl deploy --stack rules-prod --stage prod`" in note
    text = wsctl("status", "--stage", "prod")
    assert "not deployed in us-east-1 for stage prod" in text.stdout and "deploy completes" not in text.output

    # the way the error names: another stack for the other stage, each with its own everything
    assert wsctl("deploy", "--stage", "prod", stack="rules-prod").exit_code == 0
    assert permission_sources() == before[0]
    assert permission_sources("wsctl-rules-prod") == {"arn:aws:execute-api:%s:%s:%s/prod/*" % (
        REGION, ACCOUNT, api_id("wsctl-rules-prod")), "arn:aws:execute-api:%s:%s:%s/authorizers/%s" % (
        REGION, ACCOUNT, api_id("wsctl-rules-prod"),
        client("apigatewayv2").get_authorizers(ApiId=api_id("wsctl-rules-prod"))["Items"][0]["AuthorizerId"])}
    assert wsctl("destroy", "--stage", "prod", "--yes", stack="rules-prod").exit_code == 0
    assert permission_sources() == before[0] and "up to date" in wsctl("deploy").stdout


def console_stage(name: str, api: str | None = None) -> None:
    """A stage made the way the console makes one: a name and an existing deployment, no tags."""
    apigw = client("apigatewayv2")
    api = api or api_id()
    deployment = apigw.get_stage(ApiId=api, StageName="dev")["DeploymentId"]
    apigw.create_stage(ApiId=api, StageName=name, DeploymentId=deployment, Description="made in the console")


def stage_names(api: str | None = None) -> list:
    return sorted(s["StageName"] for s in client("apigatewayv2").get_stages(ApiId=api or api_id())["Items"])


def test_a_stack_with_two_stages_is_listed_and_deploy_says_how_to_bring_it_back_to_one(aws):
    assert wsctl("deploy").exit_code == 0
    console_stage("prod")

    status = json.loads(wsctl("status", "-o", "json").stdout)
    assert status["stages"] == ["dev", "prod"] and status["servesStage"]
    rows = {(r["resource"], r["name"]): r["state"] for r in status["resources"]}
    assert rows[("stage", "dev")] == "deployed"
    assert rows[("other stage", "prod")] == "deployed, not tagged as the stack's"
    (note,) = status["notes"]
    assert "has stages dev and prod" in note and "`wsctl destroy --stage prod --only-stage`" in note
    text = wsctl("status")
    assert "other stage" in text.stdout and "prod" in text.stdout and "dev and prod" in text.stderr

    for stage in ("dev", "prod"):
        one_line_error(wsctl("deploy", "--stage", stage), "stack rules has stages dev and prod",
                       "one stack serves one stage", "`wsctl destroy --stage %s --only-stage`"
                       % ("prod" if stage == "dev" else "dev"))
    one_line_error(wsctl("deploy", "--stage", "test"), "already serves stage dev and prod",
                   "`wsctl deploy --stack rules-test --stage test`")

    # one stage removed alone, after which the stack deploys again
    one_line_error(wsctl("destroy", "--stage", "qa", "--only-stage", "--yes"), "stage qa does not exist",
                   "the stack serves dev and prod", code=3)
    removed = wsctl("destroy", "--stage", "prod", "--only-stage", "--yes")
    assert removed.exit_code == 0, removed.output
    assert "Stage prod of stack rules removed; the stack serves dev" in removed.stdout
    assert stage_names() == ["dev"] and wsctl("status").exit_code == 0
    assert "up to date" in wsctl("deploy").stdout
    one_line_error(wsctl("destroy", "--only-stage", "--yes"), "stage dev is the only stage of stack rules",
                   "without --only-stage", code=2)
    assert stage_names() == ["dev"]


@pytest.mark.parametrize("named", ["dev", "prod"])
def test_destroy_of_a_stack_with_two_stages_names_them_and_removes_everything(aws, named):
    assert wsctl("deploy").exit_code == 0
    console_stage("prod")

    refused = wsctl("destroy", "--stage", named)  # not a terminal: it asks first, so it needs --yes
    assert refused.exit_code == 1 and "--yes" in refused.stderr and stage_names() == ["dev", "prod"]
    result = wsctl("destroy", "--stage", named, "--yes")
    assert result.exit_code == 0, result.output
    assert "has stages dev and prod: destroying it removes every one" in result.stdout
    assert "Stack rules destroyed with stages dev and prod." in result.stdout
    assert client("apigatewayv2").get_apis()["Items"] == [] and client("lambda").list_functions()["Functions"] == []
    assert client("iam").list_roles()["Roles"] == []
    assert "Nothing of stack rules" in wsctl("destroy", "--stage", named, "--yes").stdout


def test_destroy_names_every_stage_in_json_and_a_stage_the_stack_lacks_is_refused(aws):
    assert wsctl("deploy").exit_code == 0
    console_stage("prod")
    console_stage("test")
    one_line_error(wsctl("destroy", "--stage", "qa", "--yes"), "serves stages dev, prod and test, not qa",
                   "`wsctl destroy --stage dev` removes it with every stage")
    document = json.loads(wsctl("destroy", "--stage", "test", "--only-stage", "--yes", "-o", "json").stdout)
    assert (document["stages"], document["left"]) == (["dev", "prod", "test"], [])
    assert [(d["call"], d["name"]) for d in document["deleted"]] == [("delete_stage", "test")]
    document = json.loads(wsctl("destroy", "--yes", "-o", "json").stdout)
    assert document["stages"] == ["dev", "prod"] and document["left"] == []
    assert ("delete_api", "wsctl-rules") in [(d["call"], d["name"]) for d in document["deleted"]]


# -- 2. IAM propagation ----------------------------------------------------------------------------
ROLE_NOT_READY = ("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")


def test_create_function_waits_for_a_new_role_with_a_progress_line(aws):
    injection = Inject("CreateFunction", *ROLE_NOT_READY, times=3)
    clock, notes = FakeClock(), []
    deploy(injected_target(injection), clock=clock, notes=notes)

    assert injection.calls == 4 and clock.sleeps == [apply.ROLE_PROPAGATION_DELAY] * 3
    assert len(notes) == 3 and all("waiting for IAM" in n and ROLE in n and "cannot assume" in n for n in notes)
    assert "up to 150 s" in notes[0] and "(10 s so far)" in notes[2]
    assert client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]["State"] == "Active"
    assert replan().steps == []


def test_the_role_wait_lasts_as_long_as_chalices_then_says_how_to_resume(aws):
    injection = Inject("CreateFunction", *ROLE_NOT_READY)
    clock = FakeClock()
    with pytest.raises(WsctlError, match="still cannot assume role %s after 150 s.*deploy` again" % ROLE):
        deploy(injected_target(injection), clock=clock)
    assert sum(clock.sleeps) == 150 and injection.calls == 31  # 30 waits of 5 s, as Chalice

    deploy()  # the role has propagated by now: the next deploy resumes
    assert replan().steps == []


def test_update_function_configuration_waits_for_the_role_too(aws):
    deploy()
    injection = Inject("UpdateFunctionConfiguration", *ROLE_NOT_READY, times=2)
    notes = []
    deploy(injected_target(injection), spec=default_spec("none"), notes=notes)
    assert injection.calls == 4  # two refused, then the auth switch's two updates (opening, closing)
    assert len([n for n in notes if "waiting for IAM" in n]) == 2
    env = client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert env["AUTH_MODE"] == "none"


def test_an_interrupted_wait_says_the_stack_is_partial_and_the_next_deploy_resumes(aws, inject_everywhere,
                                                                                monkeypatch):
    inject_everywhere(Inject("CreateFunction", *ROLE_NOT_READY))
    monkeypatch.setattr(apply, "CLOCK", FakeClock(interrupt_after=2))

    result = wsctl("deploy")

    line = one_line_error(result, "interrupted during step", "create Lambda function wsctl-rules",
                          "the stack is partial", "`wsctl deploy` again resumes it", "`wsctl destroy` deletes",
                          "the IAM role %s" % ROLE, "the DynamoDB table %s" % TABLE, code=130)
    assert "the Lambda function" not in line  # it was never made
    assert result.stderr.count("waiting for IAM") == 3  # the third wait was interrupted
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [
        h for h in botocore.handlers.BUILTIN_HANDLERS if not isinstance(h[1], Inject)])
    resumed = replan()
    assert resumed.steps[0].op == "create_function"
    deploy()
    assert replan().steps == []


# -- 4. partitions -------------------------------------------------------------------------------
CN = "cn-north-1"


def test_china_regions_get_amazonaws_com_cn_urls_and_aws_cn_arns(aws):
    deployed = wsctl("deploy", region=CN, stack="cn")
    assert deployed.exit_code == 0, deployed.output
    api = api_id("wsctl-cn", CN)
    url = "wss://%s.execute-api.%s.amazonaws.com.cn/dev" % (api, CN)
    assert url in deployed.stdout
    status = json.loads(wsctl("status", "-o", "json", region=CN, stack="cn").stdout)
    assert (status["url"], status["managementEndpoint"]) == (url, url.replace("wss://", "https://"))
    resources = role_policy_resources("wsctl-cn-" + CN, CN)
    assert resources and all(r.startswith("arn:aws-cn:") for r in resources)
    assert all(s.startswith("arn:aws-cn:execute-api:") for s in permission_sources("wsctl-cn", CN))
    integration = client("apigatewayv2", CN).get_integrations(ApiId=api)["Items"][0]
    assert integration["IntegrationUri"].startswith("arn:aws-cn:apigateway:%s:lambda:path/" % CN)

    # the operating commands use the same endpoint
    target = Target(stack="cn", region=CN)
    assert target.management_endpoint == url.replace("wss://", "https://") and target.ws_url == url
    hosts = []
    session_hook = ("before-send.apigatewaymanagementapi", lambda request, **_: hosts.append(request.url))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, session_hook])
        sent = wsctl("send", "--connection", "abc-DEF=", "hi", "--transport", "boto3", region=CN, stack="cn")
    assert sent.exit_code == 0, sent.output
    assert hosts == ["https://%s.execute-api.%s.amazonaws.com.cn/dev/@connections/abc-DEF%%3D" % (api, CN)]
    policy = json.loads(wsctl("deploy", "--print-policy", region=CN, stack="cn").stdout)
    assert all(r.startswith("arn:aws-cn:") for s in policy["Statement"] for r in s["Resource"] if r != "*")


# -- 5. auth mode and routes ---------------------------------------------------------------------
def test_auth_none_detaches_then_deletes_the_authorizer_retrying_while_it_is_referenced(aws):
    deploy()
    injection = Inject("DeleteAuthorizer", "ConflictException",
                       "Cannot delete authorizer 'x', is referenced in route: $connect", status=409, times=2)
    clock, notes = FakeClock(), []
    target = injected_target(injection)
    _, plan = plan_deploy(target, DeployOptions(spec=default_spec("none")))
    order = [(s.op, s.name) for s in plan.steps]
    assert order.index(("update_route", "$connect")) < order.index(("create_deployment", "dev")) < \
        order.index(("delete_authorizer", "wsctl-rules-jwt"))

    run_plan(target, plan, notify=notes.append, clock=clock)

    assert injection.calls == 3 and len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] * 0.5
    assert all("still referenced" in n for n in notes)
    assert client("apigatewayv2").get_authorizers(ApiId=api_id())["Items"] == []
    assert replan(default_spec("none")).steps == []


READS = ("Get", "List", "Describe")


class Window:
    """After each call that changes the stack, what a $connect would meet (read back with plain
    boto3): the auth mode the stage's last deployment froze, the function's AUTH_MODE, and
    whether the authorizer could read the key and be invoked."""

    def __init__(self):
        self.stage = self.read_connect_auth()
        self.states = [self.read()]  # the stack before the deploy, then after each change
        self.operations = []

    @staticmethod
    def read_connect_auth():
        apigw = client("apigatewayv2")
        (connect,) = [r for r in apigw.get_routes(ApiId=api_id())["Items"] if r["RouteKey"] == "$connect"]
        return "jwt" if connect.get("AuthorizationType") == "CUSTOM" else "none"

    def read(self) -> dict:
        env = client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
        grant = json.dumps(client("iam").get_role_policy(RoleName=ROLE, PolicyName=ROLE)["PolicyDocument"])
        try:
            client("ssm").get_parameter(Name="/wsctl/rules/signing-key")
            key_exists = True
        except client("ssm").exceptions.ParameterNotFound:
            key_exists = False
        return {"stage": self.stage, "mode": env["AUTH_MODE"],
                "key": "SIGNING_KEY_PARAM" in env and key_exists and "ssm:GetParameter" in grant,
                "invocable": "wsctl-authorizer" in json.dumps(client("lambda").get_policy(FunctionName=FUNCTION))}

    def __call__(self, event_name, **_):  # after-call.{service}.{Operation}
        operation = event_name.rsplit(".", 1)[-1]
        if operation.startswith(READS):
            return
        if operation == "CreateDeployment":
            self.stage = self.read_connect_auth()  # what the stage serves from now on
        self.operations.append(operation)
        self.states.append(self.read())

    def first(self, operation: str, **env) -> int:
        return self.operations.index(operation) if not env else next(
            i for i, (op, state) in enumerate(zip(self.operations, self.states[1:]))
            if op == operation and all(state[k] == v for k, v in env.items()))


def admits(state: dict) -> set:
    """Which clients a $connect admits in this state, as lambda_src decides (the emulator runs the
    handler in the states a switch passes through: tests/test_auth_switch.py)."""
    if state["stage"] == "jwt":  # the authorizer runs first
        token = state["invocable"] and (state["key"] or state["mode"] == "switching")
        tokenless = state["invocable"] and state["mode"] == "switching"
    else:  # $connect alone, without a verified user
        token = tokenless = state["mode"] in ("none", "switching")
    return {kind for kind, ok in (("token", token), ("tokenless", tokenless)) if ok}


@pytest.mark.parametrize("before, after", [("jwt", "none"), ("none", "jwt")])
def test_an_auth_switch_never_refuses_a_connection_either_mode_admits(aws, before, after):
    deploy(spec=default_spec(before))
    window = Window()
    target = injected_target()
    target.session.events.register("after-call", window)
    plan = deploy(target, spec=default_spec(after))

    first, last = window.states[0], window.states[-1]
    assert admits(first) == ({"token"} if before == "jwt" else {"token", "tokenless"})
    assert admits(last) == ({"token"} if after == "jwt" else {"token", "tokenless"})
    assert (last["stage"], last["mode"]) == (after, after)
    for operation, state in zip(window.operations[:-1], window.states[1:-1]):
        assert admits(state) == {"token", "tokenless"}, (operation, state)
    # the stage changes while the function admits both modes, never while it admits one
    deployment = window.first("CreateDeployment")
    assert window.states[deployment]["mode"] == window.states[deployment + 1]["mode"] == "switching"
    passed = {(s["stage"], s["mode"]) for s in window.states[1:-1]}
    assert {(before, "switching"), (after, "switching")} <= passed <= {
        (before, before), (before, "switching"), (after, "switching"), (after, after)}
    opening = window.first("UpdateFunctionConfiguration", mode="switching")
    closing = window.first("UpdateFunctionConfiguration", mode=after)
    assert opening < window.first("UpdateRoute") < deployment < closing
    if after == "none":  # the key stays readable until the stage no longer calls the authorizer
        assert closing < window.first("PutRolePolicy") < window.first("DeleteAuthorizer") < \
            window.first("DeleteParameter")
    else:  # the key, its grant and the authorizer's permission are there before the stage calls it
        assert window.first("PutRolePolicy") < opening and window.first("PutParameter") < opening
        assert window.first("CreateAuthorizer") < window.first("AddPermission") < deployment
    assert [s.op for s in plan.steps].count("update_function_configuration") == 2
    assert replan(default_spec(after)).steps == []


class FailNth:
    """Answer the n-th call of `operation` with a 500 (a before-call hook)."""

    def __init__(self, operation: str, n: int):
        self.operation, self.n, self.calls = operation, n, 0

    def __call__(self, event_name, **_):
        if event_name.rsplit(".", 1)[-1] == self.operation:
            self.calls += 1
            if self.calls == self.n:
                return aws_error("ServiceException", "Lambda is unwell", 500)
        return None


def test_a_switch_that_stopped_part_way_says_so_and_the_next_deploy_finishes_it(aws):
    deploy()
    with pytest.raises(Exception, match="Lambda is unwell"):
        deploy(injected_target(FailNth("UpdateFunctionConfiguration", 2)), spec=default_spec("none"))
    env = client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert env["AUTH_MODE"] == "switching"  # the stage changed; the function still admits both
    status = json.loads(wsctl("status", "-o", "json").stdout)
    assert (status["auth"], status["unsafe"]) == ("switching", True)
    assert any("switch of auth mode stopped part-way" in note for note in status["notes"])

    plan = replan(default_spec("none"))
    assert [s.op for s in plan.steps][:2] == ["update_function_configuration", "put_role_policy"]
    deploy(spec=default_spec("none"))
    assert replan(default_spec("none")).steps == []
    status = json.loads(wsctl("status", "-o", "json").stdout)
    assert (status["auth"], status["notes"]) == ("none", [])


def test_a_referenced_authorizer_is_not_deleted_silently(aws):
    """AWS refuses to delete an authorizer a route names; the retry ends with AWS's error."""
    deploy()
    injection = Inject("DeleteAuthorizer", "ConflictException", "is referenced in route: $connect", status=409)
    clock = FakeClock()
    with pytest.raises(Exception, match="ConflictException"):
        deploy(injected_target(injection), spec=default_spec("none"), clock=clock)
    assert apply.REFERENCED_SECONDS <= sum(clock.sleeps) < apply.REFERENCED_SECONDS + 11


def test_a_two_way_route_made_one_way_converges(aws):
    deploy()
    spec = default_spec()
    one_way = dataclasses.replace(spec, routes=tuple(dataclasses.replace(r, two_way=False) if r.key == "whoami"
                                                     else r for r in spec.routes))
    plan = deploy(spec=one_way)
    assert [(s.op, s.name) for s in plan.steps] == [
        ("delete_route_response", "whoami"), ("delete_route", "whoami"), ("create_route", "whoami"),
        ("create_deployment", "dev")]
    assert replan(one_way).steps == []
    apigw = client("apigatewayv2")
    (whoami,) = [r for r in apigw.get_routes(ApiId=api_id())["Items"] if r["RouteKey"] == "whoami"]
    assert not whoami.get("RouteResponseSelectionExpression")
    assert apigw.get_route_responses(ApiId=api_id(), RouteId=whoami["RouteId"])["Items"] == []

    deploy()  # and back to two-way
    assert replan().steps == []


# -- 7. organisations' guardrails: an existing role, a permissions boundary ----------------------------
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


def org_role() -> str:
    """A role an administrator made, with a policy of its own."""
    iam = client("iam")
    arn = iam.create_role(RoleName="org-websocket", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName="org-websocket", PolicyName="theirs", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
    return arn


def boundary_policy(name: str = "org-boundary") -> str:
    return client("iam").create_policy(PolicyName=name, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]


def iam_writes(calls) -> list:
    return [op for service, op in calls if service == "iam" and not op.startswith(READS)]


class Calls:
    def __init__(self):
        self.calls = []

    def __call__(self, event_name, **_):
        _, service, operation = event_name.split(".", 2)
        self.calls.append((service, operation))


def test_role_arn_uses_the_existing_role_and_never_creates_or_changes_one(aws, inject_everywhere):
    arn = org_role()
    before = client("iam").get_role(RoleName="org-websocket")["Role"]
    calls = inject_everywhere(Calls())
    result = wsctl("deploy", "--role-arn", arn)
    assert result.exit_code == 0, result.output
    assert iam_writes(calls.calls) == []
    assert client("lambda").get_function_configuration(FunctionName=FUNCTION)["Role"] == arn
    assert [r["RoleName"] for r in client("iam").list_roles()["Roles"]] == ["org-websocket"]
    assert client("iam").get_role(RoleName="org-websocket")["Role"] == before
    assert client("iam").list_role_policies(RoleName="org-websocket")["PolicyNames"] == ["theirs"]

    status = wsctl("status", "-o", "json")
    assert status.exit_code == 0, status.output  # complete, not partial
    rows = {(r["resource"], r["name"]): r["state"] for r in json.loads(status.stdout)["resources"]}
    assert rows[("IAM role", arn)].startswith("the function's, given with --role-arn")
    assert rows[("IAM role", ROLE)] == "not made"
    assert "up to date" in wsctl("deploy", "--role-arn", arn).stdout

    # deployed without it, the plan says it would switch to the role wsctl makes
    dry = wsctl("deploy", "--dry-run")
    assert "runs with role %s, given with --role-arn" % arn in dry.stderr
    assert "create IAM role wsctl-rules-us-east-1" in " ".join(dry.stdout.split())

    assert wsctl("destroy", "--yes").exit_code == 0
    assert [r["RoleName"] for r in client("iam").list_roles()["Roles"]] == ["org-websocket"]


def test_print_policy_with_role_arn_says_what_the_role_needs(aws):
    arn = org_role()
    document = json.loads(wsctl("deploy", "--role-arn", arn, "--print-policy").stdout)
    statements = document["deployerPolicy"]["Statement"]
    actions = {a for st in statements for a in st["Action"]}
    assert not actions & {"iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRole", "iam:TagRole"}
    (passes,) = [st for st in statements if "iam:PassRole" in st["Action"]]
    assert passes["Resource"] == [arn]
    role = document["role"]
    assert role["arn"] == arn and role["trustPolicy"] == TRUST
    grants = {st["Sid"]: st["Resource"] for st in role["permissionsPolicy"]["Statement"]}
    assert grants["Connections"] == ["arn:aws:execute-api:%s:%s:*/dev/POST/@connections/*" % (REGION, ACCOUNT)]
    assert "SigningKey" in grants
    assert "SigningKey" not in {st["Sid"] for st in json.loads(wsctl(
        "deploy", "--role-arn", arn, "--auth", "none", "--print-policy").stdout)["role"]["permissionsPolicy"]["Statement"]}
    # after the first deploy: the grant names the API
    assert wsctl("deploy", "--role-arn", arn).exit_code == 0
    document = json.loads(wsctl("deploy", "--role-arn", arn, "--print-policy").stdout)
    grants = {st["Sid"]: st["Resource"] for st in document["role"]["permissionsPolicy"]["Statement"]}
    assert grants["Connections"] == ["arn:aws:execute-api:%s:%s:%s/dev/POST/@connections/*" % (REGION, ACCOUNT,
                                                                                              api_id())]


def test_permissions_boundary_is_set_on_the_role_wsctl_makes(aws):
    boundary = boundary_policy()
    assert wsctl("deploy", "--permissions-boundary", boundary).exit_code == 0
    role = client("iam").get_role(RoleName=ROLE)["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    assert "up to date" in wsctl("deploy", "--permissions-boundary", boundary).stdout
    assert "up to date" in wsctl("deploy").stdout  # a boundary is never removed by wsctl

    other = boundary_policy("stricter")
    result = wsctl("deploy", "--permissions-boundary", other)
    assert result.exit_code == 0, result.output
    assert client("iam").get_role(RoleName=ROLE)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == other
    policy = json.loads(wsctl("deploy", "--permissions-boundary", other, "--print-policy").stdout)
    (create,) = [st for st in policy["Statement"] if "iam:CreateRole" in st["Action"]]
    assert create["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": other}}


@pytest.mark.parametrize("args, words", [
    (["--role-arn", "org-websocket"], "--role-arn 'org-websocket' is not an IAM role ARN"),
    (["--role-arn", "arn:aws:iam::123456789012:policy/x"], "is not an IAM role ARN"),
    (["--permissions-boundary", "arn:aws:iam::123456789012:role/x"], "is not an IAM policy ARN"),
    (["--role-arn", "arn:aws:iam::123456789012:role/x", "--permissions-boundary",
      "arn:aws:iam::aws:policy/PowerUserAccess"], "with --role-arn the role is yours"),
])
def test_bad_role_options_are_one_line_before_any_call(aws, inject_everywhere, args, words):
    calls = inject_everywhere(Calls())
    one_line_error(wsctl("deploy", *args), words, code=2)
    assert calls.calls == []


# -- 8. one client and the account's rate: stage throttling, reserved concurrency ------------------------
def stage_throttle(stage="dev") -> tuple:
    settings = client("apigatewayv2").get_stage(ApiId=api_id(), StageName=stage)["DefaultRouteSettings"]
    return settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")


def test_the_stage_is_throttled_by_default_and_throttle_changes_it(aws):
    assert wsctl("deploy").exit_code == 0
    assert stage_throttle() == (1000.0, 500)  # a tenth of the account's 10,000 requests/s
    status = json.loads(wsctl("status", "-o", "json").stdout)
    assert status["throttle"] == {"rate": 1000.0, "burst": 500}
    assert "1000 requests/s, burst 500" in wsctl("status").stdout

    result = wsctl("deploy", "--throttle", "250.5:40")
    assert result.exit_code == 0, result.output
    assert stage_throttle() == (250.5, 40)
    assert "up to date" in wsctl("deploy", "--throttle", "250.5:40").stdout
    assert [s.op for s in replan().steps] == ["update_stage"]  # back to the default
    assert wsctl("deploy", "--throttle", "3000").exit_code == 0
    assert stage_throttle() == (3000.0, 1500)  # a rate alone: burst in AWS's proportion


def test_a_stage_deployed_before_throttling_gets_the_default_without_a_redeploy(aws):
    deploy()
    apigw = client("apigatewayv2")
    before = apigw.get_stage(ApiId=api_id(), StageName="dev")["DeploymentId"]
    from moto.apigatewayv2.models import apigatewayv2_backends

    apigatewayv2_backends[ACCOUNT][REGION].get_api(api_id()).stages["dev"].default_route_settings = {}
    plan = replan()
    assert [(s.op, s.detail) for s in plan.steps] == [("update_stage", "throttled at 1000 requests/s, burst 500")]
    deploy()
    assert stage_throttle() == (1000.0, 500)
    assert apigw.get_stage(ApiId=api_id(), StageName="dev")["DeploymentId"] == before


def test_reserved_concurrency_is_set_kept_and_removed_on_request(aws):
    assert wsctl("deploy", "--reserved-concurrency", "20").exit_code == 0
    lam = client("lambda")
    assert lam.get_function_concurrency(FunctionName=FUNCTION)["ReservedConcurrentExecutions"] == 20
    assert "up to date" in wsctl("deploy").stdout  # not given: left as it is
    assert json.loads(wsctl("status", "-o", "json").stdout)["reservedConcurrency"] == 20
    assert wsctl("deploy", "--reserved-concurrency", "off").exit_code == 0
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=FUNCTION)
    assert "up to date" in wsctl("deploy", "--reserved-concurrency", "off").stdout


def test_a_reservation_lambda_refuses_is_one_line_that_says_why(aws, monkeypatch):
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "110")  # Lambda keeps 100 unreserved
    assert wsctl("deploy", "--reserved-concurrency", "10").exit_code == 0
    one_line_error(wsctl("deploy", "--reserved-concurrency", "20"), "would not reserve 20 concurrent executions",
                   "keeps at least 100 of the account's concurrency", "reserve fewer")


@pytest.mark.parametrize("args, words", [
    (["--throttle", "fast"], "--throttle 'fast': give RATE[:BURST]"),
    (["--throttle", "0"], "--throttle '0'"),
    (["--throttle", "100:x"], "--throttle '100:x'"),
    (["--throttle", "100:0"], "a whole burst above 0"),
    (["--reserved-concurrency", "0"], "0 would stop the function"),
    (["--reserved-concurrency", "many"], "off to remove the reservation"),
])
def test_bad_throttle_and_concurrency_are_one_line_before_any_call(aws, inject_everywhere, args, words):
    calls = inject_everywhere(Calls())
    one_line_error(wsctl("deploy", *args), words, code=2)
    assert calls.calls == []


# -- 6. TTL ----------------------------------------------------------------------------------------------
def _set_ttl(status: str, attribute: str = "ttl"):
    from moto.dynamodb.models import dynamodb_backends

    dynamodb_backends[ACCOUNT][REGION].get_table(TABLE).ttl = {"TimeToLiveStatus": status, "AttributeName": attribute}


@pytest.mark.parametrize("status, attribute, words", [
    ("DISABLING", "ttl", ["is being disabled (DISABLING)", "up to an hour", "run `wsctl deploy` again"]),
    ("ENABLED", "expires", ["TTL on attribute 'expires', not 'ttl'", "one TTL attribute per table",
                            "Enabled=false,AttributeName=expires"]),
])
def test_a_ttl_aws_will_not_change_yet_is_one_warning_and_the_rest_deploys(aws, status, attribute, words):
    deploy()
    _set_ttl(status, attribute)
    client("lambda").update_function_configuration(FunctionName=FUNCTION, MemorySize=128)

    result = wsctl("deploy")

    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    for word in words:
        assert word in warning
    assert "ValidationException" not in result.output
    assert client("lambda").get_function_configuration(FunctionName=FUNCTION)["MemorySize"] == 256
    assert [s.op for s in replan().steps] == []


def test_a_ttl_change_aws_refuses_at_apply_time_is_one_line(aws, inject_everywhere):
    deploy()
    _set_ttl("DISABLED")
    inject_everywhere(Inject("UpdateTimeToLive", "ValidationException",
                             "Time to live has been modified multiple times within a fixed interval"))
    client("lambda").update_function_configuration(FunctionName=FUNCTION, MemorySize=128)

    result = wsctl("deploy")

    one_line_error(result, "table %s: AWS would not turn TTL on for attribute 'ttl' now" % TABLE,
                   "the rest of the stack is deployed", "run `wsctl deploy` again later")
    assert "ValidationException" not in result.output
    assert client("lambda").get_function_configuration(FunctionName=FUNCTION)["MemorySize"] == 256
