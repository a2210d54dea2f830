"""`wsctl connect` (the live client) and `wsctl demo`.

The pure parts (slash commands, what close codes and handshake statuses
mean) as units; the command itself as a real process against the emulator:
scripted (--send/--wait/--count, -o jsonl), fed by a pipe, and interactive
on a pseudo-terminal (pexpect). Other clients are plain `websockets` ones.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pexpect
import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import ROOT, SDK_CACHE, unique
from support.live_support import drain, one_error_line, wsctl
from support.live_terminal import Terminal
from wsctl.exitstatus import ExitStatus
from wsctl.apigw import CLOSE_MEANINGS, HANDSHAKE_MEANINGS, close_meaning, gateway_error
from wsctl.client import Command, CommandError, _redact, complete, parse_line

ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[78])")


# -- slash commands ---------------------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ("", None),
    ("   ", None),
    ("hello there", Command("send", "hello there")),
    ('{"action": "whoami"}', Command("send", '{"action": "whoami"}')),
    ("//not a command", Command("send", "/not a command")),
    ("/action whoami", Command("send", '{"action": "whoami"}')),
    ('/action sendMessage targetUserId=bob text="hello world" n=3 ok=true none=null',
     Command("send", json.dumps({"action": "sendMessage", "targetUserId": "bob", "text": "hello world", "n": 3,
                                 "ok": True, "none": None}))),
    ("/action join room=lobby", Command("send", '{"action": "join", "room": "lobby"}')),
    ("""/action sendRoom room='a b' text='{"x": 1}'""",
     Command("send", json.dumps({"action": "sendRoom", "room": "a b", "text": {"x": 1}}))),
    ('/action sendMessage {"targetUserId": "bob", "text": "hi there"}',
     Command("send", json.dumps({"action": "sendMessage", "targetUserId": "bob", "text": "hi there"}))),
    ("/ping", Command("ping", "")),
    ("/ping hello", Command("ping", "hello")),
    ("/close", Command("close", code=1000)),
    ("/close 1000", Command("close", code=1000)),
    ("/close 4001 going home", Command("close", code=4001, reason="going home")),
    ("/close 3000", Command("close", code=3000)),
    ("/raw", Command("raw")),
    ("/pretty", Command("pretty")),
    ("/help", Command("help")),
    ("/quit", Command("quit")),
    ("/exit", Command("quit")),
])
def test_parse_line(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line, words", [
    ("/action", "usage: /action NAME"),
    ("/action sendMessage text", "'text' is not key=value"),
    ("/action sendMessage =x", "is not key=value"),
    ("/action join {not json", "not a JSON object"),
    ('/action join {"a": 1', "not a JSON object"),
    ("/action join text='unclosed", "quotation"),
    ("/close 1001", "1000 or a code from 3000 to 4999"),
    ("/close 2999", "1000 or a code from 3000 to 4999"),
    ("/close 5000", "1000 or a code from 3000 to 4999"),
    ("/close abc", "1000 or a code from 3000 to 4999"),
    ("/frobnicate now", "unknown command /frobnicate (try /help)"),
])
def test_parse_line_refuses(line, words):
    with pytest.raises(CommandError, match=re.escape(words)):
        parse_line(line)


def test_completion_of_slash_commands_and_route_names():
    routes = ["$connect", "$disconnect", "$default", "sendMessage", "sendRoom", "join", "whoami"]
    assert complete("/", routes) == (1, ["/action ", "/file ", "/binary ", "/ping ", "/close ", "/pretty", "/raw",
                                         "/help", "/quit"])
    assert complete("/ac", routes) == (3, ["/action "])
    assert complete("/p", routes) == (2, ["/ping ", "/pretty"])
    assert complete("/action ", routes) == (0, ["join", "sendMessage", "sendRoom", "whoami"])  # no $-routes
    assert complete("/action send", routes) == (4, ["sendMessage", "sendRoom"])
    assert complete("/action sendRoom room=", routes) == (0, [])
    assert complete("hello", routes) == complete("//ac", routes) == complete("/close 10", routes) == (0, [])


def test_what_close_codes_and_handshake_statuses_mean():
    assert close_meaning(1000) == "normal closure"
    assert "idle timeout" in close_meaning(1001) and "2-hour" in close_meaning(1001)
    assert "binary" in close_meaning(1003)
    assert "without a close frame" in close_meaning(1006) and close_meaning(None) == close_meaning(1006)
    assert "32 KB per frame" in close_meaning(1009) and "128 KB per message" in close_meaning(1009)
    assert close_meaning(4000) == close_meaning(4999) == "application-defined"
    assert close_meaning(2999) == ""
    assert set(CLOSE_MEANINGS) >= {1000, 1001, 1003, 1006, 1009, 1011}
    assert "token" in HANDSHAKE_MEANINGS[401] and "authorizer denied" in HANDSHAKE_MEANINGS[403]
    assert "$connect handler" in HANDSHAKE_MEANINGS[502] and "timed out" in HANDSHAKE_MEANINGS[504]


def test_gateway_error_frames_are_recognised_only_in_their_own_shape():
    frame = {"message": "Forbidden", "connectionId": "abc=", "requestId": "def="}
    assert gateway_error(json.dumps(frame)) == "Forbidden"
    assert gateway_error(json.dumps({"message": "Internal server error", "connectionId": "x",
                                     "requestId": "y"})) == "Internal server error"
    assert gateway_error(json.dumps({"message": "Forbidden"})) is None  # an application's own message
    assert gateway_error(json.dumps({"message": "hello", "connectionId": "x"})) is None
    assert gateway_error("Forbidden") is None and gateway_error("[1, 2]") is None


def test_tokens_and_signatures_never_show_in_a_printed_url():
    url = _redact("wss://h/dev?token=eyJ.secret.sig&room=lobby&X-Amz-Signature=abc&X-Amz-Credential=AKIA")
    assert "secret" not in url and "abc" not in url and "AKIA" not in url
    assert "room=lobby" in url and "token=***" in url
    assert _redact("ws://h/dev") == "ws://h/dev"


# -- the command against the emulator ------------------------------------------------------------
def events_of(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert all(isinstance(e["ts"], float) for e in events)
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    return events


def connect_process(emulator, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wsctl", "--local", "connect", *args], cwd=ROOT,
                            env=emulator.env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def read_event(process, event: str) -> dict:
    """Read jsonl events until the first `event` (fails on EOF); all read so far are in process.seen."""
    seen = process.__dict__.setdefault("seen", [])
    while True:
        line = process.stdout.readline()
        assert line, "wsctl connect ended before a %r event: %s" % (event, process.stderr.read())
        seen.append(json.loads(line))
        if seen[-1]["event"] == event:
            return seen[-1]


def finish(process, timeout: float = 20) -> tuple[list[dict], str]:
    """Wait for the process to end; every jsonl event it printed, and its stderr."""
    if process.stdin:
        process.stdin.close()
        process.stdin = None
    out, err = process.communicate(timeout=timeout)
    return process.__dict__.get("seen", []) + events_of(out), err


def test_scripted_send_is_relayed_and_count_ends_the_run(emulator):
    sender, receiver = unique("ann"), unique("ben")
    frame = json.dumps({"action": "sendMessage", "targetUserId": receiver, "text": "hi \u2603"})
    with connect(emulator.url_for(receiver)) as ws:
        result = emulator.cli("connect", "--user", sender, "--send", frame, "--count", "1", "-o", "jsonl", input="")
        assert result.returncode == 0, result.stderr
        events = events_of(result.stdout)
        assert [e["event"] for e in events] == ["open", "sent", "received", "closed"]
        assert "token=***" in events[0]["url"] and emulator.url.split("?")[0] in events[0]["url"]
        assert events[1]["data"] == frame
        ack = json.loads(events[2]["data"])
        assert ack["type"] == "sent" and ack["to"] == receiver and ack["delivered"] == 1
        assert {k: events[3][k] for k in ("code", "by", "meaning")} == {"code": 1000, "by": "client",
                                                                        "meaning": "normal closure"}
        relayed = [json.loads(f) for f in drain(ws, 0.2)]
        assert len(relayed) == 1
        assert {k: relayed[0][k] for k in ("type", "from", "text")} == {"type": "message", "from": sender,
                                                                       "text": "hi \u2603"}


def test_wait_keeps_receiving_then_closes_normally(emulator):
    result = emulator.cli("connect", "--user", unique("cal"), "--wait", "0.5", "-o", "jsonl", input="")
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    assert [e["event"] for e in events] == ["open", "closed"]
    assert 0.5 <= events[1]["ts"] - events[0]["ts"] < 3
    assert events[1]["code"] == 1000 and events[1]["by"] == "client"


def test_piped_stdin_sends_one_frame_per_line_and_frames_within_wait_are_printed(emulator):
    room = unique("room")
    process = connect_process(emulator, "--user", unique("dee"), "-o", "jsonl", "--wait", "5",
                              stdin=subprocess.PIPE)
    lines = ['{"action": "whoami"}', "", json.dumps({"action": "join", "room": room})]
    process.stdin.write("\n".join(lines) + "\n")
    process.stdin.close()  # stdin ends here; --wait counts from now
    # each frame invokes the handler on its own (as on AWS), so the two answers come in either order
    answers = [json.loads(read_event(process, "received")["data"]) for _ in range(2)]
    cid = next(a["connectionId"] for a in answers if a["type"] == "whoami")
    emulator.management().post_to_connection(ConnectionId=cid, Data=b"late \xe2\x98\x83")
    events, err = finish(process)
    assert process.returncode == 0, err
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert [e["data"] for e in events if e["event"] == "sent"] == [lines[0], lines[2]]  # the empty line: no frame
    received = [e["data"] for e in events if e["event"] == "received"]
    assert sorted(json.loads(r)["type"] for r in received[:2]) == ["joined", "whoami"]
    assert received[2:] == ["late \u2603"]
    late = next(e for e in events if e.get("data") == "late \u2603")
    assert late["ts"] > max(e["ts"] for e in events if e["event"] == "sent")
    assert events[-1]["event"] == "closed" and events[-1]["by"] == "client"


def test_a_refused_handshake_prints_the_status_and_its_meaning(emulator):
    result = emulator.cli("connect", "--wait", "0.1", input="")  # no token
    assert result.returncode == ExitStatus.REFUSED
    line = one_error_line(result)
    assert "handshake refused: HTTP 401" in line and "no token" in line
    result = emulator.cli("connect", "--wait", "0.1", "-o", "jsonl", input="")
    assert result.returncode == ExitStatus.REFUSED
    assert [(e["event"], e.get("status")) for e in events_of(result.stdout)] == [("error", 401)]


def test_a_message_over_32_kb_reaches_the_handler_in_fragments(emulator):
    """One 32 KB frame is API Gateway's limit (1009 past it): the client sends 40 KB in two."""
    result = emulator.cli("connect", "--user", unique("eli"), "--send", "x" * 40_000, "--count", "1", "-o", "jsonl",
                          input="")
    assert result.returncode == ExitStatus.OK, (result.stdout, result.stderr)
    events = events_of(result.stdout)
    assert json.loads(events[2]["data"])["error"] == "bad_json"  # the handler read all of it, and answered
    assert (events[-1]["code"], events[-1]["by"]) == (1000, "client")


