"""Lambda's Invoke API for every function the emulator runs (functions get it as
AWS_ENDPOINT_URL_LAMBDA), and the emulator's read-only views for `wsctl --local` commands.
"""

import asyncio
import base64
import json
import re
import urllib.parse
import uuid

from aiohttp import web

from ...limits import LOG_TAIL_BYTES, MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES
from .errors import FunctionError

# FunctionName forms: name, name:qualifier, partial ARN, full ARN (docs/lambda-runtime.md#function-names).
_NAME = re.compile(r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:[a-z]{2}(?:-gov)?-[a-z]+-\d{1}:)?(?:\d{12}:)?"
                   r"(?:function:)?([a-zA-Z0-9-_\.]+)(?::(\$LATEST|[a-zA-Z0-9-_]+))?$")


def parse_function_name(raw: str) -> tuple[str, str | None] | None:
    match = _NAME.match(urllib.parse.unquote(raw))
    return (match.group(1), match.group(2)) if match else None


def _error(status: int, error_type: str, message: str, key: str = "message") -> web.Response:
    return web.json_response({"Type": "User", key: message}, status=status,
                             headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())})


class InvokeApi:
    def __init__(self, service, log=None):
        self.service = service  # LambdaService
        self.log = log or (lambda text: None)
        self.background: set = set()
        # The emulator's own read-only views for `wsctl --local ...` (name -> callable returning JSON):
        # served here because this listener is loopback-only and no API Gateway client sees it.
        self.views: dict = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_SYNC_PAYLOAD_BYTES + 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self.invoke)
        app.router.add_get("/-/wsctl/{view}", self.view)
        return app

    async def view(self, request: web.Request):
        view = self.views.get(request.match_info["view"])
        if view is None:
            return web.json_response({"message": "no such view"}, status=404)
        return web.json_response(view())

    async def invoke(self, request: web.Request):
        parsed = parse_function_name(request.match_info["name"])
        if parsed is None:
            return _error(400, "ValidationException", "1 validation error detected: Value '%s' at 'functionName' "
                          "failed to satisfy constraint" % request.match_info["name"])
        name, qualifier = parsed
        qualifier = request.query.get("Qualifier", qualifier)
        if name not in self.service.specs or qualifier not in (None, "$LATEST"):
            return _error(404, "ResourceNotFoundException", "Function not found: %s:%s"
                          % (self.service.function_arn(name), qualifier or "$LATEST"), key="Message")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException", "Unsupported invocation type %s" % invocation_type)
        body = await request.read()
        limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
        if len(body) > limit:
            return _error(413, "RequestTooLargeException", "Request must be smaller than %d bytes for the "
                          "InvokeFunction operation" % limit)
        if body:
            try:
                json.loads(body)
            except ValueError as error:
                return _error(400, "InvalidRequestContentException", "Could not parse request body into json: "
                              "Could not parse payload into json: %s" % error)
        request_id = str(uuid.uuid4())
        if invocation_type == "DryRun":
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
        arn = self.service.function_arn(name) + (":" + qualifier if qualifier else "")
        client_context = request.headers.get("X-Amz-Client-Context")
        if client_context:
            try:
                client_context = base64.b64decode(client_context).decode()
            except ValueError:
                return _error(400, "InvalidParameterValueException", "Client context must be base64")
        if invocation_type == "Event":
            task = asyncio.ensure_future(self._event(name, body or b"{}", arn, request_id))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        log: list = []
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST",
                   "Content-Type": "application/json"}
        try:
            payload = await self.service.invoke(name, body or b"{}", invoked_arn=arn, request_id=request_id,
                                                client_context=client_context, log=log)
        except FunctionError as failure:
            payload = failure.payload
            headers["X-Amz-Function-Error"] = "Unhandled"
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            tail = ("\n".join(log) + "\n").encode()[-LOG_TAIL_BYTES:]
            headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
        return web.Response(status=200, body=payload, headers=headers)

    async def _event(self, name: str, payload: bytes, arn: str, request_id: str) -> None:
        try:
            await self.service.invoke(name, payload, invoked_arn=arn, request_id=request_id)
        except FunctionError as failure:
            # Lambda retries a failed asynchronous invocation twice; locally it is logged once.
            self.log("%s: asynchronous invocation %s failed: %s" % (name, request_id, failure.error_type))

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
