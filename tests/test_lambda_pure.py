"""The Lambda service's pure parts, unit-tested directly: log lines, failure values, the Invoke
API's function names, the environment a function gets, and the gateway's 32 KB fragments."""

import json
import re
from pathlib import Path

import pytest

from wsctl.apispec import FunctionSpec
from wsctl.local import authorizer, procs
from wsctl.local.functions import errors, logs, runtimes
from wsctl.local.functions.invoke_api import parse_function_name
from wsctl.local.sockets import fragments

SPEC = FunctionSpec(name="fn", runtime="python3.12", code_dir=Path("/code"), handler="app.handler",
                    environment={"TABLE_NAME": "t", "AWS_LAMBDA_FUNCTION_NAME": "spoofed",
                                 "AWS_ENDPOINT_URL_S3": "http://minio:9000", "NODE_OPTIONS": "--enable-x"},
                    timeout_s=3.0, memory_mb=256)


def test_report_line_is_tab_separated_with_billed_rounded_up_and_init_only_when_cold():
    cold = logs.report_line("id-1", 15.74, 128, 56, init_ms=130.49)
    assert cold == ("REPORT RequestId: id-1\tDuration: 15.74 ms\tBilled Duration: 16 ms\tMemory Size: 128 MB\t"
                    "Max Memory Used: 56 MB\tInit Duration: 130.49 ms\t")
    warm = logs.report_line("id-2", 0.2, 128, 56)
    assert "Billed Duration: 1 ms" in warm and "Init Duration" not in warm
    timed_out = logs.report_line("id-3", 3071.27, 128, 56, timeout_ms=3000, status="timeout")
    assert "Billed Duration: 3000 ms" in timed_out and timed_out.endswith("Status: timeout\t")
    assert logs.start_line("id") == "START RequestId: id Version: $LATEST" and logs.end_line("id") == "END RequestId: id"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", logs.stream_name("$LATEST", "a" * 32))


@pytest.mark.parametrize("returncode, reason", [
    (1, "Runtime exited with error: exit status 1"), (0, "Runtime exited without providing a reason"),
    (-9, "Runtime exited with error: signal: killed"), (-15, "Runtime exited with error: signal: terminated")])
def test_a_crash_is_worded_as_rapid_words_it(returncode, reason):
    failure = errors.exited("req", returncode)
    assert failure.error_type == "Runtime.ExitError"
    assert json.loads(failure.payload) == {"errorType": "Runtime.ExitError", "errorMessage": "RequestId: req Error: " + reason}


def test_a_runtimes_error_document_passes_through_and_a_bare_one_is_wrapped():
    node = json.dumps({"errorType": "TypeError", "errorMessage": "x is undefined", "trace": ["at f"]}).encode()
    failure = errors.FunctionError.from_payload(node, "Runtime.Unknown")
    assert (failure.error_type, failure.error_message, failure.payload) == ("TypeError", "x is undefined", node)
    bare = errors.FunctionError.from_payload(b"not json", "Function.Oops")
    assert json.loads(bare.payload) == {"errorType": "Function.Oops", "errorMessage": "not json"}
    assert errors.timed_out("r", 1).timed_out and not failure.timed_out


@pytest.mark.parametrize("raw, expected", [
    ("fn", ("fn", None)), ("fn:$LATEST", ("fn", "$LATEST")), ("fn%3A%24LATEST", ("fn", "$LATEST")),
    ("arn:aws:lambda:us-east-1:123456789012:function:fn", ("fn", None)),
    ("arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Afn%3Aprod", ("fn", "prod")),
    ("123456789012:function:fn", ("fn", None)), ("not a name!", None)])
def test_function_names_in_every_form_lambda_takes(raw, expected):
    assert parse_function_name(raw) == expected


