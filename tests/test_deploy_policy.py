"""`wsctl deploy --print-policy` allows every AWS call wsctl makes, and nothing is left out.

Every operation of a moto-backed run of deploy (first, again, --rotate-key, --auth none and
back), status, token, the operating commands and destroy is recorded with botocore's event
hooks, turned into the IAM request AWS would authorize (action, resource ARN, condition
context), and checked against the printed policy: the bootstrap policy (before the first
deploy), the one scoped to the stack's API (after it), and both with an organisation's
guardrails (--role-arn, --permissions-boundary). The mapping from API operations to IAM
requests (tests/support/iam_check.py) is the tests' own, written from AWS's service
authorization reference, so a new call in wsctl fails here until the policy (and that table)
name it.
"""

import json
from urllib.parse import quote

import boto3
import pytest
from typer.testing import CliRunner

from lambda_src.registry import Registry
from support.iam_check import ACCOUNT, PARTITION, REGION, _arn, _function, allows, iam_requests
from wsctl.cli import app as cli
from wsctl.deploy import bundle
from wsctl.deploy.policy import deployer_policy

STACK, STAGE = "pol", "dev"
runner = CliRunner()


def gone_connection(monkeypatch, connection_id: str) -> None:
    """moto's management API answers 410 for this id, as AWS does for a connection that went away."""
    from urllib.parse import unquote

    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend as Backend
    from moto.core.exceptions import JsonRESTError

    def gone(original):
        def call(backend, *args, **kwargs):
            if unquote(kwargs.get("connection_id", args[-1] if args else "")) == connection_id:
                error = JsonRESTError("GoneException", "")
                error.code = 410
                raise error
            return original(backend, *args, **kwargs)
        return call

    for name in ("post_to_connection", "get_connection", "delete_connection"):
        monkeypatch.setattr(Backend, name, gone(getattr(Backend, name)))


# -- the run ----------------------------------------------------------------------------------
def wsctl(*args: str):
    result = runner.invoke(cli, [*args, "--stack", STACK, "--region", REGION])
    return result


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def refused_calls(policy: dict, calls: list[dict]) -> list[str]:
    return sorted({"%s %s: %s on %s" % (c["service"], c["operation"], action, resource)
                   for c in calls for action, resource, context in iam_requests(c)
                   if not allows(policy, action, resource, context)})


