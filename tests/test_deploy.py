"""wsctl deploy / status / destroy / bundle / token against moto.

Through the service layer (wsctl.deploy with a Target) and through the CLI
in-process (CliRunner). What was deployed is read back with plain boto3
calls, never with wsctl's own reader, so a reader bug cannot hide a deploy bug.
"""

import io
import json
import os
import subprocess
import sys
import zipfile

import boto3
import botocore.handlers
import pytest
from typer.testing import CliRunner

from lambda_src import jwts, keys
from lambda_src.app import ACTIONS
from wsctl.apispec import default_spec
from wsctl.cli import app as cli
from wsctl.deploy import DeployOptions, bundle, make_plan, plan_deploy, remote, run_plan, stack_config
from wsctl.targets.stack import StackTarget as Target

STACK, STAGE, REGION, ACCOUNT = "t1", "dev", "us-east-1", "123456789012"
TAG = "wsctl:stack"
API = FUNCTION = "wsctl-t1"
TABLE = "wsctl-t1-connections"
ROLE = "wsctl-t1-us-east-1"
LOG_GROUP = "/aws/lambda/wsctl-t1"
PARAM = "/wsctl/t1/signing-key"
EVERY_RESOURCE = {("api", API), ("function", FUNCTION), ("table", TABLE), ("role", ROLE),
                  ("log group", LOG_GROUP), ("parameter", PARAM)}
ROUTE_KEYS = {"$connect", "$disconnect", "$default", *ACTIONS}
HANDLER_ACTIONS = {  # what lambda_src calls, and nothing else
    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan",
    "dynamodb:BatchWriteItem", "execute-api:ManageConnections", "ssm:GetParameter",
    "logs:CreateLogStream", "logs:PutLogEvents"}
READ_PREFIXES = ("Get", "List", "Describe")

runner = CliRunner()


