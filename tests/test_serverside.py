"""`broadcast --server-side` and `send --room --server-side`: the fan-out runs in the deployed
function, N copies each over one segment of the registry.

Locally the whole path is real: the CLI invokes the emulator's Lambda Invoke API, the bundled
function (in its execution environments) scans its segment and posts through the management
API, and real clients count what they receive. The handler's segment logic also runs in
process against moto's DynamoDB.
"""

import base64
import io
import json
import time
from contextlib import ExitStack

import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import Emulator, unique
from lambda_src import fanout, keys
from support.live_support import drain, drop, whoami, wsctl
from wsctl.exitstatus import ExitStatus
from wsctl.fanout import serverside
from wsctl.fanout.report import from_segments


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    """An emulator of this module's own: a dropped socket's $disconnect is lost (a stale entry)."""
    instance = Emulator(tmp_path_factory.mktemp("serverside"), ["--quiet", "--fault", "disconnect-loss=1"])
    yield instance
    instance.stop()


@pytest.fixture
def clients(lossy):
    registry = lossy.registry()
    for item in list(registry.scan_connections(include_expired=True)):  # earlier tests' entries
        registry.delete_connection(item["connectionId"])
    with ExitStack() as stack:
        def open_(user: str):
            ws = stack.enter_context(connect(lossy.url_for(user)))
            ws.cid = whoami(ws)
            return ws
        yield open_


def test_a_server_side_broadcast_reaches_every_live_connection_exactly_once_and_prunes(lossy, clients):
    live = [clients(unique("u")) for _ in range(9)]
    stale = clients(unique("gone"))
    drop(stale)
    time.sleep(0.3)
    payload = '{"type": "broadcast", "text": "from inside"}'
    document = json.loads(_ok(wsctl(lossy, "broadcast", "--server-side", "--segments", "4", payload, "-o", "json")))
    assert document["serverSide"] is True and document["function"] == "wsctl-app"
    assert document["recipients"] == 10 and document["pruned"] == 1
    assert document["counts"]["delivered"] == 9 and document["counts"]["gone"] == 1
    assert sorted(s["segment"] for s in document["segments"]) == [0, 1, 2, 3]
    assert sum(s["recipients"] for s in document["segments"]) == 10  # the segments split the registry
    assert all(s["complete"] and s["totalSegments"] == 4 for s in document["segments"])
    assert [drain(ws, 0.3 if ws is live[0] else 0) for ws in live] == [[payload.encode()]] * 9  # once each
    assert stale.cid not in {i["connectionId"] for i in lossy.registry().scan_connections(include_expired=True)}


def test_a_server_side_room_send_reaches_the_room_only(lossy, clients):
    room = unique("room")
    members = [clients(unique("m")) for _ in range(3)]
    outsider = clients(unique("o"))
    for ws in members:
        ws.send(json.dumps({"action": "join", "room": room}))
        assert json.loads(ws.recv(timeout=5))["type"] == "joined"
    result = wsctl(lossy, "send", "--room", room, "--server-side", "room news")
    assert result.exit_code == 0, result.stderr
    assert "3 recipient(s)" in result.stdout and "segment 0: delivered 3" in result.stdout
    assert [drain(ws, 0.3 if ws is members[0] else 0) for ws in members] == [[b"room news"]] * 3
    assert drain(outsider, 0.2) == []
    empty = wsctl(lossy, "send", "--room", unique("nobody"), "--server-side", "hi")
    assert empty.exit_code == ExitStatus.NOT_FOUND and "has no live member" in empty.stderr


@pytest.mark.parametrize("args, words", [
    (["broadcast", "--server-side", "--segments", "0", "x"], "--segments must be between 1 and 100"),
    (["broadcast", "--server-side", "--segments", "101", "x"], "--segments must be between 1 and 100"),
    (["send", "--user", "bob", "--server-side", "x"], "use it with --room only"),
])
def test_bad_server_side_options_are_one_line_errors(lossy, args, words):
    result = wsctl(lossy, *args)
    assert result.exit_code == 2 and words in result.stderr, (result.stdout, result.stderr)
    assert result.stderr.strip().count("\n") == 0


# -- the summed report (pure) ------------------------------------------------------------------------------
class Answer(dict):
    """What boto3's Lambda client returns: a StreamingBody-like Payload."""

    def __init__(self, document, function_error=None):
        super().__init__(Payload=io.BytesIO(json.dumps(document).encode()))
        if function_error:
            self["FunctionError"] = function_error


def _report(segment, delivered, **extra):
    counts = {"delivered": delivered, "gone": 0, "throttled": 0, "forbidden": 0, "failed": 0}
    return {"wsctlFanout": 1, "segment": segment, "totalSegments": 3, "recipients": delivered, "counts": counts,
            "pruned": 0, "complete": True, "unreached": 0, "scanComplete": True, **extra}