def test_disconnect_from_another_process_is_a_normal_close_even_with_stdin_open(emulator):
    """DeleteConnection closes with 1000 (exit 0), and the client exits at once although its
    stdin pipe is still open and no line is coming."""
    process = connect_process(emulator, "--user", unique("fox"), "-o", "jsonl", stdin=subprocess.PIPE)
    try:
        process.stdin.write('{"action": "whoami"}\n')
        process.stdin.flush()
        cid = json.loads(read_event(process, "received")["data"])["connectionId"]
        assert wsctl(emulator, "disconnect", "--", cid).exit_code == 0
        closed = read_event(process, "closed")
        assert (closed["code"], closed["by"]) == (1000, "server")
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()


# -- the live client, in a real terminal (a pty rendered by pyte) ---------------------------------------
def live(emulator, *args: str, rows: int = 24, columns: int = 80) -> Terminal:
    return Terminal(["--local", "connect", *args], emulator.env, rows=rows, columns=columns)


def whoami_id(term: Terminal) -> str:
    """Ask the handler who we are; the answer is one line on screen (wrapped at 80 columns)."""
    before = term.text().count('"type": "whoami"')
    term.enter("/action whoami")
    term.wait_for(lambda t: t.text().count('"type": "whoami"') > before and '"rooms"' in t.text().split(
        '"type": "whoami"')[-1], what="the whoami answer")
    return re.findall(r'"connectionId": "([A-Za-z0-9_=-]+)"', "".join(term.lines()))[-1]


