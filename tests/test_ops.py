"""The operating commands against the running emulator, with real WebSocket clients.

connections list/show, send, broadcast, prune, disconnect. Every client checks
what it received byte for byte, and that it received it once. Stale registry
entries are made the way they happen on AWS: a socket vanishes without a
close frame and its $disconnect is lost (`--fault disconnect-loss=1`), or an
item's ttl has passed (DynamoDB deletes expired items lazily).

Commands that act on the whole registry (broadcast, prune, a plain list) run
against this module's own emulator, whose registry each test starts empty;
the rest use the session-wide emulator with unique users.
"""

import io
import json
import re
import time
from contextlib import ExitStack
from datetime import datetime

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from support.emulator_fixtures import Emulator, unique
from lambda_src import keys
from support.live_support import drain, drop, one_error_line, whoami, wsctl
from wsctl.errors import UsageError
from wsctl.exitstatus import ExitStatus
from wsctl.limits import MAX_MESSAGE_BYTES
from wsctl.ops import read_payload

NOT_FOUND = ExitStatus.NOT_FOUND


# -- read_payload (pure) ---------------------------------------------------------------------
def test_read_payload_keeps_the_bytes_exactly(tmp_path):
    assert read_payload('{"a": "caf\u00e9"}', None) == '{"a": "caf\u00e9"}'.encode()
    raw = b"line one\r\nline two  \n\x00\xff tail \n"
    path = tmp_path / "payload.bin"
    path.write_bytes(raw)
    assert read_payload(None, str(path)) == raw
    assert read_payload("-", None, stdin=io.BytesIO(raw)) == raw
    assert read_payload(None, "-", stdin=io.BytesIO(raw)) == raw
    path.write_bytes(b"x" * MAX_MESSAGE_BYTES)
    assert len(read_payload(None, str(path))) == MAX_MESSAGE_BYTES  # the limit itself is allowed


