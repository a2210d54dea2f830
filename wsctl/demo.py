"""`wsctl demo`: the whole job on the embedded default, narrated, in about ten seconds.

It starts the emulator (a real `wsctl local up` in a scratch folder), connects
simulated users with real WebSocket clients, and runs the same services the
operating commands use. Every step checks what the clients received, so the
demo fails loudly if anything it shows does not work.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from lambda_src import jwts

from . import ops, render
from .errors import WsctlError
from .local.functions.sdks import cache_root as sdk_cache_root
from .local.procs import tied_to_parent
from .targets.emulator import EmulatorState, find_state
from .targets.emulator import home as wsctl_home
from .targets.local import LocalTarget

STACK = "demo"


class _Narrator:
    def __init__(self):
        self.step = 0

    def __call__(self, text: str) -> None:
        self.step += 1
        render.markup("\n[bold cyan]%d.[/] [bold]%s[/]" % (self.step, text))

    @staticmethod
    def detail(text: str) -> None:
        render.line("   " + text, style="dim")


def _start_emulator(home: Path) -> tuple[subprocess.Popen, dict]:
    # A scratch home, but the AWS SDKs Lambda's runtimes provide from the user's own (installed once).
    env = dict(os.environ, WSCTL_HOME=str(home), WSCTL_SDK_CACHE=str(sdk_cache_root(wsctl_home())))
    env.pop("WSCTL_LOCAL_NAME", None)
    log = open(home / "emulator.log", "wb")
    # --fault disconnect-loss=1: a socket that vanishes without a close frame gets no
    # $disconnect, which AWS permits ($disconnect is best-effort) and prune exists for.
    # tied_to_parent: even if the demo is killed outright (SIGKILL), the emulator is told to stop.
    argv, preexec = tied_to_parent([sys.executable, "-m", "wsctl", "--stack", STACK, "local", "up", "--port", "0",
                                    "--name", "demo", "--quiet", "--fault", "disconnect-loss=1"])
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               preexec_fn=preexec)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WsctlError("the emulator exited at start: %s" % (home / "emulator.log").read_text()[-500:])
        state = find_state(process.pid, home)
        if state is not None:
            return process, state
        time.sleep(0.05)
    _stop(process)
    raise WsctlError("the emulator did not start within 60 s")


def _stop(process: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop the emulator as Ctrl-C would (it stops its functions and moto); SIGKILL after `grace`."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _expect(client, label: str, predicate, timeout: float = 5.0) -> dict:
    try:
        frame = json.loads(await asyncio.wait_for(client.recv(), timeout))
    except asyncio.TimeoutError:
        raise WsctlError("demo: %s received nothing within %.0f s" % (label, timeout)) from None
    if not predicate(frame):
        raise WsctlError("demo: %s received an unexpected frame: %s" % (label, frame))
    _Narrator.detail("%s received %s" % (label, json.dumps(frame)))
    return frame


async def _scenario(target, state: EmulatorState, say) -> None:
    keyset = state.keyset

    async def connect(user: str):
        token = jwts.mint(keyset, STACK, user, 600)
        return await websockets.connect("%s?token=%s" % (state.ws_url, token), open_timeout=10)

    say("Connect two users with real WebSocket clients: alice, and bob on a laptop and a phone")
    alice, bob_laptop, bob_phone = await connect("alice"), await connect("bob"), await connect("bob")
    for client, label in ((alice, "alice"), (bob_laptop, "bob (laptop)"), (bob_phone, "bob (phone)")):
        await client.send(json.dumps({"action": "join", "room": "lobby"}))
        await _expect(client, label, lambda f: f.get("type") == "joined")

    say('alice sends bob a message through the handler: {"action": "sendMessage", ...}')
    await alice.send(json.dumps({"action": "sendMessage", "targetUserId": "bob", "text": "hi bob!"}))
    for client, label in ((bob_laptop, "bob (laptop)"), (bob_phone, "bob (phone)")):
        await _expect(client, label, lambda f: f.get("from") == "alice" and f.get("text") == "hi bob!")
    await _expect(alice, "alice", lambda f: f.get("type") == "sent" and f.get("delivered") == 2)

    say("wsctl connections list: the registry, as DynamoDB holds it")
    rows = await asyncio.to_thread(ops.list_connections, target)
    render.table(["connection", "user", "rooms"], [[r["connectionId"], r["userId"], ",".join(r["rooms"])]
                                                   for r in rows])

    say("wsctl send --user alice: the operator sends through the management API")
    report = await ops.send(target, b'{"type":"notice","text":"maintenance at noon"}', user="alice")
    await _expect(alice, "alice", lambda f: f.get("type") == "notice")
    _Narrator.detail("outcomes: %s" % {k: v for k, v in report.counts.items() if v})

    say("wsctl broadcast: everyone in the registry")
    await ops.broadcast(target, b'{"type":"broadcast","text":"hello everyone"}')
    ids = await asyncio.to_thread(ops.all_connection_ids, target)
    for client, label in ((alice, "alice"), (bob_laptop, "bob (laptop)"), (bob_phone, "bob (phone)")):
        await _expect(client, label, lambda f: f.get("type") == "broadcast")

    say("bob's phone loses its network: the socket vanishes without a close frame")
    bob_phone.transport.abort()
    await asyncio.sleep(0.5)
    live = await ops.liveness(target, ids)
    for cid in ids:
        _Narrator.detail("%s: registry has it, API Gateway says %s" % (cid, live[cid]["state"]))
    if sorted(v["state"] for v in live.values()) != ["gone", "live", "live"]:
        raise WsctlError("demo: expected one gone connection, got %s" % live)

    say("wsctl prune: remove registry entries that API Gateway no longer knows (no message sent)")
    result = await ops.prune(target)
    _Narrator.detail("checked %d, live %d, removed %d" % (result.checked, result.live, result.removed))
    if result.removed != 1 or len(await asyncio.to_thread(ops.all_connection_ids, target)) != 2:
        raise WsctlError("demo: prune should have removed exactly the dropped connection: %s" % result)

    say("Close the remaining clients; $disconnect removes them from the registry")
    await alice.close()
    await bob_laptop.close()
    for _ in range(50):
        if not await asyncio.to_thread(ops.all_connection_ids, target):
            break
        await asyncio.sleep(0.1)
    else:
        raise WsctlError("demo: the registry still lists connections after they closed")
    _Narrator.detail("registry is empty")


def run() -> None:
    say = _Narrator()
    home = Path(tempfile.mkdtemp(prefix="wsctl-demo-"))
    previous_home = os.environ.get("WSCTL_HOME")
    process = None
    try:
        say("Start the local emulator: API Gateway, the bundled handler, and moto's DynamoDB")
        process, state = _start_emulator(home)
        _Narrator.detail("WebSocket URL %s, management API %s, table %s" % (
            state.ws_url, state.management_endpoint, state.table))
        os.environ["WSCTL_HOME"] = str(home)
        asyncio.run(_scenario(LocalTarget(), state, say))
        say("Shut the emulator down (Ctrl-C closes sockets with 1001 and runs $disconnect)")
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
        if code != 0:
            raise WsctlError("demo: the emulator exited with %d" % code)
        render.markup("\n[bold green]Demo complete.[/] Next: `wsctl local up` and `wsctl --local connect --user alice`.")
    finally:
        # However the demo ends (an exception, Ctrl-C, SIGTERM/SIGHUP, a closed pipe), the
        # emulator is stopped the way that also stops its own children.
        if process is not None:
            _stop(process)
        if previous_home is None:
            os.environ.pop("WSCTL_HOME", None)
        else:
            os.environ["WSCTL_HOME"] = previous_home
        shutil.rmtree(home, ignore_errors=True)