def test_the_printed_policies_allow_every_call_wsctl_makes(aws, recorder, monkeypatch):
    """The bootstrap policy (printed before the first deploy) allows every call of every command,
    the first deploy included; the scoped one (printed after it) every call from then on."""
    printed = ok(wsctl("deploy", "--print-policy"))
    bootstrap = json.loads(printed.stdout)
    assert bootstrap == deployer_policy(PARTITION, REGION, ACCOUNT, STACK, STAGE)
    assert "bootstrap policy" in printed.stderr and "`wsctl deploy --print-policy` again" in printed.stderr

    recorder.on = True
    ok(wsctl("deploy"))
    first_deploy = len(recorder.calls)
    scoped = json.loads(ok(wsctl("deploy", "--print-policy")).stdout)
    (api,) = boto3.client("apigatewayv2", region_name=REGION).get_apis()["Items"]
    assert scoped == deployer_policy(PARTITION, REGION, ACCOUNT, STACK, STAGE, api["ApiId"])
    ok(wsctl("deploy"))
    ok(wsctl("deploy", "--rotate-key"))
    recorder.on = False
    # a code change, and a log group Lambda made by itself (adopted)
    boto3.client("logs", region_name=REGION).untag_log_group(logGroupName="/aws/lambda/wsctl-pol",
                                                             tags=["wsctl:stack"])
    build = bundle.build
    monkeypatch.setattr(bundle, "build", lambda: build() + b"\0")
    recorder.on = True
    ok(wsctl("deploy"))
    recorder.on = False
    monkeypatch.setattr(bundle, "build", build)
    gone_connection(monkeypatch, "conn1-AbC=")
    registry = Registry(boto3.client("dynamodb", region_name=REGION), "wsctl-pol-connections")
    endpoint = "https://x.execute-api.%s.amazonaws.com/%s" % (REGION, STAGE)
    for i, user in enumerate(["alice", "alice", "bob"]):
        registry.put_connection("conn%d-AbC=" % i, user, 1, 2 ** 31, endpoint)
    registry.join("conn0-AbC=", "lobby", 2 ** 31, 1)
    recorder.on = True
    ok(wsctl("status"))
    ok(wsctl("status", "-o", "json"))
    ok(wsctl("token", "--user", "alice"))
    ok(wsctl("connections", "list"))
    ok(wsctl("connections", "list", "--user", "alice"))
    ok(wsctl("connections", "list", "--room", "lobby", "--live", "--transport", "boto3"))
    ok(wsctl("connections", "show", "conn0-AbC=", "--transport", "boto3"))
    ok(wsctl("send", "--user", "alice", "hi", "--transport", "boto3"))
    ok(wsctl("send", "--room", "lobby", "hi", "--transport", "boto3"))
    ok(wsctl("broadcast", "hi", "--transport", "boto3"))
    wsctl("broadcast", "--server-side", "--segments", "2", "hi")  # moto runs no code: only the Invoke counts
    ok(wsctl("prune", "--transport", "boto3"))
    wsctl("disconnect", "conn2-AbC=", "--transport", "boto3")
    ok(wsctl("deploy", "--auth", "none"))
    ok(wsctl("deploy", "--reserved-concurrency", "20", "--throttle", "200:50"))
    ok(wsctl("deploy", "--reserved-concurrency", "off"))
    ok(wsctl("destroy", "--yes"))
    recorder.on = False

    operations = {(c["service"], c["operation"]) for c in recorder.calls}
    # the run covers what the policy is for
    assert {("lambda", "PutFunctionConcurrency"), ("lambda", "DeleteFunctionConcurrency"),
            ("apigatewayv2", "UpdateStage"), ("lambda", "GetAccountSettings")} <= operations
    assert {("apigatewayv2", "CreateApi"), ("lambda", "CreateFunction"), ("iam", "PutRolePolicy"),
            ("ssm", "PutParameter"), ("apigatewayv2", "DeleteAuthorizer"), ("apigatewaymanagementapi", "PostToConnection"),
            ("apigatewaymanagementapi", "GetConnection"), ("apigatewaymanagementapi", "DeleteConnection"),
            ("lambda", "Invoke"), ("dynamodb", "Query"), ("dynamodb", "Scan"), ("iam", "DeleteRole"),
            ("apigatewayv2", "DeleteApi"), ("lambda", "UpdateFunctionCode"), ("cloudwatch-logs", "TagLogGroup"),
            ("dynamodb", "BatchWriteItem")} <= operations
    assert refused_calls(bootstrap, recorder.calls) == []
    assert refused_calls(scoped, recorder.calls[first_deploy:]) == []
    # and the scoped policy is narrower: the first deploy's CreateApi is not in it
    assert refused_calls(scoped, recorder.calls[:first_deploy]) == [
        "apigatewayv2 CreateApi: apigateway:POST on arn:aws:apigateway:%s::/apis" % REGION,
        "apigatewayv2 CreateApi: apigateway:POST on arn:aws:apigateway:%s::/tags/%s" % (
            REGION, quote("arn:aws:apigateway:%s::/apis/new" % REGION, safe=""))]


def test_the_policy_names_this_stacks_resources_and_no_wildcard_resource():
    policy = deployer_policy("aws-cn", "cn-north-1", ACCOUNT, STACK, STAGE)
    resources = [r for s in policy["Statement"] for r in s["Resource"] if r != "*"]
    assert all(r.startswith("arn:aws-cn:") for r in resources)
    # the one read without a resource (IAM allows it only on "*"), and nothing else on "*"
    assert [s["Action"] for s in policy["Statement"] if "*" in s["Resource"]] == [["lambda:GetAccountSettings"]]
    function = "arn:aws-cn:lambda:cn-north-1:%s:function:wsctl-pol" % ACCOUNT
    role = "arn:aws-cn:iam::%s:role/wsctl-pol-cn-north-1" % ACCOUNT
    assert allows(policy, "lambda:InvokeFunction", function, {})  # broadcast --server-side
    assert not allows(policy, "lambda:InvokeFunction", function + "-other", {})
    assert allows(policy, "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allows(policy, "iam:PassRole", role.replace("wsctl-pol", "admin"), {
        "iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(policy, "dynamodb:PutItem", "arn:aws-cn:dynamodb:cn-north-1:%s:table/wsctl-pol-connections"
                      % ACCOUNT, {})  # only the handler writes connections


