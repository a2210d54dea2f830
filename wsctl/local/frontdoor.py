"""The front door: where a function's calls to AWS host names arrive.

The runtimes' bootstraps send every connection to an AWS host name here (awsnames'
redirect rules), whatever the SDK (boto3 old or new, the JavaScript SDK v2 or v3) and
however it chose the name (a hard-coded https://dynamodb.us-east-1.amazonaws.com, the
region's default endpoint). Functions that honour AWS_ENDPOINT_URL also reach it for the
services nothing else names. One loopback port speaks http and https; over https it
presents a certificate for whatever name the client asked for (SNI), signed by the
emulator's CA, which functions trust. Each request goes by its Host (or, for a local
address, its signature's scope) to the service the emulator runs for it, DynamoDB, SSM,
Lambda or the API's own management API, and is passed on unchanged; any other service
gets an AWS error document naming it as not emulated, from this machine.
"""

import ssl

import yarl
from aiohttp import ClientSession, TCPConnector, web
from multidict import CIMultiDict

from . import awsnames, listener
from .certs import Authority

# Headers that belong to one connection, not to the request passed on.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "content-length", "expect"))
MAX_BODY = 64 * 1024 * 1024


class FrontDoor:
    def __init__(self, authority: Authority, backends: dict, api_id: str, log=None):
        self.authority = authority
        self.backends = dict(backends)  # emulated service (awsnames.EMULATED's values) -> base URL
        self.api_id = api_id
        self.log = log or (lambda text: None)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._runner = None
        self._sniffer = None
        self._session = None
        self.port = 0

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    async def start(self) -> None:
        sock = listener.bind("127.0.0.1", 0)  # functions only: loopback whatever --host says
        self.port = sock.getsockname()[1]
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        tls = self.authority.server_context(["localhost", "127.0.0.1"], "front-door.pem")
        tls.sni_callback = self._sni
        self._session = ClientSession(connector=TCPConnector(limit=64), auto_decompress=False)
        self._sniffer = listener.SniffingListener(sock, self._runner.server, tls)

    def _sni(self, ssl_object, server_name, _context):
        """Present a certificate made for the name the client dialled (made once per name)."""
        if not server_name or awsnames.parse_host(server_name) is None:
            return None  # the default certificate (localhost)
        name = server_name.lower()
        context = self._contexts.get(name)
        if context is None:
            context = self._contexts[name] = self.authority.server_context([name], "host-%s.pem" % name)
        ssl_object.context = context
        return None

    def route(self, host_header: str, authorization: str) -> tuple[str, str | None]:
        """(the service called, the emulated service that answers it or None)."""
        host = awsnames.parse_host(host_header)
        service = host.service if host else (awsnames.signed_service(authorization) or "unknown")
        target = awsnames.emulated(service)
        if target == "execute-api" and host is not None and host.prefix[-1:] != (self.api_id,):
            return "execute-api (API %s)" % ".".join(host.prefix), None  # another API: not this emulator's
        return service, target if target in self.backends else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        service, target = self.route(request.host, request.headers.get("Authorization", ""))
        if target is not None:
            return await self._forward(self.backends[target], request, body)
        name = awsnames.operation(service, request.method, request.path, request.query, request.headers, body)
        self.log("sealed: a function called %s %s" % (service, name))
        json_protocol = bool(request.headers.get("X-Amz-Target")) or "json" in request.headers.get("Content-Type", "")
        status, headers, payload = awsnames.not_emulated(service, name, json_protocol)
        return web.Response(status=status, body=payload, headers=headers)

    async def _forward(self, base: str, request: web.Request, body: bytes) -> web.Response:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        url = yarl.URL(base.rstrip("/") + request.raw_path, encoded=True)  # the path exactly as signed
        async with self._session.request(request.method, url, headers=headers, data=body, allow_redirects=False,
                                         skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type")) as answer:
            payload = await answer.read()
            passed = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP)
        return web.Response(status=answer.status, body=payload, headers=passed)

    async def close(self) -> None:
        if self._sniffer is not None:
            self._sniffer.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
