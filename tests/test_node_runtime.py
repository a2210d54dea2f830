"""The Node.js runtime (wsctl/local/functions/node/bootstrap.mjs) and its AWS SDK cache (sdks.py).

Real `node` processes run the fixture handlers in tests/fixtures/node/ through the
real Runtime API and execution environments (LambdaService); the AWS SDK for
JavaScript v3 is installed once per test session with npm.
"""

import asyncio
import dataclasses
import json
import os
import re
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from wsctl.apispec.model import FunctionSpec
from wsctl.errors import WsctlError
from wsctl.local.functions import sdks
from wsctl.local.functions.errors import FunctionError
from wsctl.local.functions.service import LambdaService

SOURCES = Path(__file__).resolve().parent / "fixtures" / "node"
FIXTURES = SOURCES  # replaced by the session's copy, where the functions' own node_modules are laid out
REGION = "us-east-1"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(scope="session", autouse=True)
def node_fixtures(tmp_path_factory):
    """A copy of the fixture functions, with their own packages in node_modules (laid out here so
    that no node_modules folder is committed)."""
    global FIXTURES
    root = tmp_path_factory.mktemp("node-fixtures") / "node"
    shutil.copytree(SOURCES, root, ignore=shutil.ignore_patterns("own-packages"))
    for folder in (SOURCES / "own-packages").iterdir():
        shutil.copytree(folder, root / folder.name / "node_modules")
    FIXTURES = root
    yield root
    FIXTURES = SOURCES


@pytest.fixture(scope="session")
def node_sdk(tmp_path_factory):
    """(node_modules, what ensure_sdk said): the SDK installed once for the whole session."""
    said = []
    started = time.monotonic()
    modules = sdks.ensure(tmp_path_factory.mktemp("sdk-cache"), sdks.NODE_V3, said.append)
    print("AWS SDK for JavaScript v3 installed in %.1f s" % (time.monotonic() - started))
    return modules, said


def function(name: str, folder, handler: str, runtime: str = "nodejs20.x", **settings) -> FunctionSpec:
    return FunctionSpec(name=name, runtime=runtime, code_dir=FIXTURES / folder, handler=handler, **settings)


def run(node_sdk, tmp_path, functions, scenario, timeout: float = 30.0):
    """Start a LambdaService over `functions`, run `await scenario(service, lines)`, close it.
    `lines` collects (function, line) as the sink receives them."""
    lines = []

    def sink(name, line, invocation):
        lines.append((name, line))

    async def main():
        service = LambdaService(functions=functions, home=tmp_path, region=REGION, endpoints={}, sink=sink,
                                sdk_paths={sdks.NODE_V3: str(node_sdk[0])})
        await service.start()
        try:
            return await asyncio.wait_for(scenario(service, lines), timeout)
        finally:
            await service.close()

    return asyncio.run(main())


async def call(service, name, event=None, **options):
    payload = await service.invoke(name, json.dumps({} if event is None else event).encode(), **options)
    return json.loads(payload)


async def failure(service, name, event=None, **options) -> FunctionError:
    with pytest.raises(FunctionError) as caught:
        await service.invoke(name, json.dumps({} if event is None else event).encode(), **options)
    return caught.value


def file_path(url: str) -> str:
    assert url.startswith("file://"), url
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path)


async def line_matching(lines, pattern, wait: float = 2.0) -> str:
    """The first sink line matching `pattern` (lines may trail the invocation's answer a little)."""
    deadline = time.monotonic() + wait
    while True:
        for _, line in lines:
            if re.fullmatch(pattern, line, re.S):
                return line
        if time.monotonic() > deadline:
            raise AssertionError("no line matches %r in:\n%s" % (pattern, "\n".join(l for _, l in lines)))
        await asyncio.sleep(0.02)


# -- handler styles and the context ------------------------------------------------------------------

