"""wsctl's Python runtime: the loop Lambda's Python runtime (awslambdaric) runs, on the
local Python, talking to the emulator through the Runtime API.

Run as `python -u -P -S bootstrap.py` in the function's code folder: -S keeps the
Python's own site-packages (wsctl's virtual environment) off sys.path, so a function
imports what its folder holds, then what Lambda's runtime provides (boto3, from
PYTHONPATH: sdks.py), then the standard library, as on Lambda. It imports nothing
from wsctl, only the standard library.
Handler resolution, error types and payloads, the context object and the log
format follow awslambdaric 4 (docs/lambda-runtime.md#python-runtime).
"""

import decimal
import importlib
import json
import logging
import os
import re
import socket
import sys
import time
import traceback

API = "/2018-06-01/runtime"


class Headers(dict):
    """A response's headers, looked up without regard to case (as http.client's are)."""

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Runtime:
    """The Runtime API's client: one keep-alive connection, requests written whole and answers read
    by Content-Length (the emulator's Runtime API always sends it). Every invocation is two of these
    exchanges, so no http.client: its header parsing (email.parser) costs more than the exchange."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self.address, self.host = (host, int(port)), address.encode()
        self.sock = None
        self.buffer = b""
        self.next_asked = False  # the GET /next went out with the last answer (pipelined)
        self.next_request = b"GET %s/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n" % (API.encode(), self.host)

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address)  # no timeout: /next waits as long as it must
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _call(self, method: bytes, path: str, body: bytes = b"", headers: bytes = b"", then_next: bool = False):
        """One request and its answer. `then_next`: the next GET /next goes out in the same write
        (HTTP pipelining), so the runtime is back on /next without waiting for this answer's 202:
        the Python runtime asks for its next event as soon as it has answered anyway."""
        request = b"%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
            method, API.encode(), path.encode(), self.host, len(body), headers, body)
        if then_next:
            request += self.next_request
            self.next_asked = True
        if self.sock is None:
            self._connect()
        try:
            self.sock.sendall(request)
            return self._answer()
        except OSError:  # a kept-alive connection the server closed: once more on a new one
            self._connect()
            self.sock.sendall(request)
            return self._answer()

    def _answer(self):
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = Headers()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            dict.__setitem__(headers, name.strip().lower(), value.strip())
        length = int(headers.get("Content-Length", "0"))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if headers.get("Connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        return status, headers, body

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)  # below malloc's mmap threshold: no mmap and munmap per read
        if not chunk:
            raise ConnectionResetError("the Runtime API closed the connection")
        self.buffer += chunk

    def next(self):
        if self.next_asked:
            self.next_asked = False
            status, headers, body = self._answer()
        else:
            status, headers, body = self._call(b"GET", "/invocation/next")
        if status != 200:
            sys.exit("the Runtime API answered /next with %d: %s" % (status, body[:200]))
        return headers, body

    def respond(self, request_id: str, body: bytes, content_type: str) -> None:
        self._call(b"POST", "/invocation/%s/response" % request_id, body,
                   b"Content-Type: %s\r\n" % content_type.encode("latin-1"), then_next=True)

    def error(self, request_id: str | None, document: dict) -> None:
        path = "/init/error" if request_id is None else "/invocation/%s/error" % request_id
        self._call(b"POST", path, json.dumps(document).encode(),
                   b"Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: %s\r\n"
                   % document["errorType"].encode("latin-1", "replace"), then_next=request_id is not None)


class FaultException(Exception):
    def __init__(self, error_type: str, message: str, trace: list | None = None):
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, trace or []


# -- logging, as the Python runtime installs it ---------------------------------------------------
class _RequestId(logging.Filter):
    request_id = ""

    def filter(self, record):
        record.aws_request_id = _RequestId.request_id
        return True


JSON_LOGS = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
# LogRecord attributes that are not a record's `extra` fields (awslambdaric's list, and 3.12's taskName).
_RECORD_FIELDS = frozenset(("name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
                            "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
                            "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
                            "aws_request_id", "tenant_id", "message", "asctime"))


class JsonFormatter(logging.Formatter):
    """A record as one JSON object, as the runtime writes it with AWS_LAMBDA_LOG_FORMAT=JSON."""

    def format(self, record):
        level = min(50, max(0, record.levelno)) // 10 * 10
        error = record.exc_info
        document = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": logging.getLevelName(level),
            "message": record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(error[2]) if error else None,
            "errorType": error[0].__name__ if error else None,
            "errorMessage": str(error[1]) if error else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": "%s:%s:%d" % (record.pathname, record.funcName, record.lineno) if error else None,
        }
        document.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_FIELDS and k not in document)
        return json.dumps({k: v for k, v in document.items() if v is not None}, ensure_ascii=False, default=str)


def install_logging() -> None:
    logging.Formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if JSON_LOGS else logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestId())
    root = logging.getLogger()
    root.addHandler(handler)  # so logging.basicConfig() is a no-op, as on Lambda
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level:
        root.setLevel({"TRACE": "DEBUG", "FATAL": "CRITICAL"}.get(level, level))


def log_error(document: dict) -> None:
    """An unhandled error as Lambda prints it: `[ERROR] Type: message` and the traceback as one line
    (\r joins, NBSP indents), or with JSON logs one object."""
    if JSON_LOGS:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        sys.stdout.write(json.dumps({"timestamp": stamp, "level": "ERROR", **document}) + "\n")
        return
    lines = ["[ERROR] %s: %s" % (document["errorType"], document["errorMessage"])]
    if document["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines += [entry.rstrip("\n").replace("\n", "\r").replace("  ", "\u00a0\u00a0")
                  for entry in document["stackTrace"]]
    sys.stdout.write("\r".join(lines) + "\n")


# -- the handler -------------------------------------------------------------------------------------
def load_handler(spec: str):
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError:
        raise FaultException("Runtime.MalformedHandlerName", "Bad handler '%s': not enough values to unpack "
                             "(expected 2, got 1)" % spec) from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultException("Runtime.BuiltInModuleConflict", "Cannot use built-in module %s as a handler module"
                             % modname)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as error:
        raise FaultException("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, error)) \
            from None
    except SyntaxError as error:
        trace = ['  File "%s" Line %s\n    %s\n' % (error.filename, error.lineno, (error.text or "").strip())]
        raise FaultException("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, error),
                             trace) from None
    handler = getattr(module, fname, None)
    if handler is None:
        raise FaultException("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))
    return handler


def user_trace(error: BaseException) -> list:
    """The traceback without this bootstrap's own frames."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    return traceback.format_list(frames)


