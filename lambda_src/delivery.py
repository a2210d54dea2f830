"""Posting one payload to many connections through the management API.

The outcome rules live here, in pure functions, because the deployed handler
and wsctl's fan-out engine must agree on them exactly:

- gone: HTTP 410 or GoneException (the registry holds a stale id: delete it);
  botocore raises a bare ClientError with code "410" when the answer carries
  no error type, so the status code counts as much as the code;
- throttled: 429 or LimitExceededException (also "client-side buffer full");
- forbidden: any 403, whatever its code (AccessDenied, InvalidSignature,
  MissingAuthenticationToken, Forbidden): a permission problem, not a peer's;
- failed: anything else.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

DELIVERED = "delivered"
GONE = "gone"
THROTTLED = "throttled"
FORBIDDEN = "forbidden"
FAILED = "failed"
OUTCOMES = (DELIVERED, GONE, THROTTLED, FORBIDDEN, FAILED)


def classify(status: int | None, code: str | None) -> str:
    """An error answer's HTTP status and error code -> outcome."""
    if status == 410 or code == "GoneException":
        return GONE
    if status == 403 or code in ("ForbiddenException", "AccessDeniedException"):
        return FORBIDDEN
    if status == 429 or code in ("LimitExceededException", "TooManyRequestsException", "ThrottlingException"):
        return THROTTLED
    return FAILED


def classify_error(error: Exception) -> str:
    """A botocore exception -> outcome (network errors are failures)."""
    response = getattr(error, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = response.get("Error", {}).get("Code")
    return classify(status, code)


def management_endpoint(event: dict, override: str | None = None) -> str:
    """Where this API's @connections live: the override (APIGW_MANAGEMENT_ENDPOINT), else
    https://{domainName}/{stage} from the event, as API Gateway documents."""
    if override:
        return override.rstrip("/")
    ctx = event["requestContext"]
    return "https://%s/%s" % (ctx["domainName"], ctx["stage"])


_clients: dict = {}
_clients_lock = threading.Lock()
_pool = None


def management_client(endpoint: str):
    """One client per endpoint, created once per container and reused (thread-safe)."""
    client = _clients.get(endpoint)
    if client is None:
        with _clients_lock:
            client = _clients.get(endpoint)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.client(
                    "apigatewaymanagementapi", endpoint_url=endpoint,
                    config=Config(max_pool_connections=32, connect_timeout=3, read_timeout=10,
                                  retries={"mode": "standard", "max_attempts": 4}))
                _clients[endpoint] = client
    return client


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _clients_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="post")
    return _pool


def post_one(client, connection_id: str, data: bytes) -> str:
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
        return DELIVERED
    except Exception as error:  # botocore ClientError or a transport error
        return classify_error(error)


def post_many(client, connection_ids: list[str], data: bytes) -> dict[str, str]:
    """Post `data` to every id concurrently; returns {connection_id: outcome}."""
    if len(connection_ids) <= 1:
        return {cid: post_one(client, cid, data) for cid in connection_ids}
    futures = {cid: _executor().submit(post_one, client, cid, data) for cid in connection_ids}
    return {cid: future.result() for cid, future in futures.items()}
