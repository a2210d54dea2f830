"""The fan-out engine: its pure rules, the engine over a scripted transport,
the boto3 path against moto (made strict), and lean/boto3 parity against the
emulator with injected 410/429/500.

moto's apigatewaymanagementapi is lax (any id is connected, posts are
concatenated, never 410), so the moto tests patch its backend to record each
post on its own and to answer 410/429/403 where the test says so. Outcomes
that moto cannot produce honestly (a socket really gone, a throttling
gateway) are checked against the emulator.
"""

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import Emulator, unique
from support.live_support import drain, whoami, wsctl
from support.strict_management import StrictMoto
from lambda_src import keys
from wsctl import fanout
from wsctl.exitstatus import ExitStatus
from wsctl.fanout.policy import (DELIVERED, FAILED, FORBIDDEN, GONE, THROTTLED, Answer, RetryPolicy, outcome_of,
                                 retryable)
from wsctl.fanout.transport import _error_code

REGION = "us-east-1"


# -- classification ----------------------------------------------------------------------
@pytest.mark.parametrize("status, code, expected", [
    (410, None, GONE),                       # a bare 410 (no error type): botocore's ClientError "410"
    (410, "410", GONE),
    (410, "GoneException", GONE),
    (400, "GoneException", GONE),            # the code alone is enough
    (403, None, FORBIDDEN),
    (403, "ForbiddenException", FORBIDDEN),
    (403, "AccessDeniedException", FORBIDDEN),
    (403, "InvalidSignatureException", FORBIDDEN),
    (403, "MissingAuthenticationTokenException", FORBIDDEN),
    (403, "SomethingNewException", FORBIDDEN),  # any 403, whatever its code
    (429, None, THROTTLED),
    (429, "LimitExceededException", THROTTLED),
    (400, "LimitExceededException", THROTTLED),
    (500, "InternalServerErrorException", FAILED),
    (502, None, FAILED),
    (503, None, FAILED),
    (504, None, FAILED),
    (413, "PayloadTooLargeException", FAILED),
    (400, "BadRequestException", FAILED),
    (None, None, FAILED),                    # no HTTP answer at all
    (200, None, DELIVERED),
])
def test_outcome_of_an_answer(status, code, expected):
    assert outcome_of(Answer(status, code)) == expected


def test_post_succeeds_only_on_200_and_delete_on_200_or_204():
    assert outcome_of(Answer(200), (200,)) == DELIVERED
    assert outcome_of(Answer(204), (200,)) != DELIVERED
    assert outcome_of(Answer(204), (200, 204)) == DELIVERED


@pytest.mark.parametrize("answer, expected", [
    (Answer(429), True), (Answer(400, "LimitExceededException"), True),
    (Answer(500), True), (Answer(502), True), (Answer(503), True), (Answer(504), True),
    (Answer(None, None, "ClientConnectorError"), True),
    (Answer(410), False), (Answer(403), False), (Answer(403, "AccessDeniedException"), False),
    (Answer(413, "PayloadTooLargeException"), False), (Answer(400), False), (Answer(200), False),
])
def test_what_is_retried(answer, expected):
    assert retryable(answer) is expected


def test_retry_delay_is_full_jitter_within_the_capped_exponential_bound():
    policy = RetryPolicy(max_attempts=5, base=0.05, cap=2.0)

    class Edges:  # uniform(a, b) answers one end of the interval
        def __init__(self, upper):
            self.upper = upper

        def uniform(self, a, b):
            return b if self.upper else a

    for attempt, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (12, 2.0)]:
        assert policy.delay(attempt, Edges(True)) == pytest.approx(bound)
        assert policy.delay(attempt, Edges(False)) == 0
    rng = random.Random(1)
    samples = [policy.delay(3, rng) for _ in range(2000)]
    assert 0 <= min(samples) < 0.02 and 0.38 < max(samples) <= 0.4  # spread over the whole interval