def test_interactive_prompt_action_ping_pretty_and_close(emulator):
    user = unique("gus")
    term = live(emulator, "--user", user)
    try:
        term.wait_prompt()
        cid = whoami_id(term)
        # one frame, one line (compact JSON; at 80 columns it wraps, it is not pretty-printed)
        answer = [line for line in term.lines() if '"type": "whoami"' in line][-1]
        assert re.search(r'^\d\d:\d\d:\d\d\.\d{3} < \{"type": "whoami", "connectionId": "', answer), answer
        assert cid in "".join(term.lines())
        term.enter("/pretty")
        term.wait_text("JSON frames pretty-printed")
        term.enter("/action whoami")
        term.wait_for(lambda t: any(re.fullmatch(r'\s+"userId": "%s",' % re.escape(user), line)
                                    for line in t.lines()), what="a pretty-printed answer")
        term.enter("/ping")
        term.wait_for(lambda t: re.search(r"pong in (\d+\.\d) ms", t.text()), what="pong")
        assert float(re.search(r"pong in (\d+\.\d) ms", term.text()).group(1)) < 1000
        term.enter("/frobnicate")
        term.wait_text("unknown command /frobnicate")
        term.enter("/close")
        assert term.wait_exit() == 0
    finally:
        term.close()
    assert "closed by client: 1000 normal closure" in term.text()