def test_async_handler_gets_the_context_and_the_environment_stays_warm(node_sdk, tmp_path):
    arn = "arn:aws:lambda:%s:123456789012:function:ctx:$LATEST" % REGION
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"

    async def scenario(service, lines):
        first = await call(service, "ctx", {"n": 1}, request_id="req-one", invoked_arn=arn, trace_id=trace,
                           client_context=json.dumps({"custom": {"tenant": "t1"}}))
        second = await call(service, "ctx", {"n": 2}, request_id="req-two")
        return first, second

    first, second = run(node_sdk, tmp_path, [function("ctx", "cjs", "app.context", memory_mb=256)], scenario)
    assert first["event"] == {"n": 1}
    assert first["functionName"] == "ctx"
    assert first["functionVersion"] == "$LATEST"
    assert first["memoryLimitInMB"] == "256"  # a string, as on Lambda
    assert first["logGroupName"] == "/aws/lambda/ctx"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", first["logStreamName"])
    assert first["invokedFunctionArn"] == arn
    assert first["awsRequestId"] == "req-one"
    assert first["waits"] is True
    assert first["traceId"] == trace
    assert first["clientContext"] == {"custom": {"tenant": "t1"}}
    assert first["identity"] is None
    assert first["region"] == REGION
    # getRemainingTimeInMillis counts down from the 3 s default timeout (the handler sleeps 150 ms).
    before, after = first["remaining"]
    assert 2000 < before <= 3000
    assert 100 <= before - after < 1000
    # Warm: same process (module state kept), same log stream; the trace id is per invocation.
    assert second["calls"] == 2 and second["awsRequestId"] == "req-two"
    assert second["logStreamName"] == first["logStreamName"]
    assert second["invokedFunctionArn"] == "arn:aws:lambda:%s:123456789012:function:ctx" % REGION
    assert second["traceId"] is None


def test_callback_waits_for_the_event_loop_unless_told_not_to(node_sdk, tmp_path):
    # The handler starts a 400 ms timer, then calls back with how many earlier timers have fired.
    async def scenario(service, lines):
        timings = []
        results = []
        for wait in (True, False, True, False):
            started = time.monotonic()
            results.append(await call(service, "cb", {"wait": wait}))
            timings.append(time.monotonic() - started)
        return results, timings

    results, timings = run(node_sdk, tmp_path, [function("cb", "cjs", "app.callback")], scenario)
    assert timings[0] >= 0.38 and timings[2] >= 0.38  # waited for the timer: the loop had to drain
    assert timings[1] < 0.3 and timings[3] < 0.3  # answered at once, timer still pending
    # The first timer fired before its own answer; the second fired during the third invocation.
    assert [r["timersFired"] for r in results] == [0, 1, 1, 3]


def test_legacy_context_methods_and_only_the_first_result_counts(node_sdk, tmp_path):
    async def scenario(service, lines):
        outcomes = {}
        for mode in ("succeed", "done", "twice", None):
            outcomes[mode] = await call(service, "legacy", {"mode": mode})
        failed = await failure(service, "legacy", {"mode": "fail"})
        empty = await failure(service, "legacy", {"mode": "failEmpty"})
        return outcomes, failed, empty

    outcomes, failed, empty = run(node_sdk, tmp_path, [function("legacy", "cjs", "app.legacy")], scenario)
    assert outcomes == {"succeed": {"via": "succeed"}, "done": {"via": "done"}, "twice": "first", None: None}
    assert (failed.error_type, failed.error_message) == ("Error", "failed on purpose")
    assert json.loads(empty.payload) == {"errorType": "string", "errorMessage": "handled", "trace": []}


