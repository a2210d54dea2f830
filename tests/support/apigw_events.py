"""API Gateway WebSocket events as Lambda receives them (shapes of docs/apigw-websocket.md#example-events)."""

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


# The example events of docs/apigw-websocket.md#example-events, in full: their keys and formats are the contract
# (tests/test_events.py builds them exactly; tests/test_emulator_events.py checks the emulator's keys).
REFERENCE_CONNECT = {
    "headers": {"Host": "abc123defg.execute-api.us-east-1.amazonaws.com", "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits", "Sec-WebSocket-Key": "q4xkZ0pR9mYc2Vb1nA7t8w==", "Sec-WebSocket-Protocol": "chat.v1, chat.v2", "Sec-WebSocket-Version": "13", "User-Agent": "wsctl/0.3", "X-Amzn-Trace-Id": "Root=1-67c85a11-0a1b2c3d4e5f60718293a4b5", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https"},  # noqa: E501
    "multiValueHeaders": {"Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"], "Sec-WebSocket-Extensions": ["permessage-deflate; client_max_window_bits"], "Sec-WebSocket-Key": ["q4xkZ0pR9mYc2Vb1nA7t8w=="], "Sec-WebSocket-Protocol": ["chat.v1, chat.v2"], "Sec-WebSocket-Version": ["13"], "User-Agent": ["wsctl/0.3"], "X-Amzn-Trace-Id": ["Root=1-67c85a11-0a1b2c3d4e5f60718293a4b5"], "X-Forwarded-For": ["203.0.113.7"], "X-Forwarded-Port": ["443"], "X-Forwarded-Proto": ["https"]},  # noqa: E501
    "queryStringParameters": {"token": "t-991"}, "multiValueQueryStringParameters": {"token": ["t-991"]},
    "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "extendedRequestId": "Xk3aPEe2IAMFq1w=", "requestTime": "05/Mar/2025:14:02:11 +0000", "messageDirection": "IN", "stage": "dev", "connectedAt": 1741183331204, "requestTimeEpoch": 1741183331211, "identity": {"userAgent": "wsctl/0.3", "sourceIp": "203.0.113.7"}, "requestId": "Xk3aPEe2IAMFq1w=", "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com", "connectionId": "Xk3aPd_1IAMCJxg=", "apiId": "abc123defg",  # noqa: E501
                       "authorizer": {"principalId": "user-42", "tenant": "acme", "integrationLatency": 37}},
    "isBase64Encoded": False}
REFERENCE_MESSAGE = {
    "requestContext": {"routeKey": "sendmessage", "messageId": "Xk3bQa9vIAMCJxg=", "eventType": "MESSAGE", "extendedRequestId": "Xk3bQH0-IAMF7ww=", "requestTime": "05/Mar/2025:14:02:19 +0000", "messageDirection": "IN", "stage": "dev", "connectedAt": 1741183331204, "requestTimeEpoch": 1741183339520, "identity": {"userAgent": "wsctl/0.3", "sourceIp": "203.0.113.7"}, "requestId": "Xk3bQH0-IAMF7ww=", "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com", "connectionId": "Xk3aPd_1IAMCJxg=", "apiId": "abc123defg", "authorizer": {"principalId": "user-42", "tenant": "acme", "integrationLatency": 37}},  # noqa: E501
    "body": "{\"action\":\"sendmessage\",\"text\":\"hi\"}", "isBase64Encoded": False}
REFERENCE_DISCONNECT = {
    "headers": {"Host": "abc123defg.execute-api.us-east-1.amazonaws.com", "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},  # noqa: E501
    "multiValueHeaders": {"Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]},  # noqa: E501
    "requestContext": {"routeKey": "$disconnect", "disconnectStatusCode": 1005, "eventType": "DISCONNECT", "extendedRequestId": "Xk3dN2_qIAMF0Ag=", "requestTime": "05/Mar/2025:14:05:40 +0000", "messageDirection": "IN", "disconnectReason": "Client-side close frame status not set", "stage": "dev", "connectedAt": 1741183331204, "requestTimeEpoch": 1741183540113, "identity": {"userAgent": "wsctl/0.3", "sourceIp": "203.0.113.7"}, "requestId": "Xk3dN2_qIAMF0Ag=", "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com", "connectionId": "Xk3aPd_1IAMCJxg=", "apiId": "abc123defg", "authorizer": {"principalId": "user-42", "tenant": "acme", "integrationLatency": 37}},  # noqa: E501
    "isBase64Encoded": False}


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
