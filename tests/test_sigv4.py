"""SigV4 (wsctl/sigv4.py): the fan-out's cached signer against botocore, and the checks on a
request as the emulator receives it, signed by that signer or by botocore, intact or tampered with."""

from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict

from wsctl import sigv4
from wsctl.sigv4 import ManagementSigner, Rejected

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = Credentials("AKIDEXAMPLE", SECRET)
REGION = "eu-west-1"
HOST = "abc123defg.execute-api.eu-west-1.amazonaws.com"
PATH = "/prod/@connections/" + quote("L0SM9cOFvHcCIhw=", safe="")
BODY = b'{"type": "message", "text": "hi"}'
SIGNED_AT = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
AMZ_DATE = "20261127T120000Z"

ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
endpoints = st.sampled_from(["https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod",
                             "http://127.0.0.1:8080/dev", "https://ws.example.com", "https://h.example.com/a/b"])
tokens = st.one_of(st.none(), st.text(min_size=1, max_size=60,
                                      alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))


def botocore_headers(credentials, region, method, url, body):
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def received(method="POST", path=PATH, body=BODY, credentials=CREDENTIALS, amz_date=AMZ_DATE,
             service="execute-api", host=HOST) -> CIMultiDict:
    """The headers of a request signed by ManagementSigner, as the server receives them."""
    signer = ManagementSigner(credentials, REGION, service)
    return CIMultiDict({"Host": host, **signer.headers(method, host, path, body, amz_date)})


def rejected(call, *args, **kwargs) -> Rejected:
    with pytest.raises(Rejected) as refusal:
        call(*args, **kwargs)
    return refusal.value


# -- signing: botocore's exact headers ----------------------------------------------------
@settings(max_examples=300, deadline=None, database=None)
@given(connection_id=ids, endpoint=endpoints, method=st.sampled_from(["POST", "GET", "DELETE"]),
       body=st.one_of(st.none(), st.binary(max_size=300)), token=tokens)
@example(connection_id=".", endpoint="https://ws.example.com", method="POST", body=None, token=None)
@example(connection_id="..", endpoint="https://h.example.com/a/b", method="GET", body=None, token=None)
def test_headers_match_botocore(connection_id, endpoint, method, body, token):
    credentials = Credentials("AKIDEXAMPLE", SECRET, token)
    url = "%s/@connections/%s" % (endpoint, quote(connection_id, safe=""))
    if method != "POST":
        body = None
    expected = botocore_headers(credentials, REGION, method, url, body)
    parts = urlsplit(url)
    mine = ManagementSigner(credentials, REGION).headers(method, parts.netloc, parts.path, body,
                                                         expected["X-Amz-Date"])  # botocore's second
    assert mine["Authorization"] == expected["Authorization"]
    assert mine["X-Amz-Date"] == expected["X-Amz-Date"]
    assert mine.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def test_the_day_key_and_payload_hash_are_reused_but_never_stale():
    credentials = Credentials("AKID", "secret")
    signer = ManagementSigner(credentials, "us-east-1")
    one = signer.headers("POST", "h", "/dev/@connections/a%3D", b"x", "20261127T000000Z")
    two = signer.headers("POST", "h", "/dev/@connections/a%3D", b"y", "20261127T000000Z")
    three = signer.headers("POST", "h", "/dev/@connections/a%3D", b"x", "20261128T000000Z")
    assert len({one["Authorization"], two["Authorization"], three["Authorization"]}) == 3
    assert "20261128/us-east-1/execute-api" in three["Authorization"]
    # The cached day key is the one derived afresh for that day.
    assert signer._signing_key("20261128") == sigv4.signing_key("secret", "20261128/us-east-1/execute-api/aws4_request")


def test_one_signer_across_paths_keeps_no_stale_prefix():
    """The signer caches the canonical path up to the id: paths that change it in turn still sign as botocore."""
    signer = ManagementSigner(CREDENTIALS, REGION)
    for endpoint, cid in [("https://h.example.com/prod", "a="), ("https://h.example.com/a/./b/../c", "b+c"),
                          ("https://h.example.com", "~x"), ("https://h.example.com/prod", "%41"),
                          ("https://h.example.com/prod", ".."), ("https://h.example.com//x", "d")]:
        url = "%s/@connections/%s" % (endpoint, quote(cid, safe=""))
        expected = botocore_headers(CREDENTIALS, REGION, "POST", url, b"x")
        parts = urlsplit(url)
        mine = signer.headers("POST", parts.netloc, parts.path, b"x", expected["X-Amz-Date"])
        assert mine["Authorization"] == expected["Authorization"], url


