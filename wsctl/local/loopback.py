"""Handlers in the emulator's process reach its management API without a network hop.

A handler's boto3 client still serialises, signs and retries exactly as it
would against AWS, and parses the very status, headers and body the HTTP
route would have sent; only the bytes skip TCP, TLS and HTTP parsing. This is
botocore's own `before-send` event (moto intercepts the same way). It halves
the CPU of a relay through the gateway, which shares one GIL with the handler
threads. `wsctl local up --network-management` turns it off, so handlers then
reach the management API over real sockets like any other client.
"""

import asyncio
import threading
from urllib.parse import parse_qsl, unquote, urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


class Loopback:
    def __init__(self, loop, port: int, hosts=(), gateway=None):
        self.gateway, self.loop, self.port = gateway, loop, port
        self.hosts = LOCAL_HOSTS | set(hosts)
        self.loop_thread = threading.get_ident()
        self.calls = 0

    def install(self) -> None:
        """Hook every management client made from boto3's default session (as handlers do)."""
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-send.apigatewaymanagementapi", self.before_send)

    def _target(self, url: str):
        parts = urlsplit(url)
        if parts.port != self.port or parts.hostname not in self.hosts:
            return None  # another endpoint: the request goes over the network as usual
        segments = parts.path.split("/")
        if len(segments) != 4 or segments[2] != "@connections" or not segments[3]:
            return None
        return segments[1], unquote(segments[3]), dict(parse_qsl(parts.query))

    def before_send(self, request, **_):
        if self.gateway is None or threading.get_ident() == self.loop_thread:
            return None  # not serving yet, or never block the event loop on itself
        target = self._target(request.url)
        if target is None:
            return None
        from botocore.awsrequest import AWSResponse, HeadersDict

        stage, connection_id, query = target
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        headers = HeadersDict({k: v.decode("latin-1") if isinstance(v, bytes) else v
                               for k, v in request.headers.items()})  # botocore may hold bytes values
        answer = asyncio.run_coroutine_threadsafe(self.gateway.answer_management(
            request.method, stage, connection_id, headers, query, body), self.loop)
        status, headers, payload = answer.result(timeout=60)
        self.calls += 1
        return AWSResponse(request.url, status, HeadersDict(headers), _Body(payload))
