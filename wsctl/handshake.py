"""What `wsctl connect` dials: the URL (the target's stage by default) with its token, as
`?token=` or `Authorization: Bearer`; the extra handshake headers; a SigV4-presigned query for
APIs whose $connect uses AWS_IAM; and the local emulator's CA for its wss:// URL."""

from dataclasses import dataclass, field
from ssl import SSLContext, create_default_context
from urllib.parse import urlencode, urlsplit, urlunsplit

from . import tokens
from .errors import UsageError, WsctlError

PRESIGNED_SECONDS = 300  # how long an --iam handshake URL stays valid


@dataclass
class Handshake:
    url: str
    headers: list = field(default_factory=list)  # (name, value) pairs
    ssl: SSLContext | None = None  # None: the system's trust store (or ws://)


def parse_headers(items) -> list[tuple[str, str]]:
    """-H 'Name: value' options as (name, value) pairs."""
    headers = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError("-H %r is not 'Name: value'" % item)
        headers.append((name.strip(), value.strip()))
    return headers


def iam_presign(url: str, target) -> str:
    """Presign the handshake with SigV4 (query parameters) for APIs whose $connect uses AWS_IAM."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    parts = urlsplit(url)
    host = parts.hostname or ""
    region = host.split(".")[2] if ".execute-api." in host else target.region_name
    credentials = target.session.get_credentials()
    if credentials is None:
        raise WsctlError("--iam needs AWS credentials (aws configure, AWS_PROFILE, ...)")
    https = urlunsplit(parts._replace(scheme="https" if parts.scheme == "wss" else "http"))
    request = AWSRequest(method="GET", url=https)
    SigV4QueryAuth(credentials.get_frozen_credentials(), "execute-api", region,
                   expires=PRESIGNED_SECONDS).add_auth(request)
    return urlunsplit(urlsplit(request.url)._replace(scheme=parts.scheme))


def parse_query(items) -> list[tuple[str, str]]:
    """--query 'name=value' options as pairs (what a $connect authorizer reads from the query string)."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError("--query %r is not 'name=value'" % item)
        pairs.append((name, value))
    return pairs


def prepare(target, url: str | None = None, token: str | None = None, user: str | None = None,
            auth_header: bool = False, headers=(), iam: bool = False, query=()) -> Handshake:
    """The handshake for `url` (default: the target's stage), with `token` or one minted for
    `user`, the -H headers, --query parameters, and an IAM signature when `iam`."""
    url = url or target.ws_url
    if urlsplit(url).scheme not in ("ws", "wss"):
        raise UsageError("the URL must start with ws:// or wss:// (got %r)" % url)
    extra = parse_query(query)
    if extra:
        url += ("&" if urlsplit(url).query else "?") + urlencode(extra)
    if user:
        token = tokens.mint(target, user)
    pairs = parse_headers(headers)
    if token:
        if auth_header:
            pairs.append(("Authorization", "Bearer " + token))
        else:
            url += ("&" if urlsplit(url).query else "?") + urlencode({"token": token})
    if iam:
        url = iam_presign(url, target)
    context = None
    if url.startswith("wss://") and target.ca_bundle:
        context = create_default_context(cafile=target.ca_bundle)
    return Handshake(url, pairs, context)


__all__ = ["Handshake", "prepare", "parse_headers", "parse_query", "iam_presign"]
