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
import logging
import sys
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from multidict import CIMultiDict

from .. import apigw, limits, sigv4
from ..apispec import ApiSpec
from . import events, observe, routing, rules
from .faults import Faults
from .functions import FunctionError
from .sockets import BadRequestLog, Connection, GatewaySocket, send_fragmented

# aiohttp's HTTP parser answers 400 itself past 8 KB in the request line, 16 KB in one header or
# 128 headers. It lets through this much, so that the gateway's own checks answer 414 and 431 as
# above; only past these does the parser's 400 remain.
PARSER_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024, "max_headers": 4096}
POST_DRAIN_WAIT = 0.5  # seconds a PostToConnection waits for a slow client's buffer to drain


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


def _frame_size(data) -> int:
    if isinstance(data, bytes) or len(data) * 4 <= limits.MAX_FRAME_BYTES:  # a str: at most 4 bytes a character
        return len(data)
    return len(data.encode())


def respond(answer: rules.Answer) -> web.Response:
    """A rule's answer as aiohttp's response."""
    return web.Response(status=answer.status, headers=dict(answer.headers), body=answer.body)


class _NoBanner(CIMultiDict):
    """A response's headers without aiohttp's `Server: Python/3.x aiohttp/3.x`: a framework
    banner that no client of API Gateway sees."""

    def setdefault(self, key, default=None):
        return None if key.lower() == "server" else super().setdefault(key, default)


async def _no_banner(request, response) -> None:
    response.headers.popall("Server", None)  # aiohttp >= 3.10 prepares the headers before this hook
    response._headers = _NoBanner(response.headers)  # older ones after it


@dataclass(eq=False)  # kept in a set by identity
class Upgrade:
    """One handshake as it goes through the chain of steps (Gateway.HANDSHAKE)."""
    request: web.Request
    started: float
    origin: events.Origin | None = None
    verdict: rules.ConnectVerdict = rules.ConnectVerdict(200)


