"""Projects people already have, run unmodified: a SAM template in the shape of AWS's
simple-websockets-chat-app (three Node.js ES-module functions on the AWS SDK v3, the table
from the template), its Python twin (three folders each holding an `app.py`), and a project
with only a route file. Real emulators, real clients, real function processes.
"""

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.emulator_fixtures import ROOT, Emulator
from support.emulator_kit import answer, ask, client, run, silent

PROJECTS = Path(__file__).resolve().parent / "fixtures" / "projects"
TEMPLATES = Path(__file__).resolve().parent / "fixtures" / "templates"


def _start(tmp_path_factory, name: str, *args: str) -> Emulator:
    return Emulator(tmp_path_factory.mktemp(name), list(args))


async def chat(url: str, text: str) -> tuple:
    """Two clients; the first sends, both receive (the sample relays to every connection)."""
    async with client(url) as alice, client(url) as bob:
        await alice.send(json.dumps({"action": "sendmessage", "data": text}))
        return await answer(bob, 15), await answer(alice, 15)


def _assert_chat_project(emulator: Emulator, table: str, functions: set, stage: str):
    state = emulator.state
    assert state.stage == stage and state.ws_url.endswith("/" + stage)  # the template's StageName
    assert {f.name for f in state.functions} == functions
    assert table in state.tables
    received = run(chat(emulator.url, "hello from the template"), 60)
    assert received == ("hello from the template", "hello from the template")
    # $connect wrote the template's table, $disconnect emptied it again.
    dynamodb = emulator.dynamodb()
    deadline = time.monotonic() + 10
    while dynamodb.scan(TableName=table)["Count"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dynamodb.scan(TableName=table)["Count"] == 0


# -- the Python twin: three folders, three modules named app.py ---------------------------------------
@pytest.fixture(scope="module")
def python_chat(tmp_path_factory):
    instance = _start(tmp_path_factory, "python-chat", "--template", str(PROJECTS / "python-chat" / "template.yaml"))
    yield instance
    instance.stop()


def test_a_python_sam_template_with_three_app_modules_runs_unmodified(python_chat):
    _assert_chat_project(python_chat, "pychat_connections",
                         {"OnConnectFunction", "OnDisconnectFunction", "SendMessageFunction"}, "prod")
    output = python_chat.output()
    assert "[OnConnectFunction] START RequestId:" in output and "[SendMessageFunction] REPORT RequestId:" in output


def test_connections_list_reads_the_projects_own_registry_as_discovered(python_chat):
    async def main():
        async with client(python_chat.url, user_agent_header="listing-test"):
            await asyncio.sleep(0.2)
            done = await asyncio.to_thread(python_chat.cli, "connections", "list", "--live", "-o", "json")
            shown = await asyncio.to_thread(python_chat.cli, "connections", "list")
            return done, shown

    done, shown = run(main(), 60)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)  # the template's table keyed connectionId, joined with GetConnection
    assert len(rows) == 1 and rows[0]["state"] == "live" and rows[0]["identity"]["userAgent"] == "listing-test"
    assert shown.returncode == 0 and rows[0]["connectionId"] in shown.stdout
    refused = python_chat.cli("send", "--user", "bob", "hi")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0, refused.stderr


# -- the canonical Node.js sample's shape ----------------------------------------------------------------
@pytest.fixture(scope="module")
def node_chat(tmp_path_factory):
    if shutil.which("node") is None:
        pytest.fail("Node.js is required for these tests (CI installs it)")
    instance = _start(tmp_path_factory, "node-chat", "--template",
                      str(PROJECTS / "simple-chat-node" / "template.yaml"),
                      "--parameter-overrides", "TableName=node_chat_connections")
    yield instance
    instance.stop()


def test_the_canonical_node_sam_sample_runs_unmodified(node_chat):
    _assert_chat_project(node_chat, "node_chat_connections",
                         {"OnConnectFunction", "OnDisconnectFunction", "SendMessageFunction"}, "Prod")
    state = node_chat.state
    assert "WebsiteBucket (AWS::S3::Bucket)" in state.not_emulated  # listed once, never an error
    assert "not emulated" in node_chat.output()