def test_thrown_errors_become_the_node_error_document(node_sdk, tmp_path):
    async def scenario(service, lines):
        thrown = await failure(service, "throws", {}, request_id="req-throw")
        text = await failure(service, "throws", {"kind": "string"})
        custom = await failure(service, "throws", {"kind": "custom"})
        logged = await line_matching(lines, STAMP + r"\treq-throw\tERROR\tInvoke Error \t\{.*")
        return thrown, text, custom, logged

    thrown, text, custom, logged = run(node_sdk, tmp_path, [function("throws", "cjs", "app.throws")], scenario)
    document = json.loads(thrown.payload)
    assert set(document) == {"errorType", "errorMessage", "trace"}  # Node's key is `trace`, not stackTrace
    assert (document["errorType"], document["errorMessage"]) == ("TypeError", "boom")
    assert thrown.error_type == "TypeError"
    assert document["trace"][0] == "TypeError: boom"
    assert any(str(FIXTURES / "cjs" / "app.js") in frame for frame in document["trace"])
    assert json.loads(text.payload) == {"errorType": "string", "errorMessage": "just a string", "trace": []}
    assert (custom.error_type, custom.error_message) == ("ValidationError", "field x is missing")
    logged_error = json.loads(logged.split("Invoke Error \t", 1)[1])
    assert (logged_error["errorType"], logged_error["errorMessage"]) == ("TypeError", "boom")
    assert logged_error["stack"][0] == "TypeError: boom"


def test_a_promise_that_never_settles_is_a_nodejs_exit(node_sdk, tmp_path):
    async def scenario(service, lines):
        return [await failure(service, "never") for _ in range(2)]

    first, second = run(node_sdk, tmp_path, [function("never", "cjs", "app.neverSettles")], scenario)
    assert first.error_type == "Runtime.NodeJsExit"
    assert "Promise that was never settled" in first.error_message
    assert second.error_type == "Runtime.NodeJsExit"  # the runtime carries on with the next event


# -- process-level failures -------------------------------------------------------------------------

def test_unhandled_rejection_fails_the_invocation_and_a_new_environment_takes_the_next(node_sdk, tmp_path):
    async def scenario(service, lines):
        warm = await call(service, "rej", {"reject": False})
        rejected = await failure(service, "rej", {"reject": True}, request_id="req-rejected")
        after = await call(service, "rej", {"reject": False})
        logged = await line_matching(lines, STAMP + r"\treq-rejected\tERROR\tUnhandled Promise Rejection \t\{.*")
        return warm, rejected, after, logged

    warm, rejected, after, logged = run(node_sdk, tmp_path, [function("rej", "cjs", "app.rejectLater")], scenario)
    assert warm == {"calls": 1}
    assert rejected.error_type == "Runtime.UnhandledPromiseRejection"
    assert rejected.error_message == "Error: nobody waits for me"
    assert json.loads(rejected.payload)["trace"][0].startswith("Runtime.UnhandledPromiseRejection: Error: nobody")
    assert after == {"calls": 1}  # the runtime exited (128): a fresh environment, module state reset
    assert json.loads(logged.split(" \t", 1)[1])["reason"]["errorMessage"] == "nobody waits for me"


def test_uncaught_exception_fails_the_invocation_and_a_new_environment_takes_the_next(node_sdk, tmp_path):
    async def scenario(service, lines):
        return [await failure(service, "uncaught") for _ in range(2)]

    first, second = run(node_sdk, tmp_path, [function("uncaught", "cjs", "app.uncaught")], scenario)
    for failed in (first, second):  # the second ran in a new environment, not the one that exited (129)
        assert (failed.error_type, failed.error_message) == ("Error", "thrown in a timer")


# -- console --------------------------------------------------------------------------------------