class Gateway:
    """The aiohttp shell around the rules: it reads requests and frames, asks wsctl.local.rules what
    API Gateway would do, and carries the answer out."""

    def __init__(self, config: GatewayConfig, invokers: dict, authorizer=None, log=None,
                 journal=observe.UNWATCHED):
        """`invokers` maps each route key to what runs it (`invoke(event) -> result`, raising
        FunctionError); `authorizer` runs the REQUEST authorizer on $connect; `journal` is what the
        browser view watches (wsctl/local/observe.py)."""
        self.config = config
        self.journal = journal
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
        self.handshakes: set = set()  # upgrades not yet answered, nor yet the client's socket
        self._sweeper = None
        self.given_up = False  # the stop no longer waits for $disconnects (see give_up)
        self.abandoned = 0
        # The handshake, as a chain of named steps (each returns an answer that ends it, or None).
        self.HANDSHAKE = (self.check_request, self.check_identity, self.authorize, self.run_connect)

    async def _integrate(self, route: str, event: dict, injected: rules.Outcome | None = None) -> rules.Outcome:
        """Invoke a route's integration within the integration timeout: its outcome as a value."""
        if injected is not None:
            return injected
        if route in self.unserved:
            return rules.not_served(self.unserved[route])
        return await self._invoke(self.invokers[route], event)

    async def _invoke(self, invoker, event: dict) -> rules.Outcome:
        self.journal.invoking(event)
        try:
            async with asyncio.timeout(self.config.integration_timeout):
                return rules.Outcome.result(await invoker.invoke(event))
        except FunctionError as failed:
            return rules.Outcome.failed(failed.error_type, failed.error_message)
        except TimeoutError:  # the function may still run: API Gateway stopped waiting
            return rules.TIMED_OUT

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
        return respond(rules.FORBIDDEN)

    def _print(self, route: str, connection_id: str, status, millis: float) -> None:
        if not self.config.quiet:
            sys.stdout.write("%s  %-14s %s  %s  %.1f ms\n" % (
                time.strftime("%H:%M:%S"), route, connection_id, status, millis))
            sys.stdout.flush()

    def _logged(self, route: str, connection_id: str, status, started: float) -> None:
        self.log(route, connection_id, status, (time.perf_counter() - started) * 1000)

    def _spawn(self, coroutine, group=None):
        task = asyncio.create_task(coroutine)
        group = self.tasks if group is None else group
        group.add(task)
        task.add_done_callback(group.discard)
        return task

    # -- the handshake --------------------------------------------------------------------
    async def upgrade(self, request: web.Request):
        handshake = Upgrade(request, time.perf_counter())
        self.handshakes.add(handshake)
        try:
            for step in self.HANDSHAKE:
                answer = await step(handshake)
                if answer is not None:
                    self.handshakes.discard(handshake)
                    # A refused upgrade ends the connection [infer]: kept alive, the frames a client
                    # sent right behind its request were read as a second HTTP request (answered 400).
                    response = respond(answer)
                    response.force_close()
                    return response
        except BaseException:
            self.handshakes.discard(handshake)
            raise
        return await self.accept(handshake)

    def in_flight(self) -> dict:
        """What the gateway is still doing (the emulator's `gateway` view): handshakes under way,
        open connections, frames and $disconnects whose integrations have not returned."""
        return {"handshakes": len(self.handshakes), "connections": len(self.connections),
                "messages": len(self.tasks), "disconnects": len(self.disconnects)}

    async def check_request(self, handshake: Upgrade) -> rules.Answer | None:
        """The stage, the URL's and headers' sizes, a valid upgrade; then who is knocking."""
        request = handshake.request
        answer = rules.refuse_request(rules.UpgradeRequest(
            stage=request.match_info["stage"], url_bytes=len(str(request.rel_url)) + len(request.host) + 6,
            header_bytes=sum(len(k) + len(v) + 4 for k, v in request.raw_headers) + len(str(request.rel_url)),
            websocket=rules.is_websocket_upgrade(lambda name: request.headers.get(name, ""))), self.config.stage)
        if answer is None:
            handshake.origin = self._origin(request)
        return answer

    def _origin(self, request: web.Request) -> events.Origin:
        now_ms = int(time.time() * 1000)
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport else None
        # Header values from the raw bytes, as in the event's maps: aiohttp's own str values
        # carry lone surrogates for bytes that are not UTF-8 (which the handler cannot store),
        # and request.url raises on a Host it cannot parse (bad bytes, a port over 65535).
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        scheme = "https" if transport and transport.get_extra_info("sslcontext") else "http"
        local = transport.get_extra_info("sockname") if transport else None
        headers += [("X-Amzn-Trace-Id", events.trace_id(now_ms)), ("X-Forwarded-For", peer[0] if peer else ""),
                    ("X-Forwarded-Port", str(local[1]) if local else ""), ("X-Forwarded-Proto", scheme)]
        return events.Origin(
            connection_id=events.connection_id(), connected_at=now_ms, source_ip=peer[0] if peer else "127.0.0.1",
            domain_name=next((v for k, v in headers if k.lower() == "host"), None) or request.host,
            stage=self.config.stage, api_id=self.config.api_id,
            user_agent=next((v for k, v in headers if k.lower() == "user-agent"), None), headers=headers,
            query=[(k, v) for k, v in request.query.items()] if request.query_string else [])

    async def check_identity(self, handshake: Upgrade) -> rules.Answer | None:
        """An identity source missing: 401 without invoking the authorizer."""
        if self.authorizer is None:
            return None
        request = handshake.request
        if rules.missing_identity(self.config.identity_sources, request.headers.get, request.query.get):
            self.log("$connect(auth)", handshake.origin.connection_id, 401, 0.0)
            return rules.auth_refusal(401)
        return None

    async def authorize(self, handshake: Upgrade) -> rules.Answer | None:
        if self.authorizer is None:
            return None
        started, origin = time.perf_counter(), handshake.origin
        event = events.authorizer_event(origin, self.method_arn, int(time.time() * 1000), events.request_id())
        verdict = rules.auth_verdict(await self._invoke(self.authorizer, event), self.method_arn)
        if isinstance(verdict, dict):
            origin.authorizer = dict(verdict, integrationLatency=int((time.perf_counter() - started) * 1000))
            return None
        self._logged("$connect(auth)", origin.connection_id, verdict, started)
        return rules.auth_refusal(verdict)

    async def run_connect(self, handshake: Upgrade) -> rules.Answer | None:
        if "$connect" not in self.route_keys:
            return None
        origin = handshake.origin
        event = events.connect_event(origin, int(time.time() * 1000), events.request_id())
        outcome = await self._integrate("$connect", event, rules.injected(self.config.faults.handler()))
        handshake.verdict = rules.connect_verdict(outcome)
        if handshake.verdict.admitted:
            return None
        self._logged("$connect", origin.connection_id, rules.shown(outcome, handshake.verdict.status),
                     handshake.started)
        return rules.Answer(handshake.verdict.status)

    async def accept(self, handshake: Upgrade):
        """The 101: from here the socket is the client's, until it closes."""
        origin, protocol = handshake.origin, handshake.verdict.subprotocol
        # Compression off: API Gateway does not negotiate permessage-deflate [infer].
        ws = GatewaySocket(protocols=(protocol,) if protocol else (), max_msg_size=self.config.max_message + 1,
                           autoping=True, autoclose=False, compress=False, timeout=5.0)
        ws.max_frame = self.config.max_frame
        ws.chosen_protocol = protocol  # answered whether the client offered it or not
        transport = handshake.request.transport
        try:
            await ws.prepare(handshake.request)
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client left during the handshake")
        except (ConnectionError, RuntimeError):
            # The client left while $connect ran. The handler has stored the connection by now, so
            # it gets its $disconnect (1006), as after any other drop [infer]. A socket that closed
            # before the 101 was written is one too: its reader would never see an end.
            if "$connect" in self.route_keys:
                self._ended(Connection(ws, origin), None, None)
            # Not `ws`: aiohttp would finish the half-prepared socket and log a RuntimeError.
            # Nobody reads this answer.
            return web.Response(status=400, text="the client left during the handshake")
        finally:
            # no await between here and the connection's registration (or its $disconnect's task)
            self.handshakes.discard(handshake)
        connection = Connection(ws, origin, transport)
        self.connections[origin.connection_id] = connection
        self.journal.opened(connection)
        self._logged("$connect", origin.connection_id, 101, handshake.started)
        await self._read(connection)
        await ws.lingered()  # the handler's return closes the socket
        return ws

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
                    connection.close = rules.BINARY
                    await ws.close(code=rules.BINARY[0])
                    break
                elif msg.type is WSMsgType.CLOSE:
                    server_close, client_close = rules.close_frame(msg.data, msg.extra or "")
                    if server_close is not None:  # aiohttp accepts codes RFC 6455 does not
                        connection.close = server_close
                        await ws.close(code=server_close[0], drain=False)
                    else:
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
            self._ended(connection, connection.close, client_close)

    def _ended(self, connection: Connection, server_close, client_close) -> None:
        """A connection ended: its $disconnect, with the code and reason its ending has."""
        code, reason = rules.ending(server_close, client_close)
        self.journal.closed(connection, code, reason)
        if self.config.faults.loses_disconnect(code):
            self.log("$disconnect", connection.id, "lost", 0.0)  # best-effort delivery, simulated
        elif "$disconnect" in self.route_keys:
            self._spawn(self._disconnect(connection, code, reason), self.disconnects)

    async def _disconnect(self, connection: Connection, code: int, reason: str) -> None:
        started = time.perf_counter()
        event = events.disconnect_event(connection.origin, code, reason, int(time.time() * 1000), events.request_id())
        outcome = await self._integrate("$disconnect", event)  # its result is ignored, as on AWS
        if self.given_up:  # the stop stopped waiting for it, and said how many: one line, not thousands
            return
        self._logged("$disconnect", connection.id, rules.disconnect_shown(outcome, code), started)

    async def _message(self, connection: Connection, text: str) -> None:
        started = time.perf_counter()
        req_id = events.request_id()
        route = routing.select(self.config.spec.route_selection_expression, text, self.route_keys)
        self.journal.frame_in(connection, text, route, req_id)
        if route is None:
            reply = rules.no_route(connection.id, req_id)
        else:
            event = events.message_event(connection.origin, route, text, int(time.time() * 1000), req_id,
                                         events.message_id(connection.id))
            outcome = await self._integrate(route, event, rules.injected(self.config.faults.handler()))
            reply = rules.reply(outcome, route in self.two_way, connection.id, req_id)
        for frame in reply.frames:
            await self._send(connection, frame)
        self._logged(route or "(no route)", connection.id, reply.shown, started)

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
            self.journal.frame_out(connection, data)
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
        config = self.config
        interval = max(0.05, min(5.0, config.idle_timeout / 20, config.max_duration / 20))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for connection in list(self.connections.values()):
                if rules.expired(now, connection.last_active, connection.origin.connected_at, config.idle_timeout,
                                 config.max_duration):
                    self.close_connection(connection, *apigw.GOING_AWAY)

    async def shutdown(self, timeout: float = 10.0, cut_short: asyncio.Event | None = None) -> int:
        """Close every socket with 1001 (and those whose handshake was under way, once it ends) and
        wait for their $disconnect invocations (and those of clients that had just left), `timeout`
        seconds at most, or until `cut_short` is set. Returns how many $disconnects were still under
        way: the stop does not wait for them."""
        if self._sweeper:
            self._sweeper.cancel()
        deadline = time.monotonic() + timeout
        while True:
            for connection in list(self.connections.values()):
                self.close_connection(connection, *apigw.GOING_AWAY)
            if not (self.handshakes or self.tasks or self.disconnects) or time.monotonic() >= deadline or \
                    (cut_short is not None and cut_short.is_set()):
                return self.give_up()
            await asyncio.sleep(0.02)

    def give_up(self) -> int:
        """The stop waits no longer: $disconnects still under way end unlogged (the stop says how many
        in one line, where a burst of dropped clients would print thousands). Returns that number."""
        if not self.given_up:
            self.given_up = True
            self.abandoned = len(self.disconnects)
        return self.abandoned

    # -- the management API --------------------------------------------------------------------
    async def management(self, request: web.Request):
        """The @connections route over HTTP(S): a thin shell around `answer_management`."""
        body = await request.read() if request.method == "POST" else b""
        answer = await self.answer_management(request.method, request.match_info["stage"], request.match_info["id"],
                                              request.headers, request.query, body)
        return respond(answer)

    async def answer_management(self, method: str, stage: str, connection_id: str, headers, query,
                                body: bytes) -> rules.Answer:
        """One management API request -> its answer, whatever carried it."""
        try:
            sigv4.check(headers, query)
            rejected = None
        except sigv4.Rejected as refusal:
            rejected = (refusal.error_type, str(refusal))
        throttle = self.config.throttle
        connection = self.connections.get(connection_id)
        verdict = rules.management_verdict(
            method, stage, self.config.stage, rejected, take_token=throttle.take if throttle else lambda: True,
            draw_fault=self.config.faults.management_status, known=connection is not None, body_bytes=len(body))
        if isinstance(verdict, rules.Answer):
            return verdict
        if verdict == "post":
            return await self._post(connection, body)
        if verdict == "get":
            origin = connection.origin
            return rules.connection_info(origin.connected_at, connection.last_active, origin.source_ip,
                                         origin.user_agent)
        self.close_connection(connection, *apigw.DELETED)
        return rules.KICKED

    async def _post(self, connection: Connection, body: bytes) -> rules.Answer:
        try:
            payload = body.decode("utf-8")  # a text frame when the data is UTF-8
        except UnicodeDecodeError:
            payload = body
        if connection.backlogged():
            return rules.posted(backlogged=True, delivered=False)
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
        if delivered:
            connection.last_active = time.time()
        return rules.posted(backlogged=False, delivered=delivered)
