"""Nobody gets in where they don't belong, locally or on AWS; secrets stay secret.

Forged identities against the running emulator (real handshakes, the bundled
JWT authorizer), the management API's signature checks, the emulator's own
exposure (loopback, file modes), and a grep for the signing key through every
output of full deploy/status/token/destroy and emulator runs.
"""

import asyncio
import base64
import json
import os
import socket
import stat
import time
import urllib.error
import urllib.request

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from support.emulator_fixtures import unique
from lambda_src import jwts

# -- forged identities ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _current_key(emulator) -> dict:
    return jwts.parse(emulator.state.keyset)[0]


def _claims(user: str, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": user, "aud": "wsctl:app", "iat": now, "nbf": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(emulator, user, headers=None, key=None, **claims) -> str:
    key = key or _current_key(emulator)
    return jwt.encode(_claims(user, **claims), key["secret"], algorithm="HS256",
                      headers={"kid": key["kid"], **(headers or {})})


FORGERIES = {
    "another key": lambda e, u: jwt.encode(_claims(u), "not-the-stack-key-" + "x" * 32, algorithm="HS256",
                                           headers={"kid": _current_key(e)["kid"]}),
    "expired": lambda e, u: _signed(e, u, exp=int(time.time()) - 60, iat=int(time.time()) - 700,
                                    nbf=int(time.time()) - 700),
    "not yet valid": lambda e, u: _signed(e, u, nbf=int(time.time()) + 600, exp=int(time.time()) + 1200),
    "wrong audience": lambda e, u: _signed(e, u, aud="wsctl:another-stack"),
    "no expiry": lambda e, u: _signed(e, u, exp=None),
    "alg none": lambda e, u: "%s.%s." % (_b64(json.dumps({"alg": "none", "typ": "JWT", "kid": _current_key(e)["kid"]})
                                             .encode()), _b64(json.dumps(_claims(u)).encode())),
    "alg switched to RS256": lambda e, u: "%s.%s.%s" % (
        _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": _current_key(e)["kid"]}).encode()),
        _b64(json.dumps(_claims(u)).encode()), _b64(b"\x00" * 256)),
    "truncated": lambda e, u: _signed(e, u)[:-6],
    "padded": lambda e, u: _signed(e, u) + "AAAA",
    "garbage": lambda e, u: "not.a.jwt",
}


async def _handshake_status(url: str, headers=None) -> int:
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def _registered(emulator, user: str) -> list:
    return emulator.registry().connections_of_user(user)


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_token_is_refused_with_401_and_leaves_no_registry_item(emulator, case):
    user = unique("forger")
    token = FORGERIES[case](emulator, user)
    assert asyncio.run(_handshake_status("%s?token=%s" % (emulator.url, token))) == 401
    assert asyncio.run(_handshake_status(emulator.url, {"Authorization": "Bearer " + token})) == 401
    assert _registered(emulator, user) == []


def test_no_token_and_a_non_bearer_header_are_refused(emulator):
    assert asyncio.run(_handshake_status(emulator.url)) == 401
    assert asyncio.run(_handshake_status(emulator.url, {"Authorization": "Basic " + emulator.token("x")})) == 401


def test_header_and_query_tokens_that_disagree_are_refused(emulator):
    alice, mallory = unique("alice"), unique("mallory")
    url = "%s?token=%s" % (emulator.url, emulator.token(alice))
    assert asyncio.run(_handshake_status(url, {"Authorization": "Bearer " + emulator.token(mallory)})) == 401
    assert _registered(emulator, alice) == [] and _registered(emulator, mallory) == []
    # the same token in both places is one identity, and accepted
    assert asyncio.run(_handshake_status(url, {"Authorization": "Bearer " + url.split("token=")[1]})) == 101


def test_an_oversize_header_is_refused_before_the_authorizer(emulator):
    user = unique("big")
    status = asyncio.run(_handshake_status(emulator.url_for(user), {"X-Padding": "p" * 11000}))
    assert status == 431
    assert _registered(emulator, user) == []


def test_a_valid_token_is_accepted_from_query_and_header(emulator):
    user = unique("ok")
    assert asyncio.run(_handshake_status(emulator.url_for(user))) == 101
    assert asyncio.run(_handshake_status(emulator.url, {"Authorization": "Bearer " + emulator.token(user)})) == 101


def test_a_frame_cannot_change_who_its_sender_is(emulator):
    alice, bob, mallory = unique("alice"), unique("bob"), unique("mallory")

    async def scenario():
        async with websockets.connect(emulator.url_for(alice)) as a, \
                websockets.connect(emulator.url_for(bob)) as b, \
                websockets.connect(emulator.url_for(mallory)) as m:
            await a.send(json.dumps({"action": "sendMessage", "targetUserId": bob, "text": "hi",
                                     "from": mallory, "userId": mallory, "principalId": mallory,
                                     "requestContext": {"authorizer": {"principalId": mallory}}}))
            relayed = json.loads(await asyncio.wait_for(b.recv(), 5))
            await a.recv()  # the ack
            await a.send(json.dumps({"action": "whoami", "userId": mallory}))
            who = json.loads(await asyncio.wait_for(a.recv(), 5))
            # mallory receives nothing meant for alice's identity
            await m.send(json.dumps({"action": "whoami"}))
            mallory_sees = json.loads(await asyncio.wait_for(m.recv(), 5))
            return relayed, who, mallory_sees

    relayed, who, mallory_sees = asyncio.run(scenario())
    assert relayed["from"] == alice and relayed["text"] == "hi"
    assert who["userId"] == alice
    assert mallory_sees["type"] == "whoami" and mallory_sees["userId"] == mallory


# -- the management API's signature checks ------------------------------------------------------


def _raw_post(emulator, headers: dict) -> tuple[int, str]:
    request = urllib.request.Request("%s/@connections/%s" % (emulator.endpoint, "abc%3D"), data=b"x",
                                     method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("x-amzn-ErrorType", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-amzn-ErrorType", "")


def _signature(service: str, when: float) -> dict:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    return {"X-Amz-Date": stamp,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDLOCAL/%s/us-east-1/%s/aws4_request, "
                             "SignedHeaders=host;x-amz-date, Signature=%s" % (stamp[:8], service, "0" * 64)}


@pytest.mark.parametrize("headers, status, error_type", [
    ({}, 403, "MissingAuthenticationTokenException"),
    (_signature("dynamodb", time.time()), 403, "InvalidSignatureException"),
    ("20 minutes old", 403, "InvalidSignatureException"),  # dated when the test runs, not when collected
    ("20 minutes ahead", 403, "InvalidSignatureException"),
    ({"Authorization": "AWS4-HMAC-SHA256 garbage"}, 403, "IncompleteSignatureException"),
    ({"Authorization": "Bearer abc"}, 403, "IncompleteSignatureException"),
    ("now", 410, "GoneException"),  # any key is accepted; the id is unknown
])
def test_management_requests_are_checked_as_far_as_an_emulator_can(emulator, headers, status, error_type):
    if isinstance(headers, str):  # a signature dated relative to now: collection may be minutes earlier
        offset = {"now": 0, "20 minutes old": -20 * 60, "20 minutes ahead": 20 * 60}[headers]
        headers = _signature("execute-api", time.time() + offset)
    assert _raw_post(emulator, headers) == (status, error_type)


def test_boto3_with_dummy_keys_is_accepted(emulator):
    client = emulator.management()
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="never-existed=", Data=b"x")


# -- the emulator's own exposure -----------------------------------------------------------------------


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_emulator_listens_on_loopback_only_by_default(emulator):
    assert emulator.url.startswith("ws://127.0.0.1:")
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, emulator.port), timeout=2).close()


