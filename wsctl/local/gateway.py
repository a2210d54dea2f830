"""The emulated API Gateway: WebSocket upgrades at /{stage}, @connections at
/{stage}/@connections/{id}, on one aiohttp application.

What happens here follows docs/apigw-websocket.md (the tests name each rule): the
authorizer and $connect run before the upgrade completes and decide its HTTP
status; each frame is routed by the route selection expression and invokes
the handler concurrently; two-way routes answer with the handler's `body`;
handler errors and timeouts answer AWS's error frames and keep the socket;
frames over 32 KB and messages over 128 KB close with 1009, binary frames with
1003, idle and over-age connections with 1001; every close is followed by
$disconnect with its status code and reason.
"""

import asyncio
import base64
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from multidict import CIMultiDict

from .. import limits, sigv4
from ..apispec import ApiSpec
from . import authorizer as authz
from . import events, routing
from .functions import FunctionError
from .sockets import BadRequestLog, Connection, GatewaySocket, send_fragmented

# aiohttp's HTTP parser answers 400 itself past 8 KB in the request line, 16 KB in one header or
# 128 headers. It lets through this much, so that the gateway's own checks answer 414 and 431 as
# above; only past these does the parser's 400 remain.
PARSER_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024, "max_headers": 4096}
# Idle timeout and 2-hour cap: AWS documents neither code nor reason; like
# serverless-offline we close with 1001 "Going away" [infer].
GOING_AWAY = (1001, "Going away")
NO_STATUS = (1005, "Client-side close frame status not set")
DELETED = (1000, "Connection Closed Normally")
DROPPED = (1006, "")
POST_DRAIN_WAIT = 0.5  # seconds a PostToConnection waits for a slow client's buffer to drain


@dataclass
class Faults:
    """Test option: answer a share of management requests with an error status, and make a
    share of handler invocations fail or time out, to exercise retries and pruning."""
    management: dict = field(default_factory=dict)  # HTTP status -> share of @connections requests
    handler_error: float = 0.0
    handler_timeout: float = 0.0
    disconnect_loss: float = 0.0  # share of dropped (1006) connections whose $disconnect is lost
    seed: int | None = None

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def management_status(self) -> int | None:
        roll = self.rng.random()
        for status, share in self.management.items():
            if roll < share:
                return status
            roll -= share
        return None

    def hit(self, share: float) -> bool:
        return share > 0 and self.rng.random() < share


@dataclass
class GatewayConfig:
    stage: str
    api_id: str
    region: str
    spec: ApiSpec
    identity_sources: tuple = limits.HOST_IDENTITY_SOURCES
    idle_timeout: float = limits.IDLE_TIMEOUT_S
    max_duration: float = limits.MAX_CONNECTION_S
    integration_timeout: float = limits.INTEGRATION_TIMEOUT_S
    max_frame: int = limits.MAX_FRAME_BYTES
    max_message: int = limits.MAX_MESSAGE_BYTES
    faults: Faults = field(default_factory=Faults)
    quiet: bool = False
    throttle: object = None  # a throttle.TokenBucket for the management API, or None


def _iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, error_type: str, message: str) -> tuple[int, dict, bytes]:
    """A management API error as API Gateway sends it: botocore reads x-amzn-ErrorType."""
    return status, {"x-amzn-ErrorType": error_type, "Content-Type": "application/json"}, \
        json.dumps({"message": message}).encode()


def _frame_size(data) -> int:
    if isinstance(data, bytes) or len(data) * 4 <= limits.MAX_FRAME_BYTES:  # a str: at most 4 bytes a character
        return len(data)
    return len(data.encode())


def forbidden() -> web.Response:
    status, headers, body = _error(403, "ForbiddenException", "Forbidden")
    return web.Response(status=status, headers=headers, body=body)


class _NoBanner(CIMultiDict):
    """A response's headers without aiohttp's `Server: Python/3.x aiohttp/3.x`: a framework
    banner that no client of API Gateway sees."""

    def setdefault(self, key, default=None):
        return None if key.lower() == "server" else super().setdefault(key, default)


async def _no_banner(request, response) -> None:
    response.headers.popall("Server", None)  # aiohttp >= 3.10 prepares the headers before this hook
    response._headers = _NoBanner(response.headers)  # older ones after it


class IntegrationTimedOut(Exception):
    """The integration did not answer within API Gateway's timeout (29 s): the function may still run."""


class NotServed(Exception):
    """A declared route whose integration the emulator does not run (its kind is the message)."""

    def outcome(self, answer) -> str:
        return "%s (not emulated: %s)" % (answer, self)