@pytest.mark.parametrize("headers, body, expected", [
    ({"x-amzn-ErrorType": "GoneException"}, b"", "GoneException"),
    ({"x-amzn-ErrorType": "LimitExceededException:http://internal.amazon.com/"}, b"{}", "LimitExceededException"),
    ({}, b'{"__type": "com.amazonaws#ForbiddenException", "message": "x"}', "ForbiddenException"),
    ({}, b'{"code": "AccessDeniedException"}', "AccessDeniedException"),
    ({}, b"", None),
    ({}, b"<html>Gone</html>", None),        # real 410 bodies are often not JSON
    ({}, b'["not", "an", "object"]', None),
])
def test_lean_transport_reads_the_error_code_as_botocore_does(headers, body, expected):
    assert _error_code(headers, body) == expected


# -- the engine over a scripted transport ----------------------------------------------------
class Scripted:
    """Answers per connection id, in order (the last one repeats); counts calls and concurrency."""

    def __init__(self, script: dict, delay: float = 0.0):
        self.script = {cid: list(answers) for cid, answers in script.items()}
        self.calls: list[tuple[str, str, bytes | None]] = []
        self.delay = delay
        self.in_flight = self.most_in_flight = 0

    async def call(self, method, connection_id, data=None):
        self.calls.append((method, connection_id, data))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        answers = self.script.get(connection_id, [Answer(200)])
        return answers.pop(0) if len(answers) > 1 else answers[0]


FAST = RetryPolicy(max_attempts=5, max_throttled_attempts=7, base=0.001, cap=0.002)


def run(transport, ids, method="POST", concurrency=8, **kwargs):
    return asyncio.run(fanout.run(transport, method, ids, b"payload" if method == "POST" else None, concurrency,
                                  policy=FAST, seed=1, **kwargs))


def test_engine_outcomes_retries_and_dedup():
    transport = Scripted({
        "ok": [Answer(200)],
        "gone": [Answer(410, "GoneException")],
        "busy-then-ok": [Answer(429, "LimitExceededException"), Answer(429, "LimitExceededException"), Answer(200)],
        "flaky-then-ok": [Answer(500), Answer(None, None, "reset"), Answer(200)],
        "always-busy": [Answer(429, "LimitExceededException")],
        "always-500": [Answer(503)],
        "too-big": [Answer(413, "PayloadTooLargeException")],
    })
    ids = ["ok", "gone", "busy-then-ok", "flaky-then-ok", "always-busy", "always-500", "too-big", "ok"]
    report = run(transport, ids)
    outcomes = {r.connection_id: (r.outcome, r.attempts) for r in report.results}
    assert outcomes == {"ok": (DELIVERED, 1), "gone": (GONE, 1), "busy-then-ok": (DELIVERED, 3),
                        "flaky-then-ok": (DELIVERED, 3), "always-busy": (THROTTLED, 7),
                        "always-500": ("failed", 5), "too-big": ("failed", 1)}
    assert [r.connection_id for r in report.results] == list(dict.fromkeys(ids))  # once each, in order
    assert len(transport.calls) == 1 + 1 + 3 + 3 + 7 + 5 + 1  # no call beyond the outcome's attempts
    assert all(data == b"payload" for _, _, data in transport.calls)
    assert report.retries == 2 + 2 + 6 + 4 and report.throttles == 2 + 7  # every 429 counted
    assert report.counts() == {"delivered": 3, "gone": 1, "throttled": 1, "forbidden": 0, "failed": 2,
                               "skipped": 0}
    assert not report.complete and report.stopped is None


def test_engine_a_403_stops_the_run_and_leaves_the_rest_skipped():
    ids = ["a", "b", "denied", "c", "d", "e"]
    transport = Scripted({"denied": [Answer(403, "AccessDeniedException", "not authorized to perform "
                                                                         "execute-api:ManageConnections")]})
    report = run(transport, ids, concurrency=1)
    assert [r.outcome for r in report.results] == [DELIVERED, DELIVERED, FORBIDDEN, "skipped", "skipped", "skipped"]
    assert "ManageConnections" in report.stopped
    assert len(transport.calls) == 3  # the 403 is not retried, and nothing is called after it
    assert not report.complete


