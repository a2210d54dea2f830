"""Functions as Lambda runs them: execution environments in their own processes on the
Runtime API, per-environment state, timeouts and crashes, CloudWatch's log lines, the
Invoke API, and functions sealed from real AWS.

One emulator runs a route file of fixture functions (tests/fixtures/lambda); tests reach
them through boto3's Lambda client on the emulator's Lambda endpoint, as a handler would.
"""

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.emulator_fixtures import ROOT, Emulator
from support.live_terminal import Terminal, live_env
from wsctl.targets.emulator import find_state
from wsctl.exitstatus import ExitStatus

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lambda"
PY = "python%d.%d" % sys.version_info[:2]


def _functions(ticks: Path) -> dict:
    counter = {"runtime": PY, "code": str(FIXTURES / "counter"), "handler": "app.handler"}
    return {
        "counter": {**counter, "environment": {"TABLE_NAME": "table-one"}, "timeout": 10},
        "counter2": {**counter, "environment": {"TABLE_NAME": "table-two"}, "maxEnvironments": 2,
                     "timeout": 10},
        "slow": {**counter, "timeout": 1},
        "counter-json": {**counter, "environment": {"AWS_LAMBDA_LOG_FORMAT": "JSON"}},
        "chain": {"runtime": PY, "code": str(FIXTURES / "chain"), "handler": "app.handler", "timeout": 20},
        "ticker": {"runtime": PY, "code": str(FIXTURES / "ticker"), "handler": "app.handler",
                   "environment": {"TICKS_FILE": str(ticks)}},
        "provided": {"runtime": "provided.al2023", "code": str(FIXTURES / "provided"), "handler": "app.handler",
                     "environment": {"RIC_PYTHON": sys.executable}},
        "broken": {"runtime": PY, "code": str(FIXTURES / "counter"), "handler": "nosuchmodule.handler"},
        "forgetful": {"runtime": PY, "code": str(FIXTURES / "forgetful"), "handler": "app.handler"},
        "own-boto3": {"runtime": PY, "code": str(FIXTURES / "own-boto3"), "handler": "app.handler"},
        "by-api-id-py": {"runtime": PY, "code": str(FIXTURES / "by-api-id"), "handler": "app.handler", "timeout": 10},
        "by-api-id-node": {"runtime": "nodejs20.x", "code": str(FIXTURES / "by-api-id"), "handler": "app.handler",
                           "timeout": 10},
    }


@pytest.fixture(scope="module")
def lam(tmp_path_factory):
    home = tmp_path_factory.mktemp("lambda")
    ticks = home / "ticks.jsonl"
    routes = home / "routes.json"
    routes.write_text(json.dumps({"functions": _functions(ticks),
                                  "routes": [{"key": "$default", "function": "counter", "twoWay": True},
                                             {"key": "py", "function": "by-api-id-py"},
                                             {"key": "node", "function": "by-api-id-node"}]}))
    # The operator's real-looking credentials must never reach a function.
    instance = Emulator(home, ["--routes", str(routes)],
                        env={"AWS_ACCESS_KEY_ID": "AKIAOPERATORSECRET01", "AWS_SECRET_ACCESS_KEY": "operator-secret"})
    instance.ticks = ticks
    yield instance
    instance.stop()


def invoke(lam, name: str, event: dict | None = None, **kwargs) -> tuple[dict, dict]:
    answer = lam.lambda_client().invoke(FunctionName=name, Payload=json.dumps(event or {}), **kwargs)
    return json.loads(answer["Payload"].read() or b"null"), answer


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in %ss" % timeout)


# -- environments and their state ------------------------------------------------------------
def test_module_state_lives_per_environment_and_each_function_has_its_own_variables(lam):
    first, _ = invoke(lam, "counter2")
    second, _ = invoke(lam, "counter2")
    other, _ = invoke(lam, "counter")
    assert (first["table"], other["table"]) == ("table-two", "table-one")  # same code, its own environment
    assert second["pid"] == first["pid"] and second["count"] == first["count"] + 1  # reused warm
    assert other["pid"] != first["pid"]  # never shared between functions
    assert first["function"] == "counter2" and first["memory"] == "128"
    assert first["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:counter2"
    assert 9000 < first["remaining"] <= 10000


def test_overlapping_invocations_start_more_environments_up_to_the_limit(lam):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lam, "counter", {"do": "sleep", "seconds": 0.6})[0], range(4)))
    assert len({r["pid"] for r in results}) == 4  # one invocation at a time per environment
    assert all(r["mine"] == r["count"] for r in results)  # a global holding per-invocation state never races
    with ThreadPoolExecutor(4) as pool:
        limited = list(pool.map(lambda _: invoke(lam, "counter2", {"do": "sleep", "seconds": 0.4})[0], range(4)))
    assert len({r["pid"] for r in limited}) <= 2
    assert "counter2] all 2 execution environments are busy" in lam.output()