@pytest.mark.parametrize("message, file, stdin, words", [
    ("hi", "f.txt", None, "not both"),
    (None, None, None, "no payload"),
    ("", None, None, "empty"),
    ("-", None, b"", "empty"),
    ("-", None, b"y" * (MAX_MESSAGE_BYTES + 1), "nothing was sent"),
    ("\u00e9" * (MAX_MESSAGE_BYTES // 2) + "e", None, None, "over 131072 bytes"),  # counted in bytes, not characters
    (None, "/nonexistent/payload.json", None, "cannot read /nonexistent/payload.json"),
])
def test_read_payload_refuses(message, file, stdin, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        read_payload(message, file, stdin=io.BytesIO(stdin) if stdin is not None else None)


def test_read_payload_refuses_an_empty_file_and_a_directory(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        read_payload(None, str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="cannot read"):
        read_payload(None, str(tmp_path))


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture
def clients():
    """open(emu, user) -> a connected websockets client with .cid; all closed at the end."""
    with ExitStack() as stack:
        def open_(emu: Emulator, user: str):
            ws = stack.enter_context(connect(emu.url_for(user)))
            ws.cid = whoami(ws)
            return ws
        yield open_


@pytest.fixture(scope="module")
def lossy_emulator(tmp_path_factory):
    """This module's own emulator: a socket dropped without a close frame gets no $disconnect."""
    instance = Emulator(tmp_path_factory.mktemp("lossy"), ["--quiet", "--fault", "disconnect-loss=1"])
    yield instance
    instance.stop()


def table_items(emu: Emulator) -> list[dict]:
    """Every item of the emulator's table, read with plain boto3 (not wsctl's reader)."""
    items, kwargs = [], {"TableName": emu.state.table}
    client = emu.dynamodb()
    while True:
        answer = client.scan(**kwargs)
        items += answer["Items"]
        if "LastEvaluatedKey" not in answer:
            return items
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def table_ids(emu: Emulator) -> set[str]:
    return {keys.connection_id_of(item["PK"]["S"]) for item in table_items(emu)}


@pytest.fixture
def lossy(lossy_emulator):
    """The lossy emulator with an empty registry (waits for earlier tests' $disconnects)."""
    deadline = time.monotonic() + 3
    while table_ids(lossy_emulator) and time.monotonic() < deadline:
        time.sleep(0.05)
    registry = lossy_emulator.registry()
    for cid in table_ids(lossy_emulator):  # an earlier test's stale or expired entries
        registry.delete_connection(cid)
    return lossy_emulator


def wait_gone(emu: Emulator, *ids: str, timeout: float = 5.0) -> None:
    """Until API Gateway (the emulator) answers 410 for each id."""
    management = emu.management()
    deadline = time.monotonic() + timeout
    for cid in ids:
        while True:
            try:
                management.get_connection(ConnectionId=cid)
            except management.exceptions.GoneException:
                break
            assert time.monotonic() < deadline, "%s is still connected" % cid
            time.sleep(0.02)


def expired_item(emu: Emulator, user: str) -> str:
    """A connection item whose ttl has passed, written straight into the emulator's table."""
    cid = "Exp%sZ=" % unique("x")[2:]
    now = time.time()
    emu.registry().put_connection(cid, user, int((now - 7200) * 1000), int(now) - 60, emu.endpoint)
    return cid


def ok_json(result):
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- send -------------------------------------------------------------------------------------------
def test_send_to_a_user_reaches_each_of_its_connections_exactly_once(emulator, clients):
    user, other = unique("alice"), unique("bob")
    mine = [clients(emulator, user) for _ in range(3)]
    theirs = clients(emulator, other)
    for payload in ('{"type": "notice", "text": "caf\u00e9 \u2603", "n": [1, 2.5, null]}',
                    "plain text, not JSON  (two spaces)  "):
        document = ok_json(wsctl(emulator, "send", "--user", user, payload, "-o", "json"))
        assert document["recipients"] == 3 and document["counts"]["delivered"] == 3
        assert document["notDelivered"] == [] and document["pruned"] == 0
        assert [drain(ws, 0.2 if ws is mine[0] else 0) for ws in mine] == [[payload.encode()]] * 3
        assert drain(theirs) == []


def test_send_reads_the_payload_from_a_file_and_from_stdin(emulator, clients, tmp_path):
    user = unique("carol")
    mine = [clients(emulator, user) for _ in range(2)]
    from_file = '{\n  "pretty": "printed",\n  "ends": "with a newline"\n}\n'
    path = tmp_path / "message.json"
    path.write_bytes(from_file.encode())
    for args, stdin, expected in ((["--file", str(path)], None, from_file),
                                  (["-"], "two lines\nfrom stdin\n", "two lines\nfrom stdin\n"),
                                  (["--file", "-"], "\u00fcber stdin", "\u00fcber stdin")):
        result = wsctl(emulator, "send", "--user", user, *args, input=stdin)
        assert result.exit_code == 0, result.stderr
        assert "delivered" in result.stdout and "2" in result.stdout
        assert [drain(ws, 0.2 if ws is mine[0] else 0) for ws in mine] == [[expected.encode()]] * 2


def test_send_to_a_room_and_to_one_connection(emulator, clients):
    room = unique("room")
    a1, a2 = clients(emulator, unique("a")), clients(emulator, unique("a"))
    b, c = clients(emulator, unique("b")), clients(emulator, unique("c"))
    for ws in (a1, b):
        ws.send(json.dumps({"action": "join", "room": room}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "joined", "room": room}
    document = ok_json(wsctl(emulator, "send", "--room", room, "to the room", "-o", "json"))
    assert document["recipients"] == 2 and document["counts"]["delivered"] == 2
    assert [drain(ws, 0.2 if ws is a1 else 0) for ws in (a1, b, a2, c)] == [[b"to the room"], [b"to the room"], [], []]
    result = wsctl(emulator, "send", "--connection", a2.cid, "just you")
    assert result.exit_code == 0 and "delivered" in result.stdout
    assert [drain(ws, 0.2 if ws is a1 else 0) for ws in (a1, b, a2, c)] == [[], [], [b"just you"], []]


def test_exactly_the_limit_is_delivered_and_one_byte_more_sends_nothing(emulator, clients, tmp_path):
    user, room = unique("big"), unique("bigroom")
    ws = clients(emulator, user)
    ws.send(json.dumps({"action": "join", "room": room}))
    ws.recv(timeout=5)
    limit, over = tmp_path / "limit.txt", tmp_path / "over.txt"
    limit.write_bytes(b"L" * MAX_MESSAGE_BYTES)
    over.write_bytes(b"O" * (MAX_MESSAGE_BYTES + 1))
    for args in (["send", "--user", user], ["send", "--room", room], ["send", "--connection", ws.cid],
                 ["broadcast"]):
        line = one_error_line(wsctl(emulator, *args, "--file", str(over)))
        assert "131072" in line and "nothing was sent" in line
    assert wsctl(emulator, "send", "--user", user, "-", input="O" * (MAX_MESSAGE_BYTES + 1)).exit_code == 2
    assert drain(ws, 0.3) == []  # not one of the five oversize sends reached the client
    assert wsctl(emulator, "send", "--connection", ws.cid, "--file", str(limit)).exit_code == 0
    assert drain(ws, 0.3) == [b"L" * MAX_MESSAGE_BYTES]


def test_bad_input_gets_one_line_and_a_non_zero_exit(emulator, clients, tmp_path):
    user = unique("dora")
    ws = clients(emulator, user)
    cases = [
        (["send", "--connection", "NoSuchConn00=", "hi"], NOT_FOUND, "NoSuchConn00= is gone"),
        (["connections", "show", "NoSuchConn00="], NOT_FOUND, "no connection NoSuchConn00="),
        (["send", "--connection", "-NoSuchConn0=", "hi"], NOT_FOUND, "-NoSuchConn0= is gone"),  # ids may start with "-"
        (["connections", "show", "--", "-NoSuchConn0="], NOT_FOUND, "no connection -NoSuchConn0="),
        (["disconnect", "NoSuchConn00="], NOT_FOUND, "unknown connection NoSuchConn00="),  # never existed
        (["send", "--user", unique("nobody"), "hi"], NOT_FOUND, "has no live connection"),
        (["send", "--room", unique("empty"), "hi"], NOT_FOUND, "has no live member"),
        (["send", "--user", user, ""], 2, "the payload is empty"),
        (["send", "--user", user], 2, "no payload"),
        (["send", "--user", user, "--room", "r1", "hi"], 2, "--user and --room"),
        (["send", "hi"], 2, "choose exactly one of --connection, --user or --room"),
        (["send", "--user", user, "--file", str(tmp_path / "missing.json")], 2, "cannot read"),
        (["send", "--user", user, "--file", str(tmp_path)], 2, "cannot read"),
        (["send", "--user", user, "--file", str(tmp_path / "missing.json"), "hi"], 2, "not both"),
        (["connections", "list", "--user", user, "--room", "r1"], 2, "not both"),
        (["send", "--user", user, "--concurrency", "0", "hi"], 2, "--concurrency"),
    ]
    for args, code, words in cases:
        result = wsctl(emulator, *args)
        line = one_error_line(result)
        assert result.exit_code == code, (args, result.exit_code, line)
        assert words in line, (args, line)
    assert drain(ws, 0.2) == []  # none of it reached the user's client


def test_the_console_script_reads_stdin_and_fails_in_one_line(emulator, clients, tmp_path):
    """The real `wsctl` process: a payload piped in, and errors without a traceback."""
    ws = clients(emulator, unique("eve"))
    piped = '{"from": "a pipe"}\n'
    result = emulator.cli("send", "--connection", ws.cid, "-", input=piped)
    assert result.returncode == 0, result.stderr
    assert drain(ws, 0.2) == [piped.encode()]
    result = emulator.cli("send", "--connection", ws.cid, "-", input="z" * (MAX_MESSAGE_BYTES + 1))
    assert result.returncode == 2 and "131072" in one_error_line(result)
    empty_home = tmp_path / "no-emulator"
    empty_home.mkdir()
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "wsctl", "--local", "connections", "list"],
                            env=dict(emulator.env, WSCTL_HOME=str(empty_home)), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 1
    assert "no local emulator is running" in one_error_line(result)
    assert drain(ws) == []


# -- connections list / show -------------------------------------------------------------------------
def test_connections_list_filters_and_columns(emulator, clients):
    u1, u2, r1, r2 = unique("fay"), unique("gil"), unique("r1"), unique("r2")
    f1, f2, g = clients(emulator, u1), clients(emulator, u1), clients(emulator, u2)
    for ws, room in ((f1, r1), (f1, r2), (g, r1)):
        ws.send(json.dumps({"action": "join", "room": room}))
        ws.recv(timeout=5)
    now = time.time()
    rows = ok_json(wsctl(emulator, "connections", "list", "--user", u1, "-o", "json"))
    assert sorted(r["connectionId"] for r in rows) == sorted([f1.cid, f2.cid])
    by_id = {r["connectionId"]: r for r in rows}
    assert by_id[f1.cid]["rooms"] == sorted([r1, r2]) and by_id[f2.cid]["rooms"] == []
    for row in rows:
        assert {"connectionId", "userId", "rooms", "connectedAt", "expiresAt"} <= set(row)
        assert row["userId"] == u1
        connected, expires = (datetime.fromisoformat(row[k].replace("Z", "+00:00")).timestamp()
                              for k in ("connectedAt", "expiresAt"))  # ISO 8601, UTC
        assert row["connectedAt"].endswith("Z") and row["expiresAt"].endswith("Z")
        assert now - 60 < connected <= now + 1
        assert now + 3600 < expires < now + 3 * 3600  # past the 2-hour cap
    rows = ok_json(wsctl(emulator, "connections", "list", "--room", r1, "-o", "json"))
    assert sorted(r["connectionId"] for r in rows) == sorted([f1.cid, g.cid])
    assert {r["connectionId"]: r["userId"] for r in rows} == {f1.cid: u1, g.cid: u2}
    rows = ok_json(wsctl(emulator, "connections", "list", "--user", u1, "--limit", "1", "-o", "json"))
    assert len(rows) == 1 and rows[0]["connectionId"] in (f1.cid, f2.cid)
    rows = ok_json(wsctl(emulator, "connections", "list", "--room", r1, "--live", "-o", "json"))
    for row in rows:
        assert row["state"] == "live"
        last = datetime.fromisoformat(row["lastActiveAt"].replace("Z", "+00:00")).timestamp()
        assert now - 30 < last <= time.time() + 1
    result = wsctl(emulator, "connections", "list", "--user", u1)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 connection(s)")
    assert lines[1].split() == ["connection", "user", "rooms", "connected", "expires"]
    assert any(line.split()[:3] == [f1.cid, u1, "%s,%s" % tuple(sorted([r1, r2]))] for line in lines)
    assert any(line.split()[:3] == [f2.cid, u1, "-"] for line in lines)
    assert any(re.search(r"in 2 h \d+ m", line) for line in lines[2:])  # 2 h 5 m, not "2h"
    result = wsctl(emulator, "connections", "list", "--room", r1, "--live")
    assert result.stdout.splitlines()[1].split()[-4:] == ["expires", "state", "last", "active"]
    assert sum(" live " in line for line in result.stdout.splitlines()) == 2


def test_connections_show(emulator, clients):
    user, room = unique("hal"), unique("room")
    ws = clients(emulator, user)
    ws.send(json.dumps({"action": "join", "room": room}))
    ws.recv(timeout=5)
    document = ok_json(wsctl(emulator, "connections", "show", "-o", "json", "--", ws.cid))
    assert document["connectionId"] == ws.cid and document["rooms"] == [room]
    assert document["registry"]["userId"] == user and document["registry"]["connectionId"] == ws.cid
    assert document["apiGateway"]["state"] == "live"
    assert document["apiGateway"]["lastActiveAt"].endswith("Z")
    assert document["apiGateway"]["identity"]["sourceIp"] == "127.0.0.1"
    result = wsctl(emulator, "connections", "show", "--", ws.cid)
    assert result.exit_code == 0
    shown = dict((re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2] for line in result.stdout.splitlines())
    assert (shown["connection"], shown["user"], shown["rooms"]) == (ws.cid, user, room)
    assert shown["API Gateway"] == "live" and shown["source ip"] == "127.0.0.1"


# -- disconnect --------------------------------------------------------------------------------------
def test_disconnect_closes_the_client_with_1000_then_reports_it_gone(emulator, clients):
    ws = clients(emulator, unique("ian"))
    result = wsctl(emulator, "disconnect", "--", ws.cid)  # ids may start with "-"
    assert result.exit_code == 0 and "Disconnected %s" % ws.cid in result.stdout
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=5)
    assert ws.protocol.close_rcvd.code == 1000  # the server closed it, normally
    assert ws.protocol.close_rcvd_then_sent
    registry = emulator.registry()
    deadline = time.monotonic() + 5
    while registry.get_connection(ws.cid) is not None:  # $disconnect ran
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = wsctl(emulator, "disconnect", "-o", "json", "--", ws.cid)
    assert result.exit_code == NOT_FOUND
    assert json.loads(result.stdout) == {"connectionId": ws.cid, "outcome": "unknown"}  # closed and cleaned up
    assert "unknown connection" in one_error_line(result)
    stale = "Stale%sQ=" % unique("x")[2:]  # in the registry, but API Gateway has no such socket
    registry.put_connection(stale, "ian", int(time.time() * 1000), int(time.time()) + 3600, emulator.endpoint)
    result = wsctl(emulator, "disconnect", "-o", "json", "--", stale)
    assert result.exit_code == NOT_FOUND and json.loads(result.stdout)["outcome"] == "gone"
    assert "already gone (its registry entry was removed)" in one_error_line(result)
    assert registry.get_connection(stale) is None


# -- stale entries: pruned by send, broadcast and prune ---------------------------------------------------
def test_send_prunes_a_users_stale_connections(lossy, clients):
    user = unique("jo")
    live1, stale, live2 = (clients(lossy, user) for _ in range(3))
    drop(stale)
    wait_gone(lossy, stale.cid)
    assert table_ids(lossy) == {live1.cid, stale.cid, live2.cid}  # $disconnect was lost
    document = ok_json(wsctl(lossy, "send", "--user", user, "still here?", "-o", "json"))
    assert document["recipients"] == 3 and document["notDelivered"] == []
    assert (document["counts"]["delivered"], document["counts"]["gone"], document["pruned"]) == (2, 1, 1)
    assert table_ids(lossy) == {live1.cid, live2.cid}
    assert [drain(live1, 0.2), drain(live2)] == [[b"still here?"], [b"still here?"]]


def test_broadcast_reaches_everyone_and_prunes_the_stale(lossy, clients):
    a1, a2, b = clients(lossy, unique("a")), clients(lossy, unique("a")), clients(lossy, unique("b"))
    stale = [clients(lossy, unique("s")) for _ in range(2)]
    for ws in stale:
        drop(ws)
    wait_gone(lossy, *(ws.cid for ws in stale))
    payload = '{"type": "broadcast", "text": "to all"}'
    document = ok_json(wsctl(lossy, "broadcast", payload, "-o", "json"))
    assert document["recipients"] == 5
    assert document["counts"] == {"delivered": 3, "gone": 2, "throttled": 0, "forbidden": 0, "failed": 0,
                                  "skipped": 0}
    assert document["pruned"] == 2 and document["notDelivered"] == []
    assert table_ids(lossy) == {a1.cid, a2.cid, b.cid}
    assert [drain(ws, 0.2 if ws is a1 else 0) for ws in (a1, a2, b)] == [[payload.encode()]] * 3
    result = wsctl(lossy, "broadcast", "again")  # the text summary; nothing left to prune
    assert result.exit_code == 0 and "pruned" not in result.stdout
    assert [drain(ws, 0.2 if ws is a1 else 0) for ws in (a1, a2, b)] == [[b"again"]] * 3


def test_prune_reports_what_it_removes_and_a_dry_run_changes_nothing(lossy, clients):
    room = unique("room")
    live1, live2, stale = (clients(lossy, unique("k")) for _ in range(3))
    for ws in (live1, stale):
        ws.send(json.dumps({"action": "join", "room": room}))
        ws.recv(timeout=5)
    drop(stale)
    expired = expired_item(lossy, unique("old"))
    orphan = "Orphan%sQ=" % unique("x")[2:]
    lossy.registry().join(orphan, room, int(time.time()) + 3600, int(time.time() * 1000))
    wait_gone(lossy, stale.cid)

    rows = ok_json(wsctl(lossy, "connections", "list", "--live", "-o", "json"))
    states = {r["connectionId"]: r["state"] for r in rows}
    assert states == {live1.cid: "live", live2.cid: "live", stale.cid: "gone"}  # expired: not listed
    assert all(r["lastActiveAt"] for r in rows if r["state"] == "live")

    before = sorted(map(json.dumps, table_items(lossy)))
    dry = ok_json(wsctl(lossy, "prune", "--dry-run", "-o", "json"))
    assert {k: dry[k] for k in ("dryRun", "checked", "live", "gone", "expired", "orphaned", "unknown",
                                "removed", "wouldRemove")} == {
        "dryRun": True, "checked": 4, "live": 2, "gone": 1, "expired": 1, "orphaned": 1, "unknown": 0,
        "removed": 0, "wouldRemove": 3}
    assert sorted(dry["removedIds"]) == sorted([stale.cid, expired, orphan])
    text = wsctl(lossy, "prune", "--dry-run")
    assert text.exit_code == 0 and "(dry run)" in text.stdout
    assert [line.split()[-1] for line in text.stdout.splitlines() if line.startswith("would remove")] == ["3"]
    assert sorted(map(json.dumps, table_items(lossy))) == before  # nothing changed

    report = ok_json(wsctl(lossy, "prune", "-o", "json"))
    assert (report["checked"], report["live"], report["removed"], report["dryRun"]) == (4, 2, 3, False)
    assert sorted(report["removedIds"]) == sorted([stale.cid, expired, orphan])
    assert table_ids(lossy) == {live1.cid, live2.cid}
    assert lossy.registry().rooms_of(live1.cid) == [room]  # a live member keeps its membership
    again = ok_json(wsctl(lossy, "prune", "-o", "json"))
    assert (again["checked"], again["live"], again["removed"]) == (2, 2, 0)
    assert [drain(live1, 0.1), drain(live2)] == [[], []]  # prune sends nobody a message


def test_expired_items_are_skipped_by_list_and_send(lossy, clients):
    user, only_expired = unique("lee"), unique("gone")
    live = clients(lossy, user)
    expired = expired_item(lossy, user)
    lonely = expired_item(lossy, only_expired)
    assert {expired, lonely} <= table_ids(lossy)  # still in the table, as on DynamoDB until its reaper runs
    assert [r["connectionId"] for r in ok_json(wsctl(lossy, "connections", "list", "-o", "json"))] == [live.cid]
    assert [r["connectionId"] for r in ok_json(wsctl(lossy, "connections", "list", "--user", user,
                                                     "-o", "json"))] == [live.cid]
    assert ok_json(wsctl(lossy, "connections", "list", "--limit", "5", "-o", "json"))[0]["connectionId"] == live.cid
    document = ok_json(wsctl(lossy, "send", "--user", user, "hi", "-o", "json"))
    assert document["recipients"] == 1 and document["counts"]["delivered"] == 1
    assert drain(live, 0.2) == [b"hi"]
    assert "has no live connection" in one_error_line(wsctl(lossy, "send", "--user", only_expired, "hi"))
    document = ok_json(wsctl(lossy, "broadcast", "all", "-o", "json"))
    assert document["recipients"] == 1
    assert drain(live, 0.2) == [b"all"]
    assert "no connection %s" % lonely in one_error_line(wsctl(lossy, "connections", "show", lonely))
