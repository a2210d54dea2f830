"""Bad input, for every command: one line on stderr, a non-zero exit, never a traceback.

Each case runs the real console entry point in a subprocess. AWS cases talk to
moto's server through --endpoint-url (nothing deployed there: an unknown
stack); --local cases point WSCTL_HOME at an empty folder (no emulator).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsctl.exitstatus import ExitStatus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield "http://%s:%d" % (host, port)
    server.stop()


def _env(home: Path) -> dict:
    env = {k: None for k in os.environ if k.startswith(("AWS_", "WSCTL_"))}
    env.update(WSCTL_HOME=str(home), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
               NO_COLOR="1", COLUMNS="200")
    return env


def run(args, home: Path, stdin: str | None = None):
    """The CLI in-process (fast); `run_console` below checks the real entry point end to end."""
    from typer.testing import CliRunner

    from wsctl.cli import app

    return CliRunner().invoke(app, list(args), input=stdin, env=_env(home), catch_exceptions=False)


def run_console(args, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env.update({k: v for k, v in _env(home).items() if v is not None})
    return subprocess.run([sys.executable, "-m", "wsctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def assert_one_line(result, *expected: str, code: int | None = None) -> None:
    returncode = getattr(result, "returncode", getattr(result, "exit_code", None))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert returncode != 0, result.stdout
    if code is not None:
        assert returncode == code, (returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


NO_EMULATOR = [
    ["status"], ["connections", "list"], ["connections", "show", "abc="], ["send", "--user", "u", "hi"],
    ["broadcast", "hi"], ["prune"], ["disconnect", "abc="], ["token", "--user", "u"], ["connect"],
    ["local", "down"],
]


@pytest.mark.parametrize("args", NO_EMULATOR, ids=lambda a: " ".join(a))
def test_local_commands_without_an_emulator(tmp_path, args):
    assert_one_line(run(["--local", *args], tmp_path), "no local emulator is running", "wsctl local up", code=1)


UNKNOWN_STACK = [
    (["connections", "list"], "registry table does not exist"),
    (["send", "--user", "u", "hi"], "registry table does not exist"),
    (["broadcast", "hi"], "is not deployed"),  # streams: resolves the endpoint before the first scan page
    (["prune"], "registry table does not exist"),
    (["disconnect", "abc="], "is not deployed"),
    (["connections", "show", "abc="], "is not deployed"),  # GetConnection first: it needs no registry
    (["token", "--user", "u"], "no signing key"),
    (["connect"], "is not deployed"),
    (["destroy", "--yes"], None),  # nothing to destroy is not an error
]


@pytest.mark.parametrize("args, message", UNKNOWN_STACK, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_aws_commands_on_an_unknown_stack(tmp_path, moto_server, args, message):
    result = run(["--endpoint-url", moto_server, "--region", "us-east-1", "--stack", "nope", *args], tmp_path)
    if message is None:
        assert result.exit_code == 0 and "Nothing of stack nope" in result.stdout
    else:
        assert_one_line(result, message)


def test_status_of_an_unknown_stack_says_so_and_exits_not_deployed(tmp_path, moto_server):
    result = run(["--endpoint-url", moto_server, "--region", "us-east-1", "--stack", "nope", "status"], tmp_path)
    assert result.exit_code == ExitStatus.NOT_DEPLOYED
    assert "not deployed" in result.stdout and "Traceback" not in result.stderr


def test_unreachable_endpoint(tmp_path):
    assert_one_line(run(["--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1", "status"], tmp_path),
                    "cannot reach")


BAD_USAGE = [
    (["deploy", "--stack", "Bad Name"], "stack name"),
    (["--output", "yaml", "status"], "--output"),
    (["deploy", "--auth", "sometimes"], "--auth"),
    (["deploy", "--log-retention-days", "13"], "--log-retention-days"),
    (["token"], "--user"),
    (["token", "--user", "u", "--ttl", "forever"], "duration"),
    (["token", "--user", "u", "--ttl", "3d", "--local"], None),  # no emulator: checked before the ttl
    (["connect", "http://example.com/dev"], "ws://"),
    (["connect", "--token", "t", "--user", "u", "ws://127.0.0.1:9/dev"], "--token or --user"),
    (["connect", "-H", "no-colon", "ws://127.0.0.1:9/dev"], "Name: value"),
    (["send", "--user", "u", "--room", "r", "hi"], "exactly one"),
    (["send", "hi"], "exactly one"),
    (["send", "--user", "u"], "no payload"),
    (["send", "--user", "u", ""], "empty"),
    (["send", "--user", "u", "--file", "/nonexistent/file"], "cannot read"),
    (["send", "--user", "u", "hi", "--file", "x"], "not both"),
    (["send", "--user", "u", "hi", "--concurrency", "0"], "--concurrency"),
    (["local", "up", "--port", "99999"], "--port"),
    (["local", "up", "--page-port", "70000"], "--page-port"),
    (["local", "up", "--open", "--no-page"], "--open opens the page"),
    (["local", "up", "--fault", "sometimes=1"], "--fault"),
    (["local", "up", "--fault", "mgmt-429=2"], "--fault"),
    (["local", "up", "--env", "NOEQUALS"], "KEY=VALUE"),
    (["local", "up", "--env-file", "/nonexistent/env"], "cannot read"),
    (["local", "up", "--routes", "/nonexistent/routes.json"], "cannot read"),
    (["local", "up", "--source", "/nonexistent/dir", "--handler", "a.b", "--auth", "none"], "not a folder"),
    (["local", "up", "--handler", "nodots"], None),
    (["nosuch"], "No such command"),
    (["bundle", "-o", "out.zip"], "--output"),
    (["--name", "Bad Name", "status"], "--name 'Bad Name'"),
    (["connect", "--raw", "--pretty", "ws://127.0.0.1:9/dev"], "--raw or --pretty"),
    (["local", "down", "--all", "--name", "web"], "--name or --all"),
]


@pytest.mark.parametrize("args, message", BAD_USAGE, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_bad_usage(tmp_path, args, message):
    result = run([*args], tmp_path)
    assert_one_line(result, *([message] if message else []))


def test_malformed_route_definition(tmp_path):
    routes = tmp_path / "routes.json"
    routes.write_text("{not json")
    assert_one_line(run(["local", "up", "--routes", str(routes)], tmp_path), "not valid JSON", code=2)
    routes.write_text('{"routes": [{"key": "$bogus"}]}')
    assert_one_line(run(["local", "up", "--routes", str(routes)], tmp_path), "reserved", code=2)


def test_oversize_payload_from_stdin(tmp_path):
    result = run(["--local", "send", "--user", "u", "-"], tmp_path, stdin="x" * (128 * 1024 + 1))
    assert_one_line(result, "over 131072 bytes", code=2)


@pytest.mark.parametrize("args", [["--local", "send", "--user", "u", "hi"], ["token"],
                                  ["local", "up", "--port", "x"], ["--region", "us-east-1", "--endpoint-url",
                                                                   "http://127.0.0.1:9", "connections", "list"]],
                         ids=lambda a: " ".join(a))
def test_the_console_script_prints_one_line_too(tmp_path, args):
    assert_one_line(run_console(args, tmp_path))


@pytest.mark.parametrize("args, expected", [
    (["disconnect", "-AbCdEfGhIjKCmn="], ["disconnect", "--", "-AbCdEfGhIjKCmn="]),
    (["connections", "show", "-AbCdEfGhIjKCmn=", "--local"], ["--local", "connections", "show", "--",
                                                               "-AbCdEfGhIjKCmn="]),
    (["send", "--connection", "-AbCdEfGhIjKCmn=", "hi"], ["send", "--connection", "-AbCdEfGhIjKCmn=", "hi"]),
    (["bundle", "-o", "out.zip"], ["-o", "out.zip", "bundle"]),  # -o is --output everywhere
    (["local", "up", "--name", "web", "-p", "0"], ["--name", "web", "local", "up", "-p", "0"]),
    (["send", "-o", "json", "--user", "u", "hi"], ["-o", "json", "send", "--user", "u", "hi"]),
    (["prune", "--transport", "boto3"], ["--transport", "boto3", "prune"]),  # chosen once, on the target
])
def test_global_options_and_dash_ids_are_placed_for_the_parser(args, expected):
    from wsctl.cli import hoist_global_options

    assert hoist_global_options(args) == expected