def test_console_lines_carry_time_request_id_and_level(node_sdk, tmp_path):
    functions = [function("logs", "cjs", "app.logs"),
                 function("quiet", "cjs", "app.logs", environment={"AWS_LAMBDA_LOG_LEVEL": "WARN"}),
                 function("json", "cjs", "app.logs", environment={"AWS_LAMBDA_LOG_FORMAT": "JSON"})]

    async def scenario(service, lines):
        for name in ("logs", "quiet", "json"):
            assert await call(service, name, request_id="req-" + name) == "logged"
        await line_matching(lines, r"\{.*req-json.*first\\nsecond.*")
        await line_matching(lines, STAMP + r"\treq-quiet\tERROR\tan error line")
        return lines

    lines = run(node_sdk, tmp_path, functions, scenario)
    own = [line for name, line in lines if name == "logs"]
    assert any(re.fullmatch(STAMP + r"\tundefined\tINFO\tloading app\.js", line) for line in own)  # during init
    expected = [("INFO", "hello world"), ("INFO", "an info line"), ("WARN", "a warn line"),
                ("ERROR", "an error line"), ("DEBUG", "a debug line"), ("TRACE", "a trace line"),
                ("INFO", "first\rsecond")]  # one line per call: newlines become \r
    logged = [line for line in own if "\treq-logs\t" in line]
    assert len(logged) == len(expected), own
    for line, (level, text) in zip(logged, expected):
        assert re.fullmatch(STAMP + r"\treq-logs\t%s\t%s" % (level, re.escape(text)), line), line
    quiet = [line.split("\t")[2] for name, line in lines if name == "quiet" and "\treq-quiet\t" in line]
    assert quiet == ["WARN", "ERROR"]  # AWS_LAMBDA_LOG_LEVEL=WARN silences INFO, DEBUG and TRACE
    records = [json.loads(line) for name, line in lines if name == "json" and line.startswith("{")]
    mine = [r for r in records if r.get("requestId") == "req-json"]
    assert [r["level"] for r in mine] == ["INFO", "INFO", "WARN", "ERROR", "DEBUG", "TRACE", "INFO"]
    assert mine[0]["message"] == "hello world" and mine[-1]["message"] == "first\nsecond"
    assert re.fullmatch(STAMP, mine[0]["timestamp"])


# -- handler resolution -----------------------------------------------------------------------------

def test_handler_resolution_cjs_esm_and_nested_paths(node_sdk, tmp_path):
    functions = [function("nested", "cjs", "app.nested.deep.handler"),
                 function("mjs-default", "esm", "default-export.handler"),
                 function("cjs-ext", "esm", "legacy.handler"),
                 function("type-module", "esm-type-module", "src/handlers/app.handlers.main"),
                 function("streaming", "cjs", "app.streaming")]

    async def scenario(service, lines):
        return await asyncio.gather(
            call(service, "nested"), call(service, "mjs-default", {"x": 1}), call(service, "cjs-ext"),
            call(service, "type-module", {"name": "ada"}),
            service.invoke("streaming", json.dumps({"word": "reply"}).encode()))

    nested, default, cjs, typed, streamed = run(node_sdk, tmp_path, functions, scenario)
    assert nested == "nested ok"
    assert default == {"from": "default export", "event": {"x": 1}}
    assert cjs == "from a .cjs file"
    assert typed["greeting"] == "hello ada" and typed["functionName"] == "type-module"
    assert streamed == b"streamed reply"  # awslambda.streamifyResponse


INIT_FAILURES = [
    ("broken", "missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'missing'"),
    ("broken", "badimport.handler", "Runtime.ImportModuleError", "Cannot find module 'wsctl-no-such-package'"),
    ("broken", "syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected end of input"),
    ("esm", "syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected end of input"),
    ("broken", "app.nope", "Runtime.HandlerNotFound", "app.nope is undefined or not exported"),
    ("broken", "app.notAFunction", "Runtime.HandlerNotFound", "app.notAFunction is not a function"),
    ("broken", "app", "Runtime.MalformedHandlerName", "Bad handler"),
    ("broken", "../broken/app.handler", "Runtime.MalformedHandlerName", "'../broken/app.handler' is not a valid"),
    ("broken", "throwsatload.handler", "RangeError", "refusing to load"),  # module-level errors keep their type
    ("broken", "initreject.handler", "Runtime.UnhandledPromiseRejection", "Error: rejected while loading"),
    # As on Lambda: the RIC maps only CommonJS's MODULE_NOT_FOUND; ESM's ERR_MODULE_NOT_FOUND stays "Error".
    ("esm", "missing.handler", "Error", "Cannot find package 'wsctl-no-such-package' imported from"),
]


@pytest.mark.parametrize("folder, handler, error_type, message", INIT_FAILURES,
                         ids=["%s/%s" % (case[0], case[1]) for case in INIT_FAILURES])