def test_closing_the_service_runs_nothing_queued_and_starts_no_environment(tmp_path):
    """A stop behind a burst (thousands of $disconnects queued for a function's environments):
    what waits for an environment fails at once, and none is started again for it."""
    import asyncio

    from wsctl.apispec.model import FunctionSpec
    from wsctl.local.functions.errors import FunctionError
    from wsctl.local.functions.service import LambdaService

    spec = FunctionSpec(name="counter", runtime=PY, code_dir=FIXTURES / "counter", handler="app.handler",
                        timeout_s=10, max_environments=1)

    async def main():
        service = LambdaService([spec], tmp_path, sink=lambda *_: None)
        await service.start()
        pool = service.pools["counter"]
        try:
            running = asyncio.ensure_future(service.invoke("counter", b'{"do": "sleep", "seconds": 30}'))
            queued = [asyncio.ensure_future(service.invoke("counter", b"{}")) for _ in range(20)]
            while pool.queued < len(queued):
                await asyncio.sleep(0.01)
        finally:
            await service.close()
        pids = [e.process.pid for e in pool.environments if e.process]
        return await asyncio.gather(running, *queued, return_exceptions=True), pool.cold_starts, pids

    (first, *rest), cold_starts, pids = asyncio.run(asyncio.wait_for(main(), 60))
    assert isinstance(first, FunctionError)  # it ended with its environment
    assert all(isinstance(r, FunctionError) and r.error_type == "ServiceException" for r in rest), rest
    assert cold_starts == 1 and pids == []


def test_an_environment_that_cannot_start_does_not_take_a_place_in_the_pool(tmp_path):
    """A bootstrap that is not executable fails each invocation with Runtime.InvalidEntrypoint,
    every time: the failed environment leaves the pool, so it never fills the pool's limit and
    the next invocation does not wait for a place forever."""
    import asyncio

    from wsctl.apispec.model import FunctionSpec
    from wsctl.local.functions.errors import FunctionError
    from wsctl.local.functions.service import LambdaService

    code = tmp_path / "code"
    code.mkdir()
    (code / "bootstrap").write_text("#!/bin/sh\n")  # not executable
    spec = FunctionSpec(name="unstartable", runtime="provided.al2023", code_dir=code, handler="app.handler",
                        timeout_s=5, max_environments=1)

    async def main():
        service = LambdaService([spec], tmp_path / "home", sink=lambda *_: None)
        await service.start()
        try:
            outcomes = []
            for _ in range(3):
                try:
                    await asyncio.wait_for(service.invoke("unstartable", b"{}"), 10)
                except FunctionError as error:
                    outcomes.append(error.error_type)
            return outcomes, len(service.pools["unstartable"].environments)
        finally:
            await service.close()

    outcomes, left = asyncio.run(asyncio.wait_for(main(), 60))
    assert outcomes == ["Runtime.InvalidEntrypoint"] * 3
    assert left == 0


def test_a_timeout_ends_its_environment_and_the_next_invocation_starts_cold(lam):
    warm, _ = invoke(lam, "slow")
    failed, answer = invoke(lam, "slow", {"do": "sleep", "seconds": 5}, LogType="Tail")
    assert answer["FunctionError"] == "Unhandled"
    assert failed["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(r"RequestId: [0-9a-f-]{36} Error: Task timed out after 1\.00 seconds",
                        failed["errorMessage"])
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "Task timed out after" in log and "Billed Duration: 1000 ms" in log and "Status: timeout" in log
    after, answer = invoke(lam, "slow", LogType="Tail")
    assert after["pid"] != warm["pid"] and after["count"] == 1  # module state starts over
    assert "Init Duration:" in base64.b64decode(answer["LogResult"]).decode()


@pytest.mark.parametrize("event, reason", [({"do": "exit", "code": 3}, "Runtime exited with error: exit status 3"),
                                           ({"do": "kill"}, "Runtime exited with error: signal: killed")])
