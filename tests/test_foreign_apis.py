"""Operating the WebSocket APIs people already have, made by any tool, with the registry of their own
design (moto, in process).

Two APIs are made as their tools make them: the canonical chat sample as SAM makes it (a CloudFormation
stack holding a table keyed `connectionId` and three functions whose environment names it; the API,
its routes and integrations made beside it, as moto's CloudFormation cannot make an API Gateway v2
API), and a single-table game API (`pk=CONNECTION#{id}, sk=METADATA`, users on an index, a TTL
attribute) whose function names its table by ARN. moto's management API is made strict
(support.strict_management): it records each post and answers 410 for ids the test says are gone.
The commands run in process (typer's CliRunner) with --transport boto3, so moto sees every call.
"""

import json
import time

import boto3
import pytest
from typer.testing import CliRunner

from support.emulator_fixtures import ROOT
from support.iam_check import allows, iam_requests
from support.strict_management import StrictMoto
from wsctl.cli import app as cli
from wsctl.exitstatus import ExitStatus

REGION = "us-east-1"
runner = CliRunner()
ALICE = ["AliceOne0000C01=", "AliceTwo0000C02="]  # API Gateway's shape: 15 URL-safe base64 characters and "="
BOB = "Bob-Only_000C03="
GONE = "GoneAway0000C04="
EXPIRED = "Expired00000C05="

CHAT_STACK = {"Parameters": {"Role": {"Type": "String"}}, "Resources": {
    "ConnectionsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "TableName": "simplechat_connections", "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}]}},
    **{name: {"Type": "AWS::Lambda::Function", "Properties": {
        "FunctionName": "chat-%s" % name, "Runtime": "nodejs20.x", "Handler": "app.handler", "Role": {"Ref": "Role"},
        "Code": {"ZipFile": "exports.handler = async () => ({statusCode: 200})"},
        "Environment": {"Variables": {"TABLE_NAME": {"Ref": "ConnectionsTable"}}}}}
       for name in ("OnConnectFunction", "OnDisconnectFunction", "SendMessageFunction")}}}


def wsctl(*args: str, env: dict | None = None):
    """The CLI in process; every management API call through boto3 (moto intercepts it)."""
    return runner.invoke(cli, [*args, "--region", REGION, "--transport", "boto3"], env={"COLUMNS": "200", **(env or {})})


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def one_line(result, code: int) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stdout, result.stderr
    return lines[0]


def as_json(result):
    return json.loads(ok(result).stdout)


def _role(name: str) -> str:
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]


def _api(name: str, functions: list[str], stages=("Prod",), tags=None) -> str:
    apigw = boto3.client("apigatewayv2", region_name=REGION)
    api = apigw.create_api(Name=name, ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action",
                           **({"Tags": tags} if tags else {}))["ApiId"]
    for key, function in zip(("$connect", "$disconnect", "sendmessage"), functions):
        uri = "arn:aws:apigateway:%s:lambda:path/2015-03-31/functions/%s/invocations" % (REGION, function)
        integration = apigw.create_integration(ApiId=api, IntegrationType="AWS_PROXY", IntegrationUri=uri)
        apigw.create_route(ApiId=api, RouteKey=key, Target="integrations/" + integration["IntegrationId"])
    for stage in stages:
        apigw.create_stage(ApiId=api, StageName=stage)
    return api


@pytest.fixture
def chat(aws, monkeypatch):
    """The canonical sample as SAM deploys it: (api id, strict management backend)."""
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="simple-chat", TemplateBody=json.dumps(CHAT_STACK),
        Parameters=[{"ParameterKey": "Role", "ParameterValue": _role("chat-role")}])
    functions = [boto3.client("lambda", region_name=REGION).get_function(FunctionName="chat-%s" % name)[
        "Configuration"]["FunctionArn"] for name in ("OnConnectFunction", "OnDisconnectFunction",
                                                     "SendMessageFunction")]
    api = _api("SimpleChatWebSocket", functions)
    ddb = boto3.client("dynamodb", region_name=REGION)
    for cid in ALICE + [BOB, GONE]:
        ddb.put_item(TableName="simplechat_connections", Item={"connectionId": {"S": cid}})
    backend = StrictMoto(monkeypatch)
    backend.gone.add(GONE)
    return api, backend