def test_init_failures_are_reported_with_the_runtime_error_type(node_sdk, tmp_path, folder, handler, error_type,
                                                                message):
    async def scenario(service, lines):
        failed = await failure(service, "broken")
        logged = await line_matching(lines, STAMP + r"\tundefined\tERROR\t(Uncaught Exception|Unhandled Promise "
                                            r"Rejection) \t\{.*")
        return failed, logged

    failed, logged = run(node_sdk, tmp_path, [function("broken", folder, handler)], scenario)
    assert failed.error_type == error_type
    assert message in failed.error_message
    document = json.loads(failed.payload)
    assert document["errorType"] == error_type and isinstance(document["trace"], list)
    assert '"errorType":"%s"' % error_type in logged


# -- Node.js 24 ------------------------------------------------------------------------------------------
CALLBACK_REFUSED = ("ERROR: AWS Lambda has removed support for callback-based function handlers starting with "
                    "Node.js 24. You need to modify this function to use a supported handler signature to use "
                    "Node.js 24 or later. For more information see "
                    "https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.")


def test_nodejs24_refuses_callback_handlers_and_the_callback_style_context_as_lambda_does(node_sdk, tmp_path):
    functions = [function("callback24", "cjs", "app.callback", runtime="nodejs24.x"),
                 function("async24", "cjs", "app.context", runtime="nodejs24.x"),
                 function("legacy24", "cjs", "app.legacy", runtime="nodejs24.x"),
                 function("callback22", "cjs", "app.callback", runtime="nodejs22.x")]

    async def scenario(service, lines):
        refused = await failure(service, "callback24")
        logged = await line_matching(lines, STAMP + r"	undefined	ERROR	Init Error 	\{.*")
        return (refused, logged, await call(service, "async24", {"n": 1}),
                await failure(service, "legacy24", {"mode": "succeed"}),
                await call(service, "callback22", {"wait": False}))

    refused, logged, answered, legacy, older = run(node_sdk, tmp_path, functions, scenario)
    assert refused.error_type == "Runtime.CallbackHandlerDeprecated"
    assert refused.error_message == CALLBACK_REFUSED
    assert '"errorType":"Runtime.CallbackHandlerDeprecated"' in logged
    assert answered["event"] == {"n": 1} and "waits" not in answered  # no callbackWaitsForEmptyEventLoop
    assert legacy.error_type == "TypeError" and "context.succeed is not a function" in legacy.error_message
    assert older == {"timersFired": 0}  # nodejs22.x still takes them


# -- module resolution: the code folder, then the runtime's SDK ---------------------------------------------

