"""wsctl's broadcast sender before issue 22 (wsctl/fanout/transport.py LeanTransport at 901f1c7): aiohttp's
client with keep-alive, each request signed by wsctl's ManagementSigner, the answer read as wsctl reads
it. Bench code, kept as the baseline that bench/broadcast.py and bench/broadcast_rtt.py measure in the
same run as the sender that replaced it (raw asyncio protocols, wsctl/fanout/pool.py). The signer is
today's (a few microseconds per post cheaper than the one it had), so this baseline is if anything a
little fast.

    python -c "import sys; sys.path.insert(0, 'bench'); import aiohttp_sender; aiohttp_sender.install(); ..."
"""

import asyncio
import ssl
from urllib.parse import quote, urlsplit

from wsctl.fanout.policy import Answer
from wsctl.fanout.transport import _error_code, _message, _proxy_for
from wsctl.sigv4 import ManagementSigner


class AiohttpTransport:
    """aiohttp + cached SigV4, one keep-alive pool sized to the concurrency."""

    def __init__(self, endpoint: str, credentials, region: str, concurrency: int = 64,
                 ca_bundle: str | None = None, timeout: float = 10.0):
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self.host, self.base_path = parts.netloc, parts.path
        self.signer = ManagementSigner(credentials, region)
        self.concurrency, self.ca_bundle, self.timeout = concurrency, ca_bundle, timeout
        self.proxy = _proxy_for(self.endpoint)
        self.session = None

    async def __aenter__(self):
        import aiohttp
        from yarl import URL

        self._url, self._failures = URL, (aiohttp.ClientError, asyncio.TimeoutError, OSError)
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=context if context else True,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                             cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=self.timeout),
                                             skip_auto_headers=("User-Agent", "Content-Type"))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    async def call(self, method: str, connection_id: str, data: bytes | None = None) -> Answer:
        tail = "/@connections/" + quote(connection_id, safe="")
        headers = self.signer.headers(method, self.host, self.base_path + tail, data)
        try:
            async with self.session.request(method, self._url(self.endpoint + tail, encoded=True), data=data,
                                            headers=headers, proxy=self.proxy) as response:
                body = await response.read()
                if response.status < 300:
                    return Answer(response.status, None, "", body)
                return Answer(response.status, _error_code(response.headers, body), _message(body), body)
        except self._failures as error:
            return Answer(None, None, "%s: %s" % (type(error).__name__, error))


def install() -> None:
    """Make wsctl's `for_target` build this sender instead of its own (in this process)."""
    from wsctl.fanout import transport

    transport.LeanTransport = AiohttpTransport
