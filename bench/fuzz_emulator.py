"""Hostile-input fuzzer for the local emulator (`wsctl local up`): frames, handshakes and
management requests drawn by hypothesis, each checked against what API Gateway would answer.

    python bench/fuzz_emulator.py                  # 10,000+ examples over 13 categories
    python bench/fuzz_emulator.py --examples 300   # CI size (tests/test_fuzz.py runs this core)
    python bench/fuzz_emulator.py --only control,handshake --seed 7

Each category is a hypothesis strategy run with `@given` in batches; every example is sent
over real sockets by a minimal RFC 6455 client (`RawSocket` of tests/support/raw_client.py:
masking, FIN/RSV/opcode, continuations, any length field), so frames no library would send
can be sent. The oracle for each category (sections of docs/apigw-websocket.md in brackets):

- text frames of every kind (unicode, invalid JSON, JSON of every type, nesting up to 5000,
  up to the 128 KB limit, `action` of every type, known actions with wrong/missing/oversized
  fields): the bundled handler answers the frame it is sent with its own error frame or a
  normal answer, never API Gateway's "Internal server error" / "Endpoint request timed out"
  frames (the handler raised or hung), and the connection stays open [#route-selection,
  #integration-failures]. A `sendMessage` to oneself comes back as a push, so the text is
  checked to arrive intact.
- fragmented messages (random continuation sizes, splits inside UTF-8 sequences, empty
  fragments, pings and pongs between fragments): delivered intact; each ping answered by a
  pong with its payload [RFC 6455 §5.4, §5.5.2].
- invalid UTF-8 in a text message: close 1007 [infer, RFC 6455 §8.1]; binary frames: 1003
  [#binary]; a frame over 32 KB or a message over 128 KB: 1009 [#limits]; protocol errors
  (fragmented or >125-byte control frames, unknown opcodes, reserved bits, unmasked frames, stray
  continuations, a new data frame inside a fragmented message, bad close codes and
  payloads): 1002, or 1007 for a close reason that is not UTF-8 [RFC 6455 §5, §7.4]. Every
  close is followed by $disconnect with the code the emulator closed with (read from its log).
- frames pipelined with the upgrade request: judged exactly as when sent after the 101.
- handshakes (odd paths and stages, odd query strings, long URLs, odd/long/many headers,
  duplicate Authorization, missing or wrong upgrade headers): an HTTP status, as the
  emulator's documented order of checks gives it: 400 for what the HTTP parser rejects,
  403 for another path or stage, 414 past the 4096-character URL cap, 431 past 10 KB of
  headers, 426 for a request that is not a valid upgrade, 401 without a valid token, else
  101 [#connect, #authorizers, #limits]; never a hang or a socket closed without a status.
- handshakes dropped midway (before, during and after $connect): nothing to answer, but
  no registry item may outlive them.
- management API (`/{stage}/@connections/{id}`, with a SigV4 header the emulator accepts):
  ids with path tricks (`../`, `%2F`, `%00`, `%3D`, long, unicode, empty) -> 403 / 410 /
  413 as [#management-api] says, 200/204 only for the id of a live connection, never 500; the
  bystander connection is never affected.

After every batch: the emulator process is alive, a fresh client connects and gets its
`whoami` answer within 2 s, the log has no "Traceback" (the handler raising for client
input, or the emulator's own), and once the batch's sockets are closed the registry holds
no connection but the bystander's.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import re
import struct
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The raw RFC 6455 client (`RawSocket`, `frame`, ...) is the tests' own: tests/support/raw_client.py.
sys.path.insert(0, str(ROOT / "tests"))

from lambda_src.app import ACTIONS, MAX_NAME  # noqa: E402  (the handler's own table is its spec)
from support.raw_client import (REPLY_TIMEOUT, Closed, RawSocket, chunked, fragments, frame,  # noqa: E402
                                http_request, label, read_head, sigv4_headers, upgrade_request)
from wsctl.limits import MAX_FRAME_BYTES as MAX_FRAME  # noqa: E402  (the limits the emulator enforces)
from wsctl.limits import MAX_HANDSHAKE_HEADER_BYTES as MAX_HEADERS  # noqa: E402
from wsctl.limits import MAX_MESSAGE_BYTES as MAX_MESSAGE  # noqa: E402
from wsctl.limits import MAX_URL_BYTES as MAX_URL  # noqa: E402
SELF = "@@SELF@@"  # stands for the sending connection's user id in drawn text frames
CASE_TIMEOUT = 30.0
HEALTH_TIMEOUT = 2.0


# A function's unhandled exception as its runtime logs it: "[fn] [ERROR] Type: message\r...".
FUNCTION_ERROR = re.compile(r"^\[[^\]]+\] \[ERROR\] ([A-Za-z_][\w.]*): ")
EXPECTED_ERRORS = {"Unauthorized"}  # an authorizer refuses a connection by raising it


# -- the emulator under test --------------------------------------------------------------------
@dataclass
class Target:
    host: str
    port: int
    stage: str
    pid: int
    log_path: Path
    state: dict
    mint: object  # user -> token
    broadcast: bool = False  # started with --allow-client-broadcast

    @classmethod
    def of(cls, emulator, broadcast: bool = False) -> "Target":
        """From a running emulator object of bench/backends.py or tests/support/emulator_fixtures.py."""
        url = emulator.state.ws_url
        hostport, _, stage = url.split("://", 1)[1].partition("/")
        host, _, port = hostport.rpartition(":")
        return cls(host, int(port), stage, emulator.process.pid, Path(emulator.log_path), emulator.state,
                   emulator.token, broadcast)

    def token(self, user: str) -> str:
        return self.mint(user)

    def ws_target(self, user: str) -> str:
        return "/%s?token=%s" % (self.stage, self.token(user))

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        status = Path("/proc/%d/status" % self.pid)
        return not status.exists() or "State:\tZ" not in status.read_text()

    def rss_mb(self) -> float | None:
        try:
            for line in Path("/proc/%d/status" % self.pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def registry(self):
        import boto3

        from lambda_src.registry import Registry

        client = boto3.client("dynamodb", endpoint_url=self.state.dynamodb_endpoint, region_name="us-east-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        return Registry(client, self.state.table)


# -- what the bundled handler answers (lambda_src/app.py's contract) -----------------------------
def _valid_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def expected_answers(text: str, user: str, broadcast: bool) -> set[str]:
    """The answers the bundled handler may give to one text message: "whoami", "sent", ...
    or "error:<code>". Depends only on the frame (and whether the relay fits)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return {"error:bad_json"}
    if not isinstance(document, dict):
        return {"error:bad_json"}
    action = document.get("action")
    if action is None:
        return {"error:missing_action"}
    if not isinstance(action, str) or action not in ACTIONS:
        return {"error:unknown_action"}
    for name in ACTIONS[action]:
        value = document.get(name)
        if not isinstance(value, str) or not value:
            return {"error:missing_field"}
    for name in ("room", "targetUserId"):  # DynamoDB keys: valid Unicode only
        if name in ACTIONS[action] and not _valid_unicode(document[name]):
            return {"error:bad_field"}
    if "room" in ACTIONS[action] and len(document["room"]) > MAX_NAME:
        return {"error:bad_field"}
    if action == "whoami":
        return {"whoami"}
    if action == "join":
        return {"joined"}
    if action == "leave":
        return {"left", "error:not_member"}
    if action == "sendRoom":
        return {"sent", "error:not_member", "error:too_large"}
    if action == "sendMessage":
        if document["targetUserId"] == user:
            return {"sent", "error:too_large"}
        return {"error:no_connection", "error:too_large"}
    return {"sent", "error:too_large"} if broadcast else {"error:forbidden"}


def relayed_size(user: str, text: str) -> int:
    """Bytes of the push a sendMessage relays (the handler's own encoding; ts has 13 digits)."""
    return len(json.dumps({"type": "message", "from": user, "text": text, "ts": 1000000000000},
                          separators=(",", ":")).encode())


