"""Helpers for the emulator conformance tests (tests/test_emulator_*.py).

- `RECORDER`: a handler (and REQUEST authorizer) written into a test's source
  folder. It appends every event it gets to $EVENTS_FILE (the authorizer's to
  $AUTH_FILE), so a test can compare what API Gateway would send (as
  docs/apigw-websocket.md describes it), and it misbehaves on request: the $connect query string and the
  frame's "do" field say how.
- `start_all`: several emulators with custom options, started in parallel
  (start-up is ~1.5 s each, mostly imports), for module-scoped fixtures.
- `client`/`refused`/`closed`: thin wrappers over the `websockets` asyncio
  client with the settings these tests need (no compression, no automatic
  pings, short timeouts).
"""

import asyncio
import json
import ssl
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from support.emulator_fixtures import Emulator

# docs/apigw-websocket.md#ids: 16 characters of URL-safe base64 ending in one "=".
ID_PATTERN = r"^[A-Za-z0-9_-]{15}=$"
# docs/apigw-websocket.md#request-context: CLF in UTC.
REQUEST_TIME_PATTERN = r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$"

RECORDER = textwrap.dedent('''
    """A handler that records every event and misbehaves on request (written by the tests)."""
    import json
    import os
    import threading
    import time

    _lock = threading.Lock()


    def _record(variable, event):
        path = os.environ.get(variable)
        if path:
            with _lock, open(path, "a") as handle:
                handle.write(json.dumps(event) + "\\n")


    def handler(event, context):
        _record("EVENTS_FILE", event)
        request = event["requestContext"]
        route = request["routeKey"]
        if route == "$connect":
            query = event.get("queryStringParameters") or {}
            do = query.get("connect", "")
            if do == "raise":
                raise RuntimeError("$connect failed on purpose")
            if do == "sleep":
                time.sleep(float(query.get("seconds", 2)))
            if do == "selfpost":  # post to this very connection before the upgrade has finished
                _record("EVENTS_FILE", {"selfpost": _post_to_self(request["connectionId"]),
                                        "requestContext": {"connectionId": request["connectionId"],
                                                           "eventType": "SELFPOST"}})
            response = {"statusCode": int(do) if do.isdigit() else 200, "body": "never sent to the client",
                        "headers": {"X-Not-Forwarded": "1"}}
            if query.get("proto"):
                response["headers"]["Sec-WebSocket-Protocol"] = query["proto"]
            return response
        if route == "$disconnect":
            return {"statusCode": 200, "body": "ignored"}
        try:
            frame = json.loads(event["body"])
        except ValueError:
            frame = {}
        do = frame.get("do", "echo") if isinstance(frame, dict) else "echo"
        if do == "raise":
            raise RuntimeError("message handler failed on purpose")
        if do == "sleep":
            time.sleep(float(frame.get("seconds", 2)))
        if do == "status":  # a statusCode with no body: nothing is sent
            return {"statusCode": int(frame.get("status", 500))}
        answer = {"route": route, "connectionId": request["connectionId"], "requestId": request["requestId"],
                  "length": len(event["body"]), "do": do}
        if do == "env":
            answer["env"] = {name: os.environ.get(name) for name in frame.get("names", [])}
        if do == "watched":
            import watched

            answer["watched"] = watched.VALUE
        if do == "body":
            answer["body"] = event["body"]
        if do == "authorizer":
            answer["authorizer"] = request.get("authorizer")
            answer["identity"] = request.get("identity")
        if do == "big":  # a two-way answer over 32 KB: API Gateway sends it in 32 KB fragments
            answer["padding"] = "x" * int(frame.get("size", 70000))
        return {"statusCode": 200, "body": json.dumps(answer)}


    def _post_to_self(connection_id):
        import boto3  # its endpoint comes from AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI

        try:
            boto3.client("apigatewaymanagementapi").post_to_connection(ConnectionId=connection_id, Data=b"early")
            return 200
        except Exception as error:  # noqa: BLE001 - what happened is the result
            response = getattr(error, "response", None) or {}
            return response.get("ResponseMetadata", {}).get("HTTPStatusCode", repr(error))


    def _token(event):
        token = (event.get("queryStringParameters") or {}).get("token")
        if token:
            return token
        for name, value in (event.get("headers") or {}).items():
            if name.lower() == "authorization":
                return value.split()[-1]
        return ""


    def authorize(event, context):
        _record("AUTH_FILE", event)
        token = _token(event)
        if token == "unauthorized":
            raise Exception("Unauthorized")
        if token == "crash":
            raise ValueError("the authorizer has a bug")
        if token == "malformed":
            return {"policyDocument": "not a policy"}
        if token == "noprincipal":
            return {"policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]}}
        resource = event["methodArn"]
        if token == "otherresource":
            resource = event["methodArn"].rsplit("/", 2)[0] + "/otherstage/$connect"
        if token == "wildcard":  # arn:aws:execute-api:{region}:{account}:{api-id}/*
            resource = event["methodArn"].rsplit("/", 2)[0] + "/*"
        context = {"tenant": "acme", "plan": "gold"}
        if token == "typed":
            context.update(count=3, admin=True, ratio=1.5, off=False)
        if token == "objectcontext":
            context["nested"] = {"not": "allowed"}
        if token == "huge":
            context["padding"] = "x" * 9000
        return {
            "principalId": "user-" + token,
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Deny" if token == "deny" else "Allow",
                 "Resource": resource}]},
            "context": context,
        }
''')