def test_a_crash_is_reported_as_lambda_reports_it_and_the_environment_replaced(lam, event, reason):
    before, _ = invoke(lam, "counter2")
    crashed, answer = invoke(lam, "counter2", event)
    assert answer["FunctionError"] == "Unhandled"
    assert crashed["errorType"] == "Runtime.ExitError"
    assert crashed["errorMessage"].endswith("Error: " + reason)
    after, _ = invoke(lam, "counter2")
    assert after["count"] == 1 or after["pid"] != before["pid"]


def test_an_unhandled_exception_is_the_runtimes_error_document_and_the_environment_stays(lam):
    before, _ = invoke(lam, "counter")
    failed, answer = invoke(lam, "counter", {"do": "raise", "tag": "t1"})
    assert answer["FunctionError"] == "Unhandled"
    assert (failed["errorType"], failed["errorMessage"]) == ("ValueError", "boom t1")
    assert re.fullmatch(r"[0-9a-f-]{36}", failed["requestId"])
    assert any("app.py" in line and "in handler" in line for line in failed["stackTrace"])
    assert not any("bootstrap.py" in line for line in failed["stackTrace"])  # the runtime's frames are trimmed
    pids = {invoke(lam, "counter")[0]["pid"] for _ in range(3)}
    assert before["pid"] in pids or len(pids) >= 1


def test_an_import_error_is_an_init_error(lam):
    failed, answer = invoke(lam, "broken")
    assert answer["FunctionError"] == "Unhandled"
    assert failed["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'nosuchmodule'" in failed["errorMessage"]


# -- what a function imports: Lambda's runtime, not wsctl's environment ------------------------------------------
def test_a_dependency_only_wsctls_environment_has_fails_as_on_lambda(lam):
    failed, answer = invoke(lam, "forgetful")
    assert answer["FunctionError"] == "Unhandled"
    assert failed["errorType"] == "Runtime.ImportModuleError"
    assert failed["errorMessage"] == "Unable to import module 'app': No module named 'jwt'"


def test_a_function_imports_its_folder_then_the_runtimes_boto3_then_the_standard_library(lam):
    result, _ = invoke(lam, "own-boto3")
    assert result["boto3"] == "the function's own copy"  # its folder first, as /var/task is
    assert result["path"][0] == str(FIXTURES / "own-boto3")
    assert "/python-sdk/" in result["path"][1]  # then the runtime's boto3 and botocore
    assert not any("site-packages" in entry for entry in result["path"]), result["path"]
    assert result["importable"] == {"botocore": True, "wsctl": False, "lambda_src": False, "jwt": False,
                                    "moto": False, "aiohttp": False}


# -- logs -----------------------------------------------------------------------------------------------
def test_every_invocation_logs_as_cloudwatch_shows_it(lam):
    _, answer = invoke(lam, "ticker", {"tag": "cold"}, LogType="Tail")
    cold = base64.b64decode(answer["LogResult"]).decode()
    invoke(lam, "counter", {"tag": "warm-up"})  # whichever test ran first on this worker, counter is warm now
    payload, answer = invoke(lam, "counter", {"tag": "t-log"}, LogType="Tail")
    log = base64.b64decode(answer["LogResult"]).decode()
    request = payload["request"]
    lines = log.strip("\n").split("\n")
    assert lines[0] == "START RequestId: %s Version: $LATEST" % request
    assert "print line t-log" in lines
    assert any(re.fullmatch(r"\[INFO\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t%s\tinfo record t-log" % request, line)
               for line in lines)
    assert not any("debug record" in line for line in lines)  # the logger's level decides, as on Lambda
    assert lines[-2] == "END RequestId: %s" % request
    report = lines[-1].split("\t")
    assert report[0] == "REPORT RequestId: %s" % request and report[-1] == ""
    assert re.fullmatch(r"Duration: \d+\.\d\d ms", report[1]) and re.fullmatch(r"Billed Duration: \d+ ms", report[2])
    assert report[3] == "Memory Size: 128 MB" and report[4].startswith("Max Memory Used: ")
    assert "Init Duration" not in lines[-1]  # warm
    assert re.search(r"\tInit Duration: \d+\.\d\d ms\t", cold)  # cold
    output = lam.output()
    assert "[counter] START RequestId: %s Version: $LATEST" % request in output  # prefixed by the function
    assert "[counter] print line t-log" in output


def test_an_unhandled_error_is_one_line_per_frame_in_a_terminal_and_lambdas_record_in_a_pipe(lam, tmp_path):
    """Python's runtime writes an error and its traceback as one record joined with carriage returns
    (CloudWatch keeps it as one event): a pipe gets it as it is, a terminal one line per part."""
    invoke(lam, "counter", {"do": "raise", "tag": "piped"})
    written = lambda: lam.log_path.read_bytes().decode()  # noqa: E731  (read_text would turn \r into \n)
    record = wait_for(lambda: [line for line in written().split("\n") if "ValueError: boom piped" in line])[0]
    assert record.startswith("[counter] [ERROR] ValueError: boom piped\rTraceback (most recent call last):\r")
    home = tmp_path / "home"
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"functions": {"fails": {"runtime": PY, "code": str(FIXTURES / "counter"),
                                                          "handler": "app.handler"}},
                                  "routes": [{"key": "$default", "function": "fails"}]}))
    terminal = Terminal(["local", "up", "--port", "0", "--routes", str(routes)], live_env(home), rows=60, columns=200)
    try:
        terminal.wait_text("Ctrl-C to stop", timeout=60)
        state = find_state(terminal.child.pid, home)
        Emulator.lambda_client(SimpleNamespace(state=state)).invoke(FunctionName="fails",
                                                                    Payload=json.dumps({"do": "raise", "tag": "tty"}))
        terminal.wait_text("[fails] [ERROR] ValueError: boom tty", timeout=20)
        terminal.wait_text("[fails] END RequestId", timeout=20)
        lines = terminal.lines()
        at = next(i for i, line in enumerate(lines) if line == "[fails] [ERROR] ValueError: boom tty")
        assert lines[at + 1] == "[fails] Traceback (most recent call last):"
        assert re.match(r'\[fails\] \u00a0\u00a0File ".*/counter/app\.py", line \d+, in handler$', lines[at + 2])
        assert lines[at + 3].startswith("[fails] \u00a0\u00a0\u00a0\u00a0raise ValueError")
    finally:
        terminal.key("ctrl-c")
        terminal.wait_exit(30)


