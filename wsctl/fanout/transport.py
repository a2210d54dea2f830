"""How the delivery engine talks to a management endpoint.

boto3 spends most of a millisecond of CPU per call, and aiohttp's client about
0.15 ms, which capped a fan-out at a few thousand posts per second per process
whatever the concurrency. The lean transport builds each request's bytes from
one template, signs it with a cached SigV4 signer that produces botocore's
exact headers (wsctl/sigv4.py), sends it on a pool of keep-alive connections
(wsctl/fanout/pool.py: raw asyncio protocols, TLS, proxies), then reads the
answer the way botocore does (status code, then x-amzn-ErrorType, then the JSON
body's code), so 410, 429, 413 and 403 mean exactly what they mean to boto3.
The boto3 transport is kept for parity tests and for moto's in-process mock.
"""

import asyncio
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..errors import UsageError
from ..sigv4 import ManagementSigner
from .http1 import HttpError, Response, head_template, host_header, path_segment, proxy_authorization
from .policy import Answer
from .pool import Pool


def _error_code(headers, body: bytes) -> str | None:
    code = headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype")
    if code:
        return code.split(":", 1)[0]
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return None
    if isinstance(document, dict):
        code = document.get("__type") or document.get("code")
        return code.rsplit("#", 1)[-1] if isinstance(code, str) else None
    return None


def _message(body: bytes) -> str:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(document, dict):
        return str(document.get("message") or document.get("Message") or "")
    return ""


def _proxy_for(url: str) -> str | None:
    """The proxy for `url` from the usual variables, resolved once per run rather than per request."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class LeanTransport:
    """Pre-built HTTP/1.1 requests, signed by a cached SigV4 signer, on a pool of keep-alive
    connections (wsctl.fanout.pool) sized to the concurrency."""

    def __init__(self, endpoint: str, credentials, region: str, concurrency: int = 64,
                 ca_bundle: str | None = None, timeout: float = 10.0):
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError("the management endpoint %r is not an http:// or https:// URL" % endpoint)
        self.host, self.base_path = host_header(self.endpoint), parts.path
        self.signer = ManagementSigner(credentials, region)
        proxy = _proxy_for(self.endpoint)
        extra = (("X-Amz-Security-Token", credentials.token),) if credentials.token else ()
        # Through a proxy, an http:// endpoint is asked in absolute form (the proxy's credentials
        # on every request); an https:// one through a CONNECT tunnel, in origin form.
        tunnelled = proxy is None or parts.scheme == "https"
        self.target = (self.base_path if tunnelled else "http://%s%s" % (self.host, self.base_path)) + "/@connections/"
        if not tunnelled:
            extra += proxy_authorization(proxy)
        self.head = head_template(self.host, extra)
        self.pool = Pool(self.endpoint, concurrency, timeout, ca_bundle, proxy)

    async def __aenter__(self):
        await self.pool.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.pool.__aexit__(*exc)

    async def call(self, method: str, connection_id: str, data: bytes | None = None) -> Answer:
        quoted = path_segment(connection_id)
        amz_date, authorization = self.signer.sign(method, self.host, self.base_path + "/@connections/" + quoted,
                                                   data)
        request = (self.head % (method, self.target + quoted, amz_date, authorization,
                                len(data) if data else 0)).encode()
        try:
            response = await self.pool.exchange(request + data if data else request)
        except (OSError, HttpError, asyncio.TimeoutError) as error:  # OSError: ssl.SSLError and Lost too
            return Answer(None, None, "%s: %s" % (type(error).__name__, error))
        return answer_of(response)


def answer_of(response: Response) -> Answer:
    """An HTTP answer as botocore reads it: its status, then x-amzn-ErrorType, then the JSON body's code."""
    if response.status < 300:
        return Answer(response.status, None, "", response.body)
    headers = {"x-amzn-ErrorType": response.error_type} if response.error_type else {}
    return Answer(response.status, _error_code(headers, response.body), _message(response.body), response.body)


class Boto3Transport:
    """boto3's apigatewaymanagementapi client in a thread pool (moto intercepts it in-process)."""

    def __init__(self, client, concurrency: int = 16):
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="post")

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.pool.shutdown(wait=False)

    def _call(self, method: str, connection_id: str, data: bytes | None) -> Answer:
        try:
            if method == "POST":
                answer = self.client.post_to_connection(ConnectionId=connection_id, Data=data)
            elif method == "GET":
                answer = self.client.get_connection(ConnectionId=connection_id)
            else:
                answer = self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            meta = error.response.get("ResponseMetadata", {})
            err = error.response.get("Error", {})
            return Answer(meta.get("HTTPStatusCode"), err.get("Code"), err.get("Message", ""))
        except BotoCoreError as error:
            return Answer(None, None, str(error))
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        body = b""
        if method == "GET":
            body = json.dumps({"connectedAt": _iso(answer.get("ConnectedAt")),
                               "lastActiveAt": _iso(answer.get("LastActiveAt")),
                               "identity": {"sourceIp": answer.get("Identity", {}).get("SourceIp"),
                                            "userAgent": answer.get("Identity", {}).get("UserAgent")}}).encode()
        return Answer(status, None, "", body)

    async def call(self, method: str, connection_id: str, data: bytes | None = None) -> Answer:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._call, method, connection_id, data)


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


def for_target(target, concurrency: int):
    """The transport the target names (`target.transport`: lean or boto3) for its management
    endpoint. The engine retries by itself, so the boto3 client makes exactly one attempt per call."""
    if target.transport == "boto3":
        client = target.session.client("apigatewaymanagementapi", endpoint_url=target.management_endpoint,
                                       config=Config(max_pool_connections=concurrency,
                                                     retries={"mode": "standard", "total_max_attempts": 1}))
        return Boto3Transport(client, concurrency)
    credentials = target.session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    return LeanTransport(target.management_endpoint, credentials.get_frozen_credentials(), target.region_name,
                         concurrency, target.ca_bundle)
