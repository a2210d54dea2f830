"""`wsctl connect` sends messages up to API Gateway's 128 KB, in frames of at most 32 KB.

API Gateway closes a connection with 1009 on a frame over 32 KB, and takes messages up to 128 KB
in fragments (docs/apigw-websocket.md#limits; the emulator enforces both). The command runs as a
real process: against the emulator, whose handler records every message it is given (text:
API Gateway refuses binary frames with 1003), and against a plain `websockets` server that
records each frame of each message (binary as well as text). A message over 128 KB is refused in
one line before anything is sent.
"""

import asyncio
import hashlib
import json
import subprocess
import sys
import threading

import pytest
import websockets

from support.emulator_fixtures import ROOT
from support.emulator_kit import routes, start_all, stop_all
from support.live_terminal import Terminal
from wsctl.client import Command, MessageTooBig, check_message, fragments, parse_line
from wsctl.exitstatus import ExitStatus
from wsctl.limits import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

KB = 1024


def text_of(size: int, seed: str) -> str:
    """`size` bytes of UTF-8 text in which characters of 1 to 4 bytes straddle every 32 KB boundary."""
    unit = "%s-ascii é ☃ 😀 " % seed
    text = ""
    while len(text.encode()) < size:
        text += unit
    while len(text.encode()) > size:
        text = text[:-1]
    return text + "x" * (size - len(text.encode()))


# -- pure: what goes in each frame -----------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 40 * KB, 127 * KB, MAX_MESSAGE_BYTES])
def test_a_text_message_is_cut_between_characters_into_frames_of_at_most_32_kb(size):
    message = text_of(size, "t")
    frames = fragments(message)
    assert "".join(frames) == message
    assert all(len(f.encode()) <= MAX_FRAME_BYTES for f in frames)
    assert all(len(f.encode()) > MAX_FRAME_BYTES - 4 for f in frames[:-1])  # full but for one character


def test_a_binary_message_is_cut_into_frames_of_32_kb():
    message = bytes(range(256)) * 508  # 127 KB
    frames = fragments(message)
    assert b"".join(frames) == message and [len(f) for f in frames] == [MAX_FRAME_BYTES] * 3 + [len(message) - 3 * MAX_FRAME_BYTES]
    assert fragments(b"") == [b""] and fragments("") == [""]