def test_a_policy_missing_one_permission_is_caught():
    """The check above can fail: drop lambda:ListTags and GetFunction is refused."""
    policy = deployer_policy(PARTITION, REGION, ACCOUNT, STACK, STAGE)
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "lambda:ListTags"]
    call = {"service": "lambda", "operation": "GetFunction", "params": {"FunctionName": "wsctl-pol"}, "url": None}
    assert [request for request in iam_requests(call) if not allows(policy, *request)] == [
        ("lambda:ListTags", _function("wsctl-pol"), {})]


def test_the_scoped_policy_touches_no_other_api_and_the_bootstrap_creates_only_the_stacks():
    apis = "arn:aws:apigateway:%s::/apis" % REGION
    tags = "arn:aws:apigateway:%s::/tags/" % REGION
    scoped = deployer_policy(PARTITION, REGION, ACCOUNT, STACK, STAGE, "a1b2c3d4e5")
    for action, resource in [("apigateway:DELETE", apis + "/a1b2c3d4e5"),
                             ("apigateway:PATCH", apis + "/a1b2c3d4e5/routes/r1"),
                             ("apigateway:POST", tags + quote(apis + "/a1b2c3d4e5", safe="")),
                             ("apigateway:POST", tags + quote(apis + "/a1b2c3d4e5/stages/dev", safe="")),
                             ("execute-api:ManageConnections",
                              _arn("execute-api", "a1b2c3d4e5/dev/POST/@connections/abc="))]:
        assert allows(scoped, action, resource, {}), (action, resource)
    for action, resource in [("apigateway:DELETE", apis + "/zzzzzzzzzz"),
                             ("apigateway:PATCH", apis + "/zzzzzzzzzz/routes/r1"),
                             ("apigateway:POST", apis),  # no new API
                             ("apigateway:POST", tags + quote(apis + "/zzzzzzzzzz", safe="")),
                             ("execute-api:ManageConnections",
                              _arn("execute-api", "zzzzzzzzzz/dev/POST/@connections/abc=")),
                             ("execute-api:ManageConnections",
                              _arn("execute-api", "a1b2c3d4e5/prod/POST/@connections/abc="))]:
        assert not allows(scoped, action, resource, {}), (action, resource)
    bootstrap = deployer_policy(PARTITION, REGION, ACCOUNT, STACK, STAGE)
    assert allows(bootstrap, "apigateway:POST", apis, {"aws:RequestTag/wsctl:stack": STACK})
    assert not allows(bootstrap, "apigateway:POST", apis, {})
    assert not allows(bootstrap, "apigateway:POST", apis, {"aws:RequestTag/wsctl:stack": "other"})


@pytest.mark.parametrize("guardrail", ["role-arn", "permissions-boundary"])
def test_the_policies_printed_with_an_organisations_guardrail_allow_every_call(aws, recorder, guardrail):
    iam = boto3.client("iam", region_name=REGION)
    if guardrail == "role-arn":
        value = iam.create_role(RoleName="org-websocket", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    else:
        value = iam.create_policy(PolicyName="org-boundary", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    option = ["--" + guardrail, value]

    def printed():
        document = json.loads(ok(wsctl("deploy", *option, "--print-policy")).stdout)
        return document["deployerPolicy"] if guardrail == "role-arn" else document

    bootstrap = printed()
    recorder.on = True
    ok(wsctl("deploy", *option))
    first_deploy = len(recorder.calls)
    scoped = printed()
    ok(wsctl("deploy", *option, "--auth", "none"))
    ok(wsctl("deploy", *option))
    ok(wsctl("status"))
    ok(wsctl("destroy", "--yes"))
    recorder.on = False
    operations = {(c["service"], c["operation"]) for c in recorder.calls}
    assert (("iam", "CreateRole") in operations) == (guardrail != "role-arn")
    assert refused_calls(bootstrap, recorder.calls) == []
    assert refused_calls(scoped, recorder.calls[first_deploy:]) == []
    if guardrail == "permissions-boundary":  # creating the role outside the boundary is not allowed
        call = next(c for c in recorder.calls if c["operation"] == "CreateRole")
        unbounded = dict(call, params={k: v for k, v in call["params"].items() if k != "PermissionsBoundary"})
        assert refused_calls(bootstrap, [unbounded]) != []