# -- strategies (each draws one case; SELF stands for the sender's user id) ------------------------
ALPHABETS = {
    "ascii": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-_",
    "unicode": "a\u00e9\u20ac\U0001F600\u0301\u200b\u4e2d\U0010fffd\u0000\u2028\ufeff",
    "escapes": '"\\\n\t\x00/\x1f\x7f',
}


def filler(size: int, kind: str, seed: int) -> str:
    """`size` characters from an alphabet, deterministic for a seed (huge values, cheap to draw)."""
    alphabet = ALPHABETS[kind]
    rng = random.Random(seed)
    block = "".join(rng.choice(alphabet) for _ in range(min(size, 4096)))
    return (block * (size // max(1, len(block)) + 1))[:size] if size else ""


def big_strings(max_size: int):
    return st.builds(filler, st.integers(0, max_size), st.sampled_from(sorted(ALPHABETS)), st.integers(0, 2 ** 32))


SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\ud83d"])  # lone: valid JSON escapes, not Unicode
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-10 ** 4200, 10 ** 4200)
                | st.floats() | st.text(max_size=40) | SURROGATES)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
ODD_ACTIONS = ["", "WHOAMI", "whoami ", " whoami", "$default", "$connect", "$disconnect", "sendmessage",
               "\\$default", "action", "[whoami]", "whoami\u0000", "null"]