# -- recording AWS calls --------------------------------------------------------------
class CallLog:
    """(service, operation) of every AWS call seen by the emitters it is registered on."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __call__(self, event_name, **_):  # before-call.{service}.{Operation}
        _, service, operation = event_name.split(".", 2)
        self.calls.append((service, operation))

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if not call[1].startswith(READ_PREFIXES)]


def counted_target() -> tuple[Target, CallLog]:
    session = boto3.Session(region_name=REGION)
    log = CallLog()
    session.events.register("before-call", log)
    return Target(stack=STACK, boto_session=session), log


@pytest.fixture
def every_call(monkeypatch) -> CallLog:
    """Every call of every boto3 session created from now on (the CLI makes its own)."""
    log = CallLog()
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS",
                        [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", log)])
    return log


# -- deploying ----------------------------------------------------------------------------
def deploy(auth: str = "jwt", target: Target | None = None):
    target = target or Target(stack=STACK, region=REGION)
    _, plan = plan_deploy(target, DeployOptions(spec=default_spec(auth)))
    run_plan(target, plan)
    return plan


@pytest.fixture
def deployed(aws):
    deploy()


def wsctl(*args: str, region: str | None = REGION):
    """Run the CLI in-process against the test stack."""
    return runner.invoke(cli, [*args, "--stack", STACK, *(["--region", region] if region else [])])


def ok(result):
    assert result.exit_code == 0, result.output
    return result


# -- reading AWS back ---------------------------------------------------------------------
def client(service: str):
    return boto3.client(service, region_name=REGION)


def _tag(pairs: list[dict]) -> str | None:
    return {pair["Key"]: pair["Value"] for pair in pairs}.get(TAG)


def tagged(stack: str = STACK) -> set[tuple[str, str]]:
    """(kind, name) of every resource tagged wsctl:stack=<stack>, service by service."""
    found = {("api", api["Name"]) for api in client("apigatewayv2").get_apis()["Items"]
             if (api.get("Tags") or {}).get(TAG) == stack}
    lam = client("lambda")
    found |= {("function", fn["FunctionName"]) for fn in lam.list_functions()["Functions"]
              if lam.list_tags(Resource=fn["FunctionArn"])["Tags"].get(TAG) == stack}
    ddb = client("dynamodb")
    found |= {("table", name) for name in ddb.list_tables()["TableNames"]
              if _tag(ddb.list_tags_of_resource(
                  ResourceArn=ddb.describe_table(TableName=name)["Table"]["TableArn"])["Tags"]) == stack}
    iam = client("iam")
    found |= {("role", role["RoleName"]) for role in iam.list_roles()["Roles"]
              if _tag(iam.list_role_tags(RoleName=role["RoleName"])["Tags"]) == stack}
    logs = client("logs")
    found |= {("log group", group["logGroupName"]) for group in logs.describe_log_groups()["logGroups"]
              if logs.list_tags_log_group(logGroupName=group["logGroupName"])["tags"].get(TAG) == stack}
    ssm = client("ssm")
    found |= {("parameter", p["Name"]) for p in ssm.describe_parameters()["Parameters"]
              if _tag(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"]) == stack}
    return found


def api_id() -> str:
    (api,) = [api for api in client("apigatewayv2").get_apis()["Items"] if api["Name"] == API]
    return api["ApiId"]


def routes() -> dict[str, dict]:
    return {route["RouteKey"]: route for route in client("apigatewayv2").get_routes(ApiId=api_id())["Items"]}


def authorizers() -> list[dict]:
    return client("apigatewayv2").get_authorizers(ApiId=api_id())["Items"]


def permission_sources() -> set[str]:
    policy = json.loads(client("lambda").get_policy(FunctionName=FUNCTION)["Policy"])
    for statement in policy["Statement"]:
        assert statement["Action"] == "lambda:InvokeFunction"
        assert statement["Principal"] in ({"Service": "apigateway.amazonaws.com"}, "apigateway.amazonaws.com")
    return {statement["Condition"]["ArnLike"]["AWS:SourceArn"] for statement in policy["Statement"]}


def stage_deployment() -> str:
    return client("apigatewayv2").get_stage(ApiId=api_id(), StageName=STAGE)["DeploymentId"]


def stored_keyset() -> str:
    return client("ssm").get_parameter(Name=PARAM, WithDecryption=True)["Parameter"]["Value"]


def edited_bundle() -> bytes:
    """The real bundle with one line added to the handler's source."""
    original = zipfile.ZipFile(io.BytesIO(bundle.build()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in original.infolist():
            data = original.read(info)
            archive.writestr(info, data + b"\n# edited\n" if info.filename == "lambda_src/app.py" else data)
    return out.getvalue()


# -- what a deploy creates ----------------------------------------------------------------
def test_table_has_the_registry_key_schema_on_demand_and_ttl(deployed):
    ddb = client("dynamodb")
    table = ddb.describe_table(TableName=TABLE)["Table"]

    assert table["KeySchema"] == [{"AttributeName": "PK", "KeyType": "HASH"},
                                  {"AttributeName": "SK", "KeyType": "RANGE"}]
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert (gsi["IndexName"], gsi["Projection"]) == ("GSI1", {"ProjectionType": "ALL"})
    assert gsi["KeySchema"] == [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                                {"AttributeName": "GSI1SK", "KeyType": "RANGE"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_every_route_targets_the_one_proxy_integration_of_the_function(deployed):
    apigw = client("apigatewayv2")
    api = apigw.get_api(ApiId=api_id())
    assert (api["ProtocolType"], api["RouteSelectionExpression"]) == ("WEBSOCKET", "$request.body.action")
    function_arn = client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]["FunctionArn"]
    (integration,) = apigw.get_integrations(ApiId=api_id())["Items"]

    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == (
        "arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations" % (REGION, function_arn))
    assert set(routes()) == ROUTE_KEYS
    assert {route["Target"] for route in routes().values()} == {"integrations/" + integration["IntegrationId"]}


def test_connect_is_guarded_by_the_request_authorizer_only(deployed):
    (authorizer,) = authorizers()
    integration_uri = client("apigatewayv2").get_integrations(ApiId=api_id())["Items"][0]["IntegrationUri"]
    assert (authorizer["AuthorizerType"], authorizer["AuthorizerUri"]) == ("REQUEST", integration_uri)

    by_key = routes()
    connect = by_key.pop("$connect")
    assert (connect["AuthorizationType"], connect["AuthorizerId"]) == ("CUSTOM", authorizer["AuthorizerId"])
    for route in by_key.values():
        assert route.get("AuthorizationType", "NONE") == "NONE" and not route.get("AuthorizerId")


def test_two_way_routes_have_a_default_route_response(deployed):
    apigw = client("apigatewayv2")
    for key, route in routes().items():
        responses = apigw.get_route_responses(ApiId=api_id(), RouteId=route["RouteId"])["Items"]
        if key in ("$connect", "$disconnect"):
            assert not route.get("RouteResponseSelectionExpression") and responses == [], key
        else:
            assert route["RouteResponseSelectionExpression"] == "$default", key
            assert [r["RouteResponseKey"] for r in responses] == ["$default"], key


def test_the_stage_serves_a_deployment(deployed):
    apigw = client("apigatewayv2")
    deployment = apigw.get_deployment(ApiId=api_id(), DeploymentId=stage_deployment())
    assert deployment["DeploymentStatus"] == "DEPLOYED"


def test_lambda_permissions_name_this_api_stage_and_authorizer(deployed):
    (authorizer,) = authorizers()
    prefix = "arn:aws:execute-api:%s:%s:%s" % (REGION, ACCOUNT, api_id())
    assert permission_sources() == {"%s/%s/*" % (prefix, STAGE),
                                    "%s/authorizers/%s" % (prefix, authorizer["AuthorizerId"])}


def test_role_policy_is_least_privilege(deployed):
    iam = client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Principal"], trust["Action"]) == ({"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    (name,) = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    statements = iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"]["Statement"]

    def flat(value) -> set[str]:
        return {value} if isinstance(value, str) else set(value)

    actions = set().union(*(flat(s["Action"]) for s in statements))
    resources = set().union(*(flat(s["Resource"]) for s in statements))
    assert {s["Effect"] for s in statements} == {"Allow"}
    assert actions == HANDLER_ACTIONS
    table_arn = client("dynamodb").describe_table(TableName=TABLE)["Table"]["TableArn"]
    assert resources == {
        table_arn, table_arn + "/index/GSI1",
        "arn:aws:execute-api:%s:%s:%s/%s/POST/@connections/*" % (REGION, ACCOUNT, api_id(), STAGE),
        client("ssm").get_parameter(Name=PARAM)["Parameter"]["ARN"],
        "arn:aws:logs:%s:%s:log-group:%s:*" % (REGION, ACCOUNT, LOG_GROUP)}
    assert "*" not in resources


def test_function_environment_names_the_key_parameter_but_holds_no_secret(deployed):
    configuration = client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    env = configuration["Environment"]["Variables"]

    assert configuration["Handler"] == "lambda_src.app.handler"
    assert (env["TABLE_NAME"], env["STACK_NAME"], env["AUTH_MODE"]) == (TABLE, STACK, "jwt")
    assert env["SIGNING_KEY_PARAM"] == PARAM
    assert "ALLOW_CLIENT_BROADCAST" not in env
    everything = json.dumps(configuration, default=str)
    for key in jwts.parse(stored_keyset()):
        assert key["secret"] not in everything


def test_signing_keys_are_a_secure_string(deployed):
    parameter = client("ssm").get_parameter(Name=PARAM, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert len(jwts.parse(parameter["Value"])) == 1


def test_every_resource_is_tagged_with_the_stack(deployed):
    assert tagged() == EVERY_RESOURCE
    assert client("apigatewayv2").get_stage(ApiId=api_id(), StageName=STAGE)["Tags"] == {TAG: STACK}


# -- idempotency ----------------------------------------------------------------------------
def test_a_second_deploy_only_reads(aws):
    first, first_log = counted_target()
    deploy(target=first)
    assert ("apigatewayv2", "CreateApi") in first_log.writes  # the hook sees what deploy does

    second, log = counted_target()
    assert deploy(target=second).steps == []
    assert log.writes == []
    assert {service for service, _ in log.calls} >= {"apigatewayv2", "lambda", "dynamodb", "iam", "ssm", "cloudwatch-logs", "sts"}


def test_changing_only_the_handler_source_plans_one_code_update(deployed):
    target = Target(stack=STACK, region=REGION)
    code = edited_bundle()
    config = stack_config(target, DeployOptions(spec=default_spec()), code=code)

    plan = make_plan(config, remote.read(target.client, STACK, STAGE, REGION))
    assert [(step.op, step.name) for step in plan.steps] == [("update_function_code", FUNCTION)]

    run_plan(target, plan)
    assert client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]["CodeSha256"] == \
        bundle.sha256_b64(code)


def test_a_route_deleted_by_hand_is_recreated_and_the_stage_redeployed(deployed):
    before = stage_deployment()
    client("apigatewayv2").delete_route(ApiId=api_id(), RouteId=routes()["whoami"]["RouteId"])

    plan = deploy()

    assert [(step.op, step.name) for step in plan.steps] == [("create_route", "whoami"),
                                                             ("create_route_response", "whoami"),
                                                             ("create_deployment", STAGE)]
    assert set(routes()) == ROUTE_KEYS
    assert stage_deployment() != before  # API Gateway serves routes only from a deployment


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_deploy_status_and_redeploy(aws):
    result = ok(wsctl("deploy"))
    url = "wss://%s.execute-api.%s.amazonaws.com/%s" % (api_id(), REGION, STAGE)
    assert url in result.stdout

    document = json.loads(ok(wsctl("status", "--output", "json")).stdout)
    assert (document["deployed"], document["auth"], document["unsafe"]) == (True, "jwt", False)
    assert (document["url"], document["liveConnections"]) == (url, 0)

    assert "up to date" in ok(wsctl("deploy")).stdout


def test_cli_dry_run_changes_nothing_and_prints_the_plan(aws, every_call):
    text = ok(wsctl("deploy", "--dry-run"))
    document = json.loads(ok(wsctl("deploy", "--dry-run", "--output", "json")).stdout)

    assert every_call.calls and every_call.writes == []
    assert tagged() == set()
    with pytest.raises(client("dynamodb").exceptions.ResourceNotFoundException):
        client("dynamodb").describe_table(TableName=TABLE)
    for name in (TABLE, ROLE, PARAM, "$connect", "sendMessage"):
        assert name in text.stdout
    assert "dry run" in text.stdout
    calls = [step["call"] for step in document["steps"]]
    assert document["dryRun"] is True and calls[0] == "create_api"
    assert {"create_table", "create_function", "create_authorizer", "create_deployment", "add_permission"} <= set(calls)


def test_cli_destroy_leaves_nothing_and_twice_is_a_no_op(aws):
    ok(wsctl("deploy"))
    assert tagged() == EVERY_RESOURCE

    refused = wsctl("destroy")  # not a terminal: needs --yes
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert tagged() == EVERY_RESOURCE

    ok(wsctl("destroy", "--yes"))
    assert tagged() == set()
    assert client("apigatewayv2").get_apis()["Items"] == []
    assert client("iam").list_roles()["Roles"] == []

    again = ok(wsctl("destroy", "--yes"))
    assert "Nothing of stack t1" in again.stdout


def test_cli_auth_none_then_jwt_converges(aws):
    ok(wsctl("deploy"))
    jwt_deployment = stage_deployment()

    unsafe = ok(wsctl("deploy", "--auth", "none"))
    assert "anyone" in unsafe.stderr
    assert authorizers() == []
    assert routes()["$connect"]["AuthorizationType"] == "NONE" and not routes()["$connect"].get("AuthorizerId")
    assert permission_sources() == {"arn:aws:execute-api:%s:%s:%s/%s/*" % (REGION, ACCOUNT, api_id(), STAGE)}
    assert stage_deployment() != jwt_deployment  # the stage serves the new routes
    env = client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert env["AUTH_MODE"] == "none" and "SIGNING_KEY_PARAM" not in env
    status = json.loads(ok(wsctl("status", "--output", "json")).stdout)
    assert (status["auth"], status["unsafe"]) == ("none", True)
    assert "up to date" in ok(wsctl("deploy", "--auth", "none")).stdout

    ok(wsctl("deploy"))
    (authorizer,) = authorizers()
    connect = routes()["$connect"]
    assert (connect["AuthorizationType"], connect["AuthorizerId"]) == ("CUSTOM", authorizer["AuthorizerId"])
    assert "%s/authorizers/%s" % (api_id(), authorizer["AuthorizerId"]) in " ".join(permission_sources())
    assert client("ssm").get_parameter(Name=PARAM)["Parameter"]["Type"] == "SecureString"
    status = json.loads(ok(wsctl("status", "--output", "json")).stdout)
    assert (status["auth"], status["unsafe"]) == ("jwt", False)
    assert "up to date" in ok(wsctl("deploy")).stdout


def one_line_error(result, text: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # the CLI's own exit path
    (line,) = result.stderr.strip().splitlines()
    assert text in line, line
    assert "Traceback" not in result.output


def test_cli_refuses_a_same_named_resource_the_stack_does_not_own(aws):
    client("dynamodb").create_table(**keys.table_definition(TABLE))  # no wsctl:stack tag

    result = wsctl("deploy")

    one_line_error(result, TABLE)
    assert result.exit_code == 1
    assert tagged() == set()


@pytest.mark.parametrize("command", [["deploy"], ["status"], ["destroy", "--yes"], ["token", "--user", "alice"]])
def test_cli_without_a_region_says_so_in_one_line(monkeypatch, command):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # AWS_CONFIG_FILE is an empty file (conftest)
    one_line_error(wsctl(*command, region=None), "no AWS region")


@pytest.mark.parametrize("command", [["deploy"], ["status"]])
def test_cli_without_credentials_says_so_in_one_line(monkeypatch, command):
    # Outside moto (which would supply credentials); the config files are empty and IMDS is off.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    one_line_error(wsctl(*command), "no AWS credentials")


def test_console_script_error_has_no_traceback():
    # CliRunner records a stray exception without printing it; only the real entry point shows a traceback.
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    done = subprocess.run([sys.executable, "-m", "wsctl", "status", "--stack", STACK], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no AWS region: pass --region or set AWS_REGION (or use --local for the emulator)"]


@pytest.mark.parametrize("out_option", ["--out"])  # -o is --output everywhere
def test_cli_bundle_is_reproducible_and_small(tmp_path, monkeypatch, out_option):
    monkeypatch.chdir(tmp_path)
    ok(runner.invoke(cli, ["bundle", out_option, "f1.zip"]))
    ok(runner.invoke(cli, ["bundle", out_option, "f2.zip"]))
    first = (tmp_path / "f1.zip").read_bytes()

    assert first == (tmp_path / "f2.zip").read_bytes()
    assert len(first) < 200 * 1024
    entries = zipfile.ZipFile(io.BytesIO(first)).infolist()
    names = [entry.filename for entry in entries]
    assert {"lambda_src/app.py", "jwt/__init__.py"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}


def test_cli_token_prints_only_a_jwt_that_verifies_with_the_stored_keys(deployed):
    result = ok(wsctl("token", "--user", "alice"))

    (token,) = result.stdout.splitlines()
    assert len(token.split(".")) == 3 and result.stderr == ""
    claims = jwts.verify(token, stored_keyset(), STACK)
    assert (claims["sub"], claims["aud"]) == ("alice", "wsctl:t1")
