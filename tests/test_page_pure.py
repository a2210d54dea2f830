"""The page's pure parts: the journal (wsctl/local/observe.py) and who may use the page
(wsctl/local/view/guard.py). The journal is fed here by the calls the gateway and the Lambda
service make, with the emulator's own Invocation and asyncio futures; the live page is in
tests/test_page.py."""

import asyncio

import pytest

from wsctl.local import observe
from wsctl.local.functions.environment import Invocation
from wsctl.local.functions.errors import FunctionError
from wsctl.local.functions.logs import end_line, report_line, start_line
from wsctl.local.view import guard


class _Socket:
    ws_protocol = None


class _Connection:
    def __init__(self, connection_id: str):
        self.id = connection_id
        self.ws = _Socket()


def _event(connection_id: str, request_id: str, route: str = "x") -> dict:
    return {"requestContext": {"connectionId": connection_id, "requestId": request_id, "routeKey": route}}


_LOOP = asyncio.new_event_loop()  # for the futures of invocations made outside a running loop


def _invocation(request_id: str, answer=None, error=None) -> Invocation:
    invocation = Invocation(request_id=request_id, payload=b"{}", timeout_s=3, invoked_arn="arn")
    try:
        invocation.future = asyncio.get_running_loop().create_future()
    except RuntimeError:
        invocation.future = _LOOP.create_future()
    if error is not None:
        invocation.future.set_exception(error)
    elif answer is not None:
        invocation.future.set_result(answer)
    return invocation


def _watched(**options) -> observe.Journal:
    journal = observe.Journal(**options)
    journal.watch()
    return journal


def test_nobody_watching_the_hooks_record_nothing_and_set_no_cause():
    journal = observe.Journal()
    lines = []
    sink = journal.sink(lambda *args: lines.append(args))
    connection = _Connection("AAAAAAAAAAAAAAA=")
    token = observe.CAUSE.set(None)
    try:
        journal.opened(connection)
        journal.frame_in(connection, '{"action":"x"}', "x", "req1")
        journal.invoking(_event(connection.id, "req1"))
        journal.frame_out(connection, "answer")
        sink("fn", start_line("r1"), _invocation("r1"))
        journal.closed(connection, 1000, "")
        assert observe.CAUSE.get() is None
    finally:
        observe.CAUSE.reset(token)
    assert len(journal.entries) == 0 and journal.counts == {} and journal.seq == 0
    assert lines == [("fn", start_line("r1"), lines[0][2])]  # the log still goes where it went


def test_a_frame_its_invocation_its_log_lines_and_its_reply_are_tied_together():
    journal = _watched()
    connection = _Connection("BBBBBBBBBBBBBBB=")
    sink = journal.sink(lambda *args: None)

    async def handle_frame():  # one task, as the gateway handles each frame
        journal.frame_in(connection, '{"action":"sendMessage"}', "sendMessage", "apiReq1")
        journal.invoking(_event(connection.id, "apiReq1", "sendMessage"))

        async def invocation_task():  # the Lambda service's task: a copy of the gateway's context
            invocation = _invocation("lambda-1", answer=b"{}")
            sink("fn", start_line("lambda-1"), invocation)
            sink("fn", "INFO sending to 1 connection", invocation)
            sink("fn", end_line("lambda-1"), invocation)
            sink("fn", report_line("lambda-1", 12.345, 128, 40, init_ms=321.5), invocation)

        await asyncio.ensure_future(invocation_task())
        journal.frame_out(connection, '{"type":"sent"}')

    asyncio.run(handle_frame())
    journal.frame_out(connection, "posted by someone else")  # outside the frame's task: a management POST
    kinds = [(e["kind"], e.get("rid")) for e in journal.entries]
    assert kinds == [("in", "apiReq1"), ("start", "apiReq1"), ("log", "apiReq1"), ("log", "apiReq1"),
                     ("end", "apiReq1"), ("out", "apiReq1"), ("out", None)]
    assert all(e["conn"] == connection.id for e in journal.entries)
    assert [e["route"] for e in journal.entries if e["kind"] in ("in", "start", "end")] == ["sendMessage"] * 3
    end = journal.entries[4]
    assert (end["status"], end["ms"], end["init"], end["fn"], end["req"]) == ("ok", 12.35, 321.5, "fn", "lambda-1")
    assert journal.counts[connection.id] == [1, 2]
    assert journal.last_init == {"fn": 321.5} and journal.errors == {}