# -- sign, then verify ----------------------------------------------------------------------
@settings(max_examples=100, deadline=None, database=None)
@given(connection_id=ids, method=st.sampled_from(["POST", "GET", "DELETE"]), body=st.binary(max_size=300),
       token=tokens)
def test_what_the_signer_signs_verifies_with_its_key(connection_id, method, body, token):
    credentials = Credentials("AKIDEXAMPLE", SECRET, token)
    path = "/prod/@connections/" + quote(connection_id, safe="")
    headers = received(method, path, body, credentials)
    assert sigv4.verify(method, path, MultiDict(), headers, body, SECRET, now=SIGNED_AT) == "AKIDEXAMPLE"


def test_a_request_botocore_signed_verifies():
    url = "http://127.0.0.1:8080/dev/@connections/" + quote("a+b/c=", safe="")
    request = AWSRequest(method="POST", url=url, data=BODY, headers={"X-Wsctl-Note": "spaced   out"})
    SigV4Auth(Credentials("AKIDBOTO", SECRET, "session-token"), "execute-api", REGION).add_auth(request)
    headers = dict(request.headers.items())
    assert "x-wsctl-note" in headers["Authorization"]  # signed, its spaces squeezed in the canonical form
    headers["Host"] = "127.0.0.1:8080"
    now = datetime.fromtimestamp(sigv4._parse_time(headers["X-Amz-Date"]), timezone.utc)
    assert sigv4.verify("POST", urlsplit(url).path, MultiDict(), CIMultiDict(headers), BODY, SECRET, now) == "AKIDBOTO"


@pytest.mark.parametrize("change", ["body", "path", "method", "host", "signature"])
def test_a_tampered_request_is_refused(change):
    method, path, body, headers = "POST", PATH, BODY, received()
    if change == "body":
        body = BODY.replace(b"hi", b"ho")
    elif change == "path":
        path = "/prod/@connections/" + quote("M0SM9cOFvHcCIhw=", safe="")
    elif change == "method":
        method = "DELETE"
    elif change == "host":
        headers["Host"] = "other.execute-api.eu-west-1.amazonaws.com"
    else:
        authorization = headers["Authorization"]
        last = authorization[-1]
        headers["Authorization"] = authorization[:-1] + ("0" if last != "0" else "1")
    assert sigv4.check(headers, MultiDict(), now=SIGNED_AT) == "AKIDEXAMPLE"  # well-formed: only the signature tells
    refusal = rejected(sigv4.verify, method, path, MultiDict(), headers, body, SECRET, now=SIGNED_AT)
    assert refusal.error_type == "InvalidSignatureException"
    assert "signature we calculated does not match" in str(refusal)


def test_a_changed_session_token_is_refused():
    headers = received(credentials=Credentials("AKIDEXAMPLE", SECRET, "token-one"))
    assert "x-amz-security-token" in headers["Authorization"]
    headers["X-Amz-Security-Token"] = "token-two"
    assert rejected(sigv4.verify, "POST", PATH, MultiDict(), headers, BODY, SECRET,
                    now=SIGNED_AT).error_type == "InvalidSignatureException"


def test_headers_outside_signed_headers_may_change():
    headers = received()
    headers["User-Agent"] = "something else"
    headers["Content-Type"] = "application/json"
    assert sigv4.verify("POST", PATH, MultiDict(), headers, BODY, SECRET, now=SIGNED_AT) == "AKIDEXAMPLE"


def test_the_wrong_secret_key_is_refused_by_verify_but_not_by_check():
    headers = received(credentials=Credentials("AKIDEXAMPLE", "not-the-secret"))
    # The emulator cannot know a caller's secret: check() accepts any key, as local emulators do.
    assert sigv4.check(headers, MultiDict(), now=SIGNED_AT) == "AKIDEXAMPLE"
    assert rejected(sigv4.verify, "POST", PATH, MultiDict(), headers, BODY, SECRET,
                    now=SIGNED_AT).error_type == "InvalidSignatureException"


# -- the request time ------------------------------------------------------------------------
@pytest.mark.parametrize("offset_s, accepted", [(0, True), (14 * 60, True), (15 * 60, True), (15 * 60 + 1, False),
                                                (-14 * 60, True), (-15 * 60 - 1, False), (-3600, False)])
