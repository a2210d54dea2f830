"""The lean sender (wsctl/fanout/transport.py LeanTransport over wsctl/fanout/pool.py and http1.py)
against real servers: a scripted management endpoint (tests/support/scripted_http.py: exact answer
bytes, drops, resets, silence; every signature recomputed with the secret) and the emulator (TLS with
its CA, live connections). boto3 through the same endpoint is the reference for what an answer means.
"""

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
from botocore.config import Config
from botocore.credentials import Credentials
from websockets.sync.client import connect

from support.emulator_fixtures import ROOT, _clean_env, unique
from support.forward_proxy import ForwardProxy
from support.live_support import drain, whoami
from support.scripted_http import CLOSE, HANG, OK, RESET, ScriptedServer, answer, chunked
from wsctl import fanout
from wsctl.exitstatus import ExitStatus
from wsctl.fanout.http1 import ResponseReader, host_header, path_segment
from wsctl.fanout.policy import DELIVERED, FAILED, FORBIDDEN, GONE, THROTTLED, RetryPolicy, outcome_of
from wsctl.fanout.transport import Boto3Transport, LeanTransport, answer_of

REGION = "us-east-1"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
FAST = RetryPolicy(max_attempts=3, max_throttled_attempts=3, base=0.001, cap=0.002)


def lean(url, token=None, **kwargs) -> LeanTransport:
    return LeanTransport(url, Credentials("AKIDLEAN", SECRET, token), REGION, **kwargs)