def test_the_authorizers_invocation_is_named_as_such():
    journal = _watched()

    async def handshake():
        journal.invoking({"type": "REQUEST", "methodArn": "arn", **_event("EEEEEEEEEEEEEEE=", "auth1", "$connect")})
        journal.line("fn", start_line("lambda-3"), _invocation("lambda-3"))

    asyncio.run(handshake())
    assert (journal.entries[0]["route"], journal.entries[0]["rid"]) == ("$connect(authorizer)", "auth1")


@pytest.mark.parametrize("outcome, status", [
    ({"error": FunctionError("KeyError", "'requestContext'")}, "KeyError"),
    ({"error": FunctionError("Runtime.ExitError", "exit status 1")}, "Runtime.ExitError"),
    ({"cancel": True}, "timeout"),
])
def test_a_failed_invocation_is_counted_with_its_error_type(outcome, status):
    journal = _watched()
    invocation = _invocation("lambda-2", error=outcome.get("error"))
    if outcome.get("cancel"):
        invocation.future.cancel()
    journal.line("fn", report_line("lambda-2", 5.0, 128, 40), invocation)
    assert journal.entries[-1]["status"] == status and journal.errors == {"fn": 1}


def test_the_journal_is_bounded_by_entries_and_by_characters_kept():
    journal = _watched(capacity=5, budget=20_000)
    connection = _Connection("CCCCCCCCCCCCCCC=")
    for i in range(8):
        journal.frame_in(connection, "frame %d" % i, "$default", "r%d" % i)
    assert [e["data"] for e in journal.entries] == ["frame %d" % i for i in range(3, 8)]
    assert [e["seq"] for e in journal.after(6)] == [7, 8]
    journal.frame_in(connection, "x" * (observe.KEPT + 100), "$default", "big")
    big = journal.entries[-1]
    assert big["size"] == observe.KEPT + 100 and len(big["data"]) == observe.KEPT  # the first 16 KB kept
    for i in range(3):
        journal.frame_in(connection, "y" * 4000, "$default", "y%d" % i)
    assert journal.stored <= 20_000 and journal.stored == sum(e["kept"] for e in journal.entries)


def test_recording_stops_after_the_last_watcher_leaves_and_its_grace_period():
    async def scenario():
        journal = observe.Journal(grace=0.05)
        connection = _Connection("DDDDDDDDDDDDDDD=")
        journal.watch()
        journal.frame_in(connection, "a", "$default", "r1")
        journal.unwatch()
        journal.watch()  # a page reloading within the grace period keeps the history
        await asyncio.sleep(0.1)
        assert journal.on and len(journal.entries) == 1
        journal.unwatch()
        await asyncio.sleep(0.1)
        assert not journal.on and len(journal.entries) == 0 and journal.counts == {}
        journal.frame_in(connection, "b", "$default", "r2")
        assert len(journal.entries) == 0

    asyncio.run(scenario())


# -- who may use the page ------------------------------------------------------------------------
@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("LOCALHOST:8000", True), ("[::1]:8000", True),
    ("app.localhost:8000", True), ("192.168.1.20:8000", True), ("devbox:8000", True),
    ("127.0.0.1:8001", False), ("127.0.0.1", False), ("attacker.example:8000", False),
    ("localhost.attacker.example:8000", False), ("127.0.0.1.nip.io:8000", False), ("[::1:8000", False),
    ("", False), ("127.0.0.1:99999", False), ("::1:8000", False),
])
def test_the_host_must_name_this_machine_on_the_pages_port(host, allowed):
    assert guard.host_allowed(host, 8000, ("devbox",)) is allowed


