"""The trivial handler for bench/vs_serverless_offline.py (Python; wsctl and serverless-offline).

- $connect: 200.
- echo: posts the frame's body back to the sender through the management API
  (@connections), so a round trip is "frame in, PostToConnection out".
- $default: posts the sender's connection id back the same way (the benchmark's
  clients learn their ids from it, to be the targets of management POSTs).

The management client is created once per process. Its endpoint comes from
ECHO_MANAGEMENT_ENDPOINT when set (serverless-offline serves @connections at
http://localhost:WEBSOCKET_PORT, without the stage), else from boto3's
AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI (wsctl local up sets it to its http://.../stage).
"""

import os

_client = None


def _management():
    global _client
    if _client is None:
        import boto3

        endpoint = os.environ.get("ECHO_MANAGEMENT_ENDPOINT")
        _client = boto3.client("apigatewaymanagementapi", region_name="us-east-1",
                               **({"endpoint_url": endpoint} if endpoint else {}))
    return _client


def handler(event, context):
    request = event["requestContext"]
    route = request["routeKey"]
    if route == "echo":
        _management().post_to_connection(ConnectionId=request["connectionId"], Data=(event.get("body") or "").encode())
    elif route == "$default":
        _management().post_to_connection(ConnectionId=request["connectionId"],
                                         Data=('{"connectionId":"%s"}' % request["connectionId"]).encode())
    return {"statusCode": 200}