def test_another_host_address_is_warned_about(start_emulator):
    instance = start_emulator("--host", "0.0.0.0", "--auth", "none")
    assert "warning: listening on 0.0.0.0" in instance.output()


def test_state_key_and_tls_files_are_readable_by_their_owner_only(emulator):
    tls = emulator.state_file.parent / "tls"
    for path in (emulator.state_file, emulator.home / "local-signing-keys.json", tls / "key.pem", tls.parent):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, "%s is mode %o" % (path, mode)


# -- secrets never leave the parameter store ------------------------------------------------------------


def _secrets(keyset: str) -> list[str]:
    return [key["secret"] for key in jwts.parse(keyset)]


def test_the_local_signing_key_appears_in_no_output(emulator, tmp_path):
    user = unique("quiet")
    outputs = [emulator.cli("status").stdout, emulator.cli("status", "-o", "json").stdout,
               emulator.cli("--debug", "connections", "list").stdout]
    token_run = emulator.cli("token", "--user", user)
    assert token_run.returncode == 0 and token_run.stdout.count(".") == 2 and len(token_run.stdout.split()) == 1
    outputs.append(token_run.stderr)
    connect_run = emulator.cli("connect", "--user", user, "--send", '{"action":"whoami"}', "--count", "1",
                               "-o", "jsonl")
    assert connect_run.returncode == 0, connect_run.stderr
    outputs += [connect_run.stdout, connect_run.stderr]
    bad = emulator.cli("--debug", "send", "--connection", "x", "--file", str(tmp_path / "missing"))
    outputs += [bad.stdout, bad.stderr]
    outputs.append(emulator.output())  # the emulator's console: panel, event lines, handler logs
    for secret in _secrets(emulator.state.keyset):
        for text in outputs:
            assert secret not in text


