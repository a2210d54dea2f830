"""One port, two schemes: plain ws:// and http:// beside wss:// and https://.

API Gateway serves the socket and the management API on one domain, and most
handlers build their management client as `https://{domainName}/{stage}`. So
the port that `domainName` names must also speak TLS: each accepted socket's
first byte is peeked (a TLS ClientHello starts with 0x16) and the socket is
handed to aiohttp with or without TLS. The certificate is generated at start
for localhost, 127.0.0.1 and ::1 (plus the --host name), and handlers trust it
through AWS_CA_BUNDLE.
"""

import asyncio
import datetime
import errno
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from ..errors import WsctlError

TLS_RECORD_HANDSHAKE = 0x16
PEEK_TIMEOUT = 10.0


def make_certificate(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A fresh self-signed certificate (EC P-256, 30 days) and its key, key readable by owner only."""
    from cryptography import x509  # heavy, and only `local up` needs it: `local down` imports this module too
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsctl local emulator")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return cert_path, key_path


def ca_bundle(folder: Path, cert_path: Path) -> Path:
    """The default CA bundle plus our certificate, so a handler can still reach real AWS too."""
    from botocore.httpsession import get_cert_path  # heavy too

    bundle = folder / "ca-bundle.pem"
    default = Path(get_cert_path(True))
    bundle.write_bytes(default.read_bytes() + b"\n" + cert_path.read_bytes())
    return bundle


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # API Gateway accepts TLS 1.2 and 1.3 only
    context.load_cert_chain(cert_path, key_path)
    return context


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise WsctlError("port %d on %s is already in use: pass --port with another port (or 0 for any "
                             "free one), or stop what listens there" % (port, host)) from None
        raise WsctlError("cannot listen on %s:%d: %s" % (host, port, error.strerror)) from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class SniffingListener:
    """Accept connections and hand each to `protocol_factory`, with TLS when it starts with TLS."""

    def __init__(self, sock: socket.socket, protocol_factory, tls: ssl.SSLContext):
        self.sock, self.factory, self.tls = sock, protocol_factory, tls
        self.loop = asyncio.get_running_loop()
        self.pending: set = set()
        self.loop.add_reader(sock.fileno(), self._accept)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self) -> None:
        # Drain the backlog in one go, as asyncio's own servers do.
        for _ in range(1024):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and friends: leave the rest in the backlog
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.add_reader(conn.fileno(), self._first_byte, conn)
            self.pending.add(conn)
            self.loop.call_later(PEEK_TIMEOUT, self._expire, conn)

    def _expire(self, conn: socket.socket) -> None:
        if conn in self.pending:  # connected and never said anything
            self.pending.discard(conn)
            self.loop.remove_reader(conn.fileno())
            conn.close()

    def _first_byte(self, conn: socket.socket) -> None:
        self.loop.remove_reader(conn.fileno())
        self.pending.discard(conn)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self.loop.add_reader(conn.fileno(), self._first_byte, conn)
            self.pending.add(conn)
            return
        except OSError:
            conn.close()
            return
        if not first:
            conn.close()
            return
        tls = self.tls if first[0] == TLS_RECORD_HANDSHAKE else None
        task = self.loop.create_task(self._serve(conn, tls))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _serve(self, conn: socket.socket, tls) -> None:
        try:
            if tls is None:
                await self.loop.connect_accepted_socket(self.factory, conn)
            else:
                await self.loop.connect_accepted_socket(self.factory, conn, ssl=tls, ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            conn.close()

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        for conn in list(self.pending):
            self.loop.remove_reader(conn.fileno())
            conn.close()
        self.pending.clear()
        self.sock.close()
