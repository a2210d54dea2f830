"""The deployed WebSocket handler: one Lambda function behind every route.

API Gateway invokes `lambda_src.app.handler` for the $connect authorizer
(event `type` REQUEST), for $connect and $disconnect, and for each frame,
routed on `requestContext.routeKey` (route selection `$request.body.action`).
Standard library plus boto3 only (boto3 comes with the runtime); PyJWT is
bundled into the zip by `wsctl bundle`.

Custom routes and $default are two-way routes: what a route returns in `body`
is API Gateway's answer to the sender (acks, whoami, error frames). Relays to
other connections go through the management API.
"""

import json
import os
import sys
import time

from . import auth, delivery, fanout
from .limits import DEFAULT_TTL_SECONDS, MAX_MESSAGE_BYTES
from .registry import ConnectionExists, Registry

MAX_NAME = 128

# action -> the string fields its frame must carry. The deployed routes, the
# emulator's routes and the $default error frame are all derived from this.
ACTIONS = {
    "sendMessage": ("targetUserId", "text"),
    "join": ("room",),
    "leave": ("room",),
    "sendRoom": ("room", "text"),
    "whoami": (),
    "broadcastAll": ("text",),
}


class ClientError(Exception):
    """Bad client input: answered with an error frame, never raised to API Gateway."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# -- shared per-container state ------------------------------------------
_ddb = None


def _registry() -> Registry:
    global _ddb
    if _ddb is None:
        import boto3
        from botocore.config import Config

        # A registry that stops answering must fail the invocation (and refuse a $connect with
        # 500) well inside API Gateway's 29 s: botocore's defaults (60 s read timeout, each
        # attempt) would outlast it, and a refused client's item could land after the refusal.
        # About 3 attempts x 3 s when DynamoDB hangs; at once when it refuses connections.
        # (botocore's "max_attempts" counts retries, "total_max_attempts" every attempt.)
        _ddb = boto3.client("dynamodb", config=Config(
            max_pool_connections=32, connect_timeout=2, read_timeout=3,
            retries={"mode": "standard", "total_max_attempts": 3}))
    return Registry(_ddb, os.environ["TABLE_NAME"])


def _ttl_seconds() -> int:
    return int(os.environ.get("CONNECTION_TTL_SECONDS") or DEFAULT_TTL_SECONDS)


def _log(route: str, connection_id: str, outcome: str, started: float, **extra) -> None:
    line = {"route": route, "connectionId": connection_id, "outcome": outcome,
            "ms": round((time.perf_counter() - started) * 1000, 2), **extra}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


# -- entry point ----------------------------------------------------------
def handler(event, context):
    started = time.perf_counter()
    if event.get("type") == "REQUEST" and "methodArn" in event:
        return _authorize(event, started)
    if fanout.is_fanout(event):  # `wsctl broadcast --server-side`: a direct, IAM-authorised Invoke
        report = fanout.handle(event, context, _registry())
        _log("(fanout)", "segment %s/%s" % (report["segment"], report["totalSegments"]),
             " ".join("%s=%d" % (k, v) for k, v in report["counts"].items() if v) or "none", started,
             recipients=report["recipients"], complete=report["complete"])
        return report
    request = event["requestContext"]
    route, connection_id = request["routeKey"], request["connectionId"]
    route_handler = {"$connect": on_connect, "$disconnect": on_disconnect}.get(route, on_message)
    try:
        response, outcome = route_handler(event)
    except Exception as error:
        # Only infrastructure failures get here (bad client input is answered in
        # on_message); API Gateway answers the sender "Internal server error".
        _log(route, connection_id, "exception:" + type(error).__name__, started)
        raise
    _log(route, connection_id, outcome, started)
    return response


def _authorize(event: dict, started: float) -> dict:
    try:
        policy = auth.authorize(event)
    except auth.Unauthorized as refused:
        _log("$connect(authorizer)", "", "unauthorized", started, reason=refused.reason)
        raise
    _log("$connect(authorizer)", "", "allow:anonymous(switching auth mode)"
         if policy["principalId"] == auth.ANONYMOUS else "allow", started)
    return policy


# -- $connect / $disconnect ----------------------------------------------
def user_of(event: dict) -> str | None:
    """Who a connection is: decided once by the authorizer at $connect, never by a frame. Without
    a verified user, an anonymous connection where the mode admits one (none, or during a switch)."""
    request = event["requestContext"]
    user = auth.verified_user(request.get("authorizer"))
    if user is None and auth.admits_anonymous():
        return "anon-" + request["connectionId"]
    return user


def on_connect(event: dict):
    request = event["requestContext"]
    user = user_of(event)
    if user is None:  # a JWT stack reached without its authorizer: fail closed
        return {"statusCode": 403}, "refused:no-identity"
    identity = request.get("identity") or {}
    try:
        _registry().put_connection(
            request["connectionId"], user, request["connectedAt"],
            ttl=request["connectedAt"] // 1000 + _ttl_seconds(),
            endpoint=delivery.management_endpoint(event, os.environ.get("APIGW_MANAGEMENT_ENDPOINT")),
            source_ip=identity.get("sourceIp", ""), user_agent=identity.get("userAgent", ""))
    except ConnectionExists:
        return {"statusCode": 409}, "refused:duplicate-id"
    except Exception as error:  # refuse rather than connect a client nobody can reach
        return {"statusCode": 500}, "refused:registry-write-failed:%s" % type(error).__name__
    response = {"statusCode": 200}
    offered = _header(event, "Sec-WebSocket-Protocol")
    if offered:  # browsers abort unless one offered subprotocol is echoed
        response["headers"] = {"Sec-WebSocket-Protocol": offered.split(",")[0].strip()}
    return response, "connected"


def on_disconnect(event: dict):
    deleted = _registry().delete_connection(event["requestContext"]["connectionId"])
    return {"statusCode": 200}, "deleted=%d" % deleted


def _header(event: dict, name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return ""


# -- frames -----------------------------------------------------------------
def parse_frame(route: str, body) -> tuple[str, dict]:
    """(action, frame) for a valid frame; ClientError naming what was wrong otherwise."""
    try:
        frame = json.loads(body) if isinstance(body, str) else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        frame = None
    if not isinstance(frame, dict):
        raise ClientError("bad_json", "a frame must be a JSON object like "
                          '{"action": "sendMessage", "targetUserId": "bob", "text": "hi"}')
    action = frame.get("action")
    if not isinstance(action, str) or action not in ACTIONS:  # a list or object is unhashable
        if action is None:
            raise ClientError("missing_action", 'the frame has no "action" field')
        raise ClientError("unknown_action", "unknown action %s" % _shown(action))
    if route != "$default" and route != action:
        raise ClientError("unknown_action", "route %s does not serve action %s" % (route, action))
    for field in ACTIONS[action]:
        value = frame.get(field)
        if not isinstance(value, str) or not value:
            raise ClientError("missing_field", '%s needs a non-empty string "%s"' % (action, field))
    for field in ("room", "targetUserId"):  # DynamoDB keys: a lone surrogate (valid JSON) is not Unicode
        if field in ACTIONS[action] and not _is_unicode(frame[field]):
            raise ClientError("bad_field", '"%s" must be valid Unicode text (no lone surrogates)' % field)
    if "room" in ACTIONS[action] and len(frame["room"]) > MAX_NAME:  # checked a string above
        raise ClientError("bad_field", "a room name is at most %d characters" % MAX_NAME)
    return action, frame


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _shown(value) -> str:
    """A client's value quoted in an error message, cut short."""
    try:
        return json.dumps(value)[:MAX_NAME]
    except RecursionError:
        return "(a value nested too deeply to show)"