def test_with_json_logs_records_and_the_unhandled_error_are_json_objects_as_lambda_writes_them(lam):
    failed, answer = invoke(lam, "counter-json", {"do": "raise", "tag": "js"}, LogType="Tail")
    lines = base64.b64decode(answer["LogResult"]).decode().split("\n")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    info = next(r for r in records if r.get("message") == "info record js")
    assert set(info) == {"timestamp", "level", "message", "logger", "requestId"}
    assert (info["level"], info["logger"], info["requestId"]) == ("INFO", "root", failed["requestId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["timestamp"])
    error = next(r for r in records if r.get("level") == "ERROR")
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == ("ValueError", "boom js",
                                                                               failed["requestId"])
    assert error["stackTrace"] == failed["stackTrace"] and "\r" not in json.dumps(error)


# -- Invoke ------------------------------------------------------------------------------------------------
def test_a_function_invokes_another_synchronously_and_asynchronously(lam):
    result, _ = invoke(lam, "chain", {"do": "sync", "target": "counter", "payload": {"tag": "via-chain"}})
    assert result["status"] == 200 and result["error"] is None and result["payload"]["table"] == "table-one"
    failing, _ = invoke(lam, "chain", {"do": "sync", "target": "counter", "payload": {"do": "raise", "tag": "x"}})
    assert failing["error"] == "Unhandled" and failing["payload"]["errorType"] == "ValueError"
    queued, _ = invoke(lam, "chain", {"do": "event", "target": "ticker", "payload": {"n": 42}})
    assert queued == {"status": 202}
    # the ticker may have logged other ticks (its cold start) before this one: wait for this one
    ticks = wait_for(lambda: lam.ticks.exists() and {"n": 42} in [json.loads(line) for line in
                                                                 lam.ticks.read_text().splitlines()])
    assert ticks
    missing, _ = invoke(lam, "chain", {"do": "missing"})
    assert missing["error"] == "ResourceNotFoundException"
    assert missing["message"] == ("Function not found: arn:aws:lambda:us-east-1:123456789012:function:"
                                  "no-such-function:$LATEST")


@pytest.mark.parametrize("name", ["counter", "arn:aws:lambda:us-east-1:123456789012:function:counter",
                                  "123456789012:function:counter", "counter:$LATEST"])
def test_functions_are_invoked_by_name_arn_or_partial_arn(lam, name):
    result, answer = invoke(lam, name)
    assert answer["StatusCode"] == 200 and result["table"] == "table-one"
    assert answer["ExecutedVersion"] == "$LATEST"


def test_invoke_api_answers_dry_run_and_bad_payloads_as_lambda_does(lam):
    client = lam.lambda_client()
    assert client.invoke(FunctionName="counter", InvocationType="DryRun")["StatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", Payload=b"{}")
    request = urllib.request.Request(lam.state.lambda_endpoint + "/2015-03-31/functions/counter/invocations",
                                     data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert refused.value.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"


def test_wsctl_invoke_tries_a_function_by_hand(lam, tmp_path):
    event = tmp_path / "event.json"
    event.write_text('{"tag": "by-hand"}')
    done = lam.cli("invoke", "counter", "--event", str(event), "--log")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["table"] == "table-one"
    assert "print line by-hand" in done.stderr and "REPORT RequestId:" in done.stderr
    failed = lam.cli("invoke", "counter", "--event", "-", input='{"do": "raise", "tag": "cli"}')
    assert failed.returncode == ExitStatus.FUNCTION_ERROR and json.loads(failed.stdout)["errorMessage"] == "boom cli"
    assert "the function failed (Unhandled)" in failed.stderr
    unknown = lam.cli("invoke", "nope")
    assert unknown.returncode == ExitStatus.NOT_FOUND and unknown.stderr.strip().count("\n") == 0
    assert "function 'nope' does not exist" in unknown.stderr
    bad = lam.cli("invoke", "counter", "--event", "-", input="{oops")
    assert bad.returncode == 2 and "is not JSON" in bad.stderr and "Traceback" not in bad.stderr


# -- sealed from real AWS ------------------------------------------------------------------------------------
def test_functions_never_see_the_operators_credentials(lam):
    seen, _ = invoke(lam, "chain")
    assert seen == {"key": "local", "secret": "local"}
    counted, _ = invoke(lam, "counter")
    assert counted["key"] == "local"
    assert "AKIAOPERATORSECRET01" not in lam.output()


def test_a_service_that_is_not_emulated_answers_locally_naming_service_and_operation(lam):
    result, _ = invoke(lam, "chain", {"do": "s3"})
    assert result["error"] == "ClientError"
    assert "s3 ListBuckets is not emulated by wsctl local" in result["message"]
    assert "--aws-passthrough" in result["message"]


# -- provided runtimes --------------------------------------------------------------------------------------
def test_a_provided_runtime_bootstrap_runs_unchanged_with_awslambdaric(lam):
    """AWS's own runtime interface client speaks the Runtime API to the emulator."""
    result, answer = invoke(lam, "provided", {"hello": "ric"})
    assert answer.get("FunctionError") is None, result
    assert result["runtime"] == "provided" and result["echo"] == {"hello": "ric"}
    assert result["function"] == "provided" and result["execution_env"] is None  # absent on provided.*
    failed, answer = invoke(lam, "provided", {"do": "raise"})
    assert answer["FunctionError"] == "Unhandled"
    assert (failed["errorType"], failed["errorMessage"]) == ("RuntimeError", "provided runtime failure")
    again, _ = invoke(lam, "provided", {"n": 2})
    assert again["echo"] == {"n": 2}


@pytest.mark.parametrize("runtime", ["py", "node"])
def test_a_handler_that_builds_the_endpoint_from_the_api_id_reaches_the_emulator(lam, runtime):
    """https://{apiId}.execute-api.{region}.amazonaws.com/{stage}, TLS verified, from Python and Node."""
    import asyncio

    import websockets

    async def main():
        async with websockets.connect(lam.url) as ws:
            await ws.send(json.dumps({"action": runtime}))
            return await asyncio.wait_for(ws.recv(), 20)

    frame = asyncio.run(main())
    expected = "https://%s.execute-api.us-east-1.amazonaws.com/dev" % lam.state.api_id
    assert frame == "%s reached %s" % ({"py": "python", "node": "node"}[runtime], expected)


def test_local_status_lists_functions_and_warm_environments(lam):
    invoke(lam, "ticker", {"tag": "status"})
    done = lam.cli("status", "-o", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    functions = {f["name"]: f for f in document["functions"]}
    assert functions["ticker"]["warm"] >= 1 and functions["ticker"]["runtime"] == PY
    assert functions["counter"]["routes"] == ["$default"]
    assert document["caBundle"].endswith("ca-bundle.pem") and document["tlsUrl"].startswith("wss://")


def test_bad_route_files_are_one_line_errors(tmp_path):
    cases = {
        "unknown field": ({"routes": [{"key": "$default", "function": "f", "colour": "red"}],
                           "functions": {"f": {"runtime": PY, "handler": "app.handler", "code": "."}}},
                          "unknown field 'colour'"),
        "undefined function": ({"routes": [{"key": "$default", "function": "ghost"}]},
                               "names function 'ghost', which is not defined"),
        "no function": ({"routes": [{"key": "$default"}]}, "route $default names no function"),
    }
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env["WSCTL_HOME"] = str(tmp_path)
    for name, (document, message) in cases.items():
        path = tmp_path / (name.replace(" ", "-") + ".json")
        path.write_text(json.dumps(document))
        done = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", "--routes", str(path)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (name, done.stderr)
        assert done.stderr.strip().count("\n") == 0


def test_aws_passthrough_hands_functions_the_operators_aws_settings(tmp_path):
    """Opted in: the operator's credentials reach functions and no sealed endpoint stands in for
    the services the emulator does not serve (nothing here calls one: there is no network)."""
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({
        "functions": {"chain": {"runtime": PY, "code": str(FIXTURES / "chain"), "handler": "app.handler"},
                      "env": {"runtime": PY, "code": str(FIXTURES / "counter"), "handler": "app.handler"}},
        "routes": [{"key": "$default", "function": "chain"}]}))
    instance = Emulator(tmp_path / "home", ["--routes", str(routes), "--aws-passthrough"],
                        env={"AWS_ACCESS_KEY_ID": "AKIAPASSTHROUGH01", "AWS_SECRET_ACCESS_KEY": "operator-secret"})
    try:
        seen, _ = invoke(instance, "chain")
        assert seen == {"key": "AKIAPASSTHROUGH01", "secret": "operator-secret"}
        env, _ = invoke(instance, "env")
        assert env["ca"] == instance.state.ca_bundle  # real AWS's roots too, not only the emulator's
        assert "reaches real AWS (--aws-passthrough)" in instance.output()
        assert instance.state.aws_passthrough is True
    finally:
        instance.stop()


# -- --warm-containers eager ----------------------------------------------------------------------------------
def test_eager_warm_containers_start_one_environment_per_function_before_any_invocation(tmp_path):
    """Lambda starts environments on demand (the default); `--warm-containers eager` starts one per
    function with the emulator, as SAM CLI's EAGER, so the first invocation is warm."""
    routes = tmp_path / "routes.json"
    chosen = {name: spec for name, spec in _functions(tmp_path / "ticks.jsonl").items()
              if name in ("counter", "by-api-id-node", "broken")}
    routes.write_text(json.dumps({"functions": chosen,
                                  "routes": [{"key": "$default", "function": "counter", "twoWay": True}]}))
    eager = Emulator(tmp_path / "eager", ["--routes", str(routes), "--warm-containers", "eager"])
    try:
        functions = {f["name"]: f for f in eager.view("functions")}
        assert [(functions[n]["warm"], functions[n]["invocations"]) for n in ("counter", "by-api-id-node")] == [
            (1, 0), (1, 0)]
        assert functions["broken"]["warm"] == 0  # its init failed, as Lambda logs it; an invocation meets it
        _, answer = invoke(eager, "counter", {"tag": "first"}, LogType="Tail")
        report = base64.b64decode(answer["LogResult"]).decode()
        assert "REPORT RequestId:" in report and "Init Duration" not in report  # the first invocation is warm
        failed, _ = invoke(eager, "broken")
        assert failed["errorType"] == "Runtime.ImportModuleError"
    finally:
        eager.stop()
    lazy = Emulator(tmp_path / "lazy", ["--routes", str(routes)])
    try:
        assert all(f["warm"] == 0 and f["coldStarts"] == 0 for f in lazy.view("functions"))
        _, answer = invoke(lazy, "counter", {"tag": "first"}, LogType="Tail")
        assert "Init Duration" in base64.b64decode(answer["LogResult"]).decode()  # Lambda's own way: cold
    finally:
        lazy.stop()


def test_warm_containers_takes_lazy_or_eager_only(tmp_path):
    from support.emulator_fixtures import _clean_env

    done = subprocess.run([sys.executable, "-m", "wsctl", "local", "up", "--warm-containers", "sometimes"],
                          cwd=ROOT, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: --warm-containers 'sometimes': use lazy (the default, as Lambda) or eager")