def test_a_node_function_reaches_a_stale_connection_and_prunes_it(node_chat):
    """The sample's sendmessage deletes ids that answer 410 (GoneException), through SDK v3."""
    dynamodb = node_chat.dynamodb()
    dynamodb.put_item(TableName="node_chat_connections", Item={"connectionId": {"S": "gone-connection-0="}})

    async def main():
        async with client(node_chat.url) as alice:
            await alice.send(json.dumps({"action": "sendmessage", "data": "anyone?"}))
            return await answer(alice, 15)

    assert run(main(), 60) == "anyone?"

    def keys():
        return {i["connectionId"]["S"] for i in dynamodb.scan(TableName="node_chat_connections")["Items"]}

    deadline = time.monotonic() + 10  # the delete follows the 410, after the live posts
    while "gone-connection-0=" in keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gone-connection-0=" not in keys()
    assert "Found stale connection, deleting gone-connection-0=" in node_chat.output()


# -- a route file project ------------------------------------------------------------------------------------
def test_a_project_with_only_a_route_file_runs(tmp_path_factory):
    instance = _start(tmp_path_factory, "routefile", "--routes", str(PROJECTS / "routefile-project" / "routes.json"))
    try:
        async def main():
            async with client(instance.url) as ws:
                echoed = await ask(ws, {"action": "echo", "n": 1}, 15)
                unrouted = await ask(ws, {"action": "nothing-here"}, 5)
                return echoed, unrouted, await silent(ws, 0.3)

        echoed, unrouted, _ = run(main(), 60)
        assert echoed == {"echo": {"action": "echo", "n": 1}}
        assert unrouted["message"] == "Forbidden"  # no route and no $default, as API Gateway answers
    finally:
        instance.stop()


# -- templates it cannot use ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, words", [
    ("bad-yaml", "bad YAML"),
    ("unknown-integration", "not in the template"),
    ("unknown-function", "function"),
    ("bad-runtime", "Runtime"),
    ("missing-code", "CodeUri"),
    ("unresolvable-parameter", "parameter"),
])
def test_a_template_it_cannot_use_is_a_one_line_error(tmp_path, name, words):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env["WSCTL_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", "--template",
                           str(TEMPLATES / (name + ".yaml"))], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words.lower() in done.stderr.lower() and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert not list(tmp_path.glob("local/*/state.json"))  # nothing started, nothing half-written


# -- one API id; a declared route it does not serve ------------------------------------------------------
def test_a_function_given_the_api_id_by_the_template_posts_through_the_endpoint_it_builds(tmp_path_factory):
    instance = _start(tmp_path_factory, "api-id", "--template", str(PROJECTS / "api-id" / "template.yaml"))
    try:
        api_id = instance.state.api_id

        async def main():
            async with client(instance.url) as ws:
                told = await ask(ws, {"action": "post"}, 20)
                legacy = await ask(ws, {"action": "legacy"}, 10)
                return told, legacy

        told, legacy = run(main(), 60)
        # Ref, GetAtt ApiEndpoint and ${Api} in Sub all give the id the gateway serves, as on AWS.
        assert told == {"apiId": api_id, "eventApiId": api_id,
                        "endpoint": "wss://%s.execute-api.us-east-1.amazonaws.com" % api_id,
                        "callbackUrl": "https://%s.execute-api.us-east-1.amazonaws.com/live" % api_id}
        # The non-proxy AWS integration is routed, answered as its failure is, and named in the log.
        assert legacy["message"] == "Internal server error"
        listed = instance.state.not_emulated
        assert "LegacyRoute (route legacy: integration type AWS with mapping templates)" in listed
        output = instance.output()
        assert "legacy" in output and "not emulated: integration type AWS with mapping templates" in output
        assert "(no route)" not in output
        assert "WebSocketURI" in output and api_id in output  # the banner shows the template's Outputs
    finally:
        instance.stop()
