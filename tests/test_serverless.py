"""Serverless Framework services, run unmodified with `--template serverless.yml`: a Python chat
(variables of every kind the Framework's users write, an authorizer, a two-way route, the
table in `resources`, a relay that posts through the endpoint it builds from `!Ref
WebsocketsApi`) and a Node.js one; real emulators, real clients, real function processes.
Then what a service uses that wsctl cannot resolve: one line naming the variable and --var.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.emulator_fixtures import ROOT, Emulator
from support.emulator_kit import answer, ask, client, refused, run
from wsctl.apispec.project import read_template
from wsctl.errors import UsageError

SERVICES = Path(__file__).resolve().parent / "fixtures" / "serverless"
PYTHON_CHAT = SERVICES / "python-chat" / "serverless.yml"


def _wait_empty(emulator: Emulator, table: str) -> int:
    dynamodb = emulator.dynamodb()
    deadline = time.monotonic() + 10
    while dynamodb.scan(TableName=table)["Count"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return dynamodb.scan(TableName=table)["Count"]


def test_a_python_serverless_service_runs_unmodified(tmp_path):
    emulator = Emulator(tmp_path / "emulator", ["--template", str(PYTHON_CHAT)], env={"CHAT_SECRET": "from-env"})
    try:
        state = emulator.state
        assert state.stage == "dev" and state.tables == ("slschat-dev-connections",)
        functions = {f.name: f for f in state.functions}
        assert set(functions) == {"slschat-dev-%s" % f for f in ("connect", "disconnect", "send", "auth", "nightly")}
        assert functions["slschat-dev-send"].timeout == 12 and functions["slschat-dev-auth"].timeout == 10
        assert state.authorizer == "slschat-dev-auth"
        assert "functions.nightly.events[0] (schedule)" in state.not_emulated

        async def main():
            base = emulator.url
            denied = await refused(base + "?token=nobody")
            async with client(base + "?token=user-alice") as alice, client(base + "?token=user-bob") as bob:
                who = await ask(alice, {"action": "whoami"}, 20)
                await alice.send(json.dumps({"action": "sendmessage", "data": "hi"}))
                return denied, who, await answer(bob, 20), await answer(alice, 20)

        denied, who, to_bob, to_alice = run(main(), 90)
        assert denied == 401  # the authorizer raised Unauthorized
        # The relay posted through https://{API_ID}.execute-api.{region}.amazonaws.com/{STAGE}: API_ID is !Ref.
        assert to_bob == to_alice == "alice: hi"
        assert who == {"user": "alice", "apiId": state.api_id, "stage": "dev", "greeting": "hello from slschat",
                       "secret": "from-env", "function": "slschat-dev-send",
                       "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/slschat-dev-connections"}
        assert _wait_empty(emulator, "slschat-dev-connections") == 0
    finally:
        emulator.stop()


def test_a_node_serverless_service_runs_unmodified(tmp_path):
    emulator = Emulator(tmp_path / "emulator", ["--template", str(SERVICES / "node-chat" / "serverless.yml")])
    try:
        assert emulator.state.tables == ("ConnectionsTable",)

        async def main():
            async with client(emulator.url) as alice, client(emulator.url) as bob:
                await alice.send("plain text goes to $default")
                return await answer(bob, 20), await answer(alice, 20)

        assert run(main(), 90) == ("relayed: plain text goes to $default",) * 2
        assert _wait_empty(emulator, "ConnectionsTable") == 0
    finally:
        emulator.stop()


def test_the_stage_comes_from_stage_then_the_service(tmp_path):
    spec = read_template(str(PYTHON_CHAT), [], [], stack="app", stage="prod", cache=None)
    assert spec.stage == "prod" and [t.name for t in spec.tables] == ["slschat-prod-connections"]
    assert spec.function("slschat-prod-send").environment["STAGE"] == "prod"
    assert dict(spec.outputs)["Endpoint"].endswith(".execute-api.us-east-1.amazonaws.com/prod")


# -- what it cannot resolve ------------------------------------------------------------------------------
SERVICE = """\
service: refused
provider:
  name: aws
  runtime: python3.12
  environment:
    VALUE: %s
functions:
  connect:
    handler: handler.connect
    events:
      - websocket: $connect
"""


def _service(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "serverless.yml"
    path.write_text(SERVICE % value)
    return path


@pytest.mark.parametrize("value, words", [
    ("${ssm:/chat/secret}", ["provider.environment.VALUE", "${ssm:/chat/secret}", "SSM",
                             "--var 'ssm:/chat/secret=VALUE'"]),
    ("${cf:shared-infra.TableName}", ["${cf:shared-infra.TableName}", "another stack's output",
                                      "--var 'cf:shared-infra.TableName=VALUE'"]),
    ("${vault:secret/chat}", ["${vault:secret/chat}", "'vault'", "a plugin's?", "--var 'vault:secret/chat=VALUE'"]),
    ("${opt:domain}", ["${opt:domain}", "--var 'opt:domain=VALUE'"]),
    ("${env:WSCTL_TEST_UNSET}", ["WSCTL_TEST_UNSET is not set"]),
    ("${self:custom.nothing}", ["${self:custom.nothing}", "no custom.nothing"]),
])
def test_a_variable_without_a_value_is_one_line_naming_it_and_the_option(tmp_path, value, words):
    path = _service(tmp_path, value)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env["WSCTL_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", "--template", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert not list((tmp_path / "home").glob("local/*/state.json"))


def test_var_gives_the_value_and_a_fallback_stands_in(tmp_path):
    path = _service(tmp_path, "${ssm:/chat/secret}-${cf:infra.Out, 'fallback'}")
    spec = read_template(str(path), [], ["ssm:/chat/secret=s3cr3t"], stack="app", stage=None, cache=None)
    assert spec.function("refused-dev-connect").environment == {"VALUE": "s3cr3t-fallback"}
    with pytest.raises(UsageError, match="--var 'source:address=VALUE'|is not SOURCE:ADDRESS=VALUE"):
        read_template(str(path), [], ["nothing"], stack="app", stage=None, cache=None)
    with pytest.raises(UsageError, match="needs --template serverless.yml"):
        read_template(str(SERVICES.parent / "projects" / "python-chat" / "template.yaml"), [], ["ssm:/x=1"],
                      stack="app", stage=None, cache=None)


def test_a_service_in_javascript_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "serverless.ts"
    path.write_text("export default {}\n")
    with pytest.raises(UsageError, match="serverless print"):
        read_template(str(path), [], [], stack="app", stage=None, cache=None)


def test_a_zip_artifact_is_unpacked_and_an_s3_one_refused_where_a_route_needs_it(tmp_path):
    import zipfile

    (tmp_path / "dist").mkdir()
    with zipfile.ZipFile(tmp_path / "dist" / "connect.zip", "w") as archive:
        archive.writestr("handler.py", "def connect(event, context):\n    return {'statusCode': 200}\n")
    text = SERVICE % "x"
    path = tmp_path / "serverless.yml"
    path.write_text(text.replace("    handler: handler.connect\n",
                                 "    handler: handler.connect\n    package: {artifact: dist/connect.zip}\n"))
    spec = read_template(str(path), [], [], stack="app", stage=None, cache=tmp_path / "unpacked")
    assert (spec.function("refused-dev-connect").code_dir / "handler.py").is_file()
    path.write_text(text.replace("    handler: handler.connect\n",
                                 "    handler: handler.connect\n    package: {artifact: 's3://bucket/connect.zip'}\n"))
    with pytest.raises(UsageError, match="points at S3"):
        read_template(str(path), [], [], stack="app", stage=None, cache=tmp_path / "unpacked")
