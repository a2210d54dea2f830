"""The REQUEST authorizer on $connect.

It runs in the same function as the routes (app.handler dispatches on the
event's `type`): one bundle, one role and one log group to deploy and keep in
step, and an authorizer call warms the very container that then serves the
connection's $connect. The cost is that the role carries both the registry
and the key-parameter permissions.

While `wsctl deploy` switches a stage between `--auth jwt` and `--auth none`,
the function runs with AUTH_MODE=switching and admits every connection either
mode would: a valid token as its user, anything else as an anonymous
connection, whether or not the stage calls the authorizer yet (the deploy
plan's order: wsctl/deploy/plan.py). Outside a switch, jwt never admits a
connection without a verified token.

API Gateway turns the outcomes into the handshake's status: raising
`Exception("Unauthorized")` answers 401, a Deny policy 403, anything else 500.
The authorizer's IdentitySource names only the Host header: API Gateway
requires every listed source, and the token may come from either the `token`
query parameter or an `Authorization: Bearer` header, so this code answers 401
itself when both are absent.
"""

import json
import os
import random
import sys
import threading
import time

from . import jwts

JWT, NONE, SWITCHING = "jwt", "none", "switching"  # AUTH_MODE: the stage's mode, or both during a switch
ANONYMOUS = "anonymous"  # the principal the authorizer answers for a connection it admits without a user

# Re-read the key set at most this often, and at once (rate-limited) when a
# token names a key id not yet seen, so a rotation is picked up by warm containers.
KEYSET_MAX_AGE = 300
KEYSET_MIN_REFRESH = 5
# SSM's standard throughput is 40 GetParameter calls a second per account and region, shared
# by every container: a cold-start storm is throttled. A throttled read, one SSM answers with a
# 5xx, and one that times out or cannot connect are retried with exponential backoff and full
# jitter while KEYSET_READ_BUDGET seconds last (the last attempt then takes at most
# ATTEMPT_SECONDS: 25 s in all, inside the function's 29 s and API Gateway's 29 s for
# $connect), then the authorizer fails (500, which a client may retry), never answers 401 for a
# token it could not check.
KEYSET_READ_BUDGET = 20.0
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 3
ATTEMPT_SECONDS = CONNECT_TIMEOUT + READ_TIMEOUT
RETRY_BASE = 0.1
RETRY_CAP = 2.0
THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
             "ThrottledException", "LimitExceededException"}

_keyset = {"json": None, "fetched": 0.0, "attempted": 0.0}
_lock = threading.Lock()
_ssm = None
_sleep = time.sleep  # tests make these instant
_monotonic = time.monotonic


class Unauthorized(Exception):
    def __init__(self, reason: str = ""):
        super().__init__("Unauthorized")  # the exact text API Gateway maps to 401
        self.reason = reason


def _log(**fields) -> None:
    sys.stdout.write(json.dumps({"route": "$connect(authorizer)", **fields}) + "\n")
    sys.stdout.flush()


def _client():
    """This container's SSM client: one attempt per call (the retries are ours, below), and
    timeouts that fit the budget. A session of its own: boto3's default session is not safe
    to build clients from in several threads at once (the emulator, the benchmarks)."""
    global _ssm
    if _ssm is None:
        import boto3
        from botocore.config import Config

        _ssm = boto3.session.Session().client("ssm", config=Config(
            connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, retries={"mode": "standard", "total_max_attempts": 1}))
    return _ssm


def _transient(error) -> str | None:
    """Why a failed read is worth another attempt ("throttled", "5xx", "timeout"), or None
    (a missing parameter, a denied read: no retry changes those)."""
    from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError,
                                     ReadTimeoutError)

    if isinstance(error, (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError)):
        return "timeout"
    if not isinstance(error, ClientError):
        return None
    response = error.response or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if response.get("Error", {}).get("Code") in THROTTLED or status == 429:
        return "throttled"
    return "5xx" if status >= 500 else None


def _fetch_keyset() -> str:
    """GetParameter, retried while SSM throttles, fails with a 5xx or times out, within the
    budget; each failed attempt is logged."""
    started = _monotonic()
    attempt = 0
    while True:
        try:
            answer = _client().get_parameter(Name=os.environ["SIGNING_KEY_PARAM"], WithDecryption=True)
            if attempt:
                _log(keyset="read", attempts=attempt + 1, ms=round((_monotonic() - started) * 1000))
            return answer["Parameter"]["Value"]
        except Exception as error:
            why = _transient(error)
            if why is None:
                raise
            attempt += 1
            delay = random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2 ** attempt))
            spent = _monotonic() - started
            if spent + delay > KEYSET_READ_BUDGET:
                _log(keyset=why, attempt=attempt, outcome="gave up", ms=round(spent * 1000))
                raise
            _log(keyset=why, attempt=attempt, retryInMs=round(delay * 1000))
            _sleep(delay)


def keyset(force: bool = False) -> str:
    """The key set, read once per container and re-read when old; `force` (a token names an
    unknown key id) re-reads at most once per KEYSET_MIN_REFRESH, whatever the outcome, so no
    run of such tokens can cost more than one read per container per interval."""
    now = time.time()
    with _lock:
        age = now - _keyset["fetched"]
        since_attempt = now - max(_keyset["fetched"], _keyset.get("attempted", 0.0))
        if _keyset["json"] is None or age > KEYSET_MAX_AGE or (force and since_attempt > KEYSET_MIN_REFRESH):
            try:
                _keyset["json"] = _fetch_keyset()
            except Exception:
                _keyset["attempted"] = now  # a failed read counts against the interval too
                raise
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


def mode() -> str:
    return os.environ.get("AUTH_MODE", JWT)


def admits_anonymous() -> bool:
    """Whether a connection without a verified user is admitted (as anon-{connectionId})."""
    return mode() in (NONE, SWITCHING)


def authorize(event: dict) -> dict:
    """REQUEST authorizer: verify the JWT and allow $connect for its subject. During an auth
    switch, a connection whose token cannot be verified (or that has none) is allowed as
    anonymous, as the stage will (or did) admit it without the authorizer."""
    try:
        token = token_from(event)
        claims = _verify(token, os.environ.get("STACK_NAME", "wsctl"))
    except (Unauthorized, jwts.InvalidToken) as error:
        if mode() != SWITCHING:
            raise error if isinstance(error, Unauthorized) else Unauthorized(str(error)) from None
        return _allow(event, ANONYMOUS, {"anonymous": True})
    except Exception:
        if mode() != SWITCHING:
            raise  # the key could not be read: 500, never 401 for a token nobody checked
        return _allow(event, ANONYMOUS, {"anonymous": True})
    return _allow(event, claims["sub"], {"userId": claims["sub"]})


def _allow(event: dict, principal: str, context: dict) -> dict:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow",
                           "Resource": event["methodArn"]}],
        },
        "context": context,
    }


def verified_user(authorizer: dict | None) -> str | None:
    """The user the authorizer verified at $connect, from `requestContext.authorizer` (whose values
    API Gateway passes as text), or None for a connection admitted without one."""
    authorizer = authorizer or {}
    if str(authorizer.get("anonymous", "")).lower() == "true":
        return None
    user = authorizer.get("principalId") or authorizer.get("userId")
    return str(user) if user else None


def _verify(token: str, stack: str) -> dict:
    try:
        return jwts.verify(token, keyset(), stack)
    except jwts.InvalidToken as error:
        if "unknown" not in str(error):
            raise
        return jwts.verify(token, keyset(force=True), stack)  # a key rotated since we cached
