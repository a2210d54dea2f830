"""AWS Lambda's Runtime API (2018-06-01), served to execution environments.

Each environment gets a listener of its own (AWS_LAMBDA_RUNTIME_API is a bare host:port, so the port
is what tells environments apart). An invocation is three HTTP exchanges (the event handed out on
/next, the /response POST and its 202), so the path is lean: an asyncio protocol per connection with
llhttp's parser (httptools, the parser uvicorn uses) and answers written as bytes, no framework
machinery, no task per request. What is allowed when is the environment's Lifecycle (lifecycle.py):
an unknown or stale request id is 400 InvalidRequestID, a call out of turn 403
InvalidStateTransition, a response over 6291556 bytes 413. This module only translates HTTP.
"""

import asyncio
import json
import re
import socket

import httptools

from ...limits import MAX_RUNTIME_RESPONSE_BYTES
from . import errors
from .environment import Environment
from .lifecycle import GONE, Refusal

PREFIX = b"/2018-06-01/runtime"
ERROR_TYPE_HEADER = b"lambda-runtime-function-error-type"
_INVOCATION = re.compile(rb"^/2018-06-01/runtime/invocation/([^/?]+)/(response|error)(?:\?.*)?$")
_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 403: b"Forbidden", 404: b"Not Found",
            413: b"Request Entity Too Large", 500: b"Internal Server Error"}


def _answer(status: int, body: bytes = b"", headers: bytes = b"", content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status, _REASONS.get(status, b"Status"), content_type, len(body), headers, body)


def _error(status: int, error_type: str, message: str) -> bytes:
    return _answer(status, json.dumps({"errorMessage": message, "errorType": error_type}).encode())


def _refused(refusal: Refusal) -> bytes:
    return _error(refusal.status, refusal.error_type, refusal.message)


ACCEPTED = _answer(202, b'{"status":"OK"}')
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # libcurl (AWS's C++ runtime client) asks before a large body


class _Request:
    __slots__ = ("method", "url", "headers", "body", "size", "keep_alive")

    def __init__(self):
        self.method, self.url, self.headers, self.body, self.size, self.keep_alive = b"", b"", {}, [], 0, True


