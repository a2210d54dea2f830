"""The deployed handler admits both kinds of $connect while deploy switches the auth mode.

`wsctl deploy` switching between --auth jwt and --auth none passes through two configurations
(tests/test_deploy_aws_rules.py checks the order of the calls on moto): the stage still calling
the authorizer while the function runs with AUTH_MODE=switching, and the stage no longer (or not
yet) calling it with the same environment. Here the bundled handler runs in each, on the
emulator, and real clients connect with a token and without one: every one is admitted. The
configurations an order without the switching mode would pass through refuse one kind or the
other, as they did on AWS.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from lambda_src import jwts
from support.emulator_fixtures import Emulator

KEY_PARAM = "/wsctl/app/signing-key"
CONFIGURATIONS = {  # name: what the stage does on $connect, and the function's environment
    "authorizer, switching": ["--auth", "jwt", "--env", "AUTH_MODE=switching"],
    "no authorizer, switching": ["--auth", "none", "--env", "AUTH_MODE=switching",
                                 "--env", "SIGNING_KEY_PARAM=" + KEY_PARAM],
    # what an order without the switching mode passed through
    "no authorizer, jwt": ["--auth", "none", "--env", "AUTH_MODE=jwt", "--env", "SIGNING_KEY_PARAM=" + KEY_PARAM],
    "authorizer, none": ["--auth", "jwt", "--env", "AUTH_MODE=none", "--env", "SIGNING_KEY_PARAM="],
}


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    with ThreadPoolExecutor(len(CONFIGURATIONS)) as pool:
        futures = {name: pool.submit(Emulator, tmp_path_factory.mktemp("switch"), args + ["--quiet"])
                   for name, args in CONFIGURATIONS.items()}
        started, errors = {}, []
        for name, future in futures.items():
            try:
                started[name] = future.result()
            except Exception as error:  # noqa: BLE001 - reported below, after stopping the others
                errors.append("%s: %s" % (name, error))
    try:
        if errors:
            pytest.fail("emulators did not start:\n" + "\n".join(errors))
        yield started
    finally:
        with ThreadPoolExecutor(len(started) or 1) as pool:
            list(pool.map(lambda emulator: emulator.stop(), started.values()))


def token_for(emulator: Emulator, user: str) -> str:
    """A token the stack's authorizer verifies (a stage without one never looks at it)."""
    keyset = emulator.state.keyset or jwts.new_keyset()
    return jwts.mint(keyset, emulator.stack, user, 600)


def admitted_as(emulator: Emulator, token: str | None) -> str | int:
    """The user a connection is admitted as, or the handshake's refusal status."""
    url = emulator.url + ("?token=" + token if token else "")
    try:
        with connect(url, open_timeout=20, compression=None) as ws:
            ws.send('{"action": "whoami"}')
            answer = json.loads(ws.recv(timeout=10))
            return answer["userId"].replace(answer["connectionId"], "{id}")
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("configuration", ["authorizer, switching", "no authorizer, switching"])
def test_during_a_switch_both_kinds_of_connect_are_admitted(stacks, configuration):
    emulator = stacks[configuration]
    with_token = admitted_as(emulator, token_for(emulator, "alice"))
    assert with_token == ("alice" if configuration.startswith("authorizer") else "anon-{id}")
    assert admitted_as(emulator, None) == "anon-{id}"
    assert admitted_as(emulator, jwts.mint(jwts.new_keyset(), "app", "mallory", 600)) == "anon-{id}"


def test_without_the_switching_mode_each_order_refused_one_kind(stacks):
    # --auth none -> jwt, the environment first: the stage does not call the authorizer yet
    assert admitted_as(stacks["no authorizer, jwt"], None) == 403
    assert admitted_as(stacks["no authorizer, jwt"], token_for(stacks["no authorizer, jwt"], "alice")) == 403
    # --auth jwt -> none, the environment first: new containers cannot read the key
    assert admitted_as(stacks["authorizer, none"], token_for(stacks["authorizer, none"], "alice")) == 500
