"""Building the Lambda proxy events API Gateway sends for a WebSocket API (pure).

Field names, formats and presence rules follow docs/apigw-websocket.md#proxy-events: connectedAt and
requestTimeEpoch in ms, requestTime in CLF, messageId only on MESSAGE,
disconnectStatusCode/disconnectReason only on DISCONNECT, query maps only when
the URL had a query string, headers in the client's own casing, and no
headers at all on MESSAGE. Ids have AWS's shape: 16 characters of URL-safe
base64 ending in "=", so handlers that URL-encode ids are exercised.
"""

import base64
import os
import time
from dataclasses import dataclass, field

from ..limits import LOCAL_ACCOUNT_ID

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Upgrade-only headers that reach the authorizer but not the $connect integration.
_AUTHORIZER_ONLY = {"connection", "upgrade"}


def _id(marker: str) -> str:
    raw = base64.urlsafe_b64encode(os.urandom(11)).decode()  # 15 characters + "="
    return raw[:11] + marker + raw[12:]


def connection_id() -> str:
    return _id("C")


def request_id() -> str:
    return _id("F")


def message_id(connection: str) -> str:
    """Message ids carry 'C' too and share their tail with the connection id, as observed."""
    return _id("C")[:12] + connection[12:]


def request_time(epoch_ms: int) -> str:
    t = time.gmtime(epoch_ms / 1000)
    return "%02d/%s/%04d:%02d:%02d:%02d +0000" % (t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
                                                   t.tm_hour, t.tm_min, t.tm_sec)


def trace_id(epoch_ms: int) -> str:
    return "Root=1-%08x-%s" % (epoch_ms // 1000, os.urandom(12).hex())


@dataclass
class Origin:
    """What API Gateway knows about one connection, from its handshake on."""
    connection_id: str
    connected_at: int  # epoch ms
    source_ip: str
    domain_name: str
    stage: str
    api_id: str
    user_agent: str | None = None
    headers: list = field(default_factory=list)  # (name, value) in the client's casing
    query: list = field(default_factory=list)  # (name, value), decoded
    authorizer: dict | None = None  # principalId + context + integrationLatency


def _maps(pairs: list, prefix: str) -> dict:
    if not pairs:
        return {}
    single, multi = {}, {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return {prefix: single, "multiValue" + prefix[0].upper() + prefix[1:]: multi}


def request_context(origin: Origin, route_key: str, event_type: str, now_ms: int, req_id: str) -> dict:
    identity = {"sourceIp": origin.source_ip}
    if origin.user_agent is not None:
        identity = {"userAgent": origin.user_agent, "sourceIp": origin.source_ip}
    context = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": req_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": origin.stage,
        "connectedAt": origin.connected_at,
        "requestTimeEpoch": now_ms,
        "identity": identity,
        "requestId": req_id,
        "domainName": origin.domain_name,
        "connectionId": origin.connection_id,
        "apiId": origin.api_id,
    }
    if origin.authorizer is not None:
        context["authorizer"] = dict(origin.authorizer)
    return context


def connect_event(origin: Origin, now_ms: int, req_id: str) -> dict:
    headers = [(n, v) for n, v in origin.headers if n.lower() not in _AUTHORIZER_ONLY]
    event = _maps(headers, "headers")
    event.update(_maps(origin.query, "queryStringParameters"))
    event["requestContext"] = request_context(origin, "$connect", "CONNECT", now_ms, req_id)
    event["isBase64Encoded"] = False
    return event


def message_event(origin: Origin, route_key: str, body: str, now_ms: int, req_id: str, msg_id: str) -> dict:
    context = request_context(origin, route_key, "MESSAGE", now_ms, req_id)
    context["messageId"] = msg_id
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(origin: Origin, status_code: int, reason: str, now_ms: int, req_id: str) -> dict:
    headers = [("Host", origin.domain_name), ("x-api-key", ""), ("X-Forwarded-For", ""), ("x-restapi", "")]
    event = _maps(headers, "headers")
    context = request_context(origin, "$disconnect", "DISCONNECT", now_ms, req_id)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    event["requestContext"] = context
    event["isBase64Encoded"] = False
    return event


def method_arn(region: str, api_id: str, stage: str) -> str:
    return "arn:aws:execute-api:%s:%s:%s/%s/$connect" % (region, LOCAL_ACCOUNT_ID, api_id, stage)


def authorizer_event(origin: Origin, arn: str, now_ms: int, req_id: str) -> dict:
    """The REQUEST authorizer's input: upgrade headers included, query maps always present."""
    event = {"type": "REQUEST", "methodArn": arn}
    event.update(_maps(origin.headers, "headers") or {"headers": {}, "multiValueHeaders": {}})
    event.update(_maps(origin.query, "queryStringParameters")
                 or {"queryStringParameters": {}, "multiValueQueryStringParameters": {}})
    event["stageVariables"] = {}
    context = request_context(origin, "$connect", "CONNECT", now_ms, req_id)
    context.pop("authorizer", None)
    event["requestContext"] = context
    return event
