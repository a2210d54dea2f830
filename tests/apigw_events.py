"""API Gateway WebSocket events as Lambda receives them (shapes of apigw-websocket.md §1.3)."""

import json
import time

API_ID = "abc123defg"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STAGE = "dev"
DOMAIN = "%s.execute-api.%s.amazonaws.com" % (API_ID, REGION)
MANAGEMENT_ENDPOINT = "https://%s/%s" % (DOMAIN, STAGE)
METHOD_ARN = "arn:aws:execute-api:%s:%s:%s/%s/$connect" % (REGION, ACCOUNT, API_ID, STAGE)
CONNECTED_AT = int(time.time() * 1000)  # "now": a connection item expires CONNECTED_AT/1000 + ttl
SOURCE_IP = "203.0.113.7"
USER_AGENT = "wsctl/0.3"


def _context(route_key: str, event_type: str, connection_id: str, user: str | None,
             connected_at: int) -> dict:
    context = {
        "routeKey": route_key, "eventType": event_type, "messageDirection": "IN",
        "extendedRequestId": "Xk3aPEe2IAMFq1w=", "requestId": "Xk3aPEe2IAMFq1w=",
        "requestTime": "05/Mar/2025:14:02:11 +0000", "requestTimeEpoch": connected_at + 7,
        "stage": STAGE, "domainName": DOMAIN, "apiId": API_ID,
        "connectionId": connection_id, "connectedAt": connected_at,
        "identity": {"userAgent": USER_AGENT, "sourceIp": SOURCE_IP},
    }
    if user is not None:  # what the REQUEST authorizer returned at $connect
        context["authorizer"] = {"principalId": user, "userId": user, "integrationLatency": 37}
    return context


def connect(connection_id: str, user: str | None = None, headers: dict | None = None,
            connected_at: int = CONNECTED_AT) -> dict:
    headers = {"Host": DOMAIN, "Sec-WebSocket-Key": "q4xkZ0pR9mYc2Vb1nA7t8w==", "Sec-WebSocket-Version": "13",
               "User-Agent": USER_AGENT, "X-Forwarded-For": SOURCE_IP, **(headers or {})}
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": _context("$connect", "CONNECT", connection_id, user, connected_at),
            "isBase64Encoded": False}


def message(connection_id: str, body, user: str | None = None, route_key: str | None = None,
            connected_at: int = CONNECTED_AT) -> dict:
    """A MESSAGE event. `body` is a frame (dict, serialised) or the raw text; the route key is
    the frame's action as API Gateway selects it when the action has a route, else $default."""
    from lambda_src.app import ACTIONS

    if route_key is None:
        action = body.get("action") if isinstance(body, dict) else None
        route_key = action if isinstance(action, str) and action in ACTIONS else "$default"
    context = _context(route_key, "MESSAGE", connection_id, user, connected_at)
    context["messageId"] = "Xk3bQa9vIAMCJxg="
    return {"requestContext": context, "isBase64Encoded": False,
            "body": json.dumps(body) if isinstance(body, dict) else body}


def disconnect(connection_id: str, user: str | None = None, connected_at: int = CONNECTED_AT) -> dict:
    headers = {"Host": DOMAIN, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    context = _context("$disconnect", "DISCONNECT", connection_id, user, connected_at)
    context.update(disconnectStatusCode=1005, disconnectReason="Client-side close frame status not set")
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context, "isBase64Encoded": False}


def authorizer_request(headers: dict | None = None, query: dict | None = None,
                       connection_id: str = "Xk3aPd_1IAMCJxg=") -> dict:
    """The REQUEST authorizer's input on $connect (query keys omitted when there are none)."""
    headers = {"Host": DOMAIN, "Connection": "upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               **(headers or {})}
    event = {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers,
             "multiValueHeaders": {k: [v] for k, v in headers.items()}, "stageVariables": {},
             "requestContext": _context("$connect", "CONNECT", connection_id, None, CONNECTED_AT)}
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event
