"""API Gateway's decisions, as values (pure): which answer a handshake gets, what an authorizer's and
$connect's outcomes mean, which frames answer a message, which close code each ending has, what the
management API answers. The gateway (wsctl.local.gateway) carries bytes and calls these in order;
tests/test_gateway_rules.py tests them without a socket. The facts: docs/apigw-websocket.md.

Test faults (`local up --fault`, wsctl.local.faults) are an input: the gateway draws them and hands
the draw in (`injected`).
"""

import base64
import json
from dataclasses import dataclass

from .. import apigw, limits
from ..apigw import CloseCode
from ..render import iso_time
from . import authorizer as authz


# -- answers ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """An HTTP answer: a refused handshake, or the management API's reply."""
    status: int
    headers: tuple = ()  # (name, value) pairs
    body: bytes = b""


JSON = (("Content-Type", "application/json; charset=utf-8"),)  # a handshake's answers, as aiohttp writes text


def json_answer(status: int, message: str) -> Answer:
    return Answer(status, JSON, json.dumps({"message": message}).encode())


def management_error(status: int, error_type: str, message: str = "") -> Answer:
    """A management API error as API Gateway sends it: botocore reads x-amzn-ErrorType first."""
    return Answer(status, (("x-amzn-ErrorType", error_type), ("Content-Type", "application/json")),
                  json.dumps({"message": message}).encode())


FORBIDDEN = management_error(403, apigw.REFUSED, apigw.FORBIDDEN)  # a path or method API Gateway does not serve


# -- outcomes of an invocation (authorizer, $connect, a route, $disconnect) -----------------------------------
@dataclass(frozen=True)
class Outcome:
    kind: str  # "result", "failed", "timed out" (API Gateway stopped waiting), "not served"
    value: object = None  # the function's result
    error_type: str = ""  # a failure's errorType
    error_message: str = ""
    unserved: str = ""  # why a declared route is not run here (its integration kind)

    @classmethod
    def result(cls, value) -> "Outcome":
        return cls("result", value)

    @classmethod
    def failed(cls, error_type: str, message: str = "") -> "Outcome":
        return cls("failed", error_type=error_type, error_message=message)


TIMED_OUT = Outcome("timed out")


def injected(kind: str | None) -> Outcome | None:
    """A test fault drawn for this invocation (wsctl.local.faults): its outcome instead of running it."""
    if kind == "error":
        return Outcome.failed("Injected.Fault", "injected fault")
    if kind == "timeout":
        return TIMED_OUT
    return None


def not_served(kind: str) -> Outcome:
    return Outcome("not served", unserved=kind)


def shown(outcome: Outcome, what) -> str:
    """An outcome as the log line names it: a route the emulator does not run says so."""
    return "%s (not emulated: %s)" % (what, outcome.unserved) if outcome.kind == "not served" else str(what)


# -- the handshake --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpgradeRequest:
    """What the handshake's first checks look at."""
    stage: str
    url_bytes: int  # the URL as API Gateway counts it: path and query, host, scheme
    header_bytes: int  # the request line's target plus every header
    websocket: bool  # a valid WebSocket upgrade


def is_websocket_upgrade(header) -> bool:
    """A valid RFC 6455 upgrade, checked as aiohttp's handshake checks it (so that a request passed
    here is never refused by aiohttp later, after $connect ran). `header(name)` gives a value or ""."""
    if header("Upgrade").strip().lower() != "websocket":
        return False
    if "upgrade" not in (token.strip().lower() for token in header("Connection").split(",")):
        return False
    if header("Sec-WebSocket-Version") not in ("13", "8", "7"):
        return False
    key = header("Sec-WebSocket-Key")
    try:
        return bool(key) and len(base64.b64decode(key)) == 16
    except ValueError:  # binascii.Error
        return False


def refuse_request(request: UpgradeRequest, stage: str) -> Answer | None:
    """The refusals before any function runs."""
    if request.stage != stage:
        return FORBIDDEN
    # API Gateway's documented cap on a WebSocket URL, and the 10 KB cap on the request line plus
    # headers; the status for an oversize header is not documented: 431 [infer].
    if request.url_bytes > limits.MAX_URL_BYTES:
        return Answer(414, JSON, b'{"message":"Request-URI Too Long"}')
    if request.header_bytes > limits.MAX_HANDSHAKE_HEADER_BYTES:
        return Answer(431, JSON, b'{"message":"Request Header Fields Too Large"}')
    if not request.websocket:
        return Answer(426, (("Content-Type", "text/plain; charset=utf-8"),), b"Upgrade Required")
    return None