def test_a_segment_that_times_out_or_stops_early_is_named_and_the_run_is_partial():
    answers = {0: Answer(_report(0, 5)),
               1: Answer({"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: x Error: Task timed out"},
                         "Unhandled"),
               2: Answer(_report(2, 7, complete=False, unreached=40, scanComplete=False,
                                 error="stopped 3000 ms before the function's timeout"))}
    seen = []
    report = serverside.run(lambda event: answers[event["segment"]], "fn",
                            serverside.events(b"x", "https://e/dev", 3, True), progress=seen.append)
    assert sorted(s.number for s in seen) == [0, 1, 2]
    summed = from_segments(report, "here")
    assert summed.counts["delivered"] == 12 and not summed.complete and summed.failed_segments == [1, 2]
    assert summed.exit_status() == ExitStatus.INCOMPLETE and summed.problem().startswith("segment(s) 1, 2 did not")
    assert report.segments[1].error.startswith("timed out") and report.segments[2].report["unreached"] == 40


def test_a_function_that_predates_the_fan_out_says_what_to_run():
    old = Answer({"errorType": "KeyError", "errorMessage": "'requestContext'"}, "Unhandled")
    with pytest.raises(Exception, match="run `wsctl deploy` to update it"):
        serverside.run(lambda event: old, "fn", serverside.events(b"x", "https://e/dev", 2, True))


def test_a_denied_invoke_names_the_missing_permission():
    from botocore.exceptions import ClientError

    def denied(event):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "Invoke")

    with pytest.raises(Exception, match="needs lambda:InvokeFunction") as raised:
        serverside.run(denied, "wsctl-app", serverside.events(b"x", "https://e/dev", 2, True))
    assert raised.value.exit_code == ExitStatus.FORBIDDEN


# -- the AWS path: the calls it makes, on moto ---------------------------------------------------------------
def test_on_aws_the_cli_invokes_the_stacks_function_once_per_segment(aws, monkeypatch, capsys):
    """moto cannot run the function (it needs Docker), so the Invoke calls are recorded at botocore's
    before-send and answered as Lambda would; everything before them is wsctl's real AWS path."""
    import boto3
    from botocore.awsrequest import AWSResponse

    from wsctl.targets.stack import StackTarget as Target

    calls = []

    def answer_invoke(request, **kwargs):
        event = json.loads(request.body)
        calls.append((request.url, event))
        body = json.dumps(_report(event["segment"], 2)).encode()
        return AWSResponse(request.url, 200, {"X-Amz-Executed-Version": "$LATEST"}, _Raw(body))

    session = boto3.Session(region_name="eu-west-1")
    session.events.register("before-send.lambda.Invoke", answer_invoke)
    target = Target(stack="shop", stage="prod", boto_session=session)
    monkeypatch.setattr(Target, "management_endpoint", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
    from wsctl.ops import send_server_side

    report = send_server_side(target, b'{"n": 1}', 3)
    assert report.complete and report.counts["delivered"] == 6 and report.exit_status() == 0
    assert len(calls) == 3
    assert all("/functions/wsctl-shop/invocations" in url for url, _ in calls)
    events = sorted((event for _, event in calls), key=lambda e: e["segment"])
    assert [(e["segment"], e["totalSegments"]) for e in events] == [(0, 3), (1, 3), (2, 3)]
    assert {e["endpoint"] for e in events} == {"https://abc123.execute-api.eu-west-1.amazonaws.com/prod"}
    assert {base64.b64decode(e["data"]) for e in events} == {b'{"n": 1}'}


@pytest.mark.parametrize("reserved, quota, segments, refused", [
    (3, None, 4, "its reserved concurrency is 3"),
    (3, None, 3, None),
    (None, "60", 61, "the account's unreserved concurrency in this region is 60"),
    (None, "60", 60, None),
])
def test_on_aws_segments_the_function_cannot_run_at_once_are_refused_before_any_invoke(
        aws, monkeypatch, reserved, quota, segments, refused):
    import boto3
    import botocore.handlers
    from botocore.awsrequest import AWSResponse
    from typer.testing import CliRunner

    from wsctl.cli import app

    runner = CliRunner()
    base = ["--stack", "cap", "--region", "us-east-1"]
    assert runner.invoke(app, ["deploy", *base]).exit_code == 0
    if reserved is not None:
        boto3.client("lambda", region_name="us-east-1").put_function_concurrency(
            FunctionName="wsctl-cap", ReservedConcurrentExecutions=reserved)
    if quota is not None:
        monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", quota)
    invokes = []

    def answer_invoke(request, **_):  # moto cannot run the function: each copy answers as it would
        event = json.loads(request.body)
        invokes.append(event["segment"])
        body = json.dumps(dict(_report(event["segment"], 0), totalSegments=segments)).encode()
        return AWSResponse(request.url, 200, {}, _Raw(body))

    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, (
        "before-send.lambda.Invoke", answer_invoke)])
    result = runner.invoke(app, ["broadcast", "--server-side", "--segments", str(segments), "hi", *base])
    if refused:
        assert result.exit_code == ExitStatus.USAGE and "Traceback" not in result.output
        (line,) = result.stderr.strip().splitlines()
        assert "%d segment(s) are more than function wsctl-cap can run at once (%s" % (segments, refused) in line
        assert invokes == []
    else:
        assert result.exit_code == 0, result.output
        assert sorted(invokes) == list(range(segments))