def error_frame(error: ClientError) -> dict:
    return {"type": "error", "error": error.code, "message": str(error),
            "accepted": {action: list(fields) for action, fields in ACTIONS.items()}}


def on_message(event: dict):
    request = event["requestContext"]
    try:
        action, frame = parse_frame(request["routeKey"], event.get("body"))
        user = user_of(event)
        if user is None:
            raise ClientError("unauthenticated", "this connection has no verified identity")
        answer, outcome = ROUTES[action](Sender(event, user), frame)
    except ClientError as error:
        answer, outcome = error_frame(error), "error:" + error.code
    return {"statusCode": 200, "body": json.dumps(answer)}, outcome


class Sender:
    """The connection a frame came from, and the registry and endpoint it acts on."""

    def __init__(self, event: dict, user: str):
        request = event["requestContext"]
        self.event = event
        self.user = user
        self.connection_id = request["connectionId"]
        self.connected_at = request["connectedAt"]
        self.registry = _registry()

    def relay(self, connection_ids: list[str], message: dict) -> dict:
        """Post to each id; delete ids that answer 410; count the outcomes."""
        data = json.dumps(message, separators=(",", ":")).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            raise ClientError("too_large", "the relayed message would exceed %d KB" % (MAX_MESSAGE_BYTES // 1024))
        endpoint = delivery.management_endpoint(self.event, os.environ.get("APIGW_MANAGEMENT_ENDPOINT"))
        outcomes = delivery.post_many(delivery.management_client(endpoint), connection_ids, data)
        counts = {outcome: 0 for outcome in delivery.OUTCOMES}
        for connection_id, outcome in outcomes.items():
            counts[outcome] += 1
            if outcome == delivery.GONE:
                self.registry.delete_connection(connection_id)
        return counts


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ack(counts: dict) -> dict:
    """The sender's ack: delivered always, other outcomes only when they happened."""
    return {k: v for k, v in counts.items() if v or k == delivery.DELIVERED}


def _summary(counts: dict) -> str:
    return " ".join("%s=%d" % (k, v) for k, v in counts.items() if v) or "none"


# -- routes ---------------------------------------------------------------
def send_message(sender: Sender, frame: dict):
    target = frame["targetUserId"]
    ids = [item["connectionId"] for item in sender.registry.connections_of_user(target)]
    if not ids:
        raise ClientError("no_connection", "user %s has no live connection" % json.dumps(target))
    counts = sender.relay(ids, {"type": "message", "from": sender.user, "text": frame["text"],
                                "ts": _now_ms()})
    if counts[delivery.DELIVERED] == 0 and counts[delivery.GONE] == len(ids):
        raise ClientError("no_connection", "user %s has no live connection" % json.dumps(target))
    return {"type": "sent", "to": target, **_ack(counts)}, _summary(counts)


def join(sender: Sender, frame: dict):
    room = frame["room"]
    sender.registry.join(sender.connection_id, room, ttl=sender.connected_at // 1000 + _ttl_seconds(),
                         joined_at_ms=_now_ms())
    return {"type": "joined", "room": room}, "joined"


def leave(sender: Sender, frame: dict):
    room = frame["room"]
    if not sender.registry.leave(sender.connection_id, room):
        raise ClientError("not_member", "this connection is not in room %s" % json.dumps(room))
    return {"type": "left", "room": room}, "left"


def send_room(sender: Sender, frame: dict):
    room = frame["room"]
    if not sender.registry.is_member(sender.connection_id, room):
        raise ClientError("not_member", "join room %s before sending to it" % json.dumps(room))
    ids = [item["connectionId"] for item in sender.registry.members_of_room(room)
           if item["connectionId"] != sender.connection_id]
    counts = sender.relay(ids, {"type": "room", "room": room, "from": sender.user,
                                "text": frame["text"], "ts": _now_ms()})
    return {"type": "sent", "room": room, **_ack(counts)}, _summary(counts)


def whoami(sender: Sender, frame: dict):
    return {"type": "whoami", "connectionId": sender.connection_id, "userId": sender.user,
            "rooms": sender.registry.rooms_of(sender.connection_id)}, "ok"


def broadcast_all(sender: Sender, frame: dict):
    # Any client could spam everyone, so the stack must opt in explicitly.
    if os.environ.get("ALLOW_CLIENT_BROADCAST") != "1":
        raise ClientError("forbidden", "broadcastAll is disabled on this stack "
                          "(deploy with --allow-client-broadcast to enable it)")
    ids = [item["connectionId"] for item in sender.registry.scan_connections()
           if item["connectionId"] != sender.connection_id]
    counts = sender.relay(ids, {"type": "broadcast", "from": sender.user, "text": frame["text"],
                                "ts": _now_ms()})
    return {"type": "sent", "broadcast": True, **_ack(counts)}, _summary(counts)


ROUTES = {
    "sendMessage": send_message,
    "join": join,
    "leave": leave,
    "sendRoom": send_room,
    "whoami": whoami,
    "broadcastAll": broadcast_all,
}