@st.composite
def text_frames(draw):
    """Arbitrary unicode text, invalid JSON, JSON of every type."""
    kind = draw(st.sampled_from(["unicode", "json", "broken", "scalar"]))
    if kind == "unicode":
        return draw(st.text(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    if kind == "scalar":
        return draw(st.sampled_from(["null", "true", "1", "-0", "1e999", "NaN", "Infinity", '""', "[]", "{}",
                                     '"action"', "  {}  ", "\ufeff{}", "{}{}", "[1,]", "{'a':1}", "1" * 5000,
                                     '{"action":"whoami"', '{"action":"whoami"}x', '{"action":"whoami",}']))
    valid = json.dumps({"action": draw(st.sampled_from(sorted(ACTIONS))), "text": draw(st.text(max_size=20))})
    cut = draw(st.integers(0, len(valid)))
    return valid[:cut] + draw(st.text(max_size=5)) + valid[cut + draw(st.integers(0, 3)):]


@st.composite
def action_frames(draw):
    """Objects with `action` of every JSON type, and known actions with wrong/missing/oversized fields."""
    document = {}
    if draw(st.integers(0, 9)):
        document["action"] = draw(st.sampled_from(sorted(ACTIONS)) | st.sampled_from(ODD_ACTIONS) | json_values)
    names = ["targetUserId", "text", "room", "data", "Action", "action "]
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        document[name] = draw(st.text(min_size=1, max_size=30) | json_values | big_strings(3000) | SURROGATES
                              | st.just(SELF) | big_strings(MAX_MESSAGE - 200))
    if draw(st.booleans()) and document.get("action") == "sendMessage":
        document["targetUserId"] = SELF  # comes back as a push: the text is checked intact
    return json.dumps(document, ensure_ascii=draw(st.booleans()))


@st.composite
def deep_frames(draw):
    depth = draw(st.integers(1, 5000) | st.integers(480, 1100) | st.sampled_from([1, 2, 999, 1000, 1001, 5000]))
    kind = draw(st.sampled_from(["array", "object", "mixed"]))
    opens, closes = [], []
    for level in range(depth):
        shape = kind if kind != "mixed" else ("array" if (level * 2654435761) % 7 < 3 else "object")
        opens.append("[" if shape == "array" else '{"a":')
        closes.append("]" if shape == "array" else "}")
    nested = "".join(opens) + draw(st.sampled_from(["1", '"x"', "null", "[]", "{}"])) + "".join(reversed(closes))
    where = draw(st.sampled_from(["bare", "action", "extra", "room", "text"]))
    if where == "bare":
        return nested
    if where == "action":
        return '{"action":%s}' % nested
    if where == "extra":
        return '{"action":"whoami","extra":%s}' % nested
    if where == "room":
        return '{"action":"join","room":%s}' % nested
    return '{"action":"sendMessage","targetUserId":"%s","text":%s}' % (SELF, nested)


@st.composite
def huge_frames(draw):
    """JSON up to (and just past) the 128 KB message limit, sent in 32 KB frames."""
    size = draw(st.integers(0, MAX_MESSAGE + 4096) | st.sampled_from([MAX_MESSAGE - 1, MAX_MESSAGE, MAX_MESSAGE + 1]))
    shape = draw(st.sampled_from(["array", "object", "string", "echo"]))
    if shape == "array":
        return '{"action":"whoami","pad":[' + ",".join(["1234567"] * max(0, size // 8)) + "]}"
    if shape == "object":
        return '{"action":"whoami",' + ",".join('"k%d":%d' % (i, i) for i in range(max(0, size // 12))) + "}"
    text = filler(size, draw(st.sampled_from(sorted(ALPHABETS))), draw(st.integers(0, 99)))
    if shape == "string":
        return json.dumps({"action": draw(st.sampled_from(sorted(ACTIONS))), "room": "r", "text": text})
    return json.dumps({"action": "sendMessage", "targetUserId": SELF, "text": text}, ensure_ascii=False)


def echo_message(user: str, text: str) -> str:
    return json.dumps({"action": "sendMessage", "targetUserId": user, "text": text}, ensure_ascii=False)


@st.composite
def fragmented_cases(draw):
    """A sendMessage to oneself cut at random byte offsets (inside UTF-8 sequences too, empty
    fragments too), with pings and pongs between the fragments."""
    return {"text": draw(st.text(max_size=200) | big_strings(MAX_MESSAGE - 1000)),
            "sizes": draw(st.lists(st.integers(0, 64) | st.integers(0, MAX_FRAME), max_size=12)),
            "controls": draw(st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["ping", "pong"]),
                                                st.binary(max_size=125)), max_size=4))}


INVALID_UTF8 = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80",
                b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xfe", b"\xff", b"\xc3", b"\xe2\x82",
                b"\xf0\x9f\x98", b"\xc3\x28", b"\xe2\x28\xa1"]


def _invalid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


@st.composite
def utf8_cases(draw):
    prefix = draw(st.text(max_size=50)).encode()
    if draw(st.booleans()):
        prefix = b'{"action":"whoami","x":"' + prefix
    bad = draw(st.sampled_from(INVALID_UTF8) | st.binary(min_size=1, max_size=20).filter(_invalid_utf8))
    return {"data": prefix + bad + draw(st.text(max_size=50)).encode(),
            "sizes": draw(st.lists(st.integers(0, 40), max_size=6))}


@st.composite
def binary_cases(draw):
    return {"kind": draw(st.sampled_from(["single", "first-fragment", "inside-text", "huge-claim", "empty"])),
            "payload": draw(st.binary(max_size=200)) + b"\0" * draw(st.integers(0, MAX_FRAME + 100))}


@st.composite
def oversize_cases(draw):
    kind = draw(st.sampled_from(["frame", "frame-claim", "message", "frame-ok", "message-ok"]))
    if kind == "frame":
        return {"kind": kind, "size": draw(st.integers(MAX_FRAME + 1, 4 * MAX_FRAME) | st.just(MAX_FRAME + 1))}
    if kind == "frame-claim":  # only the header: the emulator must not wait for the payload
        return {"kind": kind, "size": draw(st.integers(MAX_FRAME + 1, 2 ** 64 - 1) | st.sampled_from(
            [MAX_FRAME + 1, 65536, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1])), "opcode": draw(st.sampled_from([1, 0]))}
    if kind == "message":
        return {"kind": kind, "size": draw(st.integers(MAX_MESSAGE + 1, 3 * MAX_MESSAGE) | st.just(MAX_MESSAGE + 1)),
                "frame": draw(st.integers(1024, MAX_FRAME))}
    if kind == "frame-ok":
        return {"kind": kind, "size": draw(st.integers(MAX_FRAME - 64, MAX_FRAME))}
    return {"kind": kind, "size": draw(st.integers(MAX_MESSAGE - 64, MAX_MESSAGE)),
            "frame": draw(st.integers(1024, MAX_FRAME))}


VALID_CLOSE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CLOSE = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@st.composite
def control_cases(draw):
    kind = draw(st.sampled_from(["ping", "pong", "ping-big", "ping-fragmented", "opcode", "rsv", "unmasked",
                                 "stray-continuation", "text-in-fragment", "close-valid", "close-invalid",
                                 "close-1byte", "close-empty", "close-bad-utf8", "close-in-fragment"]))
    case = {"kind": kind, "payload": draw(st.binary(max_size=125))}
    if kind == "ping-big":
        case["payload"] = draw(st.binary(min_size=126, max_size=300))
    if kind == "opcode":
        case["opcode"] = draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
    if kind == "rsv":
        case["rsv"] = draw(st.integers(1, 7))
        case["opcode"] = draw(st.sampled_from([1, 2, 9, 10, 8]))
    if kind == "unmasked":
        case["opcode"] = draw(st.sampled_from([1, 9]))
    if kind in ("close-valid", "close-in-fragment"):
        case["code"] = draw(st.sampled_from(VALID_CLOSE) | st.integers(3000, 4999))
        case["reason"] = draw(st.text(max_size=30)).encode()[:123]
    if kind == "close-invalid":
        case["code"] = draw(st.sampled_from(INVALID_CLOSE) | st.integers(0, 999) | st.integers(1016, 2999)
                            | st.integers(5000, 65535))
    if kind == "close-bad-utf8":
        case["code"] = draw(st.sampled_from(VALID_CLOSE))
        case["reason"] = draw(st.sampled_from(INVALID_UTF8))
    return case


@st.composite
def pipelined_cases(draw):
    """Frames sent in the same write as the upgrade request (the stream split anywhere)."""
    return {"items": draw(st.lists(st.sampled_from(["whoami", "echo", "ping", "binary", "big", "fragmented"]),
                                   min_size=1, max_size=4)),
            "split": draw(st.integers(0, 200000) | st.integers(0, 40)), "text": draw(st.text(max_size=100)),
            "refused": draw(st.sampled_from([False, False, False, False, True]))}


TOKEN_PLACES = ["query", "header", "both", "both-disagree", "none", "bad", "dup-query-last-good",
                "dup-query-last-bad", "dup-header-last-good", "dup-header-last-bad", "header-not-bearer"]
# path -> True: the stage's WebSocket route; False: anything else (403); None: either way
# (a server may or may not normalise it; AWS does not document it: docs/apigw-websocket.md).
PATHS = {
    "/dev": True, "/%64ev": None, "/./dev": None, "/x/../dev": None, "/de%76": None, "/%2e%2e/dev": None,
    "/dev/": False, "/Dev": False, "/prod": False, "/": False, "//dev": False, "/dev/extra": False,
    "/dev%2F": False, "/dev/.": None, "/dev/..": False, "/@connections": False, "/dev/@connections": False,
    "/dev;x": False, "/dev%00": False, "/dev%20": False, "/d%C3%A9v": False, "/dev/@connections/x": False,
    "/dev%0A": False, "/%7Bdev%7D": False, "/dev/%0A": False,
}
ODD_HEADERS = ["obs-text", "control", "bad-name", "fold", "dup-host", "no-host", "empty-name", "tab", "protocol",
               "protocol-odd", "protocol-bytes", "user-agent-bytes", "origin-null"]
UPGRADES = ["no-upgrade", "no-connection", "upgrade-h2c", "connection-close", "version-12", "version-8",
            "no-version", "no-key", "short-key", "bad-key", "post", "http10", "head"]


@st.composite
def handshake_cases(draw):
    def sometimes(strategy, zero=0):  # one case in four
        return draw(strategy) if draw(st.sampled_from([False, False, False, True])) else zero

    return {"path": sometimes(st.sampled_from(sorted(PATHS)), "/dev"),
            "token": draw(st.sampled_from(TOKEN_PLACES)),
            "query": draw(st.lists(st.tuples(st.text(max_size=12).filter(lambda k: k != "token"),
                                             st.text(max_size=30)), max_size=6)),
            "raw_query": draw(st.sampled_from(["", "&", "&&", "&=", "&x", "&x=", "&=y", "&%zz=%", "&a=%ff%fe",
                                               "&e=%ED%A0%80", "&p=a+b%2Bc", "&q=%26%3D%23", "&u=\u00c3\u00a9",
                                               "&s=a%00b", "&t=%", "&k=%E2%82"])),
            "long_url": sometimes(st.integers(0, 60000) | st.integers(3700, 4500)),
            "headers": draw(st.lists(st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
                                               st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                                                       max_size=40)), max_size=5)),
            "many": sometimes(st.sampled_from([100, 127, 128, 129, 500, 1000, 2000, 3000])),
            "long_header": sometimes(st.integers(0, 60000) | st.integers(9700, 10700)),
            "odd_header": sometimes(st.sampled_from(ODD_HEADERS), ""),
            "upgrade": sometimes(st.sampled_from(UPGRADES), "ok")}


@st.composite
def drop_cases(draw):
    return {"kind": draw(st.sampled_from(["no-bytes", "partial-line", "partial-headers", "before-101",
                                          "after-101", "half-frame", "after-101-rst"])),
            "delay_ms": draw(st.integers(0, 30)), "cut": draw(st.integers(1, 300))}


ID_TRICKS = ["exact", "exact-encoded", "prefix-dotdot", "suffix-dotdot", "dotdot-2f", "2f-suffix", "nul",
             "eq-raw", "eq-double", "lower", "space", "plus", "semicolon", "query", "fragment", "trailing-slash",
             "long", "unicode", "empty", "dot", "dotdot", "random", "double-slash", "percent", "backslash",
             "stage-dotdot", "at-encoded"]


@st.composite
def management_cases(draw):
    return {"method": draw(st.sampled_from(["POST", "GET", "DELETE"] * 3 + ["PUT", "PATCH", "HEAD", "OPTIONS"])),
            "base": draw(st.sampled_from(["bystander", "victim", "random", "unknown-shaped"])),
            "trick": draw(st.sampled_from(ID_TRICKS)),
            "stage": draw(st.sampled_from(["dev"] * 16 + ["prod", "DEV", "", "%64ev"])),
            "random": draw(st.text(max_size=40)),
            "long": draw(st.integers(0, 60000)),
            "body": draw(st.sampled_from([0, 1, 100, MAX_MESSAGE, MAX_MESSAGE + 1, 200000]) | st.integers(0, 2000)),
            "signature": draw(st.sampled_from(["ok"] * 16 + ["none", "other-service", "old", "garbage"])),
            "binary_body": draw(st.booleans())}


# -- the fuzzer ----------------------------------------------------------------------------------------
@dataclass
class Category:
    name: str
    strategy: object  # () -> strategy
    run: object  # async (fuzzer, case) -> None; records violations itself
    weight: int


@dataclass
class Stats:
    examples: int = 0
    seconds: float = 0.0
    outcomes: dict = field(default_factory=dict)


class Fuzzer:
    def __init__(self, target: Target, seed: int = 0, batch: int = 100, out=sys.stdout):
        self.target, self.seed, self.batch, self.out = target, seed, batch, out
        self.loop = asyncio.new_event_loop()
        self.violations: list[tuple[str, str, str]] = []
        self.stats: dict[str, Stats] = {}
        self.session: RawSocket | None = None
        self.session_user = ""
        self.session_uses = 0
        self.users = 0
        self.expected_disconnects: dict[str, tuple[str, int]] = {}  # connection id -> (category, code)
        self.bystander: RawSocket | None = None
        self.bystander_id = ""
        self.bystander_frames: list = []
        self.log_offset = 0
        self.category = ""
        self.case = None
        self.checks = 0

    # -- plumbing --------------------------------------------------------------------------------------
    def run(self, coroutine, timeout: float = CASE_TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout))

    def user(self, prefix: str = "fz") -> str:
        self.users += 1
        return "%s-%d-%s" % (prefix, self.users, os.urandom(3).hex())

    def violation(self, what: str) -> None:
        shown = repr(self.case)
        if len(shown) > 400:
            shown = shown[:400] + "...(%d chars)" % len(shown)
        self.violations.append((self.category, what, shown))

    def outcome(self, name: str) -> None:
        outcomes = self.stats[self.category].outcomes
        outcomes[name] = outcomes.get(name, 0) + 1

    async def open(self, user: str | None = None) -> RawSocket:
        status, ws = await RawSocket.connect(self.target.host, self.target.port,
                                             self.target.ws_target(user or self.user()))
        if status != 101:
            ws.abort()
            raise AssertionError("a valid upgrade was answered %d" % status)
        return ws

    async def identified(self, user: str | None = None) -> tuple[RawSocket, str]:
        """A fresh connection and its id (from whoami)."""
        ws = await self.open(user)
        ws.send(frame(1, b'{"action":"whoami"}'))
        answer = await ws.reply()
        if label(answer) != "whoami":
            raise AssertionError("whoami answered %r" % (answer,))
        return ws, answer["connectionId"]

    def expect_disconnect(self, connection_id: str, code: int) -> None:
        self.expected_disconnects[connection_id] = (self.category, code)

    # -- text messages on a long-lived connection ----------------------------------------------------------
    async def text_session(self) -> RawSocket:
        if self.session is None or self.session.closed is not None or self.session_uses >= 200:
            await self.retire_session()
            self.session_user = self.user("fz-text")
            self.session = await self.open(self.session_user)
            self.session_uses = 0
        self.session_uses += 1
        return self.session

    async def retire_session(self) -> None:
        ws, self.session = self.session, None
        if ws is None:
            return
        if ws.closed is None:  # still open: it must still answer, then close cleanly
            ws.send(frame(1, b'{"action":"whoami"}'))
            try:
                answer = await ws.reply()
                if label(answer) != "whoami":
                    self.violation("the session's closing whoami was answered %r" % (answer,))
            except (Closed, asyncio.TimeoutError) as error:
                self.violation("the session did not answer its closing whoami: %r" % error)
            await ws.close()
        ws.abort()

    async def send_text(self, make_text, framing=None) -> RawSocket:
        """Send one text message on the session and judge the answer by the handler's contract.
        `make_text(user)` gives the message; `framing(data)` its frames (default: 32 KB frames)."""
        ws = await self.text_session()
        user = self.session_user
        text = make_text(user)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: what goes on the wire is not UTF-8
            data = text.encode("utf-8", "surrogatepass")
        ws.pushes.clear()
        ws.send(*(framing(data) if framing else chunked(data)))
        if not _valid_unicode(text) or len(data) > MAX_MESSAGE:
            wanted = 1007 if not _valid_unicode(text) and len(data) <= MAX_MESSAGE else 1009
            code = await ws.close_code()
            self.outcome("closed %d" % code)
            if code != wanted and not (code in (1007, 1009) and not _valid_unicode(text)):
                self.violation("a %d-byte message closed with %d, not %d" % (len(data), code, wanted))
            return ws
        try:
            answer = await ws.reply()
        except Closed as closed:
            self.outcome("closed %d" % closed.code)
            self.violation("the connection closed with %d after a %d-byte text message" % (closed.code, len(data)))
            return ws
        except asyncio.TimeoutError:
            self.outcome("no answer")
            self.violation("no answer to a text message within %d s" % REPLY_TIMEOUT)
            ws.abort()
            ws.closed = Closed(1006)
            return ws
        got = label(answer)
        self.outcome(got)
        wanted = expected_answers(text, user, self.target.broadcast)
        if text.count("[") + text.count("{") > 400:
            wanted = wanted | {"error:bad_json"}  # deeper than the handler's recursion limit may allow
        if got not in wanted:
            self.violation("answered %s, expected one of %s" % (got, sorted(wanted)))
            return ws
        if got == "sent" and '"sendMessage"' in text:
            document = _loads(text)
            if isinstance(document, dict) and document.get("targetUserId") == user:
                texts = [push.get("text") for push in ws.pushes if push.get("type") == "message"]
                if relayed_size(user, document["text"]) > MAX_MESSAGE:
                    self.violation("a relay over 128 KB was sent instead of answering too_large")
                elif texts != [document["text"]]:
                    self.violation("the echoed text is not the text sent (%d pushes)" % len(texts))
        return ws

    # -- a connection per example, expected to close ----------------------------------------------------
    async def expect_close(self, build, wanted: set[int], why: str) -> None:
        ws, connection_id = await self.identified()
        ws.send(*build())
        code = await ws.close_code()
        ws.abort()
        self.outcome("closed %d" % code)
        if code not in wanted:
            self.violation("%s: closed with %d, expected %s" % (why, code, sorted(wanted)))
        else:
            self.expect_disconnect(connection_id, code)

    # -- health, between batches -------------------------------------------------------------------------
    def health(self) -> None:
        self.checks += 1
        if not self.target.alive():
            self.violation("the emulator process is gone")
            raise SystemExit("the emulator died:\n" + self.log_tail())
        try:
            self.run(self._whoami_probe(), HEALTH_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            self.violation("a fresh client got no whoami answer within %.0f s: %r" % (HEALTH_TIMEOUT, error))
        self.scan_log()

    async def _whoami_probe(self) -> None:
        ws, _ = await self.identified(self.user("fz-probe"))
        ws.send(frame(8, struct.pack("!H", 1000)))
        await ws.close_code(HEALTH_TIMEOUT)
        ws.abort()

    def new_log(self) -> str:
        with open(self.target.log_path, "rb") as handle:
            handle.seek(self.log_offset)
            data = handle.read()
        cut = data.rfind(b"\n") + 1  # whole lines only: the emulator may be mid-write
        self.log_offset += cut
        return data[:cut].decode("utf-8", "replace")

    def scan_log(self) -> None:
        # Split on newlines only: a function's error block is one line joined with \r, as on Lambda.
        lines = self.new_log().split("\n")
        for number, line in enumerate(lines):
            raised = FUNCTION_ERROR.match(line)
            if raised and raised.group(1) not in EXPECTED_ERRORS:  # the handler raising for client input
                self.violations.append((self.category, "a function raised %s" % raised.group(1),
                                        line[:300].replace("\r", "\n")))
            if line.startswith("Traceback"):  # the emulator's own
                end = number + 1
                while end < len(lines) and lines[end][:1] in (" ", "\t"):
                    end += 1
                exception = lines[end] if end < len(lines) else "(cut)"
                header = lines[number - 1] if number else ""
                self.violations.append((self.category, "the emulator log has a traceback: %s" % exception[:200],
                                        "%s\n%s" % (header[:300], "\n".join(lines[max(number, end - 4):end + 2]))))
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "$disconnect" and parts[2] in self.expected_disconnects:
                category, code = self.expected_disconnects.pop(parts[2])
                if parts[3] != str(code):
                    self.violations.append((category, "$disconnect of %s says %s, the socket closed with %d" % (
                        parts[2], parts[3], code), line))

    def log_tail(self) -> str:
        return self.target.log_path.read_text(errors="replace")[-4000:]

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the batch's $disconnects; then no connection but the bystander may be registered."""
        deadline = time.monotonic() + timeout
        while self.expected_disconnects and time.monotonic() < deadline:
            time.sleep(0.05)
            self.scan_log()
        for connection_id, (category, code) in self.expected_disconnects.items():
            self.violations.append((category, "no $disconnect logged for %s (closed with %d)" % (
                connection_id, code), ""))
        self.expected_disconnects.clear()
        registry = self.target.registry()
        while True:
            left = [item for item in registry.scan_connections(include_expired=True)
                    if item["connectionId"] != self.bystander_id]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for item in left:
            self.violations.append((self.category, "registry item left behind for %s (user %s)" % (
                item["connectionId"], item.get("userId")), ""))
            registry.delete_connection(item["connectionId"])  # report it once

    # -- categories ------------------------------------------------------------------------------------------
    @staticmethod
    def categories() -> list[Category]:
        return [
            Category("text", text_frames, run_text, 10),
            Category("action", action_frames, run_text, 15),
            Category("deep", deep_frames, run_text, 5),
            Category("huge", huge_frames, run_text, 3),
            Category("fragmented", fragmented_cases, run_fragmented, 8),
            Category("utf8", utf8_cases, run_utf8, 6),
            Category("binary", binary_cases, run_binary, 4),
            Category("oversize", oversize_cases, run_oversize, 5),
            Category("control", control_cases, run_control, 13),
            Category("pipelined", pipelined_cases, run_pipelined, 4),
            Category("handshake", handshake_cases, run_handshake, 15),
            Category("dropped", drop_cases, run_dropped, 4),
            Category("management", management_cases, run_management, 15),
        ]

    def start(self) -> None:
        self.new_log()  # start-up output is not ours to judge
        self.bystander, self.bystander_id = self.run(self.identified(self.user("fz-bystander")))
        self.drainer = self.loop.create_task(self._drain_bystander())

    async def _drain_bystander(self) -> None:
        while True:
            try:
                self.bystander_frames.append(await self.bystander.read_frame(3600))
            except Closed:
                return
            except asyncio.TimeoutError:
                continue

    def check_bystander(self) -> None:
        async def probe():
            status, _, _ = await http_request(self.target.host, self.target.port, (
                "GET /%s/@connections/%s HTTP/1.1\r\nHost: x\r\n" % (
                    self.target.stage, urllib.parse.quote(self.bystander_id, safe=""))).encode()
                + sigv4_headers() + b"Connection: close\r\n\r\n")
            return status

        if self.bystander.closed is not None:
            self.violation("the bystander connection was closed (%d)" % self.bystander.closed.code)
            return
        status = self.run(probe())
        if status != 200:
            self.violation("GetConnection for the bystander answered %d" % status)

    def run_category(self, category: Category, examples: int, index: int) -> None:
        self.category = category.name
        stats = self.stats.setdefault(category.name, Stats())
        done, batch_number = 0, 0
        while done < examples:
            size = min(self.batch, examples - done)
            ran = self._batch(category, size, self.seed * 100003 + index * 1009 + batch_number)
            batch_number += 1
            done += size
            stats.examples += ran
            self.run(self.retire_session())
            self.case = "(after the batch)"
            self.health()
            self.check_bystander()
            self.settle()
            if ran == 0:
                break

    def _batch(self, category: Category, size: int, seed: int) -> int:
        counter = [0]
        stats = self.stats[category.name]

        @settings(max_examples=size, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @hypothesis_seed(seed)
        @given(category.strategy())
        def body(case):
            self.case = case
            counter[0] += 1
            started = time.perf_counter()
            try:
                self.run(category.run(self, case))
            except asyncio.TimeoutError:
                self.violation("no outcome within %.0f s (hang)" % CASE_TIMEOUT)
                self.session = None
            except (Closed, AssertionError, ConnectionError, OSError) as error:
                self.violation("%s: %s" % (type(error).__name__, error))
                self.session = None
            finally:
                stats.seconds += time.perf_counter() - started

        body()
        return counter[0]

    def close(self) -> None:
        try:
            self.run(self.retire_session())
            if self.bystander:
                self.drainer.cancel()
                self.run(self.bystander.close())
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


def _loads(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# -- runners for the categories -----------------------------------------------------------------------------
async def run_text(f: Fuzzer, text: str) -> None:
    await f.send_text(lambda user: text.replace(SELF, user))


async def run_fragmented(f: Fuzzer, case: dict) -> None:
    inserted = []

    def framing(data: bytes) -> list[bytes]:
        frames = fragments(data, case["sizes"])
        for position, kind, payload in sorted(case["controls"], key=lambda c: -c[0]):
            if position < len(frames):  # between frame position-1 and frame position
                frames.insert(position, frame(9 if kind == "ping" else 10, payload))
                if kind == "ping":
                    inserted.append(payload)
        return frames

    ws = await f.text_session()
    ws.pongs.clear()
    await f.send_text(lambda user: echo_message(user, case["text"]), framing)
    if ws.closed is None and sorted(ws.pongs) != sorted(inserted):
        f.violation("pings between fragments got pongs %r, expected %r" % (ws.pongs, inserted))


async def run_utf8(f: Fuzzer, case: dict) -> None:
    await f.expect_close(lambda: fragments(case["data"], case["sizes"]), {1007}, "invalid UTF-8 in a text message")


async def run_binary(f: Fuzzer, case: dict) -> None:
    payload, kind = case["payload"], case["kind"]
    wanted = {1003}
    if kind == "single":
        frames = [frame(2, payload[:MAX_FRAME])]
    elif kind == "empty":
        frames = [frame(2, b"")]
    elif kind == "first-fragment":
        frames = [frame(2, payload[:100], fin=False), frame(0, payload[100:MAX_FRAME])]
    elif kind == "inside-text":  # a data frame inside a fragmented message is a protocol error as well
        frames = [frame(1, b'{"action":', fin=False), frame(2, payload[:MAX_FRAME])]
        wanted = {1002, 1003}
    else:
        frames = [frame(2, b"", length=len(payload) + 2 ** 40)]
    await f.expect_close(lambda: frames, wanted, "a binary frame (%s)" % kind)


async def run_oversize(f: Fuzzer, case: dict) -> None:
    kind, size = case["kind"], case["size"]
    if kind == "frame":
        await f.expect_close(lambda: [frame(1, b"x" * size)], {1009}, "a %d-byte frame" % size)
    elif kind == "frame-claim":  # a length with the most significant bit set is a protocol error too
        wanted = {1009} if size < 2 ** 63 else {1002, 1009}
        if case["opcode"] == 0:
            build = lambda: [frame(1, b"{", fin=False), frame(0, b"", length=size)]  # noqa: E731
        else:
            build = lambda: [frame(1, b"", length=size)]  # noqa: E731
        await f.expect_close(build, wanted, "a frame header declaring %d bytes" % size)
    elif kind == "message":
        data = b"x" * size
        await f.expect_close(lambda: fragments(data, [], limit=case["frame"]), {1009},
                             "a %d-byte message in %d-byte frames" % (size, case["frame"]))
    else:  # at or just under the limits: delivered and answered
        def make_text(user: str) -> str:
            return echo_message(user, "y" * max(0, size - len(echo_message(user, "").encode())))

        if kind == "frame-ok":
            await f.send_text(make_text, lambda data: [frame(1, data)])
        else:
            await f.send_text(make_text, lambda data: fragments(data, [], limit=case["frame"]))


async def run_control(f: Fuzzer, case: dict) -> None:
    kind, payload = case["kind"], case["payload"]
    if kind in ("ping", "pong"):  # legal on an open connection: a ping is answered, a pong ignored
        ws = await f.text_session()
        ws.pongs.clear()
        await f.send_text(lambda user: '{"action":"whoami"}',
                          lambda data: [frame(9 if kind == "ping" else 10, payload), frame(1, data)])
        if kind == "ping" and ws.pongs != [payload]:
            f.violation("a ping got pongs %r" % ws.pongs)
        if kind == "pong" and ws.pongs:
            f.violation("an unsolicited pong was answered")
        return
    if kind == "close-valid":
        await client_close(f, case["code"], struct.pack("!H", case["code"]) + case["reason"], case["code"])
        return
    if kind == "close-empty":
        await client_close(f, 1005, b"", 1005)
        return
    if kind == "close-in-fragment":  # a close between fragments ends the connection normally
        await client_close(f, case["code"], struct.pack("!H", case["code"]) + case["reason"], case["code"],
                           before=[frame(1, b'{"action":', fin=False)])
        return
    whoami = b'{"action":"whoami"}'
    opcode = case.get("opcode", 1)
    builds = {
        "ping-big": ([frame(9, payload)], {1002}),
        "ping-fragmented": ([frame(9, payload, fin=False)], {1002}),
        "opcode": ([frame(opcode, payload)], {1002}),
        "rsv": ([frame(opcode, whoami if opcode == 1 else payload, rsv=case.get("rsv", 1))], {1002}),
        "unmasked": ([frame(opcode, whoami if opcode == 1 else payload, mask=False)], {1002}),
        "stray-continuation": ([frame(0, payload)], {1002}),
        "text-in-fragment": ([frame(1, b'{"action":', fin=False), frame(1, whoami)], {1002}),
        "close-invalid": ([frame(8, struct.pack("!H", case.get("code", 0)))], {1002}),
        "close-1byte": ([frame(8, payload[:1] or b"\x03")], {1002}),
        "close-bad-utf8": ([frame(8, struct.pack("!H", case.get("code", 1000)) + case.get("reason", b"\xff"))], {1007}),
    }
    frames, wanted = builds[kind]
    await f.expect_close(lambda: frames, wanted, kind)


async def client_close(f: Fuzzer, code: int, payload: bytes, disconnect_code: int, before=()) -> None:
    ws, connection_id = await f.identified()
    ws.send(*before, frame(8, payload))
    echoed = await ws.close_code()
    ws.abort()
    f.outcome("echoed %d" % echoed)
    if echoed in (1002, 1007, 1006):
        f.violation("a valid close frame (%d) was answered with %d" % (code, echoed))
    f.expect_disconnect(connection_id, disconnect_code)


async def run_pipelined(f: Fuzzer, case: dict) -> None:
    user = f.user("fz-pipe")
    stream, wanted_close, answers, pings = [], None, [], 0
    for item in case["items"]:
        if item == "whoami":
            stream.append(frame(1, b'{"action":"whoami"}'))
            answers.append({"whoami"})
        elif item == "echo":
            stream.append(frame(1, echo_message(user, case["text"]).encode()))
            answers.append(expected_answers(echo_message(user, case["text"]), user, f.target.broadcast))
        elif item == "ping":
            stream.append(frame(9, b"p"))
            pings += 1
        elif item == "fragmented":
            stream.extend(fragments(b'{"action":"whoami","pad":"' + b"z" * 3000 + b'"}', [7, 1000, 0, 5]))
            answers.append({"whoami"})
        elif item == "binary":
            stream.append(frame(2, b"b" * 50))
            wanted_close = 1003
            break
        else:
            stream.append(frame(1, b"x" * (MAX_FRAME + 1)))
            wanted_close = 1009
            break
    data = b"".join(stream)
    split = min(case["split"], len(data))
    if case.get("refused"):  # a refused upgrade, frames right behind it: one answer, then the end
        await refused_with_frames(f, data[:split])
        return
    status, ws = await RawSocket.connect(f.target.host, f.target.port, f.target.ws_target(user),
                                         pipelined=data[:split])
    if status != 101:
        ws.abort()
        f.violation("the upgrade was answered %d" % status)
        return
    ws.send(data[split:])
    got = []
    try:
        for _ in answers:
            got.append(label(await ws.reply()))
        if wanted_close:
            code = await ws.close_code()
            f.outcome("closed %d" % code)
            if code != wanted_close:
                f.violation("pipelined frames closed with %d, expected %d (answers %s)" % (code, wanted_close, got))
        else:
            f.outcome("answered")
    except Closed as closed:  # a close may overtake the answers to the frames before it
        f.outcome("closed %d" % closed.code)
        if closed.code != wanted_close:
            f.violation("pipelined frames: closed with %d after answers %s, expected %s" % (
                closed.code, got, wanted_close))
    if not _matched(got, answers):  # each frame invokes the handler on its own: any order
        f.violation("pipelined frames answered %s, expected %s" % (got, [sorted(a) for a in answers]))
    if ws.closed is None:
        try:
            while len(ws.pongs) < pings:
                _, opcode, payload = await ws.read_frame(2.0)
                if opcode == 0xA:
                    ws.pongs.append(payload)
        except (asyncio.TimeoutError, Closed):
            pass
        if len(ws.pongs) != pings:
            f.violation("%d pipelined pings got %d pongs" % (pings, len(ws.pongs)))
        await ws.close()
    ws.abort()


async def refused_with_frames(f: Fuzzer, frames: bytes) -> None:
    reader, writer = await asyncio.open_connection(f.target.host, f.target.port)
    try:
        writer.write(upgrade_request(f.target.host, f.target.port, "/%s?token=not.a.token" % f.target.stage)
                     + frames)
        status, headers, _ = await read_head(reader, 10.0)
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 10.0)
        rest = await asyncio.wait_for(reader.read(), 5.0)
        f.outcome("refused %d" % status)
        if status != 401:
            f.violation("a bad token was answered %d (%r)" % (status, body[:80]))
        if rest:
            f.violation("after the refusal came more: %r" % rest[:120])
    except asyncio.TimeoutError:
        f.violation("the connection stayed open after a refused upgrade")
    except ConnectionResetError:
        f.outcome("refused, then reset")
    finally:
        writer.transport.abort()


def _matched(got: list[str], answers: list[set]) -> bool:
    """Each answer in `got` taken by a different expected set (answers may come in any order)."""
    free = sorted(answers, key=len)
    for label_ in got:
        for index, wanted in enumerate(free):
            if label_ in wanted:
                del free[index]
                break
        else:
            return False
    return True


def _encode_query(pairs) -> str:
    return "&".join("%s=%s" % (urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe="")) for k, v in pairs)


def build_handshake(f: Fuzzer, case: dict) -> tuple[bytes, set[int]]:
    """The raw request and the statuses the emulator may answer, in the order it checks:
    the HTTP parser (400), the route (403), the URL cap (414), the header cap (431), the
    upgrade itself (426), the authorizer (401), else 101."""
    target = f.target
    user = f.user("fz-hs")
    good = target.token(user)
    query, headers = [], []
    place = case["token"]
    if place in ("query", "both"):
        query.append(("token", good))
    if place == "dup-query-last-good":
        query += [("token", "bad"), ("token", good)]
    if place == "dup-query-last-bad":
        query += [("token", good), ("token", "bad.token.value")]
    if place == "bad":
        query.append(("token", "bad.token.value"))
    if place in ("header", "both", "both-disagree"):
        headers.append(("Authorization", "Bearer " + good))
    if place == "both-disagree":
        query.append(("token", target.token(user + "-other")))
    if place == "dup-header-last-good":
        headers += [("Authorization", "Bearer nope"), ("Authorization", "Bearer " + good)]
    if place == "dup-header-last-bad":
        headers += [("Authorization", "Bearer " + good), ("Authorization", "Bearer nope")]
    if place == "header-not-bearer":
        headers.append(("Authorization", "Basic " + good))
    # The event's maps keep the last value of a repeated key or header, as API Gateway's do.
    authorized = place in ("query", "header", "both", "dup-query-last-good", "dup-header-last-good")
    query_string = "&".join(x for x in (_encode_query(case["query"]), _encode_query(query)) if x) + case["raw_query"]
    if case["long_url"]:
        query_string += "&pad=" + "p" * case["long_url"]
    path = case["path"]
    request_target = path + ("?" + query_string if query_string else "")
    headers += [("X-Fuzz-" + name, value) for name, value in case["headers"]]
    headers += [("X-Many-%d" % i, "v") for i in range(case["many"])]
    if case["long_header"]:
        headers.append(("X-Long", "L" * case["long_header"]))
    odd = case["odd_header"]
    host_line = b"Host: %s:%d\r\n" % (target.host.encode(), target.port)
    raw_extra, parser_error = {
        "": (b"", False), "obs-text": (b"X-Obs: caf\xe9 \xff\x80\r\n", False),
        "control": (b"X-Ctl: a\x01b\r\n", True), "bad-name": (b"X-B\xc3\xa4d: x\r\n", True),
        "empty-name": (b": x\r\n", True), "fold": (b"X-Fold: a\r\n b\r\n", True),
        "dup-host": (b"Host: other\r\n", True), "no-host": (b"", True), "tab": (b"X-Tab:\t a\tb \t\r\n", False),
        "protocol": (b"Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", False),
        "protocol-odd": (b"Sec-WebSocket-Protocol: , ,,x y\r\n", False),
        "protocol-bytes": (b"Sec-WebSocket-Protocol: \xc3\xa9\xff, chat\r\n", False),
        "user-agent-bytes": (b"User-Agent: fuzz \xc3\xa9 \xff\xfe\r\n", False),
        "origin-null": (b"Origin: null\r\n", False),
    }[odd]
    if odd == "no-host":
        host_line = b""
    upgrade = case["upgrade"]
    method = {"post": "POST", "head": "HEAD"}.get(upgrade, "GET")
    version = "HTTP/1.0" if upgrade == "http10" else "HTTP/1.1"
    lines = {"Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13"}
    changes = {"no-upgrade": ("Upgrade", None), "no-connection": ("Connection", None), "upgrade-h2c": ("Upgrade", "h2c"),
               "connection-close": ("Connection", "close"), "version-12": ("Sec-WebSocket-Version", "12"),
               "version-8": ("Sec-WebSocket-Version", "8"), "no-version": ("Sec-WebSocket-Version", None),
               "no-key": ("Sec-WebSocket-Key", None), "short-key": ("Sec-WebSocket-Key", "c2hvcnQ="),
               "bad-key": ("Sec-WebSocket-Key", "!!not base64!!")}
    if upgrade in changes:
        name, value = changes[upgrade]
        if value is None:
            del lines[name]
        else:
            lines[name] = value
    valid_upgrade = upgrade not in changes or upgrade == "version-8"
    header_bytes = b"".join(("%s: %s\r\n" % (k, v)).encode("latin-1") for k, v in [*lines.items(), *headers])
    raw = ("%s %s %s\r\n" % (method, request_target, version)).encode("latin-1") + host_line + header_bytes \
        + raw_extra + b"\r\n"
    if parser_error or any(not 0x21 <= ord(c) <= 0x7e for c in request_target):
        return raw, {400}
    tolerance = 300  # the emulator measures the URL and headers as aiohttp re-encodes them
    url_size = len(request_target) + len("%s:%d" % (target.host, target.port)) + 6
    header_size = len(raw) - len("%s %s %s\r\n\r\n" % (method, request_target, version)) + len(request_target)
    over_url, near_url = url_size > MAX_URL + tolerance, abs(url_size - MAX_URL) <= tolerance
    over_headers, near_headers = header_size > MAX_HEADERS + tolerance, abs(header_size - MAX_HEADERS) <= tolerance
    # Not the stage's route: 403. [infer] API Gateway may check the sizes first: 414/431 accepted.
    elsewhere = {403} | ({414} if over_url or near_url else set()) | ({431} if over_headers or near_headers else set())
    if over_url:
        routed = {414}
    elif over_headers:
        routed = {431} | ({414} if near_url else set())
    else:
        routed = ({414} if near_url else set()) | ({431} if near_headers else set())
        if not valid_upgrade:
            routed.add(426)
        else:
            if upgrade == "version-8":
                routed.add(426)  # an older draft's version: refusing it is as right as accepting it
            if version == "HTTP/1.0":
                routed |= {400, 426}  # an upgrade needs HTTP/1.1; aiohttp lets it through
            routed.add(101 if authorized else 401)
    where = PATHS.get(path, False) if method == "GET" else False
    return raw, routed if where is True else elsewhere if where is False else routed | elsewhere


async def run_handshake(f: Fuzzer, case: dict) -> None:
    raw, wanted = build_handshake(f, case)
    reader, writer = await asyncio.open_connection(f.target.host, f.target.port, limit=1 << 20)
    try:
        writer.write(raw)
        try:
            status, _, _ = await read_head(reader, 10.0)
        except asyncio.IncompleteReadError:
            f.outcome("no status")
            f.violation("the socket closed without an HTTP status")
            return
        except ConnectionResetError:
            f.outcome("reset")
            f.violation("the socket was reset without an HTTP status")
            return
        except asyncio.TimeoutError:
            f.outcome("hang")
            f.violation("no HTTP status within 10 s")
            return
        f.outcome(str(status))
        if status not in wanted:
            f.violation("answered %d, expected %s (request %d bytes)" % (status, sorted(wanted), len(raw)))
        if status == 101:
            ws = RawSocket(reader, writer)
            ws.send(frame(1, b'{"action":"whoami"}'))
            answer = await ws.reply()
            if label(answer) != "whoami":
                f.violation("the new connection answered %r" % (answer,))
            else:
                f.expect_disconnect(answer["connectionId"], 1000)
            await ws.close()
    finally:
        writer.transport.abort()


async def run_dropped(f: Fuzzer, case: dict) -> None:
    """Handshakes abandoned midway: nothing to answer; the registry check after the batch
    finds any connection $connect stored and nothing removed."""
    target = f.target
    request = upgrade_request(target.host, target.port, target.ws_target(f.user("fz-drop")))
    kind = case["kind"]
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        if kind == "partial-line":
            writer.write(request[:min(case["cut"], request.index(b"\r\n"))])
        elif kind == "partial-headers":
            writer.write(request[:min(len(request) - 2, request.index(b"\r\n") + case["cut"])])
        elif kind != "no-bytes":
            writer.write(request)
        await writer.drain()
        if kind in ("after-101", "half-frame", "after-101-rst"):
            status, _, _ = await read_head(reader, 10.0)
            if status != 101:
                f.violation("a valid upgrade was answered %d" % status)
            if kind == "half-frame":
                writer.write(frame(1, b'{"action":"whoami"}')[:case["cut"] % 20 + 1])
                await writer.drain()
            if kind == "after-101":
                writer.close()  # FIN without a close frame
                f.outcome(kind)
                return
        await asyncio.sleep(case["delay_ms"] / 1000)
    finally:
        writer.transport.abort()  # RST
    f.outcome(kind)


def build_management(f: Fuzzer, case: dict, victim_id: str) -> tuple[bytes, set[int], str | None]:
    """The raw request, the statuses [#management-api] allows, and the live connection it addresses (if any)."""
    base = {"bystander": f.bystander_id, "victim": victim_id, "random": case["random"],
            "unknown-shaped": "Zz9" + os.urandom(6).hex()[:11] + "C="}[case["base"]]
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    segment = {
        "exact": quote(base), "exact-encoded": "".join("%%%02X" % b for b in base.encode()),
        "prefix-dotdot": "../" + quote(base), "suffix-dotdot": quote(base) + "/..", "dotdot-2f": "..%2F" + quote(base),
        "2f-suffix": quote(base) + "%2F", "nul": quote(base) + "%00", "eq-raw": base, "eq-double": quote(quote(base)),
        "lower": quote(base.lower()), "space": quote(base) + "%20", "plus": quote(base).replace("%3D", "+"),
        "semicolon": quote(base) + ";x", "query": quote(base) + "?x=1&connectionId=" + quote(f.bystander_id),
        "fragment": quote(base) + "#x", "trailing-slash": quote(base) + "/", "long": "A" * case["long"],
        "unicode": quote("\u00e9\u4e2d\U0001F600" + base), "empty": "", "dot": ".", "dotdot": "..",
        "random": quote(case["random"]), "double-slash": "/" + quote(base), "percent": quote(base) + "%",
        "backslash": "..%5C" + quote(base), "stage-dotdot": "../../dev/@connections/" + quote(base),
        "at-encoded": quote(base),
    }[case["trick"]]
    if case["trick"] == "eq-raw" and any(not 0x21 <= ord(c) <= 0x7e or c in "?#/" for c in base):
        segment = quote(base)
    prefix = "/%s/%s/" % (case["stage"], "%40connections" if case["trick"] == "at-encoded" else "@connections")
    request_target = prefix + segment
    body = b""
    if case["method"] == "POST":
        body = os.urandom(case["body"]) if case["binary_body"] else b"p" * case["body"]
    signature = {"ok": sigv4_headers(), "none": b"", "other-service": sigv4_headers("dynamodb"),
                 "old": sigv4_headers(when=time.time() - 3600),
                 "garbage": b"Authorization: AWS4-HMAC-SHA256 x\r\n"}[case["signature"]]
    raw = ("%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (case["method"], request_target, f.target.host, f.target.port)
           ).encode() + signature + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    addressed = _addressed(request_target)
    if addressed is None or case["signature"] != "ok" or case["method"] not in ("POST", "GET", "DELETE"):
        return raw, {403}, None
    if case["method"] == "POST" and len(body) > MAX_MESSAGE:
        return raw, {413}, None
    if addressed in (f.bystander_id, victim_id):
        return raw, {{"POST": 200, "GET": 200, "DELETE": 204}[case["method"]]}, addressed
    return raw, {410}, None


def _addressed(request_target: str) -> str | None:
    """The connection id a request addresses, read as a router that normalises the path (dot
    segments; percent-decoding, %2F inside a segment included) reads it; None if it is not
    /dev/@connections/{id}."""
    from yarl import URL

    try:
        url = URL(request_target, encoded=True)
        path = url.path_safe if hasattr(url, "path_safe") else url.raw_path
    except (ValueError, UnicodeError):
        return None
    match = re.fullmatch(r"/([^{}/]+)/@connections/([^/]+)", path)
    if not match or urllib.parse.unquote(match.group(1)) != "dev":
        return None
    return urllib.parse.unquote(match.group(2))


async def run_management(f: Fuzzer, case: dict) -> None:
    victim, victim_id = None, "not-a-victim"
    if case["base"] == "victim":
        victim, victim_id = await f.identified(f.user("fz-victim"))
    raw, wanted, addressed = build_management(f, case, victim_id)
    if addressed == f.bystander_id and case["method"] == "DELETE":  # only victims are deleted
        f.outcome("skipped (would delete the bystander)")
        if victim:
            await victim.close()
            f.expect_disconnect(victim_id, 1000)
        return
    try:
        try:
            status, headers, body = await http_request(f.target.host, f.target.port, raw)
        except (asyncio.IncompleteReadError, ConnectionResetError) as error:
            f.outcome("no status")
            f.violation("no HTTP status: %r" % error)
            return
        f.outcome(str(status))
        if status not in wanted:
            f.violation("%s answered %d, expected %s" % (case["method"], status, sorted(wanted)))
        error_type = headers.get("x-amzn-errortype", "")
        types = {410: "GoneException", 413: "PayloadTooLargeException"}
        if status in types and error_type != types[status]:
            f.violation("%d came with x-amzn-ErrorType %r" % (status, error_type))
        if status == 403 and not error_type:
            f.violation("403 without x-amzn-ErrorType")
        if victim is not None:
            if status == 204:
                code = await victim.close_code()
                if code != 1000:
                    f.violation("DeleteConnection closed the victim with %d, not 1000" % code)
                f.expect_disconnect(victim_id, 1000)
            else:
                if status == 200 and case["method"] == "POST":
                    try:
                        await victim.read_frame(5.0)
                    except (asyncio.TimeoutError, Closed):
                        f.violation("a 200 PostToConnection never reached the victim")
                victim.send(frame(1, b'{"action":"whoami"}'))
                answer = await victim.reply(5.0)
                if label(answer) != "whoami":
                    f.violation("the victim answered %r after the request" % (answer,))
                await victim.close()
                f.expect_disconnect(victim_id, 1000)
    finally:
        if victim is not None:
            victim.abort()


# -- running ---------------------------------------------------------------------------------------------------
def allocate(total: int, categories: list[Category]) -> dict[str, int]:
    weights = sum(c.weight for c in categories)
    counts = {c.name: max(1, total * c.weight // weights) for c in categories}
    spare = total - sum(counts.values())
    for category in sorted(categories, key=lambda c: -c.weight):
        if spare <= 0:
            break
        counts[category.name] += 1
        spare -= 1
    return counts


def fuzz(target: Target, examples: int = 10000, seed: int = 0, batch: int = 100, only=None, out=sys.stdout) -> dict:
    """Run every category against a running emulator; returns the figures (and prints them)."""
    fuzzer = Fuzzer(target, seed=seed, batch=batch, out=out)
    categories = [c for c in fuzzer.categories() if not only or c.name in only]
    counts = allocate(examples, categories)
    rss_before = target.rss_mb()
    started = time.perf_counter()
    fuzzer.start()
    try:
        for index, category in enumerate(categories):
            category_started = time.perf_counter()
            fuzzer.run_category(category, counts[category.name], index)
            stats = fuzzer.stats[category.name]
            mine = [v for v in fuzzer.violations if v[0] == category.name]
            print("  %-11s %6d examples  %6.1f s  %7.1f/s  violations %d  %s" % (
                category.name, stats.examples, time.perf_counter() - category_started,
                stats.examples / max(1e-9, time.perf_counter() - category_started), len(mine),
                _top(stats.outcomes)), file=out, flush=True)
        fuzzer.category = "final"
        fuzzer.case = None
        fuzzer.health()
        fuzzer.check_bystander()
        fuzzer.settle()
        alive = target.alive()
    finally:
        fuzzer.close()
    seconds = time.perf_counter() - started
    total = sum(s.examples for s in fuzzer.stats.values())
    figures = {"examples": total, "seconds": seconds, "throughput": total / seconds if seconds else 0.0,
               "per_category": {name: s.examples for name, s in fuzzer.stats.items()},
               "outcomes": {name: dict(s.outcomes) for name, s in fuzzer.stats.items()},
               "violations": fuzzer.violations, "rss_before_mb": rss_before, "rss_after_mb": target.rss_mb(),
               "alive": alive, "health_checks": fuzzer.checks}
    return figures


def _top(outcomes: dict, n: int = 5) -> str:
    return ", ".join("%s=%d" % item for item in sorted(outcomes.items(), key=lambda kv: -kv[1])[:n])


def report(figures: dict, out=sys.stdout) -> None:
    print("\nexamples %d in %.1f s: %.1f examples/s; %d health checks; emulator RSS %.1f -> %.1f MiB; %s" % (
        figures["examples"], figures["seconds"], figures["throughput"], figures["health_checks"],
        figures["rss_before_mb"] or 0, figures["rss_after_mb"] or 0,
        "emulator alive and answering" if figures["alive"] else "EMULATOR DEAD"), file=out)
    print("outcomes (what the emulator answered):", file=out)
    for name, outcomes in figures["outcomes"].items():
        print("  %-11s %s" % (name, _top(outcomes, 99)), file=out)
    violations = figures["violations"]
    print("oracle violations: %d" % len(violations), file=out)
    groups: dict = {}
    for category, what, case in violations:
        key = (category, re.sub(r"[A-Za-z0-9_-]{15}=", "<id>", re.sub(r"\d+", "N", what)))
        groups.setdefault(key, []).append((what, case))
    for (category, _), items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        what, case = items[0]
        print("  [%s] x%d  %s\n      e.g. %s" % (category, len(items), what, case.replace("\n", "\n      ")), file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000, help="total examples over all categories")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=100, help="examples between health checks")
    parser.add_argument("--only", default="", help="comma-separated categories")
    parser.add_argument("--keep-log", action="store_true", help="print where the emulator's log is")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from backends import Emulator, banner, exit_on_sigterm

    exit_on_sigterm()

    banner("fuzz_emulator: %d examples, seed %d" % (args.examples, args.seed))
    emulator = Emulator(stack="fuzz")
    emulator.args.remove("--quiet")  # the per-event log lines carry the $disconnect codes
    emulator.start()
    try:
        figures = fuzz(Target.of(emulator), args.examples, args.seed, args.batch,
                       {n for n in args.only.split(",") if n} or None)
    finally:
        code = emulator.stop()
        if args.keep_log:
            print("emulator log: %s" % emulator.log_path)
    report(figures)
    print("emulator exit status after Ctrl-C: %s" % code)
    return 1 if figures["violations"] or not figures["alive"] else 0


if __name__ == "__main__":
    sys.exit(main())
