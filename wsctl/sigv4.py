"""AWS Signature Version 4 for the management API: signing and checking (pure).

One canonical request serves both sides: `ManagementSigner` signs the fan-out's
requests, `check` is what the emulator verifies of a request it receives, and
`verify` recomputes a signature as AWS does.

Signing, at a fan-out's pace: botocore's SigV4Auth re-derives the day's signing
key, re-parses the URL and rebuilds a request object for every call: about
50 µs, a third of what a broadcast's sender spends per post. A fan-out signs
thousands of requests that differ only in the connection id, so the signer
keeps the day's key (and HMAC's keyed hashes), the second's X-Amz-Date, the
payload's hash and the canonical form of the path up to the id, and formats
the canonical request directly: a few microseconds a request. It produces botocore's exact headers (the tests
compare the two on ids with every URL-safe character, bodies, session tokens
and dates).

Checking: a local emulator cannot know the caller's secret key, so `check`
accepts any credentials (as every local AWS emulator does); what it refuses is
what AWS refuses before it looks at the key: no signature at all, a signature
scoped to another service than execute-api, a malformed Authorization header,
and a request time more than 15 minutes off. Each refusal is a 403 whose
`x-amzn-ErrorType` names the reason, as API Gateway answers. `verify` adds the
signature itself, for a caller whose secret key is known: the emulator never
knows one, so it calls only `check`.
"""

import hashlib
import hmac
import re
import time
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import quote

from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60  # AWS refuses a request signed more than 15 minutes before or after its clock
_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$")


# -- the canonical request, both sides ------------------------------------------------
def canonical_uri(path: str) -> str:
    """The request path as sent (already percent-encoded) in its canonical form: like botocore for
    every service but S3, dot segments and empty segments dropped, then encoded once more."""
    return quote(normalize_url_path(path), safe="/~")


def canonical_query(pairs) -> str:
    """(name, value) pairs, decoded, as the canonical query string: each encoded, then sorted."""
    return "&".join("%s=%s" % pair for pair in sorted(
        (quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in pairs))


def canonical_request(method: str, uri: str, query: str, headers: str, signed_headers: str,
                      payload_hash: str) -> str:
    """`headers` is the canonical headers block, one "name:value\\n" per signed header."""
    return "%s\n%s\n%s\n%s\n%s\n%s" % (method, uri, query, headers, signed_headers, payload_hash)


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """`scope` is day/region/service/aws4_request."""
    return "%s\n%s\n%s\n%s" % (ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())


def signing_key(secret: str, scope: str) -> bytes:
    """The key of one day, region and service, derived from the secret access key."""
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


# -- signing ----------------------------------------------------------------------------
_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))
_SENT_SEGMENT = re.compile(r"[A-Za-z0-9_.~%-]+")  # a segment as quote(id, safe="") leaves it


class ManagementSigner:
    def __init__(self, credentials, region: str, service: str = "execute-api"):
        self.access = credentials.access_key
        self.secret = credentials.secret_key
        self.token = credentials.token
        self.scope_tail = "/%s/%s/aws4_request" % (region, service)
        self.signed_headers = "host;x-amz-date;x-amz-security-token" if self.token else "host;x-amz-date"
        self._key = (None, b"", None, None)  # day, its signing key, HMAC-SHA256's inner and outer hashes
        self._stamp = (None, "")
        self._hash = (None, "")
        self._prefix = (None, "")

    def _signing_key(self, day: str) -> bytes:
        """The day's key, derived once a day, with HMAC-SHA256's two keyed hashes (RFC 2104) that each
        signature copies: hmac.new per request costs twice as much."""
        if self._key[0] != day:
            key = signing_key(self.secret, day + self.scope_tail)
            block = key.ljust(64, b"\0")  # SHA-256's block size; the key is 32 bytes
            self._key = (day, key, hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD)))
        return self._key[1]

    def _signature(self, day: str, to_sign: str) -> str:
        self._signing_key(day)
        inner, outer = self._key[2].copy(), self._key[3].copy()
        inner.update(to_sign.encode())
        outer.update(inner.digest())
        return outer.hexdigest()

    def _now(self) -> str:
        second = int(time.time())
        if self._stamp[0] != second:
            self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return self._stamp[1]

    def _canonical_uri(self, path: str) -> str:
        """canonical_uri(path), with the part before the last segment (the stage and @connections,
        the same for every request of a fan-out) computed once."""
        prefix, _, last = path.rpartition("/")
        if last in ("", ".", "..") or not _SENT_SEGMENT.fullmatch(last):
            return canonical_uri(path)
        if self._prefix[0] != prefix:
            normal = normalize_url_path(prefix)
            self._prefix = (prefix, quote(normal if normal.endswith("/") else normal + "/", safe="/~"))
        return self._prefix[1] + last.replace("%", "%25")  # quote(last, safe="/~") for such a segment

    def sign(self, method: str, host: str, path: str, body: bytes | None, amz_date: str | None = None) -> tuple:
        """(X-Amz-Date, Authorization) for one request; `path` is the request path as sent (the
        connection id already percent-encoded). The session token, if any, goes in its own header."""
        amz_date = amz_date or self._now()
        body = body or b""
        if self._hash[0] is not body:  # a fan-out sends one payload object many times
            self._hash = (body, hashlib.sha256(body).hexdigest())
        day = amz_date[:8]
        canonical_headers = "host:%s\nx-amz-date:%s\n" % (host, amz_date)
        if self.token:
            canonical_headers += "x-amz-security-token:%s\n" % self.token
        canonical = canonical_request(method, self._canonical_uri(path), "", canonical_headers, self.signed_headers,
                                      self._hash[1])
        signed = self._signature(day, string_to_sign(amz_date, day + self.scope_tail, canonical))
        return amz_date, "%s Credential=%s/%s%s, SignedHeaders=%s, Signature=%s" % (
            ALGORITHM, self.access, day, self.scope_tail, self.signed_headers, signed)

    def headers(self, method: str, host: str, path: str, body: bytes | None, amz_date: str | None = None) -> dict:
        """The X-Amz-Date, Authorization (and X-Amz-Security-Token) headers for one request."""
        amz_date, authorization = self.sign(method, host, path, body, amz_date)
        headers = {"X-Amz-Date": amz_date, "Authorization": authorization}
        if self.token:
            headers["X-Amz-Security-Token"] = self.token
        return headers


