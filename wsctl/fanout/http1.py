"""HTTP/1.1 for the lean sender, without I/O: the bytes of a request, and answers read off a
byte stream (llhttp through httptools, the parser uvicorn uses).

A fan-out sends thousands of requests that differ only in the path and the signature, so the
request head is one format string filled per call. Only what botocore reads of an answer is
kept: the status, x-amzn-ErrorType and the body (wsctl.fanout.transport reads them as botocore
does), and whether the connection may carry another request.
"""

import base64
import re
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

import httptools

DEFAULT_PORTS = {"http": 80, "https": 443}
_BASE64ISH = re.compile(r"[A-Za-z0-9._~+/=-]*")  # API Gateway's ids: unreserved characters, and + / =


class HttpError(Exception):
    """The peer's bytes are not an HTTP/1.1 answer (or a proxy refused the tunnel)."""


class Response(NamedTuple):
    status: int
    error_type: str | None  # x-amzn-ErrorType as sent
    body: bytes
    keep_alive: bool


def host_header(url: str) -> str:
    """The Host header botocore signs and sends for `url` (botocore.auth._host_from_url): the host
    in lower case, IPv6 in brackets, the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = "%s:%d" % (host, parts.port)
    return host


def path_segment(text: str) -> str:
    """quote(text, safe=""): a connection id as one path segment. API Gateway's ids take the short
    way (urllib's quote costs a tenth of a post's CPU on them)."""
    if _BASE64ISH.fullmatch(text):
        return text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return quote(text, safe="")


def head_template(host: str, extra: tuple = ()) -> str:
    """A request head with four holes: method, request target, X-Amz-Date, Authorization; then the
    body's length. `extra` are (name, value) pairs every request carries (a session token, a
    proxy's credentials)."""
    fixed = "".join("%s: %s\r\n" % pair for pair in extra)
    return ("%%s %%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wsctl\r\nX-Amz-Date: %%s\r\nAuthorization: %%s\r\n%s"
            "Content-Length: %%d\r\n\r\n" % (host.replace("%", "%%"), fixed.replace("%", "%%")))


def proxy_authorization(proxy_url: str) -> tuple:
    """(("Proxy-Authorization", "Basic ..."),) for a proxy URL with user:password@, else ()."""
    parts = urlsplit(proxy_url)
    if parts.username is None:
        return ()
    pair = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
    return (("Proxy-Authorization", "Basic " + base64.b64encode(pair.encode()).decode()),)


def connect_request(authority: str, extra: tuple = ()) -> bytes:
    """CONNECT host:port, asking a proxy for a tunnel to the endpoint."""
    return ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        authority, authority, "".join("%s: %s\r\n" % pair for pair in extra))).encode("latin-1")


def tunnel_status(head: bytes) -> int:
    """The status of a proxy's answer to CONNECT (its head, up to the blank line)."""
    line = head.split(b"\r\n", 1)[0].split(None, 2)
    if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
        raise HttpError("the proxy answered CONNECT with %r" % bytes(head[:60]))
    return int(line[1])


class ResponseReader:
    """Answers off one connection's byte stream, in order; `feed` returns those it completed."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[Response] = []
        self._begin()
        self.started = self.headers_read = False  # an answer is partly read; its head is

    def _begin(self) -> None:
        self.error_type = None
        self.chunks: list[bytes] = []
        self.sized = False  # Content-Length or Transfer-Encoding: the body does not run to the close

    def feed(self, data: bytes) -> list[Response]:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise HttpError("not an HTTP/1.1 answer: %s" % error) from None
        done, self.done = self.done, []
        return done

    def eof(self) -> Response | None:
        """The connection closed: an answer whose body runs to the close is complete now; one cut short
        of its length, or of its head, is not (None)."""
        if self.started and self.headers_read and not self.sized:
            self.started = False
            return Response(self.status, self.error_type, b"".join(self.chunks), False)
        return None

    # httptools' callbacks (llhttp calls them once per complete header)
    def on_message_begin(self) -> None:
        self._begin()
        self.started, self.headers_read = True, False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 16 and name.lower() == b"x-amzn-errortype":
            self.error_type = value.decode("latin-1")
        elif name.lower() in (b"content-length", b"transfer-encoding"):
            self.sized = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_read = True
        if self.status in (204, 304) or self.status < 200:
            self.sized = True  # no body at all

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.started = False
        if 100 <= self.status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.done.append(Response(self.status, self.error_type, body, self.parser.should_keep_alive()))