def test_a_burst_of_multiline_frames_prints_whole_above_a_half_typed_line(emulator):
    """80x24: while a line is half typed, twelve multi-line frames arrive at once (more than a
    screen). The terminal shows every frame whole, in order, each line of it once, above the
    prompt; the earlier lines are intact; the half-typed line is still there, the cursor after
    it, and it is sent as typed."""
    term = live(emulator, "--user", unique("ivy"))
    try:
        term.wait_prompt()
        cid = whoami_id(term)
        before = [line for line in term.lines() if line.strip() and not line.startswith(">")]
        term.type("half typed lin")
        frames = ["frame %02d line %d of 3%s" % (n, k, " " + "x" * (n % 4) * 9 if k == 2 and n % 4 else "")
                  for n in range(12) for k in (1, 2, 3)]
        management = emulator.management()
        for n in range(12):
            management.post_to_connection(ConnectionId=cid, Data="\n".join(frames[n * 3:n * 3 + 3]).encode())
        term.wait_for(lambda t: "frame 11 line 3 of 3" in t.text(), what="the last frame")
        term.pump(0.5)
        lines = term.lines()
        shown = [line.strip() for line in lines if re.search(r"frame \d\d line", line)]
        # each line of each frame exactly once, in order; a frame's first line after its time stamp
        assert [re.sub(r"^\d\d:\d\d:\d\d\.\d{3} < ", "", line) for line in shown] == frames, "\n".join(lines)
        firsts = [line for line in lines if "line 1 of 3" in line]
        assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{3} < frame \d\d line 1 of 3$", line) for line in firsts), firsts
        # nothing printed before was overwritten
        assert [line for line in lines if line in before] == before
        # the prompt: once, on the bottom row in use, with the half-typed line and the cursor after it
        display = term.display()
        prompt_rows = [y for y, line in enumerate(display) if line.startswith("> ")]
        assert prompt_rows and display[prompt_rows[-1]] == "> half typed lin", "\n".join(display)
        assert term.cursor() == (prompt_rows[-1], len("> half typed lin"))
        assert all(not line.strip() for line in display[prompt_rows[-1] + 1:])
        term.enter("e")
        term.wait_text("> half typed line")
        assert term.child.isalive()
        term.key("ctrl-d")
        assert term.wait_exit() == 0
    finally:
        term.close()


def test_an_error_frame_takes_one_line_not_thirty(emulator):
    term = live(emulator, "--user", unique("jon"), columns=110)
    try:
        term.wait_prompt()
        term.enter('{"action": "nope"}')
        term.wait_text('"accepted"')
        term.pump(0.3)
        rows = [line for line in term.lines() if line.strip() and not line.startswith(">")]
        error_rows = [line for line in rows if '"unknown_action"' in line or '"accepted"' in line
                      or "broadcastAll" in line]
        assert len(error_rows) <= 3, "\n".join(rows)
        term.key("ctrl-d")
        assert term.wait_exit() == 0
    finally:
        term.close()


