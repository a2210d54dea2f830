"""The @connections management API (docs/apigw-websocket.md#management-api) with boto3, raw signed requests and the CLI.

All against the session emulator (bundled handler, JWT auth): each test opens
its own client for a unique user and asks `whoami` for its connection id.
"""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from support.emulator_fixtures import unique
from support.emulator_kit import answer, ask, client, closed, run

NEVER_EXISTED = "Zm9vYmFyYmF6CQA="  # well-formed (16 characters, URL-safe base64), never issued
ISO_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


async def identified(emulator, user: str | None = None, **options):
    ws = await client(emulator.url_for(user or unique("m")), **options)
    return ws, (await ask(ws, {"action": "whoami"}))["connectionId"]


def call(function, **kwargs):
    return asyncio.to_thread(function, **kwargs)


def error_of(excinfo) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype"))


def signed(method: str, url: str, body: bytes = b"", service: str = "execute-api",
           sign: bool = True) -> tuple[int, dict, bytes]:
    """A raw request (urllib leaves the path exactly as given), SigV4-signed by botocore."""
    request = AWSRequest(method=method, url=url, data=body)
    if sign:
        SigV4Auth(Credentials("local", "local"), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                 headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_unregistered(emulator, connection_id: str, timeout: float = 5.0) -> None:
    """The bundled $disconnect deletes the registry item: proof that it ran."""
    deadline = time.monotonic() + timeout
    while emulator.registry().get_connection(connection_id) is not None:
        assert time.monotonic() < deadline, "$disconnect did not run for %s" % connection_id
        time.sleep(0.05)


# -- PostToConnection -----------------------------------------------------------------------------
def test_post_delivers_utf8_as_a_text_frame_and_answers_200(emulator):
    management = emulator.management()

    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            answered = await call(management.post_to_connection, ConnectionId=connection_id,
                                  Data='{"hello": "wörld"}'.encode())
            return answered, await answer(ws)

    answered, frame = run(main())
    assert answered["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert frame == {"hello": "wörld"}


def test_post_of_bytes_that_are_not_utf8_is_a_binary_frame(emulator):
    management = emulator.management()
    data = b"\xff\xfe\x00binary\x80"

    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            await call(management.post_to_connection, ConnectionId=connection_id, Data=data)
            return await asyncio.wait_for(ws.recv(), 5)

    assert run(main()) == data


def test_post_of_exactly_131072_bytes_is_delivered_and_one_more_is_413(emulator):
    management = emulator.management()

    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            await call(management.post_to_connection, ConnectionId=connection_id, Data=b"a" * 131072)
            delivered = await asyncio.wait_for(ws.recv(), 5)
            with pytest.raises(management.exceptions.PayloadTooLargeException) as too_large:
                await call(management.post_to_connection, ConnectionId=connection_id, Data=b"a" * 131073)
            still_open = await ask(ws, {"action": "whoami"})
            return delivered, too_large, still_open

    delivered, too_large, still_open = run(main())
    assert delivered == "a" * 131072
    assert error_of(too_large) == (413, "PayloadTooLargeException", "PayloadTooLargeException")
    assert still_open["type"] == "whoami"


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
def test_an_id_that_never_existed_is_gone(emulator, operation):
    management = emulator.management()
    kwargs = {"ConnectionId": NEVER_EXISTED}
    if operation == "post_to_connection":
        kwargs["Data"] = b"hi"
    with pytest.raises(management.exceptions.GoneException) as gone:
        getattr(management, operation)(**kwargs)
    assert error_of(gone) == (410, "GoneException", "GoneException")


def test_a_closed_connection_is_gone(emulator):
    management = emulator.management()

    async def main():
        ws, connection_id = await identified(emulator)
        await ws.close()
        return connection_id

    connection_id = run(main())
    wait_unregistered(emulator, connection_id)
    with pytest.raises(management.exceptions.GoneException) as gone:
        management.post_to_connection(ConnectionId=connection_id, Data=b"too late")
    assert error_of(gone)[0] == 410
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId=connection_id)


# -- GetConnection ----------------------------------------------------------------------------------
def test_get_connection_answers_connected_at_last_active_at_and_identity(emulator):
    management = emulator.management()
    user = unique("g")

    async def main():
        ws, connection_id = await identified(emulator, user, user_agent_header="wsctl-test/2.0")
        async with ws:
            first = await call(management.get_connection, ConnectionId=connection_id)
            await asyncio.sleep(0.05)
            second = await call(management.get_connection, ConnectionId=connection_id)
            await ask(ws, {"action": "whoami"})  # a data frame: activity
            third = await call(management.get_connection, ConnectionId=connection_id)
            registered = await asyncio.to_thread(emulator.registry().get_connection, connection_id)
            return first, second, third, registered

    first, second, third, registered = run(main())
    # ConnectedAt is the handshake time the events carry (connectedAt, ms).
    assert int(first["ConnectedAt"].timestamp() * 1000) == registered["connectedAt"]
    assert first["ConnectedAt"].tzinfo is not None
    assert first["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "wsctl-test/2.0"}
    # LastActiveAt is tracked: unchanged by GETs, moved by a frame.
    assert first["LastActiveAt"] >= first["ConnectedAt"]
    assert second["LastActiveAt"] == first["LastActiveAt"]
    assert third["LastActiveAt"] > second["LastActiveAt"]
    assert third["ConnectedAt"] == first["ConnectedAt"]


def test_get_connection_omits_user_agent_when_none_was_sent(emulator):
    management = emulator.management()

    async def main():
        ws, connection_id = await identified(emulator, user_agent_header=None)
        async with ws:
            return await call(management.get_connection, ConnectionId=connection_id)

    assert run(main())["Identity"] == {"SourceIp": "127.0.0.1"}


def test_get_connection_wire_format(emulator):
    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            return await asyncio.to_thread(signed, "GET", "%s/@connections/%s" % (
                emulator.endpoint, connection_id.replace("=", "%3D")))

    status, headers, body = run(main())
    assert status == 200
    document = json.loads(body)
    assert set(document) == {"connectedAt", "lastActiveAt", "identity"}
    assert re.fullmatch(ISO_MS, document["connectedAt"]) and re.fullmatch(ISO_MS, document["lastActiveAt"])


# -- DeleteConnection -----------------------------------------------------------------------------------
def test_delete_closes_with_1000_runs_disconnect_answers_204_and_then_gone(emulator):
    management = emulator.management()

    async def main():
        ws, connection_id = await identified(emulator)
        deleted = await call(management.delete_connection, ConnectionId=connection_id)
        return connection_id, deleted, await closed(ws)

    connection_id, deleted, (code, reason) = run(main())
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert code == 1000
    wait_unregistered(emulator, connection_id)
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"after delete")
    with pytest.raises(management.exceptions.GoneException):
        management.delete_connection(ConnectionId=connection_id)


# -- the path and the id ------------------------------------------------------------------------------------
def test_botocore_percent_encodes_the_id_and_the_emulator_decodes_it(emulator):
    management = emulator.management()
    urls = []
    management.meta.events.register("before-send.apigatewaymanagementapi", lambda request, **_: urls.append(
        request.url))

    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            await call(management.post_to_connection, ConnectionId=connection_id, Data=b"encoded")
            return connection_id, await answer(ws)

    connection_id, frame = run(main())
    assert frame == "encoded"
    assert connection_id.endswith("=")
    assert urls == ["%s/@connections/%s" % (emulator.endpoint, connection_id[:-1] + "%3D")]


@pytest.mark.parametrize("encode", [lambda cid: cid.replace("=", "%3D"), lambda cid: cid,
                                    lambda cid: cid.replace("=", "%3d")], ids=["%3D", "literal", "%3d"])
def test_raw_posts_with_the_id_encoded_or_not(emulator, encode):
    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            url = "%s/@connections/%s" % (emulator.endpoint, encode(connection_id))
            status, headers, body = await asyncio.to_thread(signed, "POST", url, b"raw post")
            return status, await answer(ws)

    status, frame = run(main())
    assert status == 200 and frame == "raw post"


def test_a_request_without_authorization_is_403_missing_authentication_token(emulator):
    status, headers, body = signed("POST", emulator.endpoint + "/@connections/" + NEVER_EXISTED.replace(
        "=", "%3D"), b"x", sign=False)
    assert status == 403
    assert headers.get("x-amzn-ErrorType") == "MissingAuthenticationTokenException"


def test_a_request_signed_for_another_service_is_403(emulator):
    status, headers, body = signed("POST", emulator.endpoint + "/@connections/" + NEVER_EXISTED, b"x",
                                   service="apigateway")
    assert status == 403
    assert headers.get("x-amzn-ErrorType") == "InvalidSignatureException"


def test_a_wrong_stage_is_403_forbidden(emulator):
    wrong = emulator.management(endpoint=emulator.endpoint.rsplit("/", 1)[0] + "/prod")
    with pytest.raises(wrong.exceptions.ForbiddenException) as forbidden:
        wrong.post_to_connection(ConnectionId=NEVER_EXISTED, Data=b"x")
    assert error_of(forbidden)[:2] == (403, "ForbiddenException")
    missing = emulator.management(endpoint=emulator.endpoint.rsplit("/", 1)[0])  # no stage segment at all
    with pytest.raises(missing.exceptions.ForbiddenException):
        missing.post_to_connection(ConnectionId=NEVER_EXISTED, Data=b"x")


@pytest.mark.parametrize("path", ["/nothing/here", "/dev/@connections", "/dev/@connections/a/b", "/"])
def test_an_unknown_path_is_403(emulator, path):
    origin = emulator.endpoint.rsplit("/", 1)[0]
    for method in ("GET", "POST"):
        status, headers, body = signed(method, origin + path, b"x" if method == "POST" else b"")
        assert status == 403, (method, path)


def test_signed_for_execute_api_over_https_with_the_ca_bundle(emulator):
    tls = boto3.client("apigatewaymanagementapi", endpoint_url=emulator.state.tls_management_endpoint,
                       region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
                       verify=emulator.state.ca_bundle, config=Config(retries={"max_attempts": 1}))

    async def main():
        ws, connection_id = await identified(emulator)
        async with ws:
            posted = await call(tls.post_to_connection, ConnectionId=connection_id, Data=b"over tls")
            info = await call(tls.get_connection, ConnectionId=connection_id)
            return posted, info, await answer(ws)

    posted, info, frame = run(main())
    assert emulator.state.tls_management_endpoint.startswith("https://")
    assert posted["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert frame == "over tls"


# -- the CLI on the same API ------------------------------------------------------------------------------------
def test_cli_send_and_disconnect_reach_the_socket(emulator):
    async def main():
        ws, connection_id = await identified(emulator)
        sent = await asyncio.to_thread(emulator.cli, "send", "--connection", connection_id, "from the cli")
        frame = await answer(ws)
        kicked = await asyncio.to_thread(emulator.cli, "disconnect", "--", connection_id)  # ids may start with "-"
        return sent, frame, kicked, await closed(ws)

    sent, frame, kicked, code = run(main())
    assert sent.returncode == 0, sent.stderr
    assert frame == "from the cli"
    assert kicked.returncode == 0, kicked.stderr
    assert code[0] == 1000
