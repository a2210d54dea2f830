"""What `wsctl connect` dials (wsctl.handshake) and the tokens it and `wsctl token` mint
(wsctl.tokens), tested directly on a stand-in target: no emulator, no AWS."""

import time
from ssl import SSLContext
from urllib.parse import parse_qs, urlsplit

import certifi
import pytest
from botocore.credentials import Credentials

from lambda_src import jwts
from wsctl import handshake, tokens
from wsctl.errors import UsageError, WsctlError
from wsctl.exitstatus import ExitStatus


class Session:
    def __init__(self, credentials):
        self.credentials = credentials

    def get_credentials(self):
        return self.credentials


class Target:
    """What handshake and tokens read of a target (wsctl.targets)."""

    def __init__(self, url="wss://abc123.execute-api.eu-west-1.amazonaws.com/dev", local=False, credentials=None):
        self.ws_url, self.local = url, local
        self.ca_bundle = certifi.where() if local else None  # an emulator's state names its CA bundle
        self.region_name = "us-east-1"
        self.session = Session(credentials)
        self.audience_stack = "app"
        self.keys = jwts.new_keyset()

    def keyset(self):
        return self.keys


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), (" 2D ", 172800)])
def test_durations_as_people_write_them(text, seconds):
    assert tokens.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["forever", "1.5h", "-1h", "1w", ""])
def test_a_duration_that_is_not_one_is_a_usage_error(text):
    with pytest.raises(UsageError, match="duration") as raised:
        tokens.parse_duration(text)
    assert raised.value.exit_code == ExitStatus.USAGE


def test_a_minted_token_names_the_user_and_the_audience_and_lasts_the_default_hour():
    target = Target()
    claims = jwts.verify(tokens.mint(target, "alice"), target.keys, "app")
    assert claims["sub"] == "alice" and claims["exp"] - time.time() == pytest.approx(3600, abs=60)
    with pytest.raises(UsageError, match="lifetime"):
        tokens.mint(target, "alice", 2 * 86400)  # past the 24 h cap


def test_the_token_goes_in_the_query_or_in_the_authorization_header():
    target = Target(url="ws://127.0.0.1:8080/dev?x=1")
    query = handshake.prepare(target, token="t0k", headers=["X-Trace: 7 "])
    assert query.url == "ws://127.0.0.1:8080/dev?x=1&token=t0k" and query.headers == [("X-Trace", "7")]
    header = handshake.prepare(target, token="t0k", auth_header=True)
    assert header.url == target.ws_url and header.headers == [("Authorization", "Bearer t0k")]
    assert header.ssl is None


def test_query_parameters_for_a_connect_authorizer_go_on_the_url_as_given():
    target = Target(url="wss://abc123defg.execute-api.eu-west-1.amazonaws.com/prod")
    shaken = handshake.prepare(target, token="t0k", query=["apiKey=s3cr3t", "room=a b", "empty="])
    assert shaken.url == ("wss://abc123defg.execute-api.eu-west-1.amazonaws.com/prod?apiKey=s3cr3t&room=a+b&empty="
                          "&token=t0k")
    with pytest.raises(UsageError, match="--query 'nope' is not 'name=value'"):
        handshake.prepare(target, query=["nope"])


def test_user_mints_a_token_for_the_target():
    target = Target(url="ws://127.0.0.1:8080/dev")
    token = parse_qs(urlsplit(handshake.prepare(target, user="bob").url).query)["token"][0]
    assert jwts.verify(token, target.keys, "app")["sub"] == "bob"


@pytest.mark.parametrize("url, header, words", [
    ("http://127.0.0.1/dev", [], "must start with ws:// or wss://"),
    ("ws://127.0.0.1/dev", ["no colon"], "is not 'Name: value'"),
    ("ws://127.0.0.1/dev", [": empty name"], "is not 'Name: value'"),
])
def test_bad_urls_and_headers_are_usage_errors(url, header, words):
    with pytest.raises(UsageError, match=words):
        handshake.prepare(Target(url=url), headers=header)


def test_a_local_wss_url_trusts_the_emulators_ca():
    assert isinstance(handshake.prepare(Target(url="wss://127.0.0.1:8080/dev", local=True)).ssl, SSLContext)
    assert handshake.prepare(Target(url="ws://127.0.0.1:8080/dev", local=True)).ssl is None


def test_iam_presigns_the_handshake_for_the_apis_region():
    target = Target(credentials=Credentials("AKIDEXAMPLE", "secret"))
    url = handshake.prepare(target, token="t0k", iam=True).url
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.scheme == "wss" and parts.netloc == "abc123.execute-api.eu-west-1.amazonaws.com"
    assert query["token"] == ["t0k"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].endswith("/eu-west-1/execute-api/aws4_request")  # the host's region
    assert query["X-Amz-Expires"] == ["300"] and len(query["X-Amz-Signature"][0]) == 64
    with pytest.raises(WsctlError, match="--iam needs AWS credentials"):
        handshake.prepare(Target(), iam=True)