def test_a_functions_environment_is_lambdas_and_never_the_hosts_aws_settings():
    env = runtimes.variables(
        SPEC, runtime_api="127.0.0.1:9001", region="eu-west-1", log_stream="s", account_id="123456789012",
        endpoints={"": "http://sealed", "DYNAMODB": "http://ddb"}, credentials={"AWS_ACCESS_KEY_ID": "local"},
        ca_bundle="/ca.pem", sdk_path="/sdk/python",
        host_env={"PATH": "/bin", "AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_PROFILE": "prod", "SECRET": "x"})
    assert env["AWS_ACCESS_KEY_ID"] == "local" and "AWS_PROFILE" not in env and "SECRET" not in env
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"  # reserved: the function cannot override it
    assert env["TABLE_NAME"] == "t" and env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"  # its own settings
    assert env["AWS_ENDPOINT_URL"] == "http://sealed" and env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://ddb"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and env["TZ"] == ":UTC" and env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12" and env["NODE_EXTRA_CA_CERTS"] == "/ca.pem"
    assert env["PYTHONPATH"] == "/sdk/python"  # the runtime's boto3, after the function's folder
    apart = runtimes.variables(
        SPEC, runtime_api="a:1", region="r", log_stream="s", account_id="1", endpoints={}, credentials={},
        ca_bundle="/bundle.pem", extra_ca="/cert.pem", sdk_path=None, host_env={})
    assert (apart["AWS_CA_BUNDLE"], apart["NODE_EXTRA_CA_CERTS"]) == ("/bundle.pem", "/cert.pem")
    provided = runtimes.variables(
        FunctionSpec("p", "provided.al2023", Path("/p"), "x"), runtime_api="a:1", region="r", log_stream="s",
        account_id="1", endpoints={}, credentials={}, ca_bundle=None, sdk_path=None, host_env={})
    assert "AWS_EXECUTION_ENV" not in provided  # absent on provided.*, as on AWS


def test_the_banner_notes_a_runtime_version_that_differs_from_the_local_one():
    import sys

    local = "python%d.%d" % sys.version_info[:2]
    assert runtimes.version_note(local) is None
    assert "run on the local Python" in runtimes.version_note("python3.1")


def test_a_message_over_32_kb_is_cut_into_frames_of_32_kb():
    payload = b"x" * (70 * 1024)
    frames = fragments(payload, 0x1)
    assert [f[0] for f in frames] == [0x01, 0x00, 0x80]  # TEXT, CONTINUATION, CONTINUATION + FIN
    assert frames[0][1] == 126 and int.from_bytes(frames[0][2:4], "big") == 32 * 1024
    assert fragments(b"small", 0x2) == [bytes((0x82, 5)) + b"small"]


def test_authorizer_context_values_become_strings():
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect"
    decided = authorizer.decide({"principalId": "u", "context": {"n": 3, "ok": True, "no": False, "r": 1.5, "s": "x"},
                                 "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow",
                                                                   "Resource": arn}]}}, arn)
    assert decided == {"principalId": "u", "n": "3", "ok": "true", "no": "false", "r": "1.5", "s": "x"}


def test_a_program_that_cannot_run_fails_as_spawning_it_would(tmp_path):
    """Behind setpriv a missing or non-executable bootstrap would only be setpriv's exit 127:
    tied_to_parent raises what spawning it directly raises, so the function reports it."""
    bootstrap = tmp_path / "bootstrap"
    with pytest.raises(FileNotFoundError):
        procs.tied_to_parent([str(bootstrap)])
    bootstrap.write_text("#!/bin/sh\n")
    bootstrap.chmod(0o644)
    with pytest.raises(PermissionError):
        procs.tied_to_parent([str(bootstrap)])
    with pytest.raises(FileNotFoundError):
        procs.tied_to_parent(["no-such-program-anywhere"], path=str(tmp_path))
    bootstrap.chmod(0o755)
    argv, preexec = procs.tied_to_parent([str(bootstrap)])
    assert argv[-1] == str(bootstrap)
    if procs.SETPRIV:  # Linux with util-linux: spawned with vfork, the kernel setting made by setpriv
        assert (argv[0], preexec) == (procs.SETPRIV, None)
    else:
        assert preexec is (procs.die_with_parent if procs.LINUX else None)