def test_engine_bounds_concurrency_and_reports_progress():
    transport = Scripted({}, delay=0.005)
    seen = []
    report = run(transport, ["c%d" % i for i in range(40)], concurrency=4, progress=lambda d, t: seen.append((d, t)))
    assert transport.most_in_flight == 4
    assert report.counts()["delivered"] == 40 and report.complete
    assert seen[-1] == (40, 40) and len(seen) == 40


def test_engine_streams_ids_as_they_arrive_each_once_and_starts_before_the_last_page():
    transport = Scripted({}, delay=0.002)

    async def scenario():
        stream = fanout.IdStream()
        running = asyncio.create_task(fanout.run(transport, "POST", stream, b"p", 4, policy=FAST, seed=1))
        stream.feed(["a", "b", "c"])
        await asyncio.sleep(0.05)
        started_before_close = len(transport.calls)
        stream.feed(["c", "d"])  # a duplicate across pages is called once
        stream.feed([])
        stream.close()
        return started_before_close, await running

    started_before_close, report = asyncio.run(scenario())
    assert started_before_close == 3  # the first page went out while the "scan" was still running
    assert [r.connection_id for r in report.results] == ["a", "b", "c", "d"]
    assert [cid for _, cid, _ in transport.calls] == ["a", "b", "c", "d"]
    assert report.complete


def test_an_empty_stream_ends_with_no_calls():
    async def scenario():
        stream = fanout.IdStream()
        stream.close()
        return await fanout.run(Scripted({}), "POST", stream, b"p", 8, policy=FAST)

    report = asyncio.run(scenario())
    assert report.results == [] and report.complete


def test_get_and_delete_accept_their_own_success_codes():
    transport = Scripted({"x": [Answer(204)]})
    assert run(transport, ["x"], method="DELETE").results[0].outcome == DELIVERED
    assert transport.calls == [("DELETE", "x", None)]


# -- the boto3 path against moto, made strict ------------------------------------------------------
@pytest.fixture
def deployed(aws, monkeypatch):
    """A real `wsctl deploy` into moto; returns (target, registry, strict management backend, urls seen)."""
    import boto3

    from lambda_src.registry import Registry
    from wsctl.apispec import default_spec
    from wsctl.deploy import DeployOptions, plan_deploy, run_plan
    from wsctl.targets.stack import StackTarget as Target

    session = boto3.Session(region_name=REGION)
    target = Target(stack="ops", boto_session=session, transport="boto3")  # moto intercepts boto3 in-process
    _, plan = plan_deploy(target, DeployOptions(spec=default_spec("jwt")))
    run_plan(target, plan)
    urls = []
    session.events.register("before-send.apigatewaymanagementapi",
                            lambda request, **_: urls.append((request.method, request.url)))
    registry = Registry(boto3.client("dynamodb", region_name=REGION), target.table)
    return target, registry, StrictMoto(monkeypatch), urls


def register(registry, target, user, count, ttl_offset=3600):
    now = time.time()
    ids = ["%s%02d-AbC_d=" % (user, i) for i in range(count)]  # '=', '-', '_' as real ids have
    for cid in ids:
        registry.put_connection(cid, user, int(now * 1000), int(now) + ttl_offset, target.management_endpoint)
    return ids


def table_ids(target) -> set[str]:
    """Connection ids in the table, read back with plain boto3 (not wsctl's reader)."""
    import boto3

    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=target.table)["Items"]
    return {keys.connection_id_of(item["PK"]["S"]) for item in items}