class Gateway:
    def __init__(self, config: GatewayConfig, invokers: dict, authorizer=None, log=None):
        """`invokers` maps each route key to what runs it (`invoke(event) -> result`, raising
        FunctionError); `authorizer` runs the REQUEST authorizer on $connect."""
        self.config = config
        self.invokers = invokers
        self.authorizer = authorizer
        self.connections: dict[str, Connection] = {}
        # Declared routes whose integration is not run here (a non-proxy AWS integration, say): selected
        # like any other, answered as API Gateway answers that integration failing, named in the log.
        self.unserved = {r.key: r.unserved for r in config.spec.routes if r.unserved}
        self.route_keys = frozenset(k for k in config.spec.keys if k in invokers or k in self.unserved)
        self.two_way = frozenset(r.key for r in config.spec.routes if r.two_way)
        self.method_arn = events.method_arn(config.region, config.api_id, config.stage)
        self.log = log or self._print
        self.tasks: set = set()
        self.disconnects: set = set()
        self._sweeper = None

    async def _integrate(self, route: str, event: dict):
        """Invoke a route's integration within the integration timeout."""
        if route in self.unserved:
            raise NotServed(self.unserved[route])
        try:
            async with asyncio.timeout(self.config.integration_timeout):
                return await self.invokers[route].invoke(event)
        except TimeoutError:
            raise IntegrationTimedOut() from None

    # -- the aiohttp application ------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024, handler_args=dict(PARSER_LIMITS))
        server_log = logging.getLogger("aiohttp.server")
        if not any(isinstance(f, BadRequestLog) for f in server_log.filters):
            server_log.addFilter(BadRequestLog())
        # Any id routes to @connections (aiohttp's default segment pattern refuses "{" and "}"),
        # and anything else is 403: "." does not match a decoded newline, which aiohttp answered 404.
        app.router.add_route("*", "/{stage}/@connections/{id:[^/]+}", self.management)
        app.router.add_route("GET", "/{stage}", self.upgrade)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.not_found)
        app.on_startup.append(self._start)
        app.on_response_prepare.append(_no_banner)
        return app

    async def _start(self, app):
        self._sweeper = asyncio.create_task(self._sweep())

    async def not_found(self, request):
        return forbidden()

    def _print(self, route: str, connection_id: str, status, millis: float) -> None:
        if not self.config.quiet:
            sys.stdout.write("%s  %-14s %s  %s  %.1f ms\n" % (
                time.strftime("%H:%M:%S"), route, connection_id, status, millis))
            sys.stdout.flush()

    def _spawn(self, coroutine, group=None):
        task = asyncio.create_task(coroutine)
        group = self.tasks if group is None else group
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    # -- handshake ----------------------------------------------------------------
    async def upgrade(self, request: web.Request):
        response = await self._upgrade(request)
        if response.status != 101:
            # A refused upgrade ends the connection [infer]: kept alive, the frames a client sent
            # right behind its request were read as a second HTTP request (and answered 400).
            response.force_close()
        return response

    async def _upgrade(self, request: web.Request):
        if request.match_info["stage"] != self.config.stage:
            return forbidden()
        # API Gateway's documented cap on a WebSocket URL, and the 10 KB cap on the request
        # line plus headers; the status for an oversize header is not documented: 431 [infer].
        if len(str(request.rel_url)) + len(request.host) + 6 > limits.MAX_URL_BYTES:
            return web.Response(status=414, text='{"message":"Request-URI Too Long"}', content_type="application/json")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers) + len(str(request.rel_url))
        if header_bytes > limits.MAX_HANDSHAKE_HEADER_BYTES:
            return web.Response(status=431, text='{"message":"Request Header Fields Too Large"}',
                                content_type="application/json")
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required")
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        # Header values from the raw bytes, as in the event's maps: aiohttp's own str values
        # carry lone surrogates for bytes that are not UTF-8 (which the handler cannot store),
        # and request.url raises on a Host it cannot parse (bad bytes, a port over 65535).
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        scheme = "https" if request.transport and request.transport.get_extra_info("sslcontext") else "http"
        local = request.transport.get_extra_info("sockname") if request.transport else None
        headers += [("X-Amzn-Trace-Id", events.trace_id(now_ms)), ("X-Forwarded-For", peer[0] if peer else ""),
                    ("X-Forwarded-Port", str(local[1]) if local else ""), ("X-Forwarded-Proto", scheme)]
        origin = events.Origin(
            connection_id=events.connection_id(), connected_at=now_ms, source_ip=peer[0] if peer else "127.0.0.1",
            domain_name=next((v for k, v in headers if k.lower() == "host"), None) or request.host,
            stage=self.config.stage, api_id=self.config.api_id,
            user_agent=next((v for k, v in headers if k.lower() == "user-agent"), None), headers=headers,
            query=[(k, v) for k, v in request.query.items()] if request.query_string else [])

        refusal = await self._authorize(request, origin)
        if refusal is not None:
            return refusal
        protocol = None
        if "$connect" in self.route_keys:
            req_id = events.request_id()
            event = events.connect_event(origin, int(time.time() * 1000), req_id)
            status, protocol = await self._run_connect(event)
            if not 200 <= status < 300:
                shown = NotServed(self.unserved["$connect"]).outcome(status) if "$connect" in self.unserved else status
                self.log("$connect", origin.connection_id, shown, (time.perf_counter() - started) * 1000)
                return web.Response(status=status)
        # Compression off: API Gateway does not negotiate permessage-deflate [infer].
        ws = GatewaySocket(protocols=(protocol,) if protocol else (), max_msg_size=self.config.max_message + 1,
                           autoping=True, autoclose=False, compress=False, timeout=5.0)
        ws.max_frame = self.config.max_frame
        # API Gateway passes on whatever subprotocol $connect chose, offered or not (a client
        # then fails the handshake, as RFC 6455 says it must).
        ws.chosen_protocol = protocol
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            # The client left while $connect ran. The handler has stored the connection by
            # now, so it gets its $disconnect (1006), as after any other drop [infer].
            if "$connect" in self.route_keys and "$disconnect" in self.route_keys:
                self._spawn(self._disconnect(Connection(ws, origin), *DROPPED), self.disconnects)
            # Not `ws`: aiohttp would finish the half-prepared socket and log a RuntimeError.
            # Nobody reads this answer.
            return web.Response(status=400, text="the client left during the handshake")
        connection = Connection(ws, origin, request.transport)
        self.connections[origin.connection_id] = connection
        self.log("$connect", origin.connection_id, 101, (time.perf_counter() - started) * 1000)
        await self._read(connection)
        await ws.lingered()  # the handler's return closes the socket
        return ws

    async def _authorize(self, request, origin) -> web.Response | None:
        if self.authorizer is None:
            return None
        started = time.perf_counter()
        for source in self.config.identity_sources:  # any missing source: 401 without invoking
            kind, _, name = source.partition("route.request.")[2].partition(".")
            value = request.headers.get(name) if kind == "header" else request.query.get(name) if kind == "querystring" else "x"
            if not value:
                self.log("$connect(auth)", origin.connection_id, 401, 0.0)
                return web.Response(status=401, text='{"message":"Unauthorized"}', content_type="application/json")
        event = events.authorizer_event(origin, self.method_arn, int(time.time() * 1000), events.request_id())
        status = 500
        try:
            async with asyncio.timeout(self.config.integration_timeout):
                result = await self.authorizer.invoke(event)
            origin.authorizer = authz.decide(result, self.method_arn)
            origin.authorizer["integrationLatency"] = int((time.perf_counter() - started) * 1000)
            return None
        except FunctionError as failed:
            # An authorizer refuses with the error message "Unauthorized" (any runtime's way of raising it).
            status = 401 if failed.error_message == "Unauthorized" else 500
        except TimeoutError:
            status = 500
        except authz.Refused as refused:
            status = refused.status
        self.log("$connect(auth)", origin.connection_id, status, (time.perf_counter() - started) * 1000)
        message = {401: "Unauthorized", 403: "Forbidden"}.get(status, "Internal server error")
        return web.Response(status=status, text=json.dumps({"message": message}), content_type="application/json")

    async def _run_connect(self, event) -> tuple[int, str | None]:
        faults = self.config.faults
        if faults.hit(faults.handler_error):
            return 502, None
        if faults.hit(faults.handler_timeout):
            return 504, None
        try:
            result = await self._integrate("$connect", event)
        except NotServed:
            return 500, None  # an integration that fails as configured: API Gateway's 500 [infer]
        except FunctionError:
            return 502, None
        except IntegrationTimedOut:
            return 504, None
        if not isinstance(result, dict):
            return 200, None
        try:
            status = int(result.get("statusCode", 200))
        except (TypeError, ValueError):
            return 502, None
        headers = result.get("headers") or {}
        protocol = next((v for k, v in headers.items() if k.lower() == "sec-websocket-protocol"), None) \
            if isinstance(headers, dict) else None
        return status, protocol

    # -- frames -------------------------------------------------------------------------
    async def _read(self, connection: Connection) -> None:
        ws = connection.ws
        client_close = None
        try:
            while True:
                msg = await ws.receive()
                if msg.type is WSMsgType.TEXT:
                    connection.last_active = time.time()
                    self._spawn(self._message(connection, msg.data))
                elif msg.type is WSMsgType.BINARY:  # normally caught by FrameGate first
                    connection.close = (1003, "")
                    await ws.close(code=1003)
                    break
                elif msg.type is WSMsgType.CLOSE:
                    if msg.data == 1006 or msg.data >= 5000:
                        # RFC 6455 §7.4: 1006 is never sent in a close frame and codes from 5000
                        # are undefined; aiohttp accepts both, so the protocol error is closed here.
                        connection.close = (WSCloseCode.PROTOCOL_ERROR, "")
                        await ws.close(code=WSCloseCode.PROTOCOL_ERROR, drain=False)
                    else:
                        client_close = (msg.data, msg.extra or "") if msg.data else NO_STATUS
                        await ws.close(drain=False)  # the echo (autoclose is off to allow the above)
                    break
                elif msg.type is WSMsgType.ERROR:
                    error = msg.data
                    if isinstance(error, WebSocketError) and connection.close is None:
                        connection.close = (error.code, "")
                    break
                else:  # CLOSED / CLOSING
                    break
        finally:
            self.connections.pop(connection.id, None)
            if not ws.closed:
                await ws.close()
            code, reason = connection.close or client_close or DROPPED
            if code == DROPPED[0] and self.config.faults.hit(self.config.faults.disconnect_loss):
                self.log("$disconnect", connection.id, "lost", 0.0)  # best-effort delivery, simulated
            elif "$disconnect" in self.route_keys:
                self._spawn(self._disconnect(connection, code, reason), self.disconnects)

    async def _disconnect(self, connection: Connection, code: int, reason: str) -> None:
        started = time.perf_counter()
        event = events.disconnect_event(connection.origin, code, reason, int(time.time() * 1000), events.request_id())
        status = code
        try:
            await self._integrate("$disconnect", event)  # its result is ignored, as on AWS
        except FunctionError as error:
            status = "error:%s" % error.error_type
        except IntegrationTimedOut:
            status = "error:timeout"
        except NotServed as unserved:
            status = unserved.outcome(code)
        self.log("$disconnect", connection.id, status, (time.perf_counter() - started) * 1000)

    async def _message(self, connection: Connection, text: str) -> None:
        started = time.perf_counter()
        req_id = events.request_id()
        route = routing.select(self.config.spec.route_selection_expression, text, self.route_keys)
        if route is None:
            await self._send(connection, events.error_frame("Forbidden", connection.id, req_id))
            self.log("(no route)", connection.id, "Forbidden", (time.perf_counter() - started) * 1000)
            return
        event = events.message_event(connection.origin, route, text, int(time.time() * 1000), req_id,
                                     events.message_id(connection.id))
        faults = self.config.faults
        outcome = 200
        try:
            if faults.hit(faults.handler_error):
                raise FunctionError("Injected.Fault", "injected fault")
            if faults.hit(faults.handler_timeout):
                raise IntegrationTimedOut()
            result = await self._integrate(route, event)
        except FunctionError:
            outcome = "Internal server error"
            await self._send(connection, events.error_frame(outcome, connection.id, req_id))
        except NotServed as unserved:
            await self._send(connection, events.error_frame("Internal server error", connection.id, req_id))
            outcome = unserved.outcome("Internal server error")
        except IntegrationTimedOut:
            outcome = "Endpoint request timed out"
            await self._send(connection, events.error_frame(outcome, connection.id, req_id))
        else:
            if route in self.two_way and isinstance(result, dict) and result.get("body") is not None:
                body = result["body"]
                if result.get("isBase64Encoded") and isinstance(body, str):
                    await self._send(connection, base64.b64decode(body))
                else:
                    await self._send(connection, body if isinstance(body, str) else json.dumps(body))
        self.log(route, connection.id, outcome, (time.perf_counter() - started) * 1000)

    async def _send(self, connection: Connection, data) -> bool:
        ws = connection.ws
        if ws.closed or connection.close is not None:
            return False
        try:
            if _frame_size(data) > limits.MAX_FRAME_BYTES:
                send_fragmented(ws, data)  # API Gateway fragments messages over 32 KB
            elif isinstance(data, str):
                await ws.send_str(data)
            else:
                await ws.send_bytes(data)
            return True
        except (ConnectionError, RuntimeError):
            return False

    # -- server-side closes ----------------------------------------------------------------
    def close_connection(self, connection: Connection, code: int, reason: str) -> None:
        if connection.close is not None:
            return
        connection.close = (code, reason)
        self.connections.pop(connection.id, None)  # from now on the id is gone (410)
        self._spawn(connection.ws.close(code=code, message=reason.encode()))

    async def _sweep(self) -> None:
        # Timeouts are checked to within 5 % (at most every 5 s): a sweep walks every
        # connection on the event loop, about 1 ms per 10,000.
        interval = max(0.05, min(5.0, self.config.idle_timeout / 20, self.config.max_duration / 20))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for connection in list(self.connections.values()):
                if now - connection.last_active >= self.config.idle_timeout or \
                        now - connection.origin.connected_at / 1000 >= self.config.max_duration:
                    self.close_connection(connection, *GOING_AWAY)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Close every socket with 1001 and wait for their $disconnect invocations."""
        if self._sweeper:
            self._sweeper.cancel()
        for connection in list(self.connections.values()):
            self.close_connection(connection, *GOING_AWAY)
        deadline = time.monotonic() + timeout
        while (self.tasks or self.disconnects) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # -- the management API --------------------------------------------------------------------
    async def management(self, request: web.Request):
        """The @connections route over HTTP(S): a thin shell around `answer_management`."""
        body = await request.read() if request.method == "POST" else b""
        status, headers, payload = await self.answer_management(
            request.method, request.match_info["stage"], request.match_info["id"], request.headers,
            request.query, body)
        return web.Response(status=status, headers=headers, body=payload)

    async def answer_management(self, method: str, stage: str, connection_id: str, headers, query,
                                body: bytes) -> tuple[int, dict, bytes]:
        """One management API request -> (status, headers, body), whatever carried it."""
        if stage != self.config.stage:
            return _error(403, "ForbiddenException", "Forbidden")
        try:
            sigv4.check(headers, query)
        except sigv4.Rejected as rejected:
            return _error(403, rejected.error_type, str(rejected))
        if method not in ("POST", "GET", "DELETE"):
            return _error(403, "ForbiddenException", "Forbidden")
        if self.config.throttle is not None and not self.config.throttle.take():
            return _error(429, "LimitExceededException", "Rate exceeded")
        injected = self.config.faults.management_status()
        if injected is not None:
            error_type = {410: "GoneException", 429: "LimitExceededException", 403: "ForbiddenException",
                          413: "PayloadTooLargeException"}.get(injected, "InternalServerErrorException")
            return _error(injected, error_type, "injected fault")
        connection = self.connections.get(connection_id)
        if method == "POST":
            if len(body) > limits.MAX_MESSAGE_BYTES:
                return _error(413, "PayloadTooLargeException", "Request must be smaller than %d bytes for the "
                              "PostToConnection operation" % limits.MAX_MESSAGE_BYTES)
            if connection is None:
                return _error(410, "GoneException", "")
            try:
                payload = body.decode("utf-8")  # a text frame when the data is UTF-8
            except UnicodeDecodeError:
                payload = body
            if connection.backlogged():
                # AWS's LimitExceededException also means "the WebSocket client-side buffer is full".
                return _error(429, "LimitExceededException", "The connection's client-side buffer is full")
            if connection.roomy(len(body)):
                # The common case: the frame fits well below the high-water mark, so aiohttp
                # writes it without waiting for a drain (no task, no timer: this is the hot path).
                delivered = await self._send(connection, payload)
            else:
                # The frame is queued at once; waiting for a client that does not read to drain
                # it would hang the caller, so answer 200 once it is queued.
                sending = self._spawn(self._send(connection, payload))
                try:
                    delivered = await asyncio.wait_for(asyncio.shield(sending), POST_DRAIN_WAIT)
                except asyncio.TimeoutError:
                    delivered = True
            if not delivered:
                return _error(410, "GoneException", "")
            connection.last_active = time.time()
            return 200, {}, b""
        if connection is None:
            return _error(410, "GoneException", "")
        if method == "GET":
            origin = connection.origin
            identity = {"sourceIp": origin.source_ip}
            if origin.user_agent is not None:
                identity["userAgent"] = origin.user_agent
            document = {"connectedAt": _iso(origin.connected_at / 1000), "identity": identity,
                        "lastActiveAt": _iso(connection.last_active)}
            return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()
        self.close_connection(connection, *DELETED)
        return 204, {}, b""
