"""The stack's token signing keys and the JWTs they sign (HS256, via PyJWT).

The key set is one JSON document, stored as an SSM SecureString under the
stack's name: {"keys": [{"kid", "secret", "created", "retireAt"?}, ...]}, the
newest first. Tokens carry the key id in their header, so after a rotation the
previous key keeps verifying the tokens it signed until `retireAt` (rotation
time + MAX_TOKEN_TTL), while new tokens use the new key.

Shared by the authorizer (verify) and `wsctl token` / `deploy` (mint, create,
rotate), so both sides agree on claims and format.
"""

import base64
import hashlib
import json
import os
import time

import jwt

ALGORITHM = "HS256"
MAX_TOKEN_TTL = 24 * 3600
LEEWAY_SECONDS = 5


class InvalidToken(Exception):
    """The token is missing, malformed, unsigned, expired or not for this stack."""


def audience(stack: str) -> str:
    return "wsctl:" + stack


def new_key(now: float | None = None) -> dict:
    secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    kid = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return {"kid": kid, "secret": secret, "created": int(now or time.time())}


def new_keyset(now: float | None = None) -> str:
    return json.dumps({"keys": [new_key(now)]})


def rotate(keyset_json: str, now: float | None = None) -> str:
    """Put a new key first; keep the previous current key until its tokens have expired."""
    now = int(now or time.time())
    keys = [k for k in parse(keyset_json) if k.get("retireAt", now + 1) > now]
    if keys:
        keys[0] = dict(keys[0], retireAt=now + MAX_TOKEN_TTL)
    return json.dumps({"keys": [new_key(now)] + keys})


def parse(keyset_json: str) -> list[dict]:
    document = json.loads(keyset_json)
    keys = document.get("keys") if isinstance(document, dict) else None
    if not keys or not all(isinstance(k, dict) and k.get("kid") and k.get("secret") for k in keys):
        raise ValueError("the signing-key parameter does not hold a wsctl key set")
    return keys


def mint(keyset_json: str, stack: str, user_id: str, ttl_seconds: int = 3600,
         now: float | None = None, extra: dict | None = None) -> str:
    if not user_id:
        raise ValueError("the user id must not be empty")
    if not 0 < ttl_seconds <= MAX_TOKEN_TTL:
        raise ValueError("the token lifetime must be between 1 s and %d s" % MAX_TOKEN_TTL)
    key = parse(keyset_json)[0]
    now = int(now or time.time())
    claims = dict(extra or {}, sub=user_id, aud=audience(stack), iat=now, nbf=now,
                  exp=now + ttl_seconds)
    return jwt.encode(claims, key["secret"], algorithm=ALGORITHM, headers={"kid": key["kid"]})


def verify(token: str, keyset_json: str, stack: str, now: float | None = None) -> dict:
    """Return the claims of a valid token, or raise InvalidToken saying why."""
    now = now or time.time()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise InvalidToken("malformed token: %s" % error) from None
    # Only HS256 is ever accepted: `alg: none` and asymmetric algorithms (which would
    # treat our secret as a public key) are refused before any key is looked at.
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("algorithm %r is not accepted" % header.get("alg"))
    usable = {k["kid"]: k for k in parse(keyset_json) if k.get("retireAt", now + 1) > now}
    key = usable.get(header.get("kid"))
    if key is None:
        raise InvalidToken("unknown or retired signing key")
    try:
        claims = jwt.decode(token, key["secret"], algorithms=[ALGORITHM], audience=audience(stack),
                            leeway=LEEWAY_SECONDS, options={"require": ["exp", "sub", "aud"]})
    except jwt.InvalidTokenError as error:
        raise InvalidToken(str(error) or type(error).__name__) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise InvalidToken("the token's subject is not a user id")
    return claims