@pytest.fixture
def game(aws, monkeypatch):
    """A single-table registry with a user index and a TTL, named by ARN in its function's environment."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="game-main", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "userId")],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     GlobalSecondaryIndexes=[{"IndexName": "byUser", "Projection": {"ProjectionType": "ALL"},
                                              "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}]}])
    ddb.update_time_to_live(TableName="game-main", TimeToLiveSpecification={"Enabled": True,
                                                                           "AttributeName": "expiresAt"})
    now = int(time.time())
    rows = [(cid, "alice", now + 3600) for cid in ALICE] + [(BOB, "bob", now + 3600), (GONE, "carol", now + 3600),
                                                              (EXPIRED, "dave", now - 60)]
    for cid, user, expires in rows:
        ddb.put_item(TableName="game-main", Item={"pk": {"S": "CONNECTION#" + cid}, "sk": {"S": "METADATA"},
                                                  "userId": {"S": user}, "expiresAt": {"N": str(expires)}})
    # another entity in the same table, under the same partition: never a connection
    ddb.put_item(TableName="game-main", Item={"pk": {"S": "CONNECTION#" + BOB}, "sk": {"S": "SCORE"},
                                              "points": {"N": "7"}})
    arn = ddb.describe_table(TableName="game-main")["Table"]["TableArn"]
    function = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="game-ws", Runtime="python3.12", Role=_role("game-role"), Handler="app.handler",
        Code={"ZipFile": _zip()}, Environment={"Variables": {"REGISTRY": arn, "STAGE_NAME": "live"}})
    api = _api("game", [function["FunctionArn"]] * 3, stages=("live",))
    backend = StrictMoto(monkeypatch)
    backend.gone.add(GONE)
    return api, backend


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    return buffer.getvalue()


def table_keys(table: str) -> list[tuple]:
    """Every item's key, read back with plain boto3 (not wsctl's reader)."""
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=table)["Items"]
    return sorted(tuple(sorted((k, v["S"]) for k, v in item.items() if k in ("connectionId", "pk", "sk")))
                  for item in items)


# -- naming an API ------------------------------------------------------------------------------------------
def test_apis_list_shows_each_websocket_api_its_stages_and_who_made_it(chat, game):
    chat_api, _ = chat
    game_api, _ = game
    made = _api("wsctl-shop", [], stages=("dev", "prod"), tags={"wsctl:stack": "shop"})
    boto3.client("apigatewayv2", region_name=REGION).create_api(Name="rest-ish", ProtocolType="HTTP")
    rows = {row["apiId"]: row for row in as_json(wsctl("apis", "list", "-o", "json"))}
    assert set(rows) == {chat_api, game_api, made}  # the HTTP API is not listed
    assert rows[chat_api]["stages"] == [{"stage": "Prod", "url": "wss://%s.execute-api.%s.amazonaws.com/Prod"
                                         % (chat_api, REGION)}]
    assert rows[chat_api]["cloudFormationStack"] == "simple-chat"  # found through its functions' stack
    assert rows[made]["wsctlStack"] == "shop" and rows[made]["madeBy"] == "wsctl (stack shop)"
    assert [s["stage"] for s in rows[made]["stages"]] == ["dev", "prod"]
    assert rows[game_api]["madeBy"] == "-" and rows[game_api]["cloudFormationStack"] is None
    text = ok(wsctl("apis", "list")).stdout  # the table, folded to the terminal's width
    assert text.startswith("3 WebSocket API(s)") and chat_api in text and made in text


def test_an_api_is_named_by_id_name_or_url(chat):
    api, _ = chat
    forms = [api, "SimpleChatWebSocket", "wss://%s.execute-api.%s.amazonaws.com/Prod" % (api, REGION),
             "https://%s.execute-api.%s.amazonaws.com/Prod/@connections" % (api, REGION)]
    for form in forms:
        rows = as_json(wsctl("connections", "list", "--api", form, "-o", "json"))
        assert sorted(row["connectionId"] for row in rows) == sorted(ALICE + [BOB, GONE]), form


def test_a_name_two_apis_share_a_missing_api_and_a_wrong_or_ambiguous_stage_are_one_line_each(chat):
    api, _ = chat
    twin = _api("SimpleChatWebSocket", [], stages=("Prod",))
    line = one_line(wsctl("connections", "show", ALICE[0], "--api", "SimpleChatWebSocket"), ExitStatus.USAGE)
    assert api in line and twin in line
    assert "no WebSocket API named" in one_line(wsctl("broadcast", "hi", "--api", "nope"), ExitStatus.NOT_FOUND)
    boto3.client("apigatewayv2", region_name=REGION).create_stage(ApiId=api, StageName="dev")
    line = one_line(wsctl("send", "--connection", ALICE[0], "hi", "--api", api), ExitStatus.USAGE)
    assert "2 stages (Prod, dev)" in line and "--stage" in line
    line = one_line(wsctl("send", "--connection", ALICE[0], "hi", "--api", api, "--stage", "qa"), ExitStatus.NOT_FOUND)
    assert line == "error: stage qa does not exist (the API has Prod, dev): give --stage"
    ok(wsctl("send", "--connection", ALICE[0], "hi", "--api", api, "--stage", "dev"))
    assert one_line(wsctl("connections", "list", "--api", api, "--local"), ExitStatus.USAGE).startswith(
        "error: --local and --api both say where to act")


def test_a_custom_domain_names_its_api_stage_and_management_endpoint(aws):
    api = _api("bare", [], stages=("v1", "v2"))
    apigw = boto3.client("apigatewayv2", region_name=REGION)
    apigw.create_domain_name(DomainName="chat.example.com")
    apigw.create_api_mapping(DomainName="chat.example.com", ApiId=api, Stage="v2", ApiMappingKey="live")
    document = as_json(wsctl("status", "--api", "wss://chat.example.com/live", "-o", "json"))
    assert (document["apiId"], document["stage"]) == (api, "v2")
    assert document["managementEndpoint"] == "https://chat.example.com/live"
    assert document["url"] == "wss://chat.example.com/live"
    line = one_line(wsctl("status", "--api", "wss://chat.example.com/old"), ExitStatus.NOT_FOUND)
    assert "maps no API at /old (mappings: /live)" in line
    policy = as_json(wsctl("policy", "--api", "wss://chat.example.com/live"))
    reads = next(s for s in policy["Statement"] if s["Sid"] == "FindTheApiAndStage")["Resource"]
    assert "arn:aws:apigateway:%s::/domainnames/chat.example.com/apimappings" % REGION in reads


# -- commands that need no registry -------------------------------------------------------------------------
def test_show_send_and_disconnect_need_only_the_api_and_stage(aws, monkeypatch, tmp_path):
    api = _api("bare", [])  # no function, no table: nothing to find a registry in
    backend = StrictMoto(monkeypatch)
    binary = bytes(range(256)) * 500  # 128,000 bytes: API Gateway's limit is 131,072
    (tmp_path / "frame.bin").write_bytes(binary)
    ok(wsctl("send", "--connection", ALICE[0], "--file", str(tmp_path / "frame.bin"), "--api", "bare"))
    assert backend.posts == [(REGION, ALICE[0], binary)]
    shown = as_json(wsctl("connections", "show", ALICE[0], "--api", api, "-o", "json"))
    assert shown["apiGateway"]["state"] == "live" and shown["registry"] is None
    ok(wsctl("disconnect", ALICE[0], "--api", api))
    assert ("DELETE", ALICE[0]) in backend.calls
    line = one_line(wsctl("disconnect", ALICE[0], "--api", api), ExitStatus.NOT_FOUND)
    assert "is not connected (API Gateway answered 410 Gone)" in line
    # commands that need a registry say why, and how to give one
    for args in (["connections", "list"], ["broadcast", "hi"], ["prune"], ["send", "--user", "u", "hi"]):
        line = one_line(wsctl(*args, "--api", api), ExitStatus.USAGE)
        assert "AWS has no call that lists a WebSocket API's connections" in line and "--registry TABLE" in line


# -- the registry, discovered ---------------------------------------------------------------------------------
def test_the_canonical_samples_registry_is_found_through_its_stack(chat):
    api, backend = chat
    document = as_json(wsctl("status", "--api", api, "-o", "json"))
    assert document["registry"] == "table simplechat_connections, key connectionId={id}, no ttl"
    assert any("named in stack simple-chat" in line for line in document["found"])
    assert any("2 connected, 1 gone" in line or "connected" in line for line in document["found"])
    assert document["liveConnections"] == 4 and document["madeBy"] == "CloudFormation stack simple-chat"
    rows = as_json(wsctl("connections", "list", "--api", api, "--live", "-o", "json"))
    assert {row["connectionId"]: row["state"] for row in rows} == {**{c: "live" for c in ALICE + [BOB]},
                                                                    GONE: "gone"}
    line = one_line(wsctl("send", "--user", "alice", "hi", "--api", api), ExitStatus.USAGE)
    assert "--user needs the registry to find a user's connections" in line and "--registry-user" in line


def test_a_single_table_registry_is_found_through_the_functions_environment(game):
    api, backend = game
    document = as_json(wsctl("status", "--api", "game", "-o", "json"))
    assert document["registry"] == ("table game-main, key pk=CONNECTION#{id} sk=METADATA, users by index "
                                    "byUser:userId={user}, ttl expiresAt")
    assert any("named in game-ws's environment" in line for line in document["found"])
    rows = as_json(wsctl("connections", "list", "--api", "game", "-o", "json"))
    assert {row["connectionId"]: row["userId"] for row in rows} == {ALICE[0]: "alice", ALICE[1]: "alice",
                                                                    BOB: "bob", GONE: "carol"}  # not the expired one
    ok(wsctl("send", "--user", "alice", "for alice", "--api", "game"))
    assert sorted(backend.posts) == sorted((REGION, cid, b"for alice") for cid in ALICE)
    assert sorted(r["connectionId"] for r in as_json(wsctl("connections", "list", "--user", "alice", "--api", "game",
                                                           "-o", "json"))) == sorted(ALICE)


def test_a_registry_given_with_options_is_used_as_described(aws, monkeypatch):
    api = _api("plain", [])
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="sockets", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                           {"AttributeName": "SK", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}])
    StrictMoto(monkeypatch)
    line = one_line(wsctl("connections", "list", "--api", api, "--registry", "sockets"), ExitStatus.USAGE)
    assert "the table is empty" in line and "--registry-key PK=PREFIX{id}" in line  # an empty composite key: ask
    ddb.put_item(TableName="sockets", Item={"PK": {"S": "WS#" + BOB}, "SK": {"S": "info"}, "who": {"S": "bob"}})
    rows = as_json(wsctl("connections", "list", "--api", api, "--registry", "sockets", "--registry-key", "PK=WS#{id}",
                         "--registry-key", "SK=info", "--registry-user", "who", "-o", "json"))
    assert [(r["connectionId"], r["userId"]) for r in rows] == [(BOB, "bob")]
    line = one_line(wsctl("connections", "list", "--api", api, "--registry", "sockets", "--registry-key", "id={id}"),
                    ExitStatus.USAGE)
    assert "keyed by PK and SK" in line
    assert "--registry TABLE too" in one_line(wsctl("connections", "list", "--api", api, "--registry-user", "who"),
                                              ExitStatus.USAGE)
    assert "no such table" in one_line(wsctl("connections", "list", "--api", api, "--registry", "nope"),
                                       ExitStatus.NOT_FOUND)


def test_a_template_names_the_registry_of_an_api_nothing_else_points_to(chat, caplog):
    _api("bare-chat", [])  # no function names the table, no stack made the API
    template = ROOT / "tests" / "fixtures" / "projects" / "simple-chat-node" / "template.yaml"
    saved = as_json(wsctl("target", "add", "t", "--api", "bare-chat", "--template", str(template), "-o", "json"))
    assert saved["registry"]["table"] == "simplechat_connections"
    assert any("named in the template" in line for line in saved["found"])
    caplog.set_level("DEBUG", logger="wsctl")  # --debug's lines (pytest's own handler takes them here)
    ok(wsctl("--debug", "connections", "list", "--api", "SimpleChatWebSocket"))
    assert "registry: simplechat_connections (named in stack simple-chat)" in caplog.text


# -- a table wsctl does not own ------------------------------------------------------------------------------
def test_broadcast_reports_gone_ids_and_deletes_them_only_when_asked(chat):
    api, backend = chat
    report = as_json(wsctl("broadcast", "hello all", "--api", api, "-o", "json"))
    assert report["counts"]["delivered"] == 3 and report["counts"]["gone"] == 1 and report["pruned"] == 0
    assert sorted(cid for _, cid, _ in backend.posts) == sorted(ALICE + [BOB])
    assert ("connectionId", GONE) in [pair for key in table_keys("simplechat_connections") for pair in key]
    text = ok(wsctl("broadcast", "again", "--api", api)).stdout
    assert "gone, left in the registry" in text
    report = as_json(wsctl("broadcast", "once more", "--api", api, "--prune", "-o", "json"))
    assert report["pruned"] == 1
    assert table_keys("simplechat_connections") == sorted((("connectionId", c),) for c in ALICE + [BOB])


def test_prune_on_a_foreign_table_deletes_only_with_yes_and_dry_run_shows_every_key(game):
    api, backend = game
    before = table_keys("game-main")
    line = one_line(wsctl("prune", "--api", api), ExitStatus.USAGE)
    assert "game-main, which wsctl did not make" in line and "--dry-run" in line and "--yes" in line
    assert table_keys("game-main") == before
    dry = as_json(wsctl("prune", "--dry-run", "--api", api, "-o", "json"))
    assert sorted(dry["keys"], key=str) == sorted([{"pk": "CONNECTION#" + GONE, "sk": "METADATA"},
                                                   {"pk": "CONNECTION#" + EXPIRED, "sk": "METADATA"}], key=str)
    assert (dry["gone"], dry["expired"], dry["removed"]) == (1, 1, 0) and table_keys("game-main") == before
    text = ok(wsctl("prune", "--dry-run", "--api", api)).stdout
    assert "CONNECTION#" + GONE in text and "CONNECTION#" + EXPIRED in text
    done = as_json(wsctl("prune", "--yes", "--api", api, "-o", "json"))
    assert done["removed"] == 2
    after = table_keys("game-main")
    assert [k for k in before if k not in after] == sorted([(("pk", "CONNECTION#" + GONE), ("sk", "METADATA")),
                                                            (("pk", "CONNECTION#" + EXPIRED), ("sk", "METADATA"))])
    assert (("pk", "CONNECTION#" + BOB), ("sk", "SCORE")) in after  # the other entity stays


# -- named targets -------------------------------------------------------------------------------------------
def test_a_target_is_found_once_saved_listed_used_and_removed(game):
    api, backend = game
    text = ok(wsctl("target", "add", "prod-game", "--api", "wss://%s.execute-api.%s.amazonaws.com/live" % (api, REGION)))
    assert "Saved" in text.stdout and "byUser" in text.stdout
    listed = as_json(wsctl("target", "ls", "-o", "json"))
    assert [(t["name"], t["api"], t["stage"], t["registry"]["table"]) for t in listed] == [
        ("prod-game", api, "live", "game-main")]
    shown = as_json(wsctl("target", "show", "prod-game", "-o", "json"))
    assert shown["registry"]["user"] == {"attribute": "userId", "template": "{user}", "index": "byUser"}
    # the saved registry is used as saved: no discovery call again
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName="game-ws")
    ok(wsctl("send", "--user", "bob", "to bob", "--target", "prod-game"))
    ok(wsctl("send", "--user", "bob", "to bob again", env={"WSCTL_TARGET": "prod-game"}))
    assert [data for _, cid, data in backend.posts if cid == BOB] == [b"to bob", b"to bob again"]
    ok(wsctl("target", "rm", "prod-game"))
    line = one_line(wsctl("broadcast", "x", "--target", "prod-game"), ExitStatus.NOT_FOUND)
    assert "no target named 'prod-game'" in line
    assert "target add needs the API" in one_line(wsctl("target", "add", "x"), ExitStatus.USAGE)


# -- the operator's policy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["discovered", "saved"])
def test_the_printed_policy_allows_every_call_the_commands_made(game, recorder, kind):
    api, _ = game
    where = ["--api", "game"]
    if kind == "saved":
        ok(wsctl("target", "add", "g", "--api", api))
        where = ["--target", "g"]
    policy = as_json(wsctl("policy", *where))
    recorder.on = True
    for args in (["connections", "list", "--live"], ["connections", "list", "--user", "alice"],
                 ["connections", "show", BOB], ["send", "--user", "alice", "hi"], ["send", "--connection", BOB, "x"],
                 ["broadcast", "all", "--prune"], ["prune", "--yes"], ["disconnect", ALICE[1]]):
        ok(wsctl(*args, *where))
    recorder.on = False
    operations = {(c["service"], c["operation"]) for c in recorder.calls}
    assert {("apigatewaymanagementapi", "PostToConnection"), ("apigatewaymanagementapi", "GetConnection"),
            ("apigatewaymanagementapi", "DeleteConnection"), ("dynamodb", "Scan"), ("dynamodb", "Query"),
            ("dynamodb", "BatchWriteItem"), ("apigatewayv2", "GetStages")} <= operations
    if kind == "discovered":
        assert {("lambda", "GetFunctionConfiguration"), ("dynamodb", "DescribeTable")} <= operations
    refused = sorted({"%s %s: %s on %s" % (c["service"], c["operation"], action, resource)
                      for c in recorder.calls for action, resource, context in iam_requests(c)
                      if not allows(policy, action, resource, context)})
    assert refused == [], "\n".join(refused)
    resources = [r for statement in policy["Statement"] for r in statement["Resource"]]
    assert "*" not in resources
    assert "arn:aws:execute-api:%s:123456789012:%s/live/POST/@connections/*" % (REGION, api) in resources


def test_the_policy_is_exact_and_can_fail(game):
    api, _ = game
    policy = as_json(wsctl("policy", "--api", api))
    post = ("execute-api:ManageConnections", "arn:aws:execute-api:%s:123456789012:%s/live/POST/@connections/x"
            % (REGION, api), {})
    assert allows(policy, *post)
    assert not allows(policy, post[0], post[1].replace("/live/", "/other/"), {})  # another stage
    assert not allows(policy, "dynamodb:BatchWriteItem", "arn:aws:dynamodb:%s:123456789012:table/other" % REGION, {})
    assert not allows(policy, "dynamodb:PutItem", "arn:aws:dynamodb:%s:123456789012:table/game-main" % REGION, {})
