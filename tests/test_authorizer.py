"""lambda_src.app.handler as the $connect REQUEST authorizer, with the key set in moto's SSM."""

import base64
import hashlib
import hmac
import json
import time

import boto3
import jwt
import pytest

import apigw_events as ev
from lambda_src import app, auth, signing

STACK = "t1"
PARAM = "/wsctl/t1/signing-key"


@pytest.fixture
def keyset(aws, monkeypatch) -> str:
    """A fresh key set in SSM, the authorizer's environment, and a cold key cache."""
    monkeypatch.setenv("STACK_NAME", STACK)
    monkeypatch.setenv("SIGNING_KEY_PARAM", PARAM)
    monkeypatch.setattr(auth, "_keyset", {"json": None, "fetched": 0.0})
    document = signing.new_keyset()
    store(document)
    return document


def store(document: str) -> None:
    boto3.client("ssm", region_name=ev.REGION).put_parameter(
        Name=PARAM, Value=document, Type="SecureString", Overwrite=True)


def authorize(headers: dict | None = None, query: dict | None = None) -> dict:
    return app.handler(ev.authorizer_request(headers=headers, query=query), None)


def refused(headers: dict | None = None, query: dict | None = None) -> None:
    """The authorizer must raise the exact text API Gateway turns into 401."""
    with pytest.raises(Exception) as raised:
        authorize(headers, query)
    assert str(raised.value) == "Unauthorized"


def b64url(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def claims(user: str = "alice", stack: str = STACK) -> dict:
    now = int(time.time())
    return {"sub": user, "aud": signing.audience(stack), "iat": now, "nbf": now, "exp": now + 600}


def first_key(document: str) -> dict:
    return signing.parse(document)[0]


# -- accepted ------------------------------------------------------------------------
def allowed(policy: dict, user: str = "alice") -> bool:
    assert policy == {
        "principalId": user,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ev.METHOD_ARN}]},
        "context": {"userId": user},
    }
    return True


def test_accepts_a_minted_token_in_the_query(keyset):
    assert allowed(authorize(query={"token": signing.mint(keyset, STACK, "alice")}))


def test_accepts_a_minted_token_as_bearer_header(keyset):
    token = signing.mint(keyset, STACK, "bob")
    assert allowed(authorize(headers={"Authorization": "Bearer " + token}), "bob")


def test_accepts_the_same_token_in_query_and_header(keyset):
    token = signing.mint(keyset, STACK, "alice")
    assert allowed(authorize(headers={"authorization": "bearer " + token}, query={"token": token}))


# -- refused ---------------------------------------------------------------------------
def test_refuses_a_missing_token(keyset):
    refused()
    refused(query={"token": ""})
    refused(headers={"Authorization": ""})


def test_refuses_a_token_signed_with_another_key(keyset):
    refused(query={"token": signing.mint(signing.new_keyset(), STACK, "alice")})


def test_refuses_a_token_forged_under_our_key_id(keyset):
    forged = jwt.encode(claims(), first_key(signing.new_keyset())["secret"], algorithm="HS256", headers={"kid": first_key(keyset)["kid"]})
    refused(query={"token": forged})


def test_refuses_an_expired_token(keyset):
    refused(query={"token": signing.mint(keyset, STACK, "alice", ttl_seconds=60, now=time.time() - 3600)})


def test_refuses_a_token_for_another_stack(keyset):
    refused(query={"token": signing.mint(keyset, "other", "alice")})


def test_refuses_an_unsigned_alg_none_token(keyset):
    header = {"alg": "none", "typ": "JWT", "kid": first_key(keyset)["kid"]}
    refused(query={"token": "%s.%s." % (b64url(header), b64url(claims()))})
    refused(query={"token": "%s.%s." % (b64url({"alg": "none", "typ": "JWT"}), b64url(claims()))})


def test_refuses_a_token_headed_rs256_but_hmac_signed_with_our_secret(keyset):
    key = first_key(keyset)
    signing_input = "%s.%s" % (b64url({"alg": "RS256", "typ": "JWT", "kid": key["kid"]}), b64url(claims()))
    signature = hmac.new(key["secret"].encode(), signing_input.encode(), hashlib.sha256).digest()
    refused(query={"token": signing_input + "." + b64url(signature)})


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_refuses_a_valid_hs512_token(keyset):
    key = first_key(keyset)
    refused(query={"token": jwt.encode(claims(), key["secret"], algorithm="HS512", headers={"kid": key["kid"]})})


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-12],                      # truncated signature
    lambda t: t.rsplit(".", 1)[0],          # two parts
    lambda t: "not-a-jwt",
    lambda t: "a.b.c",
    lambda t: t.replace(".", "..", 1),
    lambda t: "%s.%s.%s" % (t.split(".")[0], b64url(b"{not json"), t.split(".")[2]),
])
def test_refuses_a_malformed_token(keyset, mangle):
    refused(query={"token": mangle(signing.mint(keyset, STACK, "alice"))})


def test_refuses_query_and_header_tokens_that_disagree(keyset):
    alice, bob = signing.mint(keyset, STACK, "alice"), signing.mint(keyset, STACK, "bob")
    refused(headers={"Authorization": "Bearer " + bob}, query={"token": alice})


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", ""])
def test_refuses_a_non_bearer_authorization_header(keyset, scheme):
    token = signing.mint(keyset, STACK, "alice")
    refused(headers={"Authorization": ("%s %s" % (scheme, token)).strip()})
    refused(headers={"Authorization": ("%s %s" % (scheme, token)).strip()}, query={"token": token})


def test_a_refusal_logs_one_line_with_the_reason(keyset, capsys):
    capsys.readouterr()
    refused(query={"token": signing.mint(keyset, "other", "alice")})
    (line,) = capsys.readouterr().out.splitlines()
    logged = json.loads(line)
    assert logged["outcome"] == "unauthorized" and "audience" in logged["reason"].lower()


# -- rotation ---------------------------------------------------------------------------
def test_rotation_keeps_old_tokens_and_a_warm_container_learns_the_new_key(keyset):
    old_token = signing.mint(keyset, STACK, "alice")
    assert allowed(authorize(query={"token": old_token}))  # the container caches the old key set

    rotated = signing.rotate(keyset)
    store(rotated)
    new_token = signing.mint(rotated, STACK, "bob")
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    # A warm container fetched the old set a while ago (past the refresh rate limit, within its max age).
    auth._keyset.update(json=keyset, fetched=time.time() - auth.KEYSET_MIN_REFRESH - 1)

    assert allowed(authorize(query={"token": new_token}), "bob")
    assert auth._keyset["json"] == rotated
    assert allowed(authorize(query={"token": old_token}))  # verified by the retiring key

    retire_at = signing.parse(rotated)[1]["retireAt"]
    assert signing.verify(old_token, rotated, STACK, now=retire_at - 1)["sub"] == "alice"
    with pytest.raises(signing.InvalidToken):
        signing.verify(old_token, rotated, STACK, now=retire_at + 1)