def test_port_80_may_go_without_saying():
    assert guard.host_allowed("localhost", 80) and not guard.host_allowed("localhost", 8080)


def _refusal(method, path, headers, query=None):
    from multidict import CIMultiDict

    return guard.refusal(method, path, CIMultiDict(headers), query or {}, "s3cret", 8000)


OWN = {"Host": "127.0.0.1:8000"}


@pytest.mark.parametrize("method, path, headers, query, why", [
    ("GET", "/", OWN, {"token": "s3cret"}, None),
    ("GET", "/", OWN, {}, "no secret"),
    ("GET", "/", OWN, {"token": "s3cre"}, "no secret"),
    ("GET", "/static/view.js", OWN, {}, None),
    ("GET", "/static/view.js", {"Host": "evil.example:8000"}, {}, "not this emulator's address"),
    ("GET", "/live", OWN, {"token": "s3cret"}, "no Origin"),
    ("GET", "/live", dict(OWN, Origin="http://127.0.0.1:8000"), {"token": "s3cret"}, None),
    ("GET", "/live", dict(OWN, Origin="http://localhost:8000"), {"token": "s3cret"}, "not the page's own"),
    ("GET", "/live", dict(OWN, Origin="null"), {"token": "s3cret"}, "not the page's own"),
    ("POST", "/api/send", dict(OWN, Origin="http://127.0.0.1:8000"), {"token": "s3cret"}, "no secret"),
    ("POST", "/api/send", dict(OWN, Origin="http://127.0.0.1:8000", **{"X-Wsctl-Token": "s3cret"}), {}, None),
    ("POST", "/api/send", dict(OWN, **{"X-Wsctl-Token": "s3cret"}), {}, "no Origin"),
    ("POST", "/static/view.js", dict(OWN, Origin="http://127.0.0.1:8000"), {}, "no secret"),
])
def test_each_request_is_checked_before_routing(method, path, headers, query, why):
    found = _refusal(method, path, headers, query)
    assert (found is None) if why is None else (why in found), found


def test_secrets_are_fresh_and_long():
    first, second = guard.new_secret(), guard.new_secret()
    assert first != second and len(first) >= 32


def test_a_busy_functions_log_does_not_crowd_the_conversation_out_of_the_history():
    from wsctl.local.view import snapshot

    entries = [{"seq": 1, "kind": "in", "conn": "A"}]
    entries += [{"seq": 2 + i, "kind": "log", "fn": "fn", "conn": "B"} for i in range(30)]
    entries += [{"seq": 40, "kind": "out", "conn": "A"}, {"seq": 41, "kind": "log", "fn": "fn", "conn": "A"}]
    kept = snapshot.history(entries, "A", "fn", conversation=10, log=5)
    assert [e["seq"] for e in kept] == [1, 28, 29, 30, 31, 40, 41]  # A's three, and the function's newest 5
    assert [e["seq"] for e in snapshot.history(entries, "A", None)] == [1, 40, 41]


def test_a_flood_reaches_the_page_as_its_newest_entries_after_a_count_of_the_rest():
    from wsctl.local.view import snapshot

    entries = [{"seq": i, "t": 1000 + i, "kind": "log", "fn": "fn"} for i in range(1, 11)]
    assert snapshot.capped(entries, 10, function="fn") == entries
    kept = snapshot.capped(entries, 3, function="fn")
    assert kept[0] == {"kind": "skipped", "count": 7, "t": 1001, "seq": 1, "conn": None, "fn": "fn"}
    assert [e["seq"] for e in kept[1:]] == [8, 9, 10]
