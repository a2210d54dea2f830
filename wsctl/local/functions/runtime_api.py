"""AWS Lambda's Runtime API (2018-06-01), served to execution environments.

Each environment gets a listener of its own (AWS_LAMBDA_RUNTIME_API is a bare
host:port, so the port is what tells environments apart); one aiohttp
application serves them all. The state rules and error bodies are RAPID's:
an unknown or stale request id is 400 InvalidRequestID, a call out of turn
403 InvalidStateTransition (both decided by the environment's Lifecycle, lifecycle.py),
a response over 6291556 bytes 413. This module only translates HTTP.
"""

import asyncio
import socket

from aiohttp import web

from ...limits import MAX_RUNTIME_RESPONSE_BYTES
from . import errors
from .environment import Environment
from .lifecycle import GONE, Refusal

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"


def _json(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"errorMessage": message, "errorType": error_type}, status=status)


def _refused(refusal: Refusal) -> web.Response:
    return _json(refusal.status, refusal.error_type, refusal.message)


def _accepted() -> web.Response:
    return web.json_response({"status": "OK"}, status=202)


class RuntimeApi:
    def __init__(self):
        self.by_port: dict[int, Environment] = {}
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_RUNTIME_RESPONSE_BYTES + 1024 * 1024)
        app.router.add_get(PREFIX + "/invocation/next", self.next)
        app.router.add_post(PREFIX + "/invocation/{id}/response", self.response)
        app.router.add_post(PREFIX + "/invocation/{id}/error", self.error)
        app.router.add_post(PREFIX + "/init/error", self.init_error)
        app.router.add_get("/2018-06-01/ping", self.ping)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()

    async def listen(self, environment: Environment) -> str:
        """A loopback listener for one environment; returns its AWS_LAMBDA_RUNTIME_API value."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        site = web.SockSite(self.runner, sock)
        await site.start()
        environment.site = site
        self.by_port[port] = environment
        return "127.0.0.1:%d" % port

    def forget(self, environment: Environment) -> None:
        for port, known in list(self.by_port.items()):
            if known is environment:
                del self.by_port[port]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _environment(self, request: web.Request) -> Environment | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self.by_port.get(sockname[1]) if sockname else None

    # -- endpoints --------------------------------------------------------------------------
    async def ping(self, request):
        return web.Response(text="pong")

    async def next(self, request: web.Request):
        environment = self._environment(request)
        if environment is None:
            return _refused(GONE)
        refusal = environment.life.next()
        if refusal is not None:
            return _refused(refusal)
        environment.runtime_ready()
        environment.at_next.set()
        getting = asyncio.ensure_future(environment.queue.get())
        stopping = asyncio.ensure_future(environment.stopped.wait())
        try:
            await asyncio.wait((getting, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            environment.at_next.clear()
            stopping.cancel()
        if not getting.done():  # the environment is going away: nothing more for this runtime
            getting.cancel()
            environment.life.stop_waiting()
            return _refused(GONE)
        invocation = getting.result()
        environment.life.hand_out(invocation.request_id)
        headers = {"Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                   "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                   "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
                   "Content-Type": "application/json"}
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        return web.Response(body=invocation.payload, headers=headers)

    def _current(self, request: web.Request, to_state: str):
        """(invocation, None) for a /response or /error the lifecycle accepts, else (None, its refusal)."""
        environment = self._environment(request)
        if environment is None:
            return None, _refused(GONE)
        refusal = environment.life.answer(request.match_info["id"], to_state)
        if refusal is not None:
            return None, _refused(refusal)
        return environment.current, None

    async def response(self, request: web.Request):
        invocation, refusal = self._current(request, "INVOKE_RESPONSE")
        if refusal is not None:
            return refusal
        mode = request.headers.get("Lambda-Runtime-Function-Response-Mode")
        if mode is not None and mode.lower() != "streaming":
            invocation.future.set_exception(errors.FunctionError(
                "Runtime.InvalidResponseModeHeader", "Invalid response mode header: %s" % mode))
            return _json(400, "InvalidFunctionResponseMode", "Invalid function response mode")
        body = await request.content.read(MAX_RUNTIME_RESPONSE_BYTES + 1)
        if len(body) > MAX_RUNTIME_RESPONSE_BYTES:
            invocation.future.set_exception(errors.FunctionError(
                "Function.ResponseSizeTooLarge",
                "Response payload size exceeded maximum allowed payload size (%d bytes)." % MAX_RUNTIME_RESPONSE_BYTES))
            return _json(413, "RequestEntityTooLarge",
                         "Exceeded maximum allowed payload size (%d bytes)." % MAX_RUNTIME_RESPONSE_BYTES)
        invocation.future.set_result(body)
        return _accepted()

    async def error(self, request: web.Request):
        invocation, refusal = self._current(request, "INVOKE_ERROR")
        if refusal is not None:
            return refusal
        body = await request.read()
        invocation.future.set_exception(errors.FunctionError.from_payload(body, _error_type(request)))
        return _accepted()

    async def init_error(self, request: web.Request):
        environment = self._environment(request)
        if environment is None:
            return _refused(GONE)
        refusal = environment.life.init_error()
        if refusal is not None:
            return _refused(refusal)
        body = await request.read()
        environment.init_error = errors.FunctionError.from_payload(body, _error_type(request))
        return _accepted()


def _error_type(request: web.Request) -> str | None:
    value = request.headers.get(ERROR_TYPE_HEADER)
    if not value:
        return None
    return value
