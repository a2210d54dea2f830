"""lambda_src.app.handler as the $connect REQUEST authorizer, with the key set in moto's SSM."""

import base64
import hashlib
import hmac
import importlib.util
import json
import threading
import time
from collections import deque

import boto3
import jwt
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from support import apigw_events as ev
from lambda_src import app, auth, jwts
from wsctl import limits

STACK = "t1"
PARAM = "/wsctl/t1/signing-key"


@pytest.fixture
def keyset(aws, monkeypatch) -> str:
    """A fresh key set in SSM, the authorizer's environment, and a cold key cache."""
    monkeypatch.setenv("STACK_NAME", STACK)
    monkeypatch.setenv("SIGNING_KEY_PARAM", PARAM)
    monkeypatch.setattr(auth, "_keyset", {"json": None, "fetched": 0.0})
    monkeypatch.setattr(auth, "_ssm", None)  # a cold container: a client of this test's moto
    document = jwts.new_keyset()
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
    return {"sub": user, "aud": jwts.audience(stack), "iat": now, "nbf": now, "exp": now + 600}


def first_key(document: str) -> dict:
    return jwts.parse(document)[0]


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
    assert allowed(authorize(query={"token": jwts.mint(keyset, STACK, "alice")}))


def test_accepts_a_minted_token_as_bearer_header(keyset):
    token = jwts.mint(keyset, STACK, "bob")
    assert allowed(authorize(headers={"Authorization": "Bearer " + token}), "bob")


def test_accepts_the_same_token_in_query_and_header(keyset):
    token = jwts.mint(keyset, STACK, "alice")
    assert allowed(authorize(headers={"authorization": "bearer " + token}, query={"token": token}))


# -- refused ---------------------------------------------------------------------------
def test_refuses_a_missing_token(keyset):
    refused()
    refused(query={"token": ""})
    refused(headers={"Authorization": ""})


def test_refuses_a_token_signed_with_another_key(keyset):
    refused(query={"token": jwts.mint(jwts.new_keyset(), STACK, "alice")})


def test_refuses_a_token_forged_under_our_key_id(keyset):
    forged = jwt.encode(claims(), first_key(jwts.new_keyset())["secret"], algorithm="HS256", headers={"kid": first_key(keyset)["kid"]})
    refused(query={"token": forged})


def test_refuses_an_expired_token(keyset):
    refused(query={"token": jwts.mint(keyset, STACK, "alice", ttl_seconds=60, now=time.time() - 3600)})


def test_refuses_a_token_for_another_stack(keyset):
    refused(query={"token": jwts.mint(keyset, "other", "alice")})


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
    refused(query={"token": mangle(jwts.mint(keyset, STACK, "alice"))})


def test_refuses_query_and_header_tokens_that_disagree(keyset):
    alice, bob = jwts.mint(keyset, STACK, "alice"), jwts.mint(keyset, STACK, "bob")
    refused(headers={"Authorization": "Bearer " + bob}, query={"token": alice})


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", ""])
def test_refuses_a_non_bearer_authorization_header(keyset, scheme):
    token = jwts.mint(keyset, STACK, "alice")
    refused(headers={"Authorization": ("%s %s" % (scheme, token)).strip()})
    refused(headers={"Authorization": ("%s %s" % (scheme, token)).strip()}, query={"token": token})


def test_a_refusal_logs_one_line_with_the_reason(keyset, capsys):
    capsys.readouterr()
    refused(query={"token": jwts.mint(keyset, "other", "alice")})
    (line,) = capsys.readouterr().out.splitlines()
    logged = json.loads(line)
    assert logged["outcome"] == "unauthorized" and "audience" in logged["reason"].lower()


# -- rotation ---------------------------------------------------------------------------
def test_rotation_keeps_old_tokens_and_a_warm_container_learns_the_new_key(keyset):
    old_token = jwts.mint(keyset, STACK, "alice")
    assert allowed(authorize(query={"token": old_token}))  # the container caches the old key set

    rotated = jwts.rotate(keyset)
    store(rotated)
    new_token = jwts.mint(rotated, STACK, "bob")
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    # A warm container fetched the old set a while ago (past the refresh rate limit, within its max age).
    auth._keyset.update(json=keyset, fetched=time.time() - auth.KEYSET_MIN_REFRESH - 1)

    assert allowed(authorize(query={"token": new_token}), "bob")
    assert auth._keyset["json"] == rotated
    assert allowed(authorize(query={"token": old_token}))  # verified by the retiring key

    retire_at = jwts.parse(rotated)[1]["retireAt"]
    assert jwts.verify(old_token, rotated, STACK, now=retire_at - 1)["sub"] == "alice"
    with pytest.raises(jwts.InvalidToken):
        jwts.verify(old_token, rotated, STACK, now=retire_at + 1)


# -- the key read under SSM throttling ---------------------------------------------------------
def throttled_answer():
    return (AWSResponse("https://ssm.invalid", 400, {}, None),
            {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
             "ResponseMetadata": {"HTTPStatusCode": 400}})