def boto3_transport(url) -> Boto3Transport:
    import boto3

    client = boto3.client("apigatewaymanagementapi", endpoint_url=url, region_name=REGION,
                          aws_access_key_id="AKIDBOTO", aws_secret_access_key=SECRET,
                          config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    return Boto3Transport(client, 4)


def calls(transport, requests):
    """[(method, id, data)] one after another through `transport`; their Answers."""
    async def go():
        async with transport:
            return [await transport.call(*request) for request in requests]

    return asyncio.run(go())


def run(transport, ids, data=b"payload", concurrency=8, policy=FAST):
    async def go():
        async with transport:
            return await fanout.run(transport, "POST", ids, data, concurrency, policy=policy, seed=1)

    return asyncio.run(go())


# -- what an answer means: the same as to boto3, for every status --------------------------------------
JSON = {"Content-Type": "application/json"}
ANSWERS = {
    "ok": OK,
    "ok-chunked": chunked(200, {}, b""),
    "ok-close-delimited": answer(200, "OK", {"Connection": "close"}, b"", length=False),
    "ok-after-100": b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    "gone-typed": answer(410, "Gone", {"x-amzn-ErrorType": "GoneException", **JSON}, b'{"message":""}'),
    "gone-html": answer(410, "Gone", {"Content-Type": "text/html"}, b"<html>Gone</html>"),
    "gone-close-delimited": answer(410, "Gone", {"Connection": "close"}, b"<html>Gone</html>", length=False),
    "gone-chunked": chunked(410, {**JSON}, b'{"__type":"GoneException","message":"x"}'),
    "forbidden-body": answer(403, "Forbidden", JSON, b'{"__type":"com.amazonaws#ForbiddenException","message":"no"}'),
    "denied-header": answer(403, "Forbidden", {"x-amzn-ErrorType": "AccessDeniedException:http://internal/"},
                            b'{"Message":"not authorized to perform: execute-api:ManageConnections"}'),
    "forbidden-bare": answer(403, "Forbidden"),
    "too-large": answer(413, "Payload Too Large", {"x-amzn-ErrorType": "PayloadTooLargeException", **JSON},
                        b'{"message":"Request must be smaller than 131072 bytes"}'),
    "throttled": answer(429, "Too Many Requests", {"x-amzn-ErrorType": "LimitExceededException", **JSON},
                        b'{"message":"Rate exceeded"}'),
    "throttled-400": answer(400, "Bad Request", JSON, b'{"code":"LimitExceededException"}'),
    "bad-request": answer(400, "Bad Request", JSON, b'{"__type":"BadRequestException","message":"bad"}'),
    "internal": answer(500, "Internal", {"x-amzn-ErrorType": "InternalServerErrorException", **JSON}, b"{}"),
    "bad-gateway": answer(502, "Bad Gateway", {"Content-Type": "text/html"}, b"<html>502</html>"),
    "unavailable": answer(503, "Unavailable"),
    "timeout": answer(504, "Gateway Timeout", JSON, b'{"message": "Endpoint request timed out"}'),
}


@pytest.fixture(scope="module")
def scripted():
    with ScriptedServer(lambda cid, nth: ANSWERS[cid.split("#")[0]], SECRET) as server:
        yield server


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_every_answer_means_what_it_means_to_boto3(scripted, kind):
    cid = "%s#%s" % (kind, unique())
    (mine,), (theirs,) = (calls(t, [("POST", cid, b"hi")]) for t in (lean(scripted.url), boto3_transport(scripted.url)))
    assert mine.status == theirs.status
    assert outcome_of(mine, (200,)) == outcome_of(theirs, (200,))
    # botocore names the error code the status when it finds none; wsctl's reader says None
    assert mine.error_code == (None if theirs.error_code == str(theirs.status) else theirs.error_code)
    if mine.body.startswith(b"{"):  # for other bodies botocore gives the reason phrase, wsctl the body's start
        assert mine.message == theirs.message
    signed = [seen.signed for seen in scripted.seen if seen.connection_id == cid]
    assert signed == ["AKIDLEAN", "AKIDBOTO"]


def test_the_outcomes_cover_every_kind_of_answer():
    """The table above reaches every outcome the engine knows (and the test above compares them)."""
    outcomes = set()
    for raw in ANSWERS.values():
        reader = ResponseReader()
        done = reader.feed(raw)
        outcomes.add(outcome_of(answer_of(done[0] if done else reader.eof()), (200,)))
    assert outcomes == {DELIVERED, GONE, FORBIDDEN, THROTTLED, FAILED}


def test_answers_read_the_same_however_the_bytes_are_cut():
    """One stream of every sized answer (as pipelined on one connection), fed whole, byte by byte and
    in odd chunks; a close-delimited answer completes at the close, and one cut short does not."""
    sized = [kind for kind in sorted(ANSWERS) if "close-delimited" not in kind]
    stream = b"".join(ANSWERS[kind] for kind in sized)

    def read(pieces):
        reader = ResponseReader()
        return [answer for piece in pieces for answer in reader.feed(piece)]

    whole = read([stream])
    assert [r.status for r in whole] == [int(ANSWERS[k].split(b" ")[1]) if not k.endswith("after-100") else 200
                                         for k in sized]
    assert read([stream[i:i + 1] for i in range(len(stream))]) == whole
    assert read([stream[i:i + 7] for i in range(0, len(stream), 7)]) == whole
    reader = ResponseReader()
    assert reader.feed(ANSWERS["gone-close-delimited"]) == []
    assert reader.eof() == (410, None, b"<html>Gone</html>", False)
    reader = ResponseReader()
    assert reader.feed(ANSWERS["gone-typed"][:-3]) == [] and reader.eof() is None  # short of its length


def test_get_and_delete_read_as_boto3_reads_them(scripted):
    def script(cid, nth):
        if cid.startswith("get"):
            return answer(200, "OK", JSON, json.dumps({"connectedAt": "2026-12-06T04:00:00.000Z",
                                                       "identity": {"sourceIp": "203.0.113.7", "userAgent": "ua"},
                                                       "lastActiveAt": "2026-12-06T04:00:01.000Z"}).encode())
        return answer(204, "No Content")

    with ScriptedServer(script, SECRET) as server:
        mine = calls(lean(server.url), [("GET", "get-1", None), ("DELETE", "del-1", None)])
        theirs = calls(boto3_transport(server.url), [("GET", "get-1", None), ("DELETE", "del-1", None)])
        assert [a.status for a in mine] == [a.status for a in theirs] == [200, 204]
        assert json.loads(mine[0].body)["identity"] == json.loads(theirs[0].body)["identity"]
        assert [(s.method, s.signed, s.body) for s in server.seen] == [
            ("GET", "AKIDLEAN", b""), ("DELETE", "AKIDLEAN", b""), ("GET", "AKIDBOTO", b""), ("DELETE", "AKIDBOTO", b"")]


# -- signing and ids -----------------------------------------------------------------------------------
IDS = ["L0SM9cOFvHcCIhw=", "a+b/c=", "sp ace", "caf\u00e9 \u2603", "%41", "~._-", "q?x=1&y#z", "..", "."]


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEJr//////////wEaDBase64+Token=="])
def test_ids_are_encoded_and_signed_exactly_as_botocore_sends_them(token):
    with ScriptedServer(lambda cid, nth: OK, SECRET) as server:
        mine = calls(lean(server.url, token), [("POST", cid, b"x") for cid in IDS])
        import boto3

        client = boto3.client("apigatewaymanagementapi", endpoint_url=server.url, region_name=REGION,
                              aws_access_key_id="AKIDBOTO", aws_secret_access_key=SECRET, aws_session_token=token,
                              config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        theirs = calls(Boto3Transport(client, 1), [("POST", cid, b"x") for cid in IDS])
    assert [a.status for a in mine] == [a.status for a in theirs] == [200] * len(IDS)
    lean_seen, boto_seen = server.seen[:len(IDS)], server.seen[len(IDS):]
    assert [s.path for s in lean_seen] == [s.path for s in boto_seen]  # byte for byte what botocore sends
    assert [s.connection_id for s in lean_seen] == IDS
    assert {s.signed for s in lean_seen} == {"AKIDLEAN"} and {s.signed for s in boto_seen} == {"AKIDBOTO"}
    assert {s.host for s in lean_seen} == {s.host for s in boto_seen}


def test_the_short_way_to_encode_an_id_is_urllibs():
    from urllib.parse import quote

    for text in IDS + ["", "ABCdef019", "a=b=c", "/", "++", "\x00\x7f", "ü+="]:
        assert path_segment(text) == quote(text, safe=""), text


@pytest.mark.parametrize("url", ["https://ABC.execute-api.eu-west-1.amazonaws.com:443/prod", "http://h:80/dev",
                                 "http://127.0.0.1:8080/dev", "https://[::1]:8443/dev", "https://h.example.com"])
def test_the_host_header_is_botocores(url):
    from botocore.auth import _host_from_url

    assert host_header(url) == _host_from_url(url)


# -- connections that end: retried only as the engine's policy says ---------------------------------------
def test_a_post_whose_connection_closed_or_reset_before_the_answer_is_retried_by_the_engine():
    def script(cid, nth):
        kind = cid.split("-")[0]
        if nth == 1 and kind in ("close", "reset"):
            return CLOSE if kind == "close" else RESET
        return {"gone": ANSWERS["gone-typed"], "denied": ANSWERS["denied-header"]}.get(kind, OK)

    ids = ["close-1", "reset-1", "close-2", "reset-2", "gone-1", "ok-1", "ok-2"]
    with ScriptedServer(script, SECRET) as server:
        report = run(lean(server.url), ids, concurrency=4)
        by_id = {r.connection_id: (r.outcome, r.attempts) for r in report.results}
        assert by_id == {"close-1": (DELIVERED, 2), "reset-1": (DELIVERED, 2), "close-2": (DELIVERED, 2),
                         "reset-2": (DELIVERED, 2), "gone-1": (GONE, 1), "ok-1": (DELIVERED, 1), "ok-2": (DELIVERED, 1)}
        assert server.asked == {cid: attempts for cid, (_, attempts) in by_id.items()}  # one request per attempt
        broken = [r.answer for r in report.results if r.attempts == 2]
        assert all(r.answer.status == 200 for r in report.results if r.outcome == DELIVERED)
        assert len(broken) == 4


def test_a_403_is_never_sent_again():
    with ScriptedServer(lambda cid, nth: ANSWERS["denied-header"] if cid == "denied" else OK, SECRET) as server:
        report = run(lean(server.url), ["a", "denied", "b", "c"], concurrency=1)
    assert [r.outcome for r in report.results] == [DELIVERED, FORBIDDEN, "skipped", "skipped"]
    assert server.asked == {"a": 1, "denied": 1} and "ManageConnections" in report.stopped


@pytest.mark.parametrize("close_header", [True, False])
def test_an_endpoint_that_closes_after_each_answer_loses_nothing(close_header):
    """With `Connection: close` the sender never reuses the connection; after a bare close it may
    write the next request before it has read the close: that post fails without an answer (it never
    arrived) and the engine sends it again."""
    reply = answer(200, "OK", {"Connection": "close"}) if close_header else OK
    with ScriptedServer(lambda cid, nth: (reply, CLOSE), SECRET) as server:
        ids = ["c%d" % i for i in range(60)]
        report = run(lean(server.url), ids, concurrency=4, policy=RetryPolicy(max_attempts=5, base=0.001, cap=0.002))
    assert report.counts()["delivered"] == 60
    assert server.asked == dict.fromkeys(ids, 1)  # each arrived once
    assert len({s.connection for s in server.seen}) == 60  # one request per connection
    if close_header:
        assert report.retries == 0


def test_a_reset_with_many_requests_in_flight_fails_them_all_and_the_engine_retries_each():
    held = threading.Event()

    def script(cid, nth):
        if nth == 1 and cid.startswith("held"):
            if len([s for s in server.seen if s.connection_id.startswith("held")]) == 16:
                held.set()
            return HANG
        return OK

    server = ScriptedServer(script, SECRET)
    with server:
        ids = ["held%d" % i for i in range(16)] + ["later%d" % i for i in range(16)]
        resetter = threading.Thread(target=lambda: held.wait(20) and server.reset_all())
        resetter.start()
        report = run(lean(server.url, timeout=30), ids, concurrency=16)
        resetter.join()
    assert held.is_set()
    by_id = {r.connection_id: (r.outcome, r.attempts) for r in report.results}
    assert all(by_id["held%d" % i] == (DELIVERED, 2) for i in range(16))
    assert all(by_id["later%d" % i] == (DELIVERED, 1) for i in range(16))
    assert server.asked == {cid: attempts for cid, (_, attempts) in by_id.items()}


def test_no_answer_within_the_timeout_fails_the_post_and_ends_its_connection():
    with ScriptedServer(lambda cid, nth: HANG if cid == "silent" else OK, SECRET) as server:
        report = run(lean(server.url, timeout=0.3), ["silent", "fine"], concurrency=2,
                     policy=RetryPolicy(max_attempts=2, base=0.001, cap=0.002))
    by_id = {r.connection_id: r for r in report.results}
    assert by_id["fine"].outcome == DELIVERED
    assert (by_id["silent"].outcome, by_id["silent"].attempts) == (FAILED, 2)
    assert by_id["silent"].answer.status is None and "TimeoutError" in by_id["silent"].answer.message
    silent = [s.connection for s in server.seen if s.connection_id == "silent"]
    assert len(set(silent)) == 2  # the retry went on a new connection: the silent one was ended


def test_a_refused_connection_is_a_failure_with_its_reason():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (answer_,) = calls(lean("http://127.0.0.1:%d/dev" % port), [("POST", "x", b"hi")])
    assert answer_.status is None and "ConnectionRefusedError" in answer_.message


@pytest.mark.parametrize("endpoint", ["ftp://h.example.com/dev", "wss://h.example.com/dev", "h.example.com/dev",
                                      "https:///dev"])
def test_an_endpoint_that_is_not_an_http_url_is_refused_in_one_line(endpoint):
    from wsctl.errors import UsageError

    with pytest.raises(UsageError) as refusal:
        lean(endpoint)
    assert str(refusal.value) == "the management endpoint %r is not an http:// or https:// URL" % endpoint


def test_a_peer_that_does_not_speak_http_is_a_failure():
    with ScriptedServer(lambda cid, nth: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", SECRET) as server:
        (answer_,) = calls(lean(server.url), [("POST", "x", b"hi")])
    assert answer_.status is None and "HttpError" in answer_.message


# -- TLS and proxies, against the emulator ----------------------------------------------------------------
@pytest.fixture
def live(emulator):
    """A live connection of the session's emulator: (websocket, its id)."""
    with connect(emulator.url_for(unique("lean"))) as ws:
        yield ws, whoami(ws)


def test_https_with_the_emulators_ca_delivers_and_without_it_is_refused(emulator, live):
    ws, cid = live
    state = emulator.state
    (delivered,) = calls(lean(state.tls_management_endpoint, ca_bundle=state.ca_bundle), [("POST", cid, b"over tls")])
    assert delivered.status == 200 and drain(ws, 0.2) == [b"over tls"]
    (refused,) = calls(lean(state.tls_management_endpoint), [("POST", cid, b"unverified")])
    assert refused.status is None and "CERTIFICATE_VERIFY_FAILED" in refused.message
    assert drain(ws, 0.2) == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_through_a_proxy_with_credentials(emulator, live, monkeypatch, scheme):
    ws, cid = live
    state = emulator.state
    endpoint = state.management_endpoint if scheme == "http" else state.tls_management_endpoint
    with ForwardProxy(user="op", password="p@ss word") as proxy:
        for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("%s_proxy" % scheme, proxy.url)
        answers = calls(lean(endpoint, ca_bundle=state.ca_bundle), [("POST", cid, b"one"), ("POST", cid, b"two")])
    assert [a.status for a in answers] == [200, 200]
    assert drain(ws, 0.2) == [b"one", b"two"]
    if scheme == "http":  # absolute-form requests, each through the proxy
        assert [line.split()[0] for line in proxy.requests] == ["POST", "POST"]
        assert all(line.split()[1].startswith(endpoint) for line in proxy.requests)
    else:  # one tunnel, both posts inside it (kept alive)
        assert proxy.requests == ["CONNECT %s HTTP/1.1" % endpoint.split("/")[2]]
    assert proxy.refused == 0


def test_a_proxy_that_refuses_the_tunnel_is_a_failure_with_its_status(emulator, live, monkeypatch):
    _, cid = live
    with ForwardProxy(user="op", password="right") as proxy:
        monkeypatch.setenv("https_proxy", proxy.url.replace("op:right@", "op:wrong@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        (refused,) = calls(lean(emulator.state.tls_management_endpoint, ca_bundle=emulator.state.ca_bundle),
                           [("POST", cid, b"x")])
    assert refused.status is None and "407" in refused.message and proxy.refused == 1


# -- Ctrl-C with every post in flight ---------------------------------------------------------------------
def test_ctrl_c_with_every_post_waiting_for_its_answer_ends_at_once_with_the_partial_report(emulator, tmp_path):
    """`wsctl --local broadcast` whose management endpoint never answers: SIGINT ends it with the
    report so far (nothing delivered, the rest skipped) and exit 130, without waiting for a timeout."""
    from wsctl.targets.emulator import write_state

    with ExitStackOf(connect(emulator.url_for(unique("cc"))) for _ in range(5)):
        with ScriptedServer(lambda cid, nth: HANG, "local") as silent:
            home = tmp_path / "home"
            write_state(replace(emulator.state, management_endpoint=silent.url), home)
            process = subprocess.Popen([sys.executable, "-m", "wsctl", "--local", "broadcast", "hello"], cwd=ROOT,
                                       env=_clean_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            deadline = time.monotonic() + 60
            while len(silent.seen) < 5 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            assert len(silent.seen) >= 5, process.communicate(timeout=30)
            process.send_signal(signal.SIGINT)
            # Less than the sender's 10 s answer timeout: a sender that waited for its answers fails here.
            out, err = process.communicate(timeout=9)
    assert process.returncode == ExitStatus.INTERRUPTED, (out, err)
    assert "Traceback" not in err and "interrupted: sent to 0 of" in err
    assert {s.signed for s in silent.seen} == {"local"}


class ExitStackOf:
    def __init__(self, managers):
        from contextlib import ExitStack

        self.stack, self.managers = ExitStack(), managers

    def __enter__(self):
        for manager in self.managers:
            self.stack.enter_context(manager)
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)