def missing_identity(sources, header, query) -> bool:
    """Any identity source absent: API Gateway answers 401 without invoking the authorizer.
    `header(name)` and `query(name)` give a value or None."""
    for source in sources:
        kind, _, name = source.partition("route.request.")[2].partition(".")
        value = header(name) if kind == "header" else query(name) if kind == "querystring" else "x"
        if not value:
            return True
    return False


def auth_verdict(outcome: Outcome, method_arn: str) -> dict | int:
    """The authorizer's outcome: the `requestContext.authorizer` map, or the refusal's status."""
    if outcome.kind == "failed":
        # An authorizer refuses with the error message "Unauthorized" (any runtime's way of raising it).
        return 401 if outcome.error_message == "Unauthorized" else 500
    if outcome.kind != "result":
        return 500
    try:
        return authz.decide(outcome.value, method_arn)
    except authz.Refused as refused:
        return refused.status


def auth_refusal(status: int) -> Answer:
    return json_answer(status, apigw.AUTH_MESSAGES.get(status, apigw.INTERNAL_ERROR))


@dataclass(frozen=True)
class ConnectVerdict:
    status: int
    subprotocol: str | None = None  # passed on as $connect chose it, offered or not (RFC 6455: the client fails)

    @property
    def admitted(self) -> bool:
        return 200 <= self.status < 300


def connect_verdict(outcome: Outcome) -> ConnectVerdict:
    """$connect's outcome: the handshake's status and the subprotocol, chosen here only."""
    if outcome.kind == "failed":
        return ConnectVerdict(502)
    if outcome.kind == "timed out":
        return ConnectVerdict(504)
    if outcome.kind == "not served":
        return ConnectVerdict(500)  # an integration that fails as configured: API Gateway's 500 [infer]
    result = outcome.value
    if not isinstance(result, dict):
        return ConnectVerdict(200)
    try:
        status = int(result.get("statusCode", 200))
    except (TypeError, ValueError):
        return ConnectVerdict(502)
    headers = result.get("headers") or {}
    protocol = next((v for k, v in headers.items() if k.lower() == "sec-websocket-protocol"), None) \
        if isinstance(headers, dict) else None
    return ConnectVerdict(status, protocol)


# -- messages -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    frames: tuple  # str (text) or bytes (binary) frames to send back, in order
    shown: str  # the outcome, as the log line names it


def no_route(connection_id: str, req_id: str) -> Reply:
    """No route matched and there is no $default: the Forbidden error frame; the socket stays."""
    return Reply((apigw.error_frame(apigw.FORBIDDEN, connection_id, req_id),), apigw.FORBIDDEN)


def reply(outcome: Outcome, two_way: bool, connection_id: str, req_id: str) -> Reply:
    """What answers a routed message: the integration's body on a two-way route, or an error frame."""
    if outcome.kind == "failed":
        return Reply((apigw.error_frame(apigw.INTERNAL_ERROR, connection_id, req_id),), apigw.INTERNAL_ERROR)
    if outcome.kind == "not served":
        return Reply((apigw.error_frame(apigw.INTERNAL_ERROR, connection_id, req_id),),
                     shown(outcome, apigw.INTERNAL_ERROR))
    if outcome.kind == "timed out":
        return Reply((apigw.error_frame(apigw.TIMED_OUT, connection_id, req_id),), apigw.TIMED_OUT)
    result = outcome.value
    if not two_way or not isinstance(result, dict) or result.get("body") is None:
        return Reply((), "200")
    body = result["body"]
    if result.get("isBase64Encoded") and isinstance(body, str):
        return Reply((base64.b64decode(body),), "200")
    return Reply((body if isinstance(body, str) else json.dumps(body),), "200")


# -- endings ------------------------------------------------------------------------------------------------------
BINARY = (CloseCode.UNSUPPORTED_DATA, "")  # API Gateway takes text frames only