def _project_with_packages_above_the_code_folder(root: Path) -> Path:
    """project/node_modules holds a package and a fake @aws-sdk/client-dynamodb; project/fn is the
    function's code folder (Lambda's /var/task, with nothing above it)."""
    for name, body in (("only-above", "module.exports = 'above';"),
                       ("@aws-sdk/client-dynamodb", "module.exports = { fake: 'the project copy' };")):
        package = root / "node_modules" / name
        package.mkdir(parents=True)
        (package / "package.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "index.js"}))
        (package / "index.js").write_text(body)
    code = root / "fn"
    code.mkdir()
    (code / "app.js").write_text(
        "exports.handler = async () => {\n"
        "  const out = { sdk: require.resolve('@aws-sdk/client-dynamodb') };\n"
        "  try { require('only-above'); out.required = 'found'; } catch (error) { out.required = error.code; }\n"
        "  try { await import('only-above'); out.imported = 'found'; } catch (error) { out.imported = error.code; }\n"
        "  return out;\n};\n")
    (code / "esm.mjs").write_text(
        "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';\n"
        "export const handler = async () => ({ client: typeof DynamoDBClient,\n"
        "  sdk: import.meta.resolve('@aws-sdk/client-dynamodb') });\n")
    (code / "requires.js").write_text("require('only-above');\nexports.handler = async () => 'never';\n")
    (code / "imports.mjs").write_text("import value from 'only-above';\nexport const handler = async () => value;\n")
    return code


def test_modules_resolve_in_the_code_folder_then_the_runtimes_sdk_never_above_it(node_sdk, tmp_path):
    code = _project_with_packages_above_the_code_folder(tmp_path / "project")
    functions = [FunctionSpec(name, "nodejs20.x", code, handler) for name, handler in (
        ("cjs", "app.handler"), ("esm", "esm.handler"), ("requires", "requires.handler"),
        ("imports", "imports.handler"))]

    async def scenario(service, lines):
        return (await call(service, "cjs"), await call(service, "esm"), await failure(service, "requires"),
                await failure(service, "imports"))

    cjs, esm, requires, imports = run(node_sdk, tmp_path, functions, scenario)
    sdk = str(node_sdk[0] / "@aws-sdk" / "client-dynamodb") + os.sep
    assert (cjs["required"], cjs["imported"]) == ("MODULE_NOT_FOUND", "ERR_MODULE_NOT_FOUND")
    assert cjs["sdk"].startswith(sdk)  # the runtime's SDK, not the project's copy further up
    assert esm["client"] == "function" and file_path(esm["sdk"]).startswith(sdk)
    assert requires.error_type == "Runtime.ImportModuleError"
    assert "Cannot find module 'only-above'" in requires.error_message
    # ESM's ERR_MODULE_NOT_FOUND keeps its type, as the RIC leaves it
    assert imports.error_type == "Error"
    assert imports.error_message.startswith("Cannot find package 'only-above' imported from %s" % code)


# -- warnings ---------------------------------------------------------------------------------------------------

def test_the_sdks_version_warning_is_one_warn_line_and_other_warnings_print_as_node_prints_them(node_sdk,
                                                                                               tmp_path):
    async def scenario(service, lines):
        answer = await call(service, "warnings")
        await line_matching(lines, STAMP + r"	[0-9a-f-]{36}	ERROR	\(node:\d+\) CustomWarning: .*")
        return answer, [line for _, line in lines]

    answer, lines = run(node_sdk, tmp_path, [function("warnings", "cjs", "app.warnings")], scenario)
    assert answer == "function"
    version = [line for line in lines if "NodeVersionSupportWarning" in line]
    assert version and all("\tWARN\t" in line and "\tERROR\t" not in line for line in version), version
    assert any(line.endswith("\tWARN\tNodeVersionSupportWarning: The AWS SDK for JavaScript (v3) versions published "
                             "after the first week of January 2027 will require node >=22. You are running node "
                             "v20.0.0.") for line in version)


# -- the AWS SDK v3 -------------------------------------------------------------------------------

def test_sdk_resolves_from_the_cache_and_the_functions_own_copy_wins(node_sdk, tmp_path):
    modules = node_sdk[0]
    functions = [function("esm", "esm", "handler.handler"),
                 function("type-module", "esm-type-module", "src/handlers/app.handlers.main"),
                 function("cjs", "cjs", "app.sdk")]

    async def scenario(service, lines):
        return await asyncio.gather(call(service, "esm", request_id="req-esm"),
                                    call(service, "type-module", {"name": "x"}), call(service, "cjs"))

    esm, typed, cjs = run(node_sdk, tmp_path, functions, scenario)
    sdk = str(modules / "@aws-sdk") + os.sep
    # An .mjs handler importing @aws-sdk/client-dynamodb and lib-dynamodb: the emulator's cache.
    assert file_path(esm["resolved"]).startswith(sdk + "client-dynamodb" + os.sep), esm
    assert esm["region"] == REGION and esm["requestId"] == "req-esm"
    # type: module .js handler: its own fake @aws-sdk/client-sts wins, client-dynamodb comes from the cache.
    assert typed["sts"] == "own copy (esm)"
    own = FIXTURES / "esm-type-module" / "node_modules" / "@aws-sdk" / "client-sts" / "index.js"
    assert file_path(typed["stsResolved"]) == str(own)
    assert file_path(typed["dynamodbResolved"]).startswith(sdk + "client-dynamodb" + os.sep)
    assert typed["dynamodbClient"] == "function"
    # CommonJS require: the same rule through NODE_PATH.
    assert cjs["sts"] == "own copy (cjs)"
    assert cjs["stsPath"] == str(FIXTURES / "cjs/node_modules/@aws-sdk/client-sts/index.js")
    assert cjs["dynamodbPath"].startswith(str(modules / "@aws-sdk/client-dynamodb") + os.sep)
    assert cjs["dynamodbClient"] == "function"


def test_sdk_is_installed_once_at_the_pinned_version(node_sdk):
    modules, said = node_sdk
    assert said == ["installing the AWS SDK for JavaScript v3 %s for Node functions (once, into %s)"
                    % (sdks.NODE_V3.version, modules.parent)]
    assert modules.parent.name.startswith(sdks.NODE_V3.version + "-")
    for package in sdks.NODE_V3.packages:
        manifest = json.loads((modules / package / "package.json").read_text())
        assert manifest["version"] == sdks.NODE_V3.version, package
    again = []
    assert sdks.ensure(modules.parent.parent.parent, sdks.NODE_V3, again.append) == modules  # cached: silent
    assert again == []


FAKE_NPM = """#!/bin/sh
# A stand-in for npm: records the call, then installs every dependency of ./package.json as an empty package.
echo "$@" >> "%(calls)s"
sleep 0.3
if [ -n "$FAKE_NPM_FAIL" ]; then
  echo "npm error code E404" >&2
  echo "npm error 404 Not Found - GET https://registry.example/@aws-sdk%%2fclient-nope - Not found" >&2
  echo "npm error A complete log of this run can be found in: /tmp/x.log" >&2
  exit 1
fi
prefix="$(pwd)"
for name in $(sed -n 's/^ *"\\(@aws-sdk\\/[a-z0-9-]*\\)": .*/\\1/p' package.json); do
  mkdir -p "$prefix/node_modules/$name" && echo '{}' > "$prefix/node_modules/$name/package.json"
done
"""


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    calls = tmp_path / "npm-calls"
    script = folder / "npm"
    script.write_text(FAKE_NPM % {"calls": calls})
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (folder, os.pathsep, os.environ.get("PATH", "")))
    return calls


