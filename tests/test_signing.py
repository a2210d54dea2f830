"""The fan-out's cached SigV4 signer produces botocore's exact headers."""

from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wsctl.fanout.signing import ManagementSigner

ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
endpoints = st.sampled_from(["https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod",
                             "http://127.0.0.1:8080/dev", "https://ws.example.com", "https://h.example.com/a/b"])


def botocore_headers(credentials, region, method, url, body):
    request = AWSRequest(method=method, url=url, data=body)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


@settings(max_examples=300, deadline=None, database=None)
@given(connection_id=ids, endpoint=endpoints, method=st.sampled_from(["POST", "GET", "DELETE"]),
       body=st.one_of(st.none(), st.binary(max_size=300)), token=st.one_of(st.none(), st.text(min_size=1,
       alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=60)))
@example(connection_id=".", endpoint="https://ws.example.com", method="POST", body=None, token=None)
@example(connection_id="..", endpoint="https://h.example.com/a/b", method="GET", body=None, token=None)
def test_headers_match_botocore(connection_id, endpoint, method, body, token):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    url = "%s/@connections/%s" % (endpoint, quote(connection_id, safe=""))
    if method != "POST":
        body = None
    expected = botocore_headers(credentials, "eu-west-1", method, url, body)
    parts = urlsplit(url)
    mine = ManagementSigner(credentials, "eu-west-1").headers(method, parts.netloc, parts.path, body,
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