def close_frame(code: int | None, reason: str) -> tuple[tuple | None, tuple | None]:
    """A client's close frame -> (the gateway's own close, or None; the client's close, or None)."""
    if code == CloseCode.ABNORMAL_CLOSURE or (code or 0) >= 5000:
        # RFC 6455 §7.4: 1006 is never sent in a close frame and codes from 5000 are undefined
        return (CloseCode.PROTOCOL_ERROR, ""), None
    return None, ((code, reason) if code else apigw.NO_STATUS)


def ending(server_close: tuple | None, client_close: tuple | None) -> tuple:
    """The code and reason $disconnect gets: the gateway's close, else the client's, else a drop."""
    return server_close or client_close or apigw.DROPPED


def disconnect_shown(outcome: Outcome, code: int) -> str:
    """$disconnect's outcome for the log (its result is ignored, as on AWS)."""
    if outcome.kind == "failed":
        return "error:%s" % outcome.error_type
    if outcome.kind == "timed out":
        return "error:timeout"
    return shown(outcome, code)


def expired(now: float, last_active: float, connected_at_ms: int, idle_timeout: float, max_duration: float) -> bool:
    """Idle for the idle timeout, or connected for the maximum duration: closed with 1001."""
    return now - last_active >= idle_timeout or now - connected_at_ms / 1000 >= max_duration


# -- the management API ----------------------------------------------------------------------------------------------
ACTIONS = {"POST": "post", "GET": "get", "DELETE": "delete"}


def management_verdict(method: str, stage: str, gateway_stage: str, rejected: tuple | None, take_token,
                       draw_fault, known: bool, body_bytes: int) -> Answer | str:
    """One @connections request: an answer at once, or the action to take ("post", "get", "delete").
    `rejected` is the signature check's (error type, message), if it failed; `take_token()` says
    whether the throttle lets it through, `draw_fault()` gives an injected status or None: each is
    asked only when the request gets that far, as API Gateway would meet them."""
    if stage != gateway_stage:
        return FORBIDDEN
    if rejected is not None:
        return management_error(403, *rejected)
    if method not in ACTIONS:
        return FORBIDDEN
    if not take_token():
        return management_error(429, apigw.THROTTLED, "Rate exceeded")
    injected = draw_fault()
    if injected is not None:
        return management_error(injected, apigw.MANAGEMENT_ERRORS.get(injected, apigw.SERVER_ERROR), "injected fault")
    if method == "POST" and body_bytes > limits.MAX_MESSAGE_BYTES:
        return management_error(413, apigw.TOO_LARGE, "Request must be smaller than %d bytes for the PostToConnection "
                                                      "operation" % limits.MAX_MESSAGE_BYTES)
    if not known:
        return management_error(410, apigw.GONE)
    return ACTIONS[method]


def posted(backlogged: bool, delivered: bool) -> Answer:
    """PostToConnection's answer once the frame was handed to the socket (or not)."""
    if backlogged:  # AWS's LimitExceededException also means "the WebSocket client-side buffer is full"
        return management_error(429, apigw.THROTTLED, "The connection's client-side buffer is full")
    if not delivered:
        return management_error(410, apigw.GONE)
    return Answer(200)


def connection_info(connected_at_ms: int, last_active: float, source_ip: str, user_agent: str | None) -> Answer:
    """GetConnection's answer; the model marks userAgent required, the CLI's example omits it: omitted
    when the client sent none."""
    identity = {"sourceIp": source_ip}
    if user_agent is not None:
        identity["userAgent"] = user_agent
    document = {"connectedAt": iso_time(connected_at_ms / 1000), "identity": identity,
                "lastActiveAt": iso_time(last_active)}
    return Answer(200, (("Content-Type", "application/json"),), json.dumps(document).encode())


KICKED = Answer(204)  # DeleteConnection: the socket closes with 1000 "Connection Closed Normally"


__all__ = ["Answer", "Outcome", "injected", "UpgradeRequest", "ConnectVerdict", "Reply", "refuse_request",
           "missing_identity", "auth_verdict", "auth_refusal", "connect_verdict", "no_route", "reply", "close_frame",
           "ending", "disconnect_shown", "expired", "management_verdict", "posted", "connection_info", "KICKED",
           "FORBIDDEN", "TIMED_OUT", "not_served", "shown", "json_answer", "management_error"]
