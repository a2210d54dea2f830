"""An endpoint that lacks an API: moto's own server, without the shims (tests/support/moto_shim.py) that
complete its API Gateway v2. deploy stops at the first operation it lacks with one line naming
the operation, the endpoint, that the stack is partial and what destroy will delete; status and
destroy still work on that partial stack. And destroy removes what it can when a call fails,
names the rest, and exits non-zero only for what is left.
"""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from wsctl import aws as wsctl_aws
from wsctl.cli import app as cli
from wsctl.exitstatus import ExitStatus

REGION = "us-east-1"
runner = CliRunner()


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    """moto's server in a process of its own (so without this suite's shims), on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto's server did not start")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)
    log.close()


def wsctl(endpoint, stack, *args):
    return runner.invoke(cli, [*args, "--stack", stack, "--region", REGION, "--endpoint-url", endpoint])


def error_line(result) -> str:
    assert "Traceback" not in result.output and "<!doctype" not in result.output.lower(), result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def left_on(endpoint, stack) -> set:
    def c(service):
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)
    left = {("api", a["Name"]) for a in c("apigatewayv2").get_apis()["Items"] if a["Name"] == "wsctl-" + stack}
    left |= {("function", f["FunctionName"]) for f in c("lambda").list_functions()["Functions"]
             if f["FunctionName"] == "wsctl-" + stack}
    left |= {("table", t) for t in c("dynamodb").list_tables()["TableNames"] if t == "wsctl-%s-connections" % stack}
    left |= {("role", r["RoleName"]) for r in c("iam").list_roles()["Roles"] if r["RoleName"].startswith("wsctl-%s-" % stack)}
    left |= {("parameter", p["Name"]) for p in c("ssm").describe_parameters()["Parameters"]
             if p["Name"] == "/wsctl/%s/signing-key" % stack}
    return left


def test_deploy_names_the_missing_operation_and_status_and_destroy_clean_up(moto_server):
    started = time.monotonic()
    result = wsctl(moto_server, "part", "deploy")
    assert result.exit_code == 1
    line = error_line(result)
    for words in ("apigatewayv2 CreateDeployment is not implemented by %s" % moto_server, "HTML page",
                  "the stack is partial", "`wsctl deploy` again resumes it", "`wsctl destroy` deletes",
                  "the WebSocket API wsctl-part", "the Lambda function wsctl-part", "the IAM role wsctl-part-us-east-1"):
        assert words in line, line
    assert time.monotonic() - started < 30  # no retrying what the endpoint does not have
    assert ("api", "wsctl-part") in left_on(moto_server, "part")

    status = wsctl(moto_server, "part", "status", "-o", "json")
    assert status.exit_code == ExitStatus.NOT_DEPLOYED  # partial
    document = json.loads(status.stdout)
    assert document["deployed"] and document["partial"]
    assert any(u.startswith("authorizers: apigatewayv2 GetAuthorizers is not implemented by " + moto_server)
               for u in document["unread"]), document["unread"]
    text = wsctl(moto_server, "part", "status")
    assert "could not read authorizers" in text.stderr and "partial" in text.stderr

    again = error_line(wsctl(moto_server, "part", "deploy"))
    assert "GetAuthorizers is not implemented by %s" % moto_server in again
    assert "stack part exists in part: `wsctl destroy` deletes the WebSocket API wsctl-part" in again

    destroyed = wsctl(moto_server, "part", "destroy", "--yes")
    assert destroyed.exit_code == 0, destroyed.output
    assert "could not read authorizers" in destroyed.stderr
    assert left_on(moto_server, "part") == set()
    assert "Nothing of stack part is left" in wsctl(moto_server, "part", "destroy", "--yes").stdout


def test_an_html_or_501_answer_is_an_unimplemented_operation_and_an_aws_error_is_not():
    assert "HTML page" in wsctl_aws.unimplemented_answer(404, b"<!doctype html><html><title>404 Not Found</title>")
    assert "HTML page" in wsctl_aws.unimplemented_answer(500, b"\n<!DOCTYPE html>\n<html>")
    assert wsctl_aws.unimplemented_answer(501, b'{"__type": "InternalFailure"}') == "501 Not Implemented"
    assert "not yet implemented" in wsctl_aws.unimplemented_answer(
        400, b'{"message": "API for service \'apigatewayv2\' not yet implemented or pro feature"}')
    assert wsctl_aws.unimplemented_answer(404, b'{"message": "Invalid API identifier specified"}') is None
    assert wsctl_aws.unimplemented_answer(409, b'{"message": "is referenced in route: $connect"}') is None


def test_the_endpoint_url_help_names_what_can_run_a_deploy():
    help_text = " ".join(runner.invoke(cli, ["--help"]).stdout.split())
    assert "must implement every operation the command calls" in help_text
    assert "moto" not in help_text.lower() and "localstack" not in help_text.lower()


# -- destroy removes what it can ---------------------------------------------------------------------
def _failing(operation: str, code: str = "InternalFailure", status: int = 500):
    def answer(event_name, **_):
        if event_name.rsplit(".", 1)[-1] == operation:
            return (AWSResponse("https://example.invalid", status, {}, None),
                    {"Error": {"Code": code, "Message": "%s failed on purpose" % operation},
                     "ResponseMetadata": {"HTTPStatusCode": status}})
        return None
    return answer


@pytest.mark.parametrize("operation, kind, words", [
    ("DeleteTable", "DynamoDB table", "DeleteTable failed"),  # a delete fails
    ("DescribeLogGroups", "log group", "could not be checked"),  # a listing fails
])
def test_destroy_removes_what_it_can_and_exits_non_zero_only_for_what_is_left(aws, operation, kind, words):
    stack = ["--stack", "left", "--region", REGION]
    assert runner.invoke(cli, ["deploy", *stack]).exit_code == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.handlers, "BUILTIN_HANDLERS",
                      [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", _failing(operation))])
        result = runner.invoke(cli, ["destroy", "--yes", *stack])
    assert result.exit_code == 1, result.output
    line = error_line(result)
    assert "stack left is not fully destroyed: left %s" % kind in line and words in line, line
    assert line.count(";") == 0  # only that one is left
    apis = boto3.client("apigatewayv2", region_name=REGION).get_apis()["Items"]
    assert [a for a in apis if a["Name"] == "wsctl-left"] == []  # the rest is gone
    with pytest.raises(Exception):
        boto3.client("lambda", region_name=REGION).get_function(FunctionName="wsctl-left")

    final = runner.invoke(cli, ["destroy", "--yes", *stack])
    assert final.exit_code == 0, final.output
    assert "Nothing of stack left is left" in runner.invoke(cli, ["destroy", "--yes", *stack]).stdout