# -- checking ---------------------------------------------------------------------------
class Rejected(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


@lru_cache(maxsize=512)
def _parse_time(value: str) -> int:
    """X-Amz-Date (yyyyMMddTHHmmssZ) as epoch seconds. Sliced rather than strptime'd and
    cached: this runs for every management request (strptime was half the cost of the
    check) and X-Amz-Date repeats within a second."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        raise ValueError(value)
    moment = datetime(int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                      int(value[13:15]), tzinfo=timezone.utc)  # raises ValueError for a 13th month
    return int(moment.timestamp())


def check(headers, query, now: datetime | None = None) -> str:
    """Return the caller's access key id, or raise Rejected. `headers` is case-insensitive."""
    now_epoch = now.timestamp() if now is not None else time.time()
    authorization = headers.get("Authorization")
    if authorization is None and query.get("X-Amz-Algorithm"):  # a presigned URL
        credential, amz_date = query.get("X-Amz-Credential", ""), query.get("X-Amz-Date", "")
        if query.get("X-Amz-Algorithm") != ALGORITHM or not re.fullmatch(
                r"[0-9a-f]{64}", query.get("X-Amz-Signature", "")):
            raise Rejected("IncompleteSignatureException", "Malformed presigned request")
    elif authorization is None:
        raise Rejected("MissingAuthenticationTokenException", "Missing Authentication Token")
    else:
        match = _HEADER.match(authorization.strip())
        if not match:
            raise Rejected("IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                           "parameters of an AWS4-HMAC-SHA256 signature")
        credential = match.group("credential")
        if "host" not in match.group("signed").split(";"):
            raise Rejected("IncompleteSignatureException", "The host header must be signed")
        amz_date = headers.get("X-Amz-Date", "")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise Rejected("IncompleteSignatureException", "Credential must have the form "
                       "<access key>/<date>/<region>/<service>/aws4_request")
    if parts[3] != "execute-api":
        raise Rejected("InvalidSignatureException",
                       "Credential should be scoped to correct service: 'execute-api'.")
    try:
        signed_at = _parse_time(amz_date)
    except ValueError:
        raise Rejected("IncompleteSignatureException", "X-Amz-Date is missing or not yyyyMMddTHHmmssZ") from None
    if amz_date[:8] != parts[1]:  # its shape was checked just above
        raise Rejected("InvalidSignatureException", "Credential date does not match X-Amz-Date")
    if abs(now_epoch - signed_at) > MAX_SKEW_SECONDS:
        now_text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_epoch))
        raise Rejected("InvalidSignatureException", "Signature expired: %s is now earlier than %s "
                       "(or later than the request time plus 15 min)" % (amz_date, now_text))
    return parts[0]


def verify(method: str, path: str, query, headers, body: bytes, secret: str, now: datetime | None = None) -> str:
    """`check`, then the signature itself, recomputed with the caller's secret key as AWS does:
    the caller's access key id, or Rejected. `path` is the path as sent (percent-encoded),
    `query` its parameters (decoded), `headers` every header received (names in any case)."""
    access_key = check(headers, query, now)
    authorization = headers.get("Authorization")
    if authorization is None:  # presigned: the signature's parameters are in the query, all but itself
        credential, amz_date = query["X-Amz-Credential"], query["X-Amz-Date"]
        signed_names, given = query.get("X-Amz-SignedHeaders", ""), query["X-Amz-Signature"]
        pairs = [(name, value) for name, value in query.items() if name != "X-Amz-Signature"]
    else:
        match = _HEADER.match(authorization.strip())
        credential, amz_date = match.group("credential"), headers["X-Amz-Date"]
        signed_names, given = match.group("signed"), match.group("signature")
        pairs = list(query.items())
    received: dict[str, list[str]] = {}
    for name, value in headers.items():  # a repeated header's values, in order, joined by commas
        received.setdefault(name.lower(), []).append(" ".join(value.split()))
    canonical_headers = "".join("%s:%s\n" % (name, ",".join(received.get(name, ())))
                                for name in signed_names.split(";"))
    payload_hash = headers.get("X-Amz-Content-SHA256") or hashlib.sha256(body or b"").hexdigest()
    canonical = canonical_request(method, canonical_uri(path), canonical_query(pairs), canonical_headers,
                                  signed_names, payload_hash)
    scope = credential.split("/", 1)[1]
    expected = signature(signing_key(secret, scope), string_to_sign(amz_date, scope, canonical))
    if not hmac.compare_digest(expected, given):
        raise Rejected("InvalidSignatureException", "The request signature we calculated does not match the "
                       "signature you provided. Check your AWS Secret Access Key and signing method.")
    return access_key