def test_moto_deliver_posts_each_payload_once_and_prunes_gone(deployed):
    from wsctl import ops

    target, registry, backend, urls = deployed
    ids = register(registry, target, "alice", 4)
    backend.gone.add(ids[1])
    payload = json.dumps({"type": "notice", "text": "caf\u00e9 \u2603"}, ensure_ascii=False).encode()
    assert ops.recipients(target, user="alice") == sorted(ids)
    report = asyncio.run(ops.send(target, payload, user="alice"))
    assert report.counts["delivered"] == 3 and report.counts["gone"] == 1 and report.complete
    assert sorted(backend.posts) == sorted((REGION, cid, payload) for cid in ids if cid != ids[1])
    assert report.pruned == 1 and table_ids(target) == set(ids) - {ids[1]}
    assert report.exit_status() == ExitStatus.OK and report.problem() is None
    # every call went to this stack's stage, with the id percent-encoded
    api = target.api_id
    assert sorted(url for _, url in urls) == sorted(
        "https://%s.execute-api.us-east-1.amazonaws.com/dev/@connections/%s" % (api, quote(cid, safe=""))
        for cid in ids)


def test_a_stage_the_stack_does_not_serve_is_said_before_any_post(deployed):
    """A post to a stage that does not exist is refused with 403, which would read as a missing
    permission: the stage is checked once, with the API id, before anything is sent."""
    from typer.testing import CliRunner

    from wsctl.cli import app

    target, registry, backend, urls = deployed
    register(registry, target, "erin", 2)
    for args in (["broadcast", "hi"], ["send", "--user", "erin", "hi"], ["connections", "list", "--live"],
                 ["disconnect", "erin00-AbC_d="]):
        result = CliRunner().invoke(app, [*args, "--stack", "ops", "--stage", "prod", "--region", REGION,
                                          "--transport", "boto3"])
        assert result.exit_code == ExitStatus.NOT_FOUND, (args, result.stderr)
        assert result.stderr.strip() == "error: stage prod does not exist (the stack serves dev): give --stage"
    assert backend.calls == [] and urls == []


def test_moto_throttling_is_retried_by_the_engine_not_by_botocore(deployed):
    from wsctl import ops

    target, registry, backend, _ = deployed
    ids = register(registry, target, "bob", 3)
    backend.throttle = {ids[0]: 2, ids[2]: 20}  # ids[2] stays throttled past every attempt
    delivery = asyncio.run(ops.deliver(target, ids, b"hi"))
    by_id = {r.connection_id: r for r in delivery.engine.results}
    assert (by_id[ids[0]].outcome, by_id[ids[0]].attempts) == (DELIVERED, 3)
    assert (by_id[ids[1]].outcome, by_id[ids[1]].attempts) == (DELIVERED, 1)
    assert (by_id[ids[2]].outcome, by_id[ids[2]].attempts) == (THROTTLED, 10)  # 429s are retried longer
    # one backend call per engine attempt: botocore itself made no retry
    assert [c for c in backend.calls if c[1] == ids[0]] == [("POST", ids[0])] * 3
    assert [c for c in backend.calls if c[1] == ids[2]] == [("POST", ids[2])] * 10
    assert sorted(cid for _, cid, _ in backend.posts) == sorted(ids[:2])
    assert delivery.pruned == 0 and table_ids(target) == set(ids)  # throttled is not gone
    assert delivery.exit_status() == ExitStatus.INCOMPLETE and delivery.not_delivered == [ids[2]]


def test_moto_forbidden_stops_and_exits_forbidden(deployed):
    from wsctl import ops

    target, registry, backend, _ = deployed
    ids = register(registry, target, "carol", 4)
    backend.denied.add(ids[0])
    delivery = asyncio.run(ops.deliver(target, ids, b"hi", concurrency=1))
    assert [r.outcome for r in delivery.engine.results] == [FORBIDDEN, "skipped", "skipped", "skipped"]
    assert backend.posts == [] and delivery.pruned == 0 and table_ids(target) == set(ids)
    assert delivery.exit_status() == ExitStatus.FORBIDDEN
    assert "ManageConnections on arn:aws:execute-api:us-east-1:<account>:" in delivery.problem()