def test_a_message_over_128_kb_is_refused_with_its_size():
    assert check_message("x" * MAX_MESSAGE_BYTES) and check_message(b"\0" * MAX_MESSAGE_BYTES)
    with pytest.raises(MessageTooBig, match="message is 131073 bytes, over API Gateway's 128 KB"):
        check_message("x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(MessageTooBig, match="131074 bytes"):
        check_message("é" * (MAX_MESSAGE_BYTES // 2 + 1))  # counted in UTF-8 bytes, not characters


def test_file_and_binary_commands():
    assert parse_line("/file big.json") == Command("file", "big.json")
    assert parse_line("/binary blob.bin") == Command("binary", "blob.bin")
    for line in ("/file", "/binary  "):
        with pytest.raises(Exception, match="usage: /"):
            parse_line(line)


# -- against the emulator: a handler records what it is given ---------------------------------------------
@pytest.fixture(scope="module")
def recorder(tmp_path_factory):
    emulators = start_all(tmp_path_factory, {
        "rec": (routes("$connect", "$disconnect", "$default", one_way=("$default",)), [], False)})
    yield emulators["rec"]
    stop_all(emulators)


def connect(emu, *args: str, input: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsctl", "--local", "connect", *args, "-o", "jsonl"], cwd=ROOT,
                          env=emu.env, input=input, capture_output=True, text=True, timeout=timeout)


def events_of(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def bodies_of(events, connection_id: str) -> list[str]:
    """The messages the handler was given on one connection (`events`: the recorder's Recording)."""
    return [e["body"] for e in events.of(connection_id, "MESSAGE")]


def connection_of(recorder, before: int) -> str:
    """The id of the one connection made since `before` events were recorded."""
    (connected,) = [e for e in recorder.events.all()[before:] if e["requestContext"]["eventType"] == "CONNECT"]
    return connected["requestContext"]["connectionId"]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_40_kb_and_127_kb_messages_arrive_whole(recorder, tmp_path):
    forty = text_of(40 * KB, "forty")
    head = '{"action": "big", "pad": "'
    most = head + text_of(127 * KB - len(head) - 2, "most") + '"}'  # 127 KB of JSON, as a route would get it
    (tmp_path / "forty.txt").write_text(forty)
    (tmp_path / "most.json").write_text(most)
    before = len(recorder.events.all())
    result = connect(recorder, "--send", "short", "--send-file", str(tmp_path / "forty.txt"),
                     "--send-file", str(tmp_path / "most.json"), "--wait", "1")
    assert result.returncode == 0, result.stderr
    events = events_of(result)
    assert [e["event"] for e in events] == ["open", "sent", "sent", "sent", "closed"]
    assert (events[-1]["code"], events[-1]["by"]) == (1000, "client")  # not 1009
    cid = connection_of(recorder, before)
    got = recorder.events.wait(lambda r: len(bodies_of(r, cid)) == 3 and bodies_of(r, cid))
    assert sorted(map(digest, got)) == sorted(map(digest, ["short", forty, most]))  # each runs on its own: any order
    assert len(most.encode()) == 127 * KB and json.loads(most)["action"] == "big"


def test_a_127_kb_message_given_on_the_command_line_arrives_whole(recorder):
    message = "y" * (127 * KB)  # a command-line argument may hold 128 KB on Linux, 129 KB is refused by exec
    before = len(recorder.events.all())
    result = connect(recorder, "--send", message, "--wait", "0.5")
    assert result.returncode == 0, result.stderr
    cid = connection_of(recorder, before)
    assert recorder.events.wait(lambda r: bodies_of(r, cid)) == [message]


@pytest.mark.parametrize("option", ["--send-file", "--send-binary"])
def test_a_message_over_128_kb_is_refused_in_one_line_before_anything_is_sent(recorder, tmp_path, option):
    big = tmp_path / "big.txt"
    big.write_text("z" * (129 * KB))
    before = len(recorder.events.all())
    result = connect(recorder, "--send", "first", option, str(big), "--wait", "0.5")
    assert result.returncode == ExitStatus.USAGE and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "%s is 132096 bytes, over API Gateway's 128 KB (131072 bytes) per message: not sent" % big in line
    assert result.stdout == ""  # not even connected
    assert recorder.events.all()[before:] == []


def test_a_piped_line_over_128_kb_is_refused_and_the_others_are_sent(recorder):
    lines = ["before", "w" * (127 * KB), "v" * (129 * KB), "after"]
    before = len(recorder.events.all())
    result = connect(recorder, "--wait", "1", input="\n".join(lines) + "\n")
    assert result.returncode == ExitStatus.USAGE, result.stderr
    (refusal,) = [e for e in events_of(result) if e["event"] == "error"]
    assert refusal["message"] == "line 3 is 132096 bytes, over API Gateway's 128 KB (131072 bytes) per message: not sent"
    assert [len(e["data"]) for e in events_of(result) if e["event"] == "sent"] == [6, 127 * KB, 5]
    cid = connection_of(recorder, before)
    got = recorder.events.wait(lambda r: len(bodies_of(r, cid)) == 3 and bodies_of(r, cid))
    assert sorted(got) == sorted([lines[0], lines[1], lines[3]])


def test_the_live_client_sends_a_127_kb_file_and_refuses_a_bigger_one(recorder, tmp_path):
    message = text_of(127 * KB, "live")
    (tmp_path / "ok.txt").write_text(message)
    (tmp_path / "big.txt").write_text("q" * (129 * KB))
    before = len(recorder.events.all())
    term = Terminal(["--local", "connect"], recorder.env, columns=120, cwd=tmp_path)
    try:
        term.wait_prompt()
        term.enter("/file big.txt")
        term.wait_text("big.txt is 132096 bytes, over API Gateway's 128 KB (131072 bytes) per message: not sent")
        term.enter("/file ok.txt")
        term.wait_text("sent ok.txt: %d bytes in 4 frame(s)" % (127 * KB))
        term.enter("/quit")
        assert term.wait_exit() == 0
    finally:
        term.close()
    cid = connection_of(recorder, before)
    assert recorder.events.wait(lambda r: bodies_of(r, cid)) == [message]
    assert "closed by client: 1000" in term.text()


# -- against a plain WebSocket server: every frame of every message, binary too ------------------------------
class FrameRecorder:
    """A `websockets` server on loopback that records each message as the list of its frames."""

    def __init__(self):
        self.messages: list[list] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    async def _serve(self):
        self.stop = asyncio.Event()
        async with websockets.serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop.wait()

    async def _handle(self, connection):
        try:
            while True:
                self.messages.append([frame async for frame in connection.recv_streaming()])
        except websockets.ConnectionClosed:
            pass

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def frames():
    server = FrameRecorder()
    yield server
    server.close()


def test_binary_and_text_messages_go_in_frames_of_at_most_32_kb(frames, tmp_path):
    blobs = {name: bytes((i * 7 + n) % 256 for i in range(size)) for n, (name, size) in
             enumerate([("small.bin", 100), ("forty.bin", 40 * KB), ("most.bin", 127 * KB)])}
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
    text = text_of(127 * KB, "mixed")
    (tmp_path / "text.txt").write_text(text)
    url = "ws://127.0.0.1:%d/dev" % frames.port
    result = subprocess.run([sys.executable, "-m", "wsctl", "connect", url, "--send-file", str(tmp_path / "text.txt"),
                             *[arg for name in blobs for arg in ("--send-binary", str(tmp_path / name))],
                             "--wait", "0.5", "-o", "jsonl"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sent = [e for e in events_of(result) if e["event"] == "sent"]
    assert [e.get("binary", False) for e in sent] == [False, True, True, True]
    assert bytes.fromhex(sent[3]["data"]) == blobs["most.bin"]
    assert [("".join(m) if isinstance(m[0], str) else b"".join(m)) for m in frames.messages] == [text, *blobs.values()]
    sizes = [[len(f.encode()) if isinstance(f, str) else len(f) for f in m] for m in frames.messages]
    assert all(size <= MAX_FRAME_BYTES for message in sizes for size in message)
    assert [len([s for s in m if s]) for m in sizes] == [4, 1, 2, 4]  # frames that carry data
