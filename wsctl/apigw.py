"""API Gateway's vocabulary for WebSocket APIs, in one place: close codes and what each means, the
error frames and handshake answers it sends, the management API's error types. The emulator
produces them (wsctl.local.rules); `wsctl connect` explains them (wsctl.client). Sources:
docs/apigw-websocket.md (#limits, #error-frames, #management-api).
"""

import json

from websockets.frames import CloseCode, Opcode  # noqa: F401  (RFC 6455's codes and opcodes, as websockets names them)

from .limits import IDLE_TIMEOUT_S, INTEGRATION_TIMEOUT_S, MAX_CONNECTION_S, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

# -- closes ---------------------------------------------------------------------------------------------
# Idle timeout, the 2-hour cap and a shutdown: AWS documents neither code nor reason; like
# serverless-offline the emulator closes with 1001 "Going away" [infer].
GOING_AWAY = (CloseCode.GOING_AWAY, "Going away")
NO_STATUS = (CloseCode.NO_STATUS_RCVD, "Client-side close frame status not set")  # a close frame without a code
DELETED = (CloseCode.NORMAL_CLOSURE, "Connection Closed Normally")  # DeleteConnection
DROPPED = (CloseCode.ABNORMAL_CLOSURE, "")  # the socket ended without a close frame
NORMAL_CLOSES = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY)

CLOSE_MEANINGS = {
    CloseCode.NORMAL_CLOSURE: "normal closure",
    CloseCode.GOING_AWAY: "going away: idle timeout (%d min without data frames), the %d-hour cap, or a shutdown" % (
        IDLE_TIMEOUT_S // 60, MAX_CONNECTION_S // 3600),
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNSUPPORTED_DATA: "binary frame not accepted (API Gateway takes text frames only)",
    CloseCode.NO_STATUS_RCVD: "closed without a status code",
    CloseCode.ABNORMAL_CLOSURE: "dropped: the connection ended without a close frame",
    CloseCode.INVALID_DATA: "invalid UTF-8 in a text frame",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big (API Gateway: %d KB per frame, %d KB per message)" % (
        MAX_FRAME_BYTES // 1024, MAX_MESSAGE_BYTES // 1024),
    CloseCode.INTERNAL_ERROR: "internal server error",
}


def close_meaning(code: int | None) -> str:
    if code is None:
        return CLOSE_MEANINGS[CloseCode.ABNORMAL_CLOSURE]
    if 4000 <= code <= 4999:
        return "application-defined"
    return CLOSE_MEANINGS.get(code, "")


# -- error frames (a message the gateway could not hand to an integration) ------------------------------
FORBIDDEN = "Forbidden"  # no route matched and there is no $default
INTERNAL_ERROR = "Internal server error"  # the integration failed
TIMED_OUT = "Endpoint request timed out"  # the integration outlived its timeout
ERROR_MEANINGS = {
    FORBIDDEN: "no route matched and there is no $default route",
    INTERNAL_ERROR: "the integration (handler) failed",
    TIMED_OUT: "the integration took longer than its timeout (%d s at most)" % INTEGRATION_TIMEOUT_S,
    "Bad request body": "the request failed model validation",
}


def error_frame(message: str, connection: str, req_id: str) -> str:
    """API Gateway's error frame, byte for byte: a space after the first colon only."""
    return '{"message": "%s", "connectionId":"%s", "requestId":"%s"}' % (message, connection, req_id)


def gateway_error(text: str) -> str | None:
    """The message of an API Gateway error frame ({"message": ..., "connectionId": ..., ...}), or None."""
    try:
        frame = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(frame, dict) and frame.get("message") in ERROR_MEANINGS and (
            "connectionId" in frame or "requestId" in frame):
        return frame["message"]
    return None


# -- the handshake's answers ------------------------------------------------------------------------------
HANDSHAKE_MEANINGS = {
    400: "bad request (the $connect handler refused the request)",
    401: "unauthorized: no token, or the token is invalid or expired",
    403: "forbidden: the authorizer denied this connection (or the stage does not exist)",
    429: "too many requests: connection rate limit",
    500: "the authorizer failed",
    502: "the $connect handler failed (raised an exception or returned a malformed answer)",
    504: "the $connect handler timed out",
}
AUTH_MESSAGES = {401: "Unauthorized", 403: "Forbidden"}  # any other refusal says INTERNAL_ERROR

# -- the management API's error types (x-amzn-ErrorType; botocore reads it first) ----------------------------
GONE = "GoneException"
THROTTLED = "LimitExceededException"
REFUSED = "ForbiddenException"
TOO_LARGE = "PayloadTooLargeException"
SERVER_ERROR = "InternalServerErrorException"
MANAGEMENT_ERRORS = {410: GONE, 429: THROTTLED, 403: REFUSED, 413: TOO_LARGE}

__all__ = ["CloseCode", "Opcode", "GOING_AWAY", "NO_STATUS", "DELETED", "DROPPED", "NORMAL_CLOSES", "CLOSE_MEANINGS",
           "close_meaning", "FORBIDDEN", "INTERNAL_ERROR", "TIMED_OUT", "ERROR_MEANINGS", "error_frame",
           "gateway_error", "HANDSHAKE_MEANINGS", "AUTH_MESSAGES", "GONE", "THROTTLED", "REFUSED", "TOO_LARGE",
           "SERVER_ERROR", "MANAGEMENT_ERRORS"]