def test_moto_prune_removes_gone_expired_and_orphaned_only(deployed):
    from wsctl import ops

    target, registry, backend, _ = deployed
    live = register(registry, target, "dan", 2)
    gone = register(registry, target, "eve", 1)
    expired = register(registry, target, "fay", 1, ttl_offset=-60)
    registry.join(live[0], "lobby", int(time.time()) + 3600, 1)
    registry.join("orphan-XyZ=", "lobby", int(time.time()) + 3600, 1)  # a membership without its connection
    backend.gone.update(gone)
    dry = asyncio.run(ops.prune(target, dry_run=True)).document()
    assert (dry["checked"], dry["live"], dry["gone"], dry["expired"], dry["orphaned"]) == (4, 2, 1, 1, 1)
    assert dry["removed"] == 0 and dry["wouldRemove"] == 3
    assert table_ids(target) == set(live + gone + expired + ["orphan-XyZ="])  # a dry run changes nothing
    report = asyncio.run(ops.prune(target)).document()
    assert report["removed"] == 3 and sorted(report["removedIds"]) == sorted(gone + expired + ["orphan-XyZ="])
    assert table_ids(target) == set(live)
    assert registry.rooms_of(live[0]) == ["lobby"]  # a live member keeps its room
    # expired entries are not asked about: only the non-expired ones got a GetConnection
    assert sorted(cid for method, cid in backend.calls if method == "GET") == sorted((live + gone) * 2)
    assert backend.posts == []  # prune sends nobody a message


def test_moto_disconnect_kicks_then_reports_gone(deployed):
    from wsctl import ops

    target, registry, backend, _ = deployed
    cid, = register(registry, target, "gus", 1)
    assert asyncio.run(ops.disconnect(target, cid)).outcome == "disconnected"
    assert table_ids(target) == {cid}  # a kick leaves the registry to $disconnect
    assert asyncio.run(ops.disconnect(target, cid)).outcome == "gone"
    assert table_ids(target) == set()  # a gone id is removed at once
    assert backend.calls == [("DELETE", cid), ("DELETE", cid)]


