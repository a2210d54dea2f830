"""CDK apps, run from their cloud assembly: a real app (tests/fixtures/cdk/app.js) synthesized
here with aws-cdk-lib from npm, Python and Node.js functions, the stack's own table; real
emulators, real clients. `cdk synth` through the CDK CLI writes asset metadata (the `chat`
assembly); an app run directly does not (the `zoo` assembly), and the asset manifest names
the code instead.
"""

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from support.cdk_synth import synth
from support.emulator_fixtures import ROOT, Emulator
from support.emulator_kit import answer, client, run
from wsctl import names
from wsctl.apispec.project import read_template

CDK = Path(__file__).resolve().parent / "fixtures" / "cdk"


@pytest.fixture(scope="module")
def chat_assembly(tmp_path_factory) -> Path:
    return synth(CDK / "app.js", tmp_path_factory.mktemp("cdk-chat") / "cdk.out")


@pytest.fixture(scope="module")
def zoo_assembly(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cdk-zoo")
    archive = folder / "connect.zip"  # ChatB's $connect code is a zip asset
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(CDK / "fn-python" / "app.py", "app.py")
    return synth(CDK / "app.js", folder / "cdk.out", cli_context=False,
                 env={"CHAT_APP": "zoo", "ZIP_ASSET": str(archive)})


def _wsctl(tmp_path, *args, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env["WSCTL_HOME"] = str(tmp_path / "home")
    return subprocess.run([sys.executable, "-m", "wsctl", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, stdin=stdin if stdin is not None else subprocess.DEVNULL)


def _refused(tmp_path, *args) -> str:
    """A `local up` that must not start: its one-line error (exit 2, no traceback, nothing written)."""
    done = _wsctl(tmp_path, "local", "up", "--port", "0", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not list((tmp_path / "home").glob("local/*/state.json"))
    return done.stderr


def test_a_synthesized_cdk_app_runs_from_its_cloud_assembly(tmp_path, chat_assembly):
    emulator = Emulator(tmp_path / "emulator", ["--template", str(chat_assembly)])
    try:
        state = emulator.state
        assert state.stage == "dev"  # the WebSocketStage's name
        runtimes = {f.runtime for f in state.functions}
        assert runtimes == {"python3.12", "nodejs22.x"} and len(state.functions) == 3
        assert state.origin.startswith("CDK stack ChatStack") and state.not_emulated == ()  # CDKMetadata: quiet
        (table,) = state.tables

        async def main():
            async with client(emulator.url) as alice, client(emulator.url) as bob:
                await alice.send('{"action": "sendmessage", "data": "hello from cdk"}')
                return await answer(bob, 20), await answer(alice, 20)

        # The Node function posts through the stack's callbackUrl, built from `webSocketApi.apiId`.
        expected = "hello from cdk (via %s)" % state.api_id
        assert run(main(), 60) == (expected, expected)
        assert state.api_id == names.local_api_id("app")
        dynamodb = emulator.dynamodb()  # $connect wrote the stack's table, $disconnect emptied it
        deadline = time.monotonic() + 10
        while dynamodb.scan(TableName=table)["Count"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dynamodb.scan(TableName=table)["Count"] == 0
        output = emulator.output()
        assert "[ConnectHandler2FFD52D8] START RequestId:" in output
    finally:
        emulator.stop()


def test_an_assembly_without_asset_metadata_finds_code_through_its_asset_manifest(tmp_path, zoo_assembly):
    spec = read_template(str(zoo_assembly / "ChatB.template.json"), [], [], stack="app", stage=None,
                         cache=tmp_path / "unpacked")
    code = {f.handler: f.code_dir for f in spec.functions}
    assert code["index.handler"].parent == zoo_assembly and (code["index.handler"] / "index.mjs").is_file()
    # The zip asset, unpacked once into the cache, as Lambda unpacks it.
    assert code["app.connect"].parent == tmp_path / "unpacked" and (code["app.connect"] / "app.py").is_file()
    assert read_template(str(zoo_assembly / "ChatB.template.json"), [], [], stack="app", stage=None,
                         cache=tmp_path / "unpacked").function(spec.functions[0].name) == spec.functions[0]
    assert spec.origin.startswith("CDK stack ChatB")


def test_an_assembly_with_several_websocket_stacks_lists_them_and_asks_for_one(tmp_path, zoo_assembly):
    message = _refused(tmp_path, "--template", str(zoo_assembly))
    assert "holds 5 stacks with a WebSocket API" in message and "choose one" in message
    assert "ChatA (--template %s)" % (zoo_assembly / "ChatA.template.json") in message
    assert "ChatB" in message and "Producer" not in message  # a stack without an API is not a choice


@pytest.mark.parametrize("stack, words", [
    ("NestedApi", ["nested stack HandlersNestedStack", "AWS::CloudFormation::Stack"]),
    ("Importer", ["Fn::ImportValue 'Producer:", "an import from another stack"]),
    ("DockerApi", ["ImageHandler", "Code.ImageUri", "Docker image function"]),
])
def test_what_a_stack_uses_that_the_emulator_cannot_run_is_one_line_naming_it(tmp_path, zoo_assembly, stack, words):
    message = _refused(tmp_path, "--template", str(zoo_assembly / (stack + ".template.json")))
    assert all(word in message for word in words), message


def test_in_a_terminal_it_asks_which_stack_to_run(tmp_path, zoo_assembly):
    import pexpect

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env.update(WSCTL_HOME=str(tmp_path / "home"), NO_COLOR="1")
    child = pexpect.spawn(sys.executable, ["-m", "wsctl", "local", "up", "--port", "0", "--template",
                                           str(zoo_assembly)], cwd=str(ROOT), env=env, encoding="utf-8", timeout=60)
    try:
        child.expect("This CDK app has 5 stacks with a WebSocket API")
        child.expect(r"2\. ChatB")
        child.expect("Run which one")
        child.sendline("2")
        child.expect("ready in")
        child.expect(r"Ctrl-C to stop")
        assert "CDK stack ChatB" in child.before
    finally:
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 0