def test_tab_completes_commands_and_route_names_and_history_persists(emulator):
    marker = unique("hist")
    term = live(emulator, "--user", unique("kim"))
    try:
        term.wait_prompt()
        term.type("/ac")
        term.key("tab")
        term.wait_for(lambda t: t.display()[t.cursor()[0]] == "> /action", what="/action completed")
        term.type("who")
        term.key("tab")
        term.wait_for(lambda t: t.display()[t.cursor()[0]] == "> /action whoami", what="whoami completed")
        term.enter()
        term.wait_text('"type": "whoami"')
        term.enter(marker)
        term.wait_for(lambda t: t.text().count(marker) >= 1, what="the marker line")
        term.key("ctrl-d")
        assert term.wait_exit() == 0
    finally:
        term.close()
    assert "closed by client: 1000 normal closure" in term.text()
    again = live(emulator, "--user", unique("kim"))
    try:
        again.wait_prompt()
        again.key("up")  # the last line of the previous run
        again.wait_for(lambda t: t.display()[t.cursor()[0]] == "> " + marker, what="the previous run's line")
        again.key("ctrl-c")
        assert again.wait_exit() == 0
    finally:
        again.close()


def test_ctrl_c_and_ctrl_d_close_with_1000_and_say_so(start_emulator, tmp_path):
    """The server sees a normal close (1000) from either key, not a dropped socket (1006)."""
    from support.emulator_kit import custom_args, routes, Recording

    folder = tmp_path / "src"
    instance = start_emulator(*custom_args(folder, routes("$connect", "$disconnect", "$default")))
    events = Recording(folder / "events.jsonl")
    for key in ("ctrl-c", "ctrl-d"):
        term = live(instance)
        try:
            term.wait_prompt()
            if key == "ctrl-c":
                term.type("half")  # Ctrl-C closes even with a line half typed; Ctrl-D, on an empty line
            term.key(key)
            assert term.wait_exit() == 0
        finally:
            term.close()
        assert re.search(r"\* closed by client: 1000 normal closure\s*$", term.text()), term.text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        codes = [e["requestContext"].get("disconnectStatusCode") for e in events.all()
                 if e["requestContext"]["eventType"] == "DISCONNECT"]
        if len(codes) == 2:
            break
        time.sleep(0.1)
    assert codes == [1000, 1000]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_closes_a_scripted_session_with_1000(emulator, signum):
    process = connect_process(emulator, "--user", unique("lou"), "-o", "jsonl", "--wait", "30")
    try:
        read_event(process, "open")
        process.send_signal(signum)
        closed = read_event(process, "closed")
        assert (closed["code"], closed["by"]) == (1000, "client")
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stderr.read()


def test_interactive_session_ends_when_the_server_closes_it(emulator):
    """Kicked while the prompt waits for a line: the client says so, exits 0 at once, and
    leaves the terminal as it found it (echo and line editing on)."""
    command = "%s -m wsctl --local connect --user %s; echo EXIT=$?; stty -a" % (sys.executable, unique("hat"))
    term = Terminal([], emulator.env)
    term.child.close()
    term.child = pexpect.spawn("bash", ["-c", command], cwd=str(ROOT), env=dict(emulator.env, TERM="xterm"),
                               encoding="utf-8", timeout=10, dimensions=(24, 80))
    try:
        term.wait_prompt()
        cid = whoami_id(term)
        assert wsctl(emulator, "disconnect", "--", cid).exit_code == 0
        term.wait_for(lambda t: "EXIT=" in t.text() and "speed" in t.text(), timeout=10, what="exit and stty")
        term.pump(0.3)
        transcript = term.text()
    finally:
        term.close()
    assert "closed by server: 1000 normal closure" in transcript
    assert "EXIT=0" in transcript
    settings = " ".join(transcript.split("EXIT=0", 1)[1].split())
    assert re.search(r"(^|[ ;])echo( |;|$)", settings) and re.search(r"(^|[ ;])icanon( |;|$)", settings), settings


def test_demo_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env.update(WSCTL_HOME=str(tmp_path), NO_COLOR="1", AWS_EC2_METADATA_DISABLED="true", WSCTL_SDK_CACHE=SDK_CACHE)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "wsctl", "demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Demo complete" in result.stdout and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