class _Raw(io.BytesIO):
    def stream(self, *args, **kwargs):
        yield self.getvalue()


# -- the handler's side, in process on moto ---------------------------------------------------------------------
class _Clock:
    def __init__(self, remaining_ms):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


class _Posts:
    def __init__(self, gone=()):
        self.sent, self.gone = [], set(gone)

    def post_to_connection(self, ConnectionId, Data):
        from botocore.exceptions import ClientError

        if ConnectionId in self.gone:
            raise ClientError({"Error": {"Code": "GoneException"}, "ResponseMetadata": {"HTTPStatusCode": 410}},
                              "PostToConnection")
        self.sent.append(ConnectionId)


class _Throttling(_Posts):
    """API Gateway at the account's rate: each id is answered 429 its first `times` posts."""

    def __init__(self, times):
        super().__init__()
        self.times, self.tries = times, {}

    def post_to_connection(self, ConnectionId, Data):
        from botocore.exceptions import ClientError

        self.tries[ConnectionId] = self.tries.get(ConnectionId, 0) + 1
        if self.tries[ConnectionId] <= self.times:
            raise ClientError({"Error": {"Code": "LimitExceededException"},
                               "ResponseMetadata": {"HTTPStatusCode": 429}}, "PostToConnection")
        super().post_to_connection(ConnectionId, Data)


@pytest.fixture
def registry(aws):
    import boto3

    from lambda_src.registry import Registry

    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**keys.table_definition("fan"))
    registry = Registry(client, "fan")
    now = int(time.time())
    for i in range(30):
        registry.put_connection("c%02d=" % i, "u%d" % i, now * 1000, now + 3600, "https://e/dev")
    return registry


def test_the_segments_of_a_parallel_scan_cover_the_registry_once(registry):
    posts = _Posts(gone={"c07="})
    reports = [fanout.handle({"wsctl": "fanout", "segment": i, "totalSegments": 4, "data": "aGk=", "endpoint": "x"},
                             _Clock(60000), registry, posts) for i in range(4)]
    assert sorted(posts.sent) == sorted("c%02d=" % i for i in range(30) if i != 7)
    assert sum(r["recipients"] for r in reports) == 30 and sum(r["pruned"] for r in reports) == 1
    assert registry.get_connection("c07=") is None


def test_a_segment_near_its_timeout_stops_and_says_what_it_did_not_reach(registry, monkeypatch):
    monkeypatch.setattr(fanout, "BATCH", 10)
    posts = _Posts()
    report = fanout.handle({"wsctl": "fanout", "data": "aGk=", "endpoint": "x"}, _Clock(1000), registry, posts)
    assert report["complete"] is False and report["unreached"] == 10 and not report["scanComplete"]
    assert posts.sent == [] and "timeout" in report["error"]


def _ok(result):
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def test_a_segment_posts_again_what_was_throttled_and_counts_it(registry, monkeypatch):
    monkeypatch.setattr(fanout, "THROTTLE_PAUSE_S", 0.001)
    posts = _Throttling(times=2)
    report = fanout.handle({"wsctl": "fanout", "data": "aGk=", "endpoint": "x"}, _Clock(60000), registry, posts)
    assert sorted(posts.sent) == sorted("c%02d=" % i for i in range(30))  # each once, in the end
    assert report["counts"]["delivered"] == 30 and report["counts"]["throttled"] == 0 and report["complete"]
    assert report["throttles"] == 60 and report["retried"] == 60


def test_a_segment_throttled_past_its_rounds_or_its_time_says_so(registry, monkeypatch):
    monkeypatch.setattr(fanout, "THROTTLE_PAUSE_S", 0.001)
    posts = _Throttling(times=100)
    report = fanout.handle({"wsctl": "fanout", "data": "aGk=", "endpoint": "x"}, _Clock(60000), registry, posts)
    assert posts.sent == [] and report["counts"]["throttled"] == 30 and report["complete"] is False
    assert set(posts.tries.values()) == {fanout.THROTTLE_ROUNDS + 1}
    monkeypatch.setattr(fanout, "THROTTLE_PAUSE_S", 0.2)  # a pause would cross into the reserve
    near_the_end = fanout.handle({"wsctl": "fanout", "data": "aGk=", "endpoint": "x"},
                                 _Clock(fanout.RESERVE_MS + 100), registry, _Throttling(times=100))
    assert near_the_end["retried"] == 0 and near_the_end["counts"]["throttled"] == 30  # no time to wait


def test_the_cli_sums_the_segments_throttles():
    report = from_segments(serverside.ServerReport("fn", [serverside.Segment(0, {"throttles": 3, "retried": 2,
                                                                                 "complete": True}),
                                                          serverside.Segment(1, {"throttles": 4, "retried": 4,
                                                                                 "complete": True}),
                                                          serverside.Segment(2, None, error="timed out")]), "here")
    assert (report.throttles, report.retries, report.failed_segments) == (7, 6, [2])