def test_a_request_time_more_than_15_minutes_off_is_refused(offset_s, accepted):
    headers = received()
    now = datetime.fromtimestamp(SIGNED_AT.timestamp() + offset_s, timezone.utc)
    if accepted:
        assert sigv4.verify("POST", PATH, MultiDict(), headers, BODY, SECRET, now=now) == "AKIDEXAMPLE"
    else:
        refusal = rejected(sigv4.check, headers, MultiDict(), now=now)
        assert refusal.error_type == "InvalidSignatureException" and "Signature expired" in str(refusal)


def test_the_credential_date_must_be_the_request_date():
    headers = received()
    headers["X-Amz-Date"] = "20261128T000500Z"
    now = datetime(2026, 11, 28, 0, 5, tzinfo=timezone.utc)
    refusal = rejected(sigv4.check, headers, MultiDict(), now=now)
    assert refusal.error_type == "InvalidSignatureException" and "date does not match" in str(refusal)


@pytest.mark.parametrize("amz_date", ["", "2026-11-27T12:00:00Z", "20261327T120000Z", "20261127T120000"])
def test_a_malformed_request_time_is_refused(amz_date):
    headers = received()
    headers["X-Amz-Date"] = amz_date
    assert rejected(sigv4.check, headers, MultiDict(), now=SIGNED_AT).error_type == "IncompleteSignatureException"


# -- the Authorization header's shape ------------------------------------------------------------
def test_no_signature_at_all_is_a_missing_token():
    refusal = rejected(sigv4.check, CIMultiDict({"Host": HOST}), MultiDict(), now=SIGNED_AT)
    assert refusal.error_type == "MissingAuthenticationTokenException"


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA256 garbage",
    "AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date",
    "AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/execute-api/aws4_request, SignedHeaders=x-amz-date, "
    "Signature=" + "0" * 64,  # the host header is not signed
    "AWS4-HMAC-SHA256 Credential=AKID/20261127/eu-west-1/execute-api, SignedHeaders=host;x-amz-date, "
    "Signature=" + "0" * 64,  # a scope without aws4_request
])
def test_a_malformed_authorization_header_is_incomplete(authorization):
    headers = CIMultiDict({"Host": HOST, "X-Amz-Date": AMZ_DATE, "Authorization": authorization})
    assert rejected(sigv4.check, headers, MultiDict(), now=SIGNED_AT).error_type == "IncompleteSignatureException"


def test_a_signature_for_another_service_is_refused():
    headers = received(service="dynamodb")
    refusal = rejected(sigv4.check, headers, MultiDict(), now=SIGNED_AT)
    assert refusal.error_type == "InvalidSignatureException" and "execute-api" in str(refusal)


# -- presigned URLs (query parameters) ------------------------------------------------------------
def presigned(credentials=CREDENTIALS, url="https://%s/prod" % HOST) -> tuple[str, MultiDict, datetime]:
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(credentials, "execute-api", REGION, expires=300).add_auth(request)
    parts = urlsplit(request.url)
    query = MultiDict(parse_qsl(parts.query, keep_blank_values=True))
    now = datetime.fromtimestamp(sigv4._parse_time(query["X-Amz-Date"]), timezone.utc)
    return parts.path, query, now


@pytest.mark.parametrize("token", [None, "session/token+="])
def test_a_presigned_url_verifies(token):
    path, query, now = presigned(Credentials("AKIDEXAMPLE", SECRET, token))
    assert sigv4.verify("GET", path, query, CIMultiDict({"Host": HOST}), b"", SECRET, now) == "AKIDEXAMPLE"


@pytest.mark.parametrize("change", ["expires", "added parameter", "secret", "host"])
def test_a_tampered_presigned_url_is_refused(change):
    path, query, now = presigned()
    headers, secret = CIMultiDict({"Host": HOST}), SECRET
    if change == "expires":
        query["X-Amz-Expires"] = "3600"
    elif change == "added parameter":
        query.add("token", "extra")
    elif change == "secret":
        secret = "not-the-secret"
    else:
        headers["Host"] = "other.example.com"
    assert rejected(sigv4.verify, "GET", path, query, headers, b"", secret, now).error_type == \
        "InvalidSignatureException"


def test_a_presigned_url_of_another_algorithm_is_malformed():
    path, query, now = presigned()
    query["X-Amz-Algorithm"] = "AWS4-HMAC-SHA512"
    assert rejected(sigv4.check, CIMultiDict({"Host": HOST}), query, now).error_type == "IncompleteSignatureException"
