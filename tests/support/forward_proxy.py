"""An HTTP forward proxy on loopback, for the lean sender's proxy tests: CONNECT tunnels (https://
endpoints) and absolute-form requests (http:// endpoints, passed on in origin form over one upstream
connection per client connection), Basic proxy credentials checked (407 otherwise). It records each
request line it was asked, and how many it refused.
"""

import asyncio
import base64
from urllib.parse import quote, urlsplit

import httptools

from support.loop_thread import LoopThread


class ForwardProxy(LoopThread):
    def __init__(self, user: str | None = None, password: str | None = None):
        super().__init__()
        self.user, self.password = user, password
        self.requests: list[str] = []
        self.refused = 0
        self.tasks: set = set()

    @property
    def url(self) -> str:
        auth = "%s:%s@" % (quote(self.user, safe=""), quote(self.password, safe="")) if self.user else ""
        return "http://%s127.0.0.1:%d" % (auth, self.port)

    async def serve(self):
        return await asyncio.start_server(self._client, "127.0.0.1", 0)

    def end(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def _authorized(self, head: bytes) -> bool:
        if self.user is None:
            return True
        expected = "Basic " + base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization":
                return value.strip() == expected
        return False

    async def _client(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _ = line.split(" ", 2)
            authorized = self._authorized(head)
            if method == "CONNECT" or not authorized:
                self.requests.append(line)  # absolute-form requests are recorded one by one as they pass
            if not authorized:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            else:
                parts = urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
                relay = asyncio.ensure_future(self._pipe(up_reader, writer))
                await self._forward(head, reader, up_writer)
                await relay
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _forward(self, first: bytes, reader, upstream):
        """Absolute-form requests from the client, passed on in origin form (credentials dropped)."""
        proxy = self

        class Request:
            def __init__(self):
                self.parser = httptools.HttpRequestParser(self)

            def on_message_begin(self):
                self.url, self.headers, self.body = b"", [], b""

            def on_url(self, url):
                self.url += url

            def on_header(self, name, value):
                if name.lower() != b"proxy-authorization":
                    self.headers.append(b"%s: %s\r\n" % (name, value))

            def on_body(self, body):
                self.body += body

            def on_message_complete(self):
                proxy.requests.append("%s %s HTTP/1.1" % (self.parser.get_method().decode(), self.url.decode("latin-1")))
                parts = urlsplit(self.url.decode("latin-1"))
                target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
                upstream.write(b"%s %s HTTP/1.1\r\n%s\r\n%s" % (
                    self.parser.get_method(), target.encode("latin-1"), b"".join(self.headers), self.body))

        request = Request()
        request.parser.feed_data(first)
        while data := await reader.read(65536):
            request.parser.feed_data(data)
        upstream.close()
