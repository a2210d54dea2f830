"""The REQUEST authorizer on $connect.

It runs in the same function as the routes (app.handler dispatches on the
event's `type`): one bundle, one role and one log group to deploy and keep in
step, and an authorizer call warms the very container that then serves the
connection's $connect. The cost is that the role carries both the registry
and the key-parameter permissions.

API Gateway turns the outcomes into the handshake's status: raising
`Exception("Unauthorized")` answers 401, a Deny policy 403, anything else 500.
The authorizer's IdentitySource names only the Host header: API Gateway
requires every listed source, and the token may come from either the `token`
query parameter or an `Authorization: Bearer` header, so this code answers 401
itself when both are absent.
"""

import os
import threading
import time

from . import signing

# Re-read the key set at most this often, and at once (rate-limited) when a
# token names a key id not yet seen, so a rotation is picked up by warm containers.
KEYSET_MAX_AGE = 300
KEYSET_MIN_REFRESH = 5

_keyset = {"json": None, "fetched": 0.0}
_lock = threading.Lock()


class Unauthorized(Exception):
    def __init__(self, reason: str = ""):
        super().__init__("Unauthorized")  # the exact text API Gateway maps to 401
        self.reason = reason


def _fetch_keyset() -> str:
    import boto3

    answer = boto3.client("ssm").get_parameter(Name=os.environ["SIGNING_KEY_PARAM"], WithDecryption=True)
    return answer["Parameter"]["Value"]


def keyset(force: bool = False) -> str:
    now = time.time()
    with _lock:
        age = now - _keyset["fetched"]
        if _keyset["json"] is None or age > KEYSET_MAX_AGE or (force and age > KEYSET_MIN_REFRESH):
            _keyset["json"] = _fetch_keyset()
            _keyset["fetched"] = now
        return _keyset["json"]


def token_from(event: dict) -> str:
    """The bearer token from `?token=` or `Authorization: Bearer`; both must agree."""
    query = (event.get("queryStringParameters") or {}).get("token") or ""
    header = ""
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "authorization" and value:
            scheme, _, credentials = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise Unauthorized("the Authorization header is not 'Bearer <token>'")
            header = credentials.strip()
    if query and header and query != header:
        raise Unauthorized("the query token and the Authorization header disagree")
    token = query or header
    if not token:
        raise Unauthorized("no token (send ?token= or Authorization: Bearer)")
    return token


def authorize(event: dict) -> dict:
    """REQUEST authorizer: verify the JWT and allow $connect for its subject."""
    token = token_from(event)
    stack = os.environ.get("STACK_NAME", "wsctl")
    try:
        claims = _verify(token, stack)
    except signing.InvalidToken as error:
        raise Unauthorized(str(error)) from None
    user_id = claims["sub"]
    return {
        "principalId": user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow",
                           "Resource": event["methodArn"]}],
        },
        "context": {"userId": user_id},
    }


def _verify(token: str, stack: str) -> dict:
    try:
        return signing.verify(token, keyset(), stack)
    except signing.InvalidToken as error:
        if "unknown" not in str(error):
            raise
        return signing.verify(token, keyset(force=True), stack)  # a key rotated since we cached