class RuntimeProtocol(asyncio.Protocol):
    """One runtime's connection: requests answered in order (a runtime sends one at a time; /next
    waits for an event without blocking the loop)."""

    def __init__(self, environment: Environment):
        self.environment = environment
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.request: _Request | None = None
        self.pending: list = []  # requests behind one still being answered (pipelined)
        self.waiting = False  # a /next is waiting for its event

    # -- bytes in -------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        # asyncio turns Nagle off only for sockets made with IPPROTO_TCP: ours must not wait for the
        # ACK of a 202 before the next event goes out (a delayed ACK holds it 40 ms)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.waiting:
            self.environment.cancel_next()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close(_error(400, "InvalidRequest", "upgrades are not served"))
        except httptools.HttpParserError:
            self._close(_error(400, "InvalidRequest", "malformed HTTP request"))

    def on_message_begin(self) -> None:
        self.request = _Request()

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        request = self.request
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        if request.headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        request = self.request
        request.size += len(chunk)
        if request.size <= MAX_RUNTIME_RESPONSE_BYTES:  # past it, only counted: the answer is 413
            request.body.append(chunk)

    def on_message_complete(self) -> None:
        request, self.request = self.request, None
        if self.waiting or self.pending:
            self.pending.append(request)
        else:
            self._dispatch(request)

    # -- answers out ----------------------------------------------------------------------------------
    def _write(self, data: bytes, request: _Request) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not request.keep_alive:
            self.transport.close()

    def _close(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
            self.transport.close()

    def _dispatch(self, request: _Request) -> None:
        url = request.url
        if request.method == b"GET" and url.startswith(PREFIX + b"/invocation/next"):
            self._next(request)
            return
        if request.method == b"POST":
            match = _INVOCATION.match(url)
            if match:
                self._write(self._invocation(match.group(1).decode("latin-1"), match.group(2), request), request)
                return
            if url.startswith(PREFIX + b"/init/error"):
                self._write(self._init_error(request), request)
                return
        if request.method == b"GET" and url.startswith(b"/2018-06-01/ping"):
            self._write(_answer(200, b"pong", content_type=b"text/plain; charset=utf-8"), request)
            return
        self._write(_error(404, "NotFound", "no such endpoint: %s %s" % (request.method.decode("latin-1"),
                                                                         url.decode("latin-1"))), request)

    def _next(self, request: _Request) -> None:
        environment = self.environment
        refusal = environment.life.next()
        if refusal is not None:
            self._write(_refused(refusal), request)
            return
        self.waiting = True
        environment.wait_next(lambda invocation: self._hand_out(invocation, request))

    def _hand_out(self, invocation, request: _Request) -> None:
        """The event for a waiting /next, or None when the environment is going away."""
        self.waiting = False
        if invocation is None:
            self._write(_refused(GONE), request)
        else:
            headers = b"Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %d\r\n" \
                      b"Lambda-Runtime-Invoked-Function-Arn: %s\r\n" % (
                          invocation.request_id.encode(), invocation.deadline_ms, invocation.invoked_arn.encode())
            if invocation.trace_id:
                headers += b"Lambda-Runtime-Trace-Id: %s\r\n" % invocation.trace_id.encode()
            if invocation.client_context:
                headers += b"Lambda-Runtime-Client-Context: %s\r\n" % invocation.client_context.encode()
            self._write(_answer(200, invocation.payload, headers), request)
        while self.pending and not self.waiting and self.transport is not None:
            self._dispatch(self.pending.pop(0))

    def _invocation(self, request_id: str, kind: bytes, request: _Request) -> bytes:
        environment = self.environment
        refusal = environment.life.answer(request_id, "INVOKE_RESPONSE" if kind == b"response" else "INVOKE_ERROR")
        if refusal is not None:
            return _refused(refusal)
        invocation = environment.current
        body = b"".join(request.body)
        if kind == b"error":
            invocation.future.set_exception(errors.FunctionError.from_payload(body, _error_type(request)))
            return ACCEPTED
        mode = request.headers.get(b"lambda-runtime-function-response-mode")
        if mode is not None and mode.lower() != b"streaming":
            invocation.future.set_exception(errors.FunctionError(
                "Runtime.InvalidResponseModeHeader", "Invalid response mode header: %s" % mode.decode("latin-1")))
            return _error(400, "InvalidFunctionResponseMode", "Invalid function response mode")
        if request.size > MAX_RUNTIME_RESPONSE_BYTES:
            invocation.future.set_exception(errors.FunctionError(
                "Function.ResponseSizeTooLarge",
                "Response payload size exceeded maximum allowed payload size (%d bytes)." % MAX_RUNTIME_RESPONSE_BYTES))
            return _error(413, "RequestEntityTooLarge",
                          "Exceeded maximum allowed payload size (%d bytes)." % MAX_RUNTIME_RESPONSE_BYTES)
        invocation.future.set_result(body)
        return ACCEPTED

    def _init_error(self, request: _Request) -> bytes:
        environment = self.environment
        refusal = environment.life.init_error()
        if refusal is not None:
            return _refused(refusal)
        environment.init_error = errors.FunctionError.from_payload(b"".join(request.body), _error_type(request))
        return ACCEPTED


def _error_type(request: _Request) -> str | None:
    value = request.headers.get(ERROR_TYPE_HEADER)
    return value.decode("latin-1") if value else None


class RuntimeApi:
    def __init__(self):
        self.servers: dict = {}  # environment -> its asyncio server

    async def listen(self, environment: Environment) -> str:
        """A loopback listener for one environment; returns its AWS_LAMBDA_RUNTIME_API value."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = await asyncio.get_running_loop().create_server(lambda: RuntimeProtocol(environment), sock=sock)
        self.servers[environment] = server
        environment.site = server
        return "127.0.0.1:%d" % port

    def forget(self, environment: Environment) -> None:
        self.servers.pop(environment, None)

    async def close(self) -> None:
        for server in list(self.servers.values()):
            server.close()
        self.servers.clear()


__all__ = ["RuntimeApi", "RuntimeProtocol", "PREFIX"]