# -- the emulator: injected faults, and lean/boto3 parity -------------------------------------------
FAULTS = {
    "modest": ("--fault", "mgmt-429=0.3", "--fault", "mgmt-500=0.1", "--fault-seed", "7"),
    "410": ("--fault", "mgmt-410=1"),
    "429": ("--fault", "mgmt-429=1"),
    "500": ("--fault", "mgmt-500=1"),
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """One emulator per fault setting, started (and stopped) in parallel."""
    base = tmp_path_factory.mktemp("faulty")
    with ThreadPoolExecutor(len(FAULTS)) as pool:
        started = dict(zip(FAULTS, pool.map(lambda kind: Emulator(base / kind, ["--quiet", *FAULTS[kind]]),
                                            FAULTS)))
    yield started
    with ThreadPoolExecutor(len(started)) as pool:
        list(pool.map(Emulator.stop, started.values()))


def send_scenario(emu: Emulator, transport: str, clients: int = 3, *extra: str) -> dict:
    """`wsctl send --user U` to a fresh user's clients; what the command said and what the clients got."""
    user = unique("p")
    payload = ("parity %s" % user).encode()
    with ExitStack() as stack:
        sockets = [stack.enter_context(connect(emu.url_for(user))) for _ in range(clients)]
        ids = [whoami(ws) for ws in sockets]
        result = wsctl(emu, "send", "--user", user, payload.decode(), "-o", "json", "--transport", transport,
                       *extra)
        got = [drain(ws, 0.2 if i == 0 else 0) for i, ws in enumerate(sockets)]
        left = {item["connectionId"] for item in emu.registry().connections_of_user(user)}
    document = json.loads(result.stdout)
    assert "Traceback" not in result.stderr
    return {"exit": result.exit_code, "counts": document["counts"], "pruned": document["pruned"],
            "notDelivered": sorted(document["notDelivered"]) == sorted(ids) and bool(ids),
            "received": [frames.count(payload) for frames in got],
            "others": sum(len(frames) - frames.count(payload) for frames in got),
            "registryKept": len(left & set(ids)), "retries": document["retries"], "stderr": result.stderr}


EXPECTED = {  # clients=3
    "410": {"exit": 0, "counts": {"delivered": 0, "gone": 3, "throttled": 0, "forbidden": 0, "failed": 0,
                                  "skipped": 0}, "pruned": 3, "received": [0, 0, 0], "registryKept": 0},
    "429": {"exit": ExitStatus.INCOMPLETE,
            "counts": {"delivered": 0, "gone": 0, "throttled": 3, "forbidden": 0, "failed": 0,
                       "skipped": 0}, "pruned": 0, "received": [0, 0, 0], "registryKept": 3,
            "notDelivered": True, "retries": 27},
    "500": {"exit": ExitStatus.INCOMPLETE,
            "counts": {"delivered": 0, "gone": 0, "throttled": 0, "forbidden": 0, "failed": 3,
                       "skipped": 0}, "pruned": 0, "received": [0, 0, 0], "registryKept": 3,
            "notDelivered": True, "retries": 12},
}


@pytest.mark.parametrize("fault", ["410", "429", "500"])
def test_injected_faults_give_the_same_outcomes_through_lean_and_boto3(faulty, fault):
    outcomes = {transport: send_scenario(faulty[fault], transport) for transport in ("lean", "boto3")}
    for transport, outcome in outcomes.items():
        expected = EXPECTED[fault]
        assert {k: outcome[k] for k in expected} == expected, (transport, outcome)
        assert outcome["others"] == 0
        if expected["exit"]:
            assert outcome["stderr"].count("\n") == 1 and "3 live connection(s) did not get the message" in \
                outcome["stderr"]
    strip = ("stderr",)
    assert {k: v for k, v in outcomes["lean"].items() if k not in strip} == \
        {k: v for k, v in outcomes["boto3"].items() if k not in strip}


def test_modest_throttling_and_errors_are_absorbed_by_retries(faulty):
    """30% 429 and 10% 500 (seeded, one call at a time, so the run is repeatable): every client
    still gets the message exactly once, the command exits 0, and it did retry."""
    outcomes = {transport: send_scenario(faulty["modest"], transport, 4, "--concurrency", "1")
                for transport in ("lean", "boto3")}
    for outcome in outcomes.values():
        assert outcome["exit"] == 0, outcome
        assert outcome["counts"]["delivered"] == 4 and outcome["received"] == [1, 1, 1, 1]
        assert outcome["others"] == 0 and outcome["registryKept"] == 4
    assert outcomes["lean"]["counts"] == outcomes["boto3"]["counts"]
    assert outcomes["lean"]["retries"] > 0 and outcomes["boto3"]["retries"] > 0  # the seed makes both retry


@pytest.mark.parametrize("transport", ["lean", "boto3"])
def test_prune_never_removes_what_it_could_not_check(faulty, transport):
    """Under constant 429 GetConnection cannot tell live from gone: nothing is removed, exit INCOMPLETE."""
    emu = faulty["429"]
    user = unique("q")
    with connect(emu.url_for(user)) as ws:
        cid = whoami(ws)
        result = wsctl(emu, "prune", "-o", "json", "--transport", transport)
        report = json.loads(result.stdout)
        assert result.exit_code == ExitStatus.INCOMPLETE, result.stderr
        assert cid in report["unknownIds"] and report["removed"] == 0 and cid not in report["removedIds"]
        assert "could not be checked" in result.stderr and result.stderr.count("\n") == 1
        assert emu.registry().get_connection(cid) is not None