def error_document(error: BaseException, request_id: str) -> dict:
    if isinstance(error, FaultException):
        return {"errorMessage": error.message, "errorType": error.error_type, "requestId": request_id,
                "stackTrace": error.trace}
    return {"errorMessage": str(error), "errorType": type(error).__name__, "requestId": request_id,
            "stackTrace": user_trace(error)}


# -- context ---------------------------------------------------------------------------------------------
class CognitoIdentity:
    def __init__(self, document: dict):
        self.cognito_identity_id = document.get("cognitoIdentityId")
        self.cognito_identity_pool_id = document.get("cognitoIdentityPoolId")


class ClientContext:
    def __init__(self, document: dict):
        client = document.get("client") or {}
        self.client = type("Client", (), {k: client.get(v) for k, v in (
            ("installation_id", "installation_id"), ("app_title", "app_title"),
            ("app_version_name", "app_version_name"), ("app_version_code", "app_version_code"),
            ("app_package_name", "app_package_name"))})() if client else None
        self.custom = document.get("custom")
        self.env = document.get("env")


class LambdaContext:
    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str, client_context, identity):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.tenant_id = None
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = CognitoIdentity(identity or {})
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)

    def __repr__(self):
        return "LambdaContext([aws_request_id=%s,function_name=%s])" % (self.aws_request_id, self.function_name)


def _json_default(value):
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def _header_json(headers, name):
    value = headers.get(name)
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise FaultException("Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON" % name) from None


def handle(runtime: Runtime, handler, headers, body: bytes) -> None:
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    _RequestId.request_id = request_id
    trace = headers.get("Lambda-Runtime-Trace-Id")
    if trace:
        os.environ["_X_AMZN_TRACE_ID"] = trace
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        content_type = headers.get("Content-Type", "application/json")
        try:
            event = json.loads(body) if content_type.startswith("application/json") else body
        except ValueError as error:
            raise FaultException("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % error) from None
        context = LambdaContext(request_id, int(headers.get("Lambda-Runtime-Deadline-Ms", "0")),
                                headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
                                _header_json(headers, "Lambda-Runtime-Client-Context"),
                                _header_json(headers, "Lambda-Runtime-Cognito-Identity"))
        result = handler(event, context)
        if isinstance(result, (bytes, bytearray)):
            payload, result_type = bytes(result), "application/unknown"
        else:
            try:
                payload = json.dumps(result, default=_json_default, ensure_ascii=False).encode()
            except (TypeError, ValueError) as error:
                raise FaultException("Runtime.MarshalError", "Unable to marshal response: %s" % error) from None
            result_type = "application/json"
    except Exception as error:
        document = error_document(error, request_id)
        log_error(document)
        runtime.error(request_id, document)
        return
    runtime.respond(request_id, payload, result_type)


def map_hosts(spec: str) -> None:
    """Send connections to AWS host names to the emulator (the API's own execute-api name to its
    gateway, the others to its front door), whatever port the caller asked for: an SDK that ignores
    AWS_ENDPOINT_URL_*, or code with a hard-coded endpoint, still reaches only this machine. TLS
    still checks the name (the emulator presents a certificate for it). `spec`: JSON rules
    [[regex, host, port], ...], first match wins (wsctl/local/awsnames.py)."""
    rules = [(re.compile(pattern), host, port) for pattern, host, port in json.loads(spec)] if spec else []
    if not rules:
        return
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode("idna", "replace")
        if isinstance(host, str):
            name = host.lower().rstrip(".")
            for pattern, target, target_port in rules:
                if pattern.match(name):
                    return original(target, target_port, *args, **kwargs)
        return original(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def main() -> None:
    map_hosts(os.environ.pop("_WSCTL_HOST_MAP", ""))
    root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    sys.path.insert(0, root)
    runtime = Runtime(os.environ["AWS_LAMBDA_RUNTIME_API"])
    install_logging()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except Exception as error:
        document = error_document(error, "")
        logging.getLogger().warning("LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the "
                                    "function code. However, in rare cases, a Lambda runtime update can cause "
                                    "unexpected function behavior.")  # through the runtime's handler: its format
        log_error(document)
        runtime.error(None, document)
        sys.exit(1)
    while True:
        headers, body = runtime.next()
        handle(runtime, handler, headers, body)


if __name__ == "__main__":
    main()
