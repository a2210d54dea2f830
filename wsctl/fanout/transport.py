"""How the delivery engine talks to a management endpoint.

boto3 spends most of a millisecond of CPU per call, which caps a fan-out at
about a thousand posts per second per process whatever the concurrency. The
lean transport signs each request with a cached SigV4 signer that produces
botocore's exact headers (wsctl/sigv4.py), sends it over aiohttp with keep-alive,
then reads the answer the way botocore does (status code, then
x-amzn-ErrorType, then the JSON body's code), so 410, 429, 413 and 403 mean
exactly what they mean to boto3. The boto3 transport is kept for parity tests
and for moto's in-process mock.
"""

import asyncio
import json
import ssl
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..sigv4 import ManagementSigner
from .policy import Answer


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
    """aiohttp + cached SigV4, one keep-alive pool sized to the concurrency."""

    def __init__(self, endpoint: str, credentials, region: str, concurrency: int = 64,
                 ca_bundle: str | None = None, timeout: float = 10.0):
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self.host, self.base_path = parts.netloc, parts.path
        self.signer = ManagementSigner(credentials, region)
        self.concurrency = concurrency
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.proxy = _proxy_for(self.endpoint)
        self.session = None

    async def __aenter__(self):
        # aiohttp when a lean transport opens, not with wsctl.ops: it costs as much to import as the rest of
        # ops, and neither `invoke` nor a server-side broadcast needs it. Bound here once, not per request.
        import aiohttp
        from yarl import URL

        self._url, self._failures = URL, (aiohttp.ClientError, asyncio.TimeoutError, OSError)
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=context if context else True,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        # trust_env=False: aiohttp would otherwise read ~/.netrc and the proxy variables in a
        # worker thread for every request (a quarter of a broadcast's CPU), and a netrc
        # `default` entry would clash with our Authorization header. The proxy is resolved once.
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=self.timeout),
                                             skip_auto_headers=("User-Agent", "Content-Type"))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    def _signed(self, method: str, connection_id: str, data: bytes | None):
        tail = "/@connections/" + quote(connection_id, safe="")
        return self.endpoint + tail, self.signer.headers(method, self.host, self.base_path + tail, data)

    async def call(self, method: str, connection_id: str, data: bytes | None = None) -> Answer:
        url, headers = self._signed(method, connection_id, data)
        try:
            # encoded=True: the id is already percent-encoded exactly as it was signed
            async with self.session.request(method, self._url(url, encoded=True), data=data, headers=headers,
                                            proxy=self.proxy) as response:
                body = await response.read()
                if response.status < 300:
                    return Answer(response.status, None, "", body)
                return Answer(response.status, _error_code(response.headers, body), _message(body), body)
        except self._failures as error:
            return Answer(None, None, "%s: %s" % (type(error).__name__, error))


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