def write_source(folder: Path, routes: dict, watched: str = "original") -> Path:
    """The recorder handler (and the module it imports) plus a routes file, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recorder.py").write_text(RECORDER)
    (folder / "watched.py").write_text("VALUE = %r\n" % watched)
    (folder / "routes.json").write_text(json.dumps(routes))
    return folder


def routes(*keys, expression="$request.body.action", one_way=()) -> dict:
    """A routes document: every key two-way except those in `one_way`."""
    return {"routeSelectionExpression": expression,
            "routes": [{"key": key, "twoWay": key not in one_way and key not in ("$connect", "$disconnect")}
                       for key in keys]}


class Custom:
    """An emulator running the recorder from its own source folder."""

    def __init__(self, emulator: Emulator, folder: Path):
        self.emulator = emulator
        self.folder = folder
        self.events = Recording(folder / "events.jsonl")
        self.auth_events = Recording(folder / "auth.jsonl")

    def __getattr__(self, name):
        return getattr(self.emulator, name)


def custom_args(folder: Path, document: dict, *args: str, authorizer: bool = False) -> list[str]:
    write_source(folder, document)
    base = ["--source", str(folder), "--handler", "recorder.handler", "--routes", str(folder / "routes.json"),
            "--env", "EVENTS_FILE=%s" % (folder / "events.jsonl"), "--env", "AUTH_FILE=%s" % (folder / "auth.jsonl"),
            "--quiet"]
    if authorizer:
        base += ["--auth", "jwt", "--authorizer", "recorder.authorize"]
    else:
        base += ["--auth", "none"]
    return base + list(args)


def start_all(tmp_path_factory, configs: dict) -> dict:
    """{name: (document, args, authorizer)} -> {name: Custom}, started in parallel.

    An emulator that fails to start stops the others and fails the fixture.
    """
    folders = {name: tmp_path_factory.mktemp(name) for name in configs}
    started = {}
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = {}
        for name, (document, args, authorizer) in configs.items():
            argv = custom_args(folders[name] / "src", document, *args, authorizer=authorizer)
            futures[name] = pool.submit(Emulator, folders[name] / "home", argv)
        errors = []
        for name, future in futures.items():
            try:
                started[name] = Custom(future.result(), folders[name] / "src")
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append("%s: %s" % (name, error))
    if errors:
        stop_all(started)
        pytest.fail("emulators did not start:\n" + "\n".join(errors))
    return started


def stop_all(emulators: dict) -> None:
    """Stop them in parallel (each takes ~1 s: closing sockets, stopping moto)."""
    if emulators:
        with ThreadPoolExecutor(len(emulators)) as pool:
            list(pool.map(lambda custom: custom.emulator.stop(), emulators.values()))


class Recording:
    """The JSON-lines file a recorder appends events to."""

    def __init__(self, path: Path):
        self.path = path

    def all(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        # a handler may be appending right now: only complete lines (ending in a newline) count
        complete = text[:text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def of(self, connection_id: str, event_type: str | None = None) -> list[dict]:
        return [e for e in self.all() if e["requestContext"]["connectionId"] == connection_id
                and (event_type is None or e["requestContext"]["eventType"] == event_type)]

    def tagged(self, tag: str) -> list[dict]:
        """Events whose connection's query string carried tag=<tag> (CONNECT and authorizer events)."""
        return [e for e in self.all() if tag in ((e.get("multiValueQueryStringParameters") or {}).get("tag") or [])]

    def wait(self, find, timeout: float = 5.0):
        """Poll until `find(self)` returns something truthy; return it (or fail)."""
        deadline = time.monotonic() + timeout
        while True:
            found = find(self)
            if found:
                return found
            if time.monotonic() > deadline:
                pytest.fail("no matching event in %s within %ss; have:\n%s" % (
                    self.path.name, timeout, "\n".join(json.dumps(e)[:300] for e in self.all()[-10:])))
            time.sleep(0.05)

    def disconnect_of(self, connection_id: str, timeout: float = 5.0) -> dict:
        return self.wait(lambda r: r.of(connection_id, "DISCONNECT"), timeout)[0]


# -- asyncio and websockets --------------------------------------------------------
def run(coroutine, timeout: float = 30.0):
    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


def client(url: str, **options):
    """websockets.connect with no compression (frame sizes are what we send) and no keepalive pings."""
    options.setdefault("compression", None)
    options.setdefault("ping_interval", None)
    options.setdefault("open_timeout", 10)
    options.setdefault("close_timeout", 5)
    options.setdefault("max_size", None)
    return websockets.connect(url, **options)


async def refused(url: str, **options) -> int:
    """The HTTP status of a refused handshake (fails if the handshake succeeds)."""
    try:
        ws = await client(url, **options)
    except InvalidStatus as error:
        return error.response.status_code
    await ws.close()
    pytest.fail("the handshake to %s succeeded" % url)


async def answer(ws, timeout: float = 5.0):
    """The next frame, JSON-decoded when it is JSON."""
    data = await asyncio.wait_for(ws.recv(), timeout)
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return data


async def ask(ws, frame: dict, timeout: float = 5.0):
    await ws.send(json.dumps(frame))
    return await answer(ws, timeout)


async def silent(ws, seconds: float = 0.5) -> bool:
    """True when nothing arrives within `seconds`."""
    try:
        data = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    pytest.fail("expected no frame, got %r" % (data[:200],))


async def closed(ws, timeout: float = 5.0):
    """Wait for the server to close `ws`; return the close frame it sent (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as error:
        assert error.rcvd is not None, "the connection dropped without a close frame"
        return error.rcvd.code, error.rcvd.reason


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)