class SsmCalls:
    """Counts GetParameter calls on a container's client; throttles the first `throttled` (None: all)."""

    def __init__(self, module, throttled: int | None = 0):
        self.calls, self.throttled = 0, throttled
        module._client().meta.events.register("before-call.ssm.GetParameter", self)

    def __call__(self, **_):
        self.calls += 1
        if self.throttled is None or self.calls <= self.throttled:
            return throttled_answer()
        return None


@pytest.fixture
def instant(monkeypatch):
    """The authorizer's retry sleeps, recorded on a fake clock instead of slept."""
    clock = {"now": 0.0, "sleeps": []}

    def sleep(seconds):
        clock["sleeps"].append(seconds)
        clock["now"] += seconds

    monkeypatch.setattr(auth, "_sleep", sleep)
    monkeypatch.setattr(auth, "_monotonic", lambda: clock["now"])
    return clock


def logged(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"keyset"' in line]


def test_a_throttled_key_read_is_retried_with_backoff_and_logged(keyset, instant, capsys):
    ssm = SsmCalls(auth, throttled=3)
    capsys.readouterr()
    assert allowed(authorize(query={"token": jwts.mint(keyset, STACK, "alice")}))

    assert ssm.calls == 4 and len(instant["sleeps"]) == 3
    assert all(0 <= delay <= auth.RETRY_CAP for delay in instant["sleeps"])
    lines = logged(capsys)
    assert [line["keyset"] for line in lines] == ["throttled", "throttled", "throttled", "read"]
    assert [line.get("attempt") for line in lines[:3]] == [1, 2, 3] and lines[3]["attempts"] == 4


def test_a_key_read_throttled_past_the_budget_fails_the_connect_and_never_answers_401(keyset, instant, capsys):
    ssm = SsmCalls(auth, throttled=None)
    with pytest.raises(Exception) as raised:
        authorize(query={"token": jwts.mint(keyset, STACK, "alice")})
    assert str(raised.value) != "Unauthorized"  # API Gateway answers 500: the client may retry
    assert sum(instant["sleeps"]) <= auth.KEYSET_READ_BUDGET
    assert ssm.calls > 10  # it kept trying for the budget
    assert logged(capsys)[-1]["outcome"] == "gave up"


class Failing:
    """SSM's transient failures at botocore's boundary, for the first `times` GetParameter calls:
    a 5xx answer (before-call), or a read that times out or cannot connect (raised in before-send,
    where botocore handles it as it handles the socket's own)."""

    def __init__(self, module, kind: str, times: int | None):
        self.kind, self.times, self.calls = kind, times, 0
        event = "before-call" if kind in ("500", "503") else "before-send"
        module._client().meta.events.register(event + ".ssm.GetParameter", self)

    def __call__(self, **_):
        self.calls += 1
        if self.times is not None and self.calls > self.times:
            return None
        if self.kind in ("500", "503"):
            code = {"500": "InternalServerError", "503": "ServiceUnavailable"}[self.kind]
            return (AWSResponse("https://ssm.invalid", int(self.kind), {}, None),
                    {"Error": {"Code": code, "Message": "try again"},
                     "ResponseMetadata": {"HTTPStatusCode": int(self.kind)}})
        raise {"read-timeout": ReadTimeoutError(endpoint_url="https://ssm.invalid"),
               "connect-timeout": ConnectTimeoutError(endpoint_url="https://ssm.invalid"),
               "unreachable": EndpointConnectionError(endpoint_url="https://ssm.invalid")}[self.kind]


@pytest.mark.parametrize("kind, logged_as", [("500", "5xx"), ("503", "5xx"), ("read-timeout", "timeout"),
                                             ("connect-timeout", "timeout"), ("unreachable", "timeout")])
def test_a_key_read_that_fails_with_a_5xx_or_a_timeout_is_retried_and_logged(keyset, instant, capsys, kind,
                                                                             logged_as):
    ssm = Failing(auth, kind, times=2)
    capsys.readouterr()
    assert allowed(authorize(query={"token": jwts.mint(keyset, STACK, "alice")}))
    assert ssm.calls == 3 and len(instant["sleeps"]) == 2
    assert [line["keyset"] for line in logged(capsys)] == [logged_as, logged_as, "read"]


@pytest.mark.parametrize("kind", ["503", "read-timeout"])
def test_a_key_read_failing_past_the_budget_fails_the_connect_within_the_functions_timeout(keyset, instant, kind):
    ssm = Failing(auth, kind, times=None)
    with pytest.raises(Exception) as raised:
        authorize(query={"token": jwts.mint(keyset, STACK, "alice")})
    assert str(raised.value) != "Unauthorized" and ssm.calls > 10
    assert sum(instant["sleeps"]) <= auth.KEYSET_READ_BUDGET
    # the last attempt starts inside the budget and is cut off by the client's own timeouts
    assert auth.KEYSET_READ_BUDGET + auth.ATTEMPT_SECONDS < limits.HANDLER_TIMEOUT_S
    config = auth._client().meta.config
    assert config.connect_timeout + config.read_timeout == auth.ATTEMPT_SECONDS


def test_a_key_read_refused_for_good_is_not_retried(keyset, instant):
    """A missing parameter (or a denied read) fails at once: no retry changes it."""
    ssm = SsmCalls(auth)
    boto3.client("ssm", region_name=ev.REGION).delete_parameter(Name=PARAM)
    with pytest.raises(Exception) as raised:
        authorize(query={"token": jwts.mint(keyset, STACK, "alice")})
    assert "ParameterNotFound" in repr(raised.value) and ssm.calls == 1 and instant["sleeps"] == []


@pytest.mark.parametrize("refresh_throttled", [False, True])
def test_unknown_key_ids_cost_one_read_per_container_per_interval(keyset, instant, refresh_throttled):
    authorize(query={"token": jwts.mint(keyset, STACK, "alice")})  # warm: the key set is cached
    auth._keyset.update(fetched=time.time() - auth.KEYSET_MIN_REFRESH - 1)
    reads = []
    fetch = auth._fetch_keyset
    auth_fetch = lambda: reads.append(1) or fetch()  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_fetch_keyset", auth_fetch)
        SsmCalls(auth, throttled=None if refresh_throttled else 0)
        outcomes = []
        for _ in range(6):
            try:
                authorize(query={"token": jwts.mint(jwts.new_keyset(), STACK, "mallory")})
            except Exception as error:  # noqa: BLE001
                outcomes.append(str(error))
    assert len(reads) == 1
    assert outcomes[1:] == ["Unauthorized"] * 5
    assert (outcomes[0] == "Unauthorized") != refresh_throttled


def container_copy(index: int):
    """A fresh copy of lambda_src.auth: one cold Lambda container (module state of its own)."""
    spec = importlib.util.spec_from_file_location("lambda_src._container_%d" % index, auth.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RateLimit:
    """SSM's throttle in miniature: at most `rate` admitted GetParameter calls in any second."""

    def __init__(self, rate: int):
        self.rate, self.admitted, self.throttled, self.lock = rate, deque(), 0, threading.Lock()

    def __call__(self, **_):
        with self.lock:
            now = time.monotonic()
            while self.admitted and now - self.admitted[0] >= 1.0:
                self.admitted.popleft()
            if len(self.admitted) >= self.rate:
                self.throttled += 1
                return throttled_answer()
            self.admitted.append(now)
            return None


def test_a_small_cold_start_storm_under_a_throttle_admits_every_valid_token(keyset):
    """8 cold containers at once against an SSM that admits 4 reads a second: every connect is
    admitted after retries (bench/ssm_storm.py measures 200 against 40/s)."""
    limit = RateLimit(4)
    containers = [container_copy(i) for i in range(8)]
    for module in containers:
        module._client().meta.events.register("before-call.ssm.GetParameter", limit)
    token = jwts.mint(keyset, STACK, "alice")
    barrier, outcomes = threading.Barrier(len(containers)), []

    def connect(module):
        barrier.wait()
        try:
            outcomes.append(module.authorize(ev.authorizer_request(query={"token": token}))["principalId"])
        except Exception as error:  # noqa: BLE001
            outcomes.append(repr(error))

    threads = [threading.Thread(target=connect, args=(module,)) for module in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["alice"] * 8
    assert limit.throttled > 0  # the storm was throttled, and retried through


# -- during an auth switch (AUTH_MODE=switching) ---------------------------------------------------
def anonymous(policy: dict) -> bool:
    assert policy["principalId"] == auth.ANONYMOUS and policy["context"] == {"anonymous": True}
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return True


def test_while_switching_a_valid_token_is_its_user_and_any_other_connection_is_anonymous(keyset, monkeypatch):
    monkeypatch.setenv("AUTH_MODE", auth.SWITCHING)
    assert allowed(authorize(query={"token": jwts.mint(keyset, STACK, "alice")}))
    assert anonymous(authorize())  # no token: --auth none admits it
    assert anonymous(authorize(query={"token": jwts.mint(jwts.new_keyset(), STACK, "mallory")}))
    assert anonymous(authorize(headers={"Authorization": "Basic eDp5"}))
    monkeypatch.setenv("AUTH_MODE", auth.JWT)  # and outside the switch, the same three are refused
    for headers, query in [(None, None), (None, {"token": jwts.mint(jwts.new_keyset(), STACK, "mallory")}),
                           ({"Authorization": "Basic eDp5"}, None)]:
        refused(headers, query)


def test_while_switching_a_key_that_cannot_be_read_admits_the_connection_anonymously(keyset, instant, monkeypatch):
    monkeypatch.setenv("AUTH_MODE", auth.SWITCHING)
    Failing(auth, "503", times=None)
    assert anonymous(authorize(query={"token": jwts.mint(keyset, STACK, "alice")}))