def test_sdk_install_is_safe_when_two_emulators_start_at_once(tmp_path, fake_npm):
    said = []
    results = []
    threads = [threading.Thread(target=lambda: results.append(sdks.ensure(tmp_path / "cache", sdks.NODE_V3, said.append)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and results[0] == results[1]
    assert len(said) == 1
    assert len(fake_npm.read_text().splitlines()) == 1  # one install; the other waited for it
    assert sorted(p.name for p in results[0].parent.parent.iterdir()) == [".lock", results[0].parent.name]


def test_sdk_package_list_change_installs_a_new_folder(tmp_path, fake_npm):
    first = sdks.ensure(tmp_path / "cache", sdks.NODE_V3, lambda text: None)
    more = dataclasses.replace(sdks.NODE_V3, packages=sdks.NODE_V3.packages + ("@aws-sdk/client-kinesis",))
    said = []
    second = sdks.ensure(tmp_path / "cache", more, said.append)
    assert second != first and (second / "@aws-sdk/client-kinesis/package.json").is_file()
    assert len(said) == 1 and len(fake_npm.read_text().splitlines()) == 2


def test_sdk_install_failure_says_what_failed_in_one_line(tmp_path, fake_npm, monkeypatch):
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    with pytest.raises(WsctlError) as caught:
        sdks.ensure(tmp_path / "cache", sdks.NODE_V3, lambda text: None)
    message = str(caught.value)
    assert "\n" not in message
    assert "E404: 404 Not Found - GET https://registry.example/@aws-sdk%2fclient-nope" in message
    assert "start the emulator again" in message
    assert [p.name for p in (tmp_path / "cache" / "node-sdk").iterdir()] == [".lock"]  # nothing half-installed


def test_sdk_install_without_npm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm there
    with pytest.raises(WsctlError, match="npm is not on PATH"):
        sdks.ensure(tmp_path / "cache", sdks.NODE_V3, lambda text: None)