def test_the_stack_signing_key_appears_in_no_output_of_a_full_aws_run(aws, tmp_path):
    from typer.testing import CliRunner

    from wsctl.cli import app
    from wsctl.deploy import bundle

    runner = CliRunner()
    base = ["--region", "us-east-1", "--stack", "sec"]
    outputs = []

    def run(*args):
        result = runner.invoke(app, [*base, *args])
        outputs.append(result.output)
        outputs.append(getattr(result, "stderr", "") or "")
        return result

    assert run("--debug", "deploy").exit_code == 0
    import boto3

    keyset = boto3.client("ssm", region_name="us-east-1").get_parameter(
        Name="/wsctl/sec/signing-key", WithDecryption=True)["Parameter"]["Value"]
    assert run("--debug", "deploy", "--dry-run").exit_code == 0
    assert run("--debug", "status").exit_code == 0
    assert run("status", "-o", "json").exit_code == 0
    token = run("token", "--user", "alice")
    assert token.exit_code == 0 and token.output.strip().count(".") == 2
    assert run("--debug", "deploy", "--auth", "bogus").exit_code != 0
    configuration = boto3.client("lambda", region_name="us-east-1").get_function(FunctionName="wsctl-sec")
    outputs.append(json.dumps(configuration, default=str))
    code = bundle.build()
    assert run("destroy", "--yes").exit_code == 0
    for secret in _secrets(keyset):
        assert secret.encode() not in code
        for text in outputs:
            assert secret not in text


def test_rotate_key_keeps_old_tokens_valid_until_they_expire(aws):
    from typer.testing import CliRunner

    from wsctl.cli import app

    runner = CliRunner()
    base = ["--region", "us-east-1", "--stack", "rot"]
    assert runner.invoke(app, [*base, "deploy"]).exit_code == 0
    old_token = runner.invoke(app, [*base, "token", "--user", "alice"]).output.strip()
    rotated = runner.invoke(app, [*base, "deploy", "--rotate-key"])
    assert rotated.exit_code == 0 and "rotate" in rotated.output
    import boto3

    keyset = boto3.client("ssm", region_name="us-east-1").get_parameter(
        Name="/wsctl/rot/signing-key", WithDecryption=True)["Parameter"]["Value"]
    new_token = runner.invoke(app, [*base, "token", "--user", "bob"]).output.strip()
    assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    assert jwts.verify(old_token, keyset, "rot")["sub"] == "alice"
    assert jwts.verify(new_token, keyset, "rot")["sub"] == "bob"
    # once the old key retires (24 h after the rotation), its tokens stop verifying
    with pytest.raises(jwts.InvalidToken):
        jwts.verify(old_token, keyset, "rot", now=time.time() + jwts.MAX_TOKEN_TTL + 60)
    # a second deploy without --rotate-key keeps both keys
    assert runner.invoke(app, [*base, "deploy"]).exit_code == 0
