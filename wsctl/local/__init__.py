"""`wsctl local up`: the whole API on this machine.

One process runs the gateway (aiohttp, one port for ws/wss and http/https),
the Lambda service (functions in execution environments of their own, worker
processes on the Runtime API), Lambda's Invoke API and the front door for AWS
host names; another runs moto's DynamoDB and SSM, unless --dynamodb-endpoint names
another DynamoDB. Every function gets the environment Lambda gives it, local
credentials, AWS_ENDPOINT_URL_* pointing at the local services, and every AWS host
name it dials sent to the front door (every service not emulated answers "not
emulated"), so unmodified code, on any SDK, reaches only this machine.
"""

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lambda_src import jwts

from .. import limits, names, render
from ..apispec import ApiSpec
from ..errors import WsctlError
from ..targets.emulator import (EmulatorState, FunctionInfo, alive, home, instance_dir, name_for, read_state,
                                remove_state, states, write_state)
from . import awsnames, listener


@dataclass
class LocalOptions:
    spec: ApiSpec
    host: str = "127.0.0.1"
    port: int = 8080
    stage: str = names.DEFAULT_STAGE
    stack: str = names.DEFAULT_STACK
    dynamodb_endpoint: str | None = None
    env: dict = field(default_factory=dict)  # added to every function's environment
    idle_timeout: float = limits.IDLE_TIMEOUT_S
    max_duration: float = limits.MAX_CONNECTION_S
    integration_timeout: float = limits.INTEGRATION_TIMEOUT_S
    max_environments: int | None = None  # overrides every function's limit
    aws_passthrough: bool = False  # functions may reach real AWS for services not emulated here
    quiet: bool = False
    faults: object = None
    throttle: object = None  # the management API's token bucket (--throttle RATE:BURST)
    name: str | None = None  # --name; default: the project folder's name (or NAME-PORT if that one runs)
    project: str = ""  # the project's folder, shown by `local ls`


def _local_keyset(folder: Path) -> str:
    """The emulator's signing keys, kept across restarts so minted tokens stay valid (owner-only)."""
    path = folder / "local-signing-keys.json"
    try:
        keyset = path.read_text()
        jwts.parse(keyset)
        return keyset
    except (OSError, ValueError):
        keyset = jwts.new_keyset()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(keyset)
        return keyset


def run(options: LocalOptions) -> None:
    from .sockets import require_frame_gate  # imports aiohttp: only when an emulator starts

    require_frame_gate()  # one line and no start on an aiohttp whose internals the gate does not match
    asyncio.run(_serve(options))


def _sealed_environment(state_home: Path, passthrough: bool) -> dict:
    """What stands in for a function's credentials: local ones that reach nothing real, and no
    AWS config file (a profile could name an endpoint or a credential process). With
    --aws-passthrough, the operator's own AWS settings instead."""
    if passthrough:
        return {k: v for k, v in os.environ.items()
                if k.startswith("AWS_") and not k.startswith("AWS_ENDPOINT_URL") and k != "AWS_CA_BUNDLE"}
    return {"AWS_ACCESS_KEY_ID": limits.LOCAL_KEY, "AWS_SECRET_ACCESS_KEY": limits.LOCAL_KEY,
            "AWS_SESSION_TOKEN": limits.LOCAL_KEY,
            "AWS_CONFIG_FILE": str(state_home / "sealed" / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(state_home / "sealed" / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true"}


def _functions(options: LocalOptions, state_home: Path) -> list:
    functions = []
    for function in options.spec.functions:
        changes = {"environment": {**function.environment, **options.env}}
        if options.max_environments:
            changes["max_environments"] = options.max_environments
        if options.spec.bundled:  # its folder as deployed, not the installation that holds lambda_src
            from .bundled import code_folder

            changes["code_dir"] = code_folder(state_home)
        functions.append(replace(function, **changes))
    return functions


def _access_line(line: str) -> bool:
    """wsctl's bundled handler logs one JSON line per invocation (route, connection, outcome, ms):
    an access log, like the gateway's own line per event. Its exceptions are not."""
    if not line.startswith('{"route": '):
        return False
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and {"route", "outcome", "ms"} <= set(entry) \
        and not str(entry["outcome"]).startswith("exception:")


def _sink(quiet: bool, bundled: bool = False, terminal: bool = False):
    """Each function's log line, prefixed with the function's name. -q prints nothing per event:
    it drops the per-invocation START/END/REPORT lines (and the bundled handler's access line),
    but never what a function itself prints. In a terminal, a record the runtime joined with
    carriage returns (a traceback, a multi-line message: one CloudWatch event) prints one line per
    part, as CloudWatch's console shows it; elsewhere (a pipe, a file) it stays Lambda's record."""
    def sink(function: str, line: str, invocation) -> None:
        if quiet and (line.startswith(("START RequestId:", "END RequestId:", "REPORT RequestId:"))
                      or (bundled and _access_line(line))):
            return
        parts = line.split("\r") if terminal else (line,)
        sys.stdout.write("".join("[%s] %s\n" % (function, part) for part in parts))
        sys.stdout.flush()
    return sink


def _choose_name(options: LocalOptions, port: int | None) -> str:
    """This emulator's name: --name (refused if an emulator of that name runs), else the project
    folder's name, or NAME-PORT when an emulator of that name already runs (another terminal)."""
    running = {state.name: state for state in states()[0]}
    if options.name:
        if options.name in running:
            other = running[options.name]
            raise WsctlError("an emulator named %r is already running (pid %s, %s): stop it with `wsctl local down "
                             "--name %s`, or choose another --name" % (options.name, other.pid, other.ws_url,
                                                                       options.name))
        return options.name
    name = name_for(Path(options.project or os.getcwd()))
    if name in running and port is not None:
        name = "%s-%d" % (name, port)
    return name


class _GuardedStdout:
    """The emulator's stdout: when the reader goes away (`wsctl local up | head`), the next write
    stops the emulator as Ctrl-C would (sockets closed, functions and moto stopped) instead of
    raising BrokenPipeError in whichever callback was printing."""

    def __init__(self, stream, on_broken):
        self.stream = stream
        self.on_broken = on_broken
        self.broken = False

    def _guard(self, method, *args):
        if self.broken:
            return None
        try:
            return getattr(self.stream, method)(*args)
        except BrokenPipeError:
            self.broken = True
            render.detach(self.stream)
            self.on_broken()
            return None

    def write(self, text):
        self._guard("write", text)
        return len(text)

    def flush(self):
        self._guard("flush")

    def __getattr__(self, name):
        return getattr(self.stream, name)


async def _serve(options: LocalOptions) -> None:
    # The emulator's services load only here: `local down` and `local ls` import this module too, and
    # these bring aiohttp (the gateway, the Lambda service) and urllib.request (dynamo).
    from aiohttp import web

    from . import dynamo
    from .certs import Authority
    from .frontdoor import FrontDoor
    from .functions import LambdaService
    from .functions.invoke_api import InvokeApi
    from .gateway import Gateway, GatewayConfig
    from .rules import Faults

    spec = options.spec
    state_home = home()
    state_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    _choose_name(options, None)  # fail fast on a name in use, before anything starts
    sock = listener.bind(options.host, options.port)  # and on a taken port
    lambda_sock = listener.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    name = _choose_name(options, port)
    folder = instance_dir(name)  # this emulator's own: state, certificate, moto's log
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    advertised = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    origin = "%s:%d" % (("[%s]" % advertised) if ":" in advertised else advertised, port)
    api_id = names.local_api_id(options.stack)
    # The API's AWS host name too: a handler that builds https://{apiId}.execute-api.{region}.
    # amazonaws.com/{stage} is pointed here (see the runtimes' host map) and must trust it.
    aws_host = "%s.execute-api.%s.amazonaws.com" % (api_id, limits.LOCAL_REGION)
    authority = Authority(folder / "tls")
    gateway_tls = authority.server_context(["localhost", "127.0.0.1", "::1", advertised, aws_host], "gateway.pem")
    bundle = authority.bundle()

    # Signals first: whatever stops the emulator from here on (Ctrl-C, SIGTERM, a closed terminal,
    # a closed pipe) unwinds through the `finally` below, which stops every process started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    original_stdout = sys.stdout
    sys.stdout = _GuardedStdout(original_stdout, lambda: loop.call_soon_threadsafe(stop.set))
    moto = dynamo.EmbeddedMoto(folder / "moto.log")
    started = time.monotonic()
    service = None
    lambda_runner = None
    front_door = None
    sink = _sink(options.quiet, spec.bundled, terminal=original_stdout.isatty())
    try:
        aws_endpoint = await asyncio.to_thread(moto.start)
        ddb_endpoint = options.dynamodb_endpoint or aws_endpoint
        notes = []
        for table in spec.tables:
            note = await asyncio.to_thread(dynamo.prepare_table, ddb_endpoint, table, limits.LOCAL_REGION)
            if note and note not in notes:
                notes.append(note)
        keyset = None
        if spec.bundled and spec.auth == "jwt":
            keyset = _local_keyset(state_home)
            await asyncio.to_thread(dynamo.put_keyset, aws_endpoint, names.signing_key_param(options.stack),
                                    keyset, limits.LOCAL_REGION)
        stage_path = "%s/%s" % (origin, options.stage)
        lambda_url = "http://127.0.0.1:%d" % lambda_sock.getsockname()[1]
        front_door = FrontDoor(authority, {"dynamodb": ddb_endpoint, "ssm": aws_endpoint, "lambda": lambda_url,
                                           "execute-api": "http://" + origin}, api_id,
                               log=lambda text: sink("wsctl", text, None))
        await front_door.start()
        endpoints = {"DYNAMODB": ddb_endpoint, "SSM": aws_endpoint, "LAMBDA": lambda_url,
                     "APIGATEWAYMANAGEMENTAPI": "http://" + stage_path}
        if not options.aws_passthrough:
            endpoints[""] = front_door.url  # every other service: the sealed answer
        platform_env = _sealed_environment(state_home, options.aws_passthrough)
        platform_env["_WSCTL_HOST_MAP"] = awsnames.redirect_rules(("127.0.0.1", front_door.port), (advertised, port),
                                                                  aws_host, options.aws_passthrough)
        # Sealed, botocore in a function only ever reaches this emulator: it verifies against our
        # one CA. urllib3 loads AWS_CA_BUNDLE into every new TLS connection, 28 ms for the system
        # bundle against 0.6 ms for one certificate (bench/README.md, projects_vs_sls.py).
        function_ca = bundle if options.aws_passthrough else authority.cert_path
        service = LambdaService(_functions(options, state_home), state_home, limits.LOCAL_REGION, endpoints=endpoints,
                                sink=sink, credentials=platform_env, ca_bundle=str(function_ca),
                                extra_ca=str(authority.cert_path), watch=True)
        await service.start()
        invoke_api = InvokeApi(service, log=lambda text: service.sink("lambda", text, None))
        lambda_runner = web.AppRunner(invoke_api.app(), handle_signals=False, access_log=None)
        await lambda_runner.setup()
        await web.SockSite(lambda_runner, lambda_sock).start()

        invokers = {route.key: service.invoker(route.function) for route in spec.routes if route.function}
        authorizer = service.invoker(spec.authorizer.function) if spec.authorizer else None
        config = GatewayConfig(stage=options.stage, api_id=api_id, region=limits.LOCAL_REGION, spec=spec,
                               identity_sources=spec.authorizer.identity_sources if spec.authorizer else (),
                               idle_timeout=options.idle_timeout, max_duration=options.max_duration,
                               integration_timeout=options.integration_timeout,
                               faults=options.faults or Faults(), quiet=options.quiet, throttle=options.throttle)
        gateway = Gateway(config, invokers, authorizer)
        runner = web.AppRunner(gateway.app(), handle_signals=False, access_log=None)
        await runner.setup()
        sniffer = listener.SniffingListener(sock, runner.server, gateway_tls)
        invoke_api.views["connections"] = lambda: [
            {"connectionId": c.id, "sourceIp": c.origin.source_ip, "connectedAt": c.origin.connected_at,
             "lastActiveAt": int(c.last_active * 1000),
             "principalId": (c.origin.authorizer or {}).get("principalId")} for c in gateway.connections.values()]
        invoke_api.views["functions"] = lambda: [
            {"name": name, "runtime": pool.spec.runtime, "handler": pool.spec.handler, "warm": pool.warm,
             "coldStarts": pool.cold_starts, "invocations": pool.invocations,
             "maxEnvironments": pool.spec.max_environments} for name, pool in service.pools.items()]
        state = EmulatorState(
            name=name, project=options.project or os.getcwd(), pid=os.getpid(), stack=options.stack,
            stage=options.stage, region=limits.LOCAL_REGION, api_id=api_id,
            ws_url="ws://" + stage_path, wss_url="wss://" + stage_path,
            management_endpoint="http://" + stage_path, tls_management_endpoint="https://" + stage_path,
            lambda_endpoint=lambda_url, dynamodb_endpoint=ddb_endpoint,
            backend="external" if options.dynamodb_endpoint else "moto", aws_endpoint=aws_endpoint,
            auth=spec.auth, ca_bundle=str(bundle), origin=spec.origin, bundled=spec.bundled, started=time.time(),
            functions=tuple(FunctionInfo(f.name, f.runtime, f.handler, str(f.code_dir), f.timeout_s, f.memory_mb,
                                         dict(f.environment)) for f in service.specs.values()),
            routes={route.key: route.function for route in spec.routes if route.function},
            authorizer=spec.authorizer.function if spec.authorizer else None,
            tables=tuple(t.name for t in spec.tables), table=spec.tables[0].name if spec.bundled else None,
            not_emulated=tuple(spec.not_emulated), aws_passthrough=options.aws_passthrough,
            # the signing keys: why the state file is owner-only
            keyset=keyset)
        # Ctrl-C handling is in place before the state file says we are ready: a stop
        # requested right after start-up still closes sockets, runs $disconnect, exits 0.
        # The banner (and its warnings) first: the state file is the signal that start-up is
        # complete, so whoever waits for it can read everything start-up printed.
        _panel(state, notes, options, time.monotonic() - started)
        write_state(state)

        if not stop.is_set():
            await stop.wait()
        if not options.quiet:
            render.line("shutting down: closing %d connections with 1001" % len(gateway.connections), style="dim")
        await gateway.shutdown()
        sniffer.close()
        await runner.cleanup()
        await invoke_api.close()
    finally:
        try:
            if service is not None:
                await service.close()
            if lambda_runner is not None:
                await lambda_runner.cleanup()
            if front_door is not None:
                await front_door.close()
        finally:
            sock.close()
            lambda_sock.close()
            moto.stop()
            remove_state(os.getpid(), name)
            sys.stdout = original_stdout
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)


def _panel(state: EmulatorState, notes: list, options: LocalOptions, seconds: float) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from .functions import runtimes  # loaded by now (see _serve)

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    backend = ("moto (embedded; fine for development, slow past ~10k items)" if state.backend == "moto"
               else "external DynamoDB-compatible server")
    rows = [
        ("name", "%s  (`wsctl --name %s ...` when several run; `wsctl local ls`)" % (state.name, state.name)),
        ("WebSocket URL", "%s  (also %s)" % (state.ws_url, state.wss_url)),
        ("management API", "%s  (also %s)" % (state.management_endpoint, state.tls_management_endpoint)),
        ("Lambda API", "%s  (Invoke; every other AWS service %s)" % (
            state.lambda_endpoint, "reaches real AWS (--aws-passthrough)" if state.aws_passthrough
            else "answers 'not emulated': functions are sealed from real AWS")),
        ("DynamoDB", "%s  %s" % (state.dynamodb_endpoint, backend)),
        ("API", state.origin),
    ]
    by_function: dict = {}
    for key, function in state.routes.items():
        by_function.setdefault(function, []).append(key)
    for function in state.functions:
        routes = by_function.get(function.name, [])
        if state.authorizer == function.name:
            routes = ["authorizer"] + routes
        rows.append(("function", "%s  %s %s  (%s)" % (
            function.name, function.runtime, function.handler,
            ", ".join(routes) if len(routes) <= 4 else "%s and %d more routes" % (", ".join(routes[:3]),
                                                                               len(routes) - 3))))
    for table in state.tables:
        rows.append(("table", table))
    if state.not_emulated:
        rows.append(("not emulated", ", ".join(state.not_emulated)))
    for name, value in options.spec.outputs:  # the template's Outputs, with the emulator's API id
        rows.append(("output", "%s  %s" % (name, value)))
    if state.bundled:
        rows.append(("auth", "JWT authorizer on $connect" if state.auth == "jwt" else "none: anonymous connections"))
        rows.append(("connect", "wsctl --local connect --user alice" if state.auth == "jwt"
                     else "wsctl --local connect"))
    differences = [note for function in state.functions for note in runtimes.differences(function.runtime)]
    for note in dict.fromkeys(differences + list(notes)):
        rows.append(("note", note))
    active = options.faults.describe() if options.faults is not None else ""
    if active:
        rows.append(("faults", "injected: %s" % active))
    if options.throttle is not None:
        rows.append(("throttle", "management API: %g calls/s, burst %g (429 LimitExceededException past them)"
                     % (options.throttle.rate, options.throttle.burst)))
    for key, value in rows:
        grid.add_row(key, value)
    render.console().print(Panel(grid, title="wsctl local emulator: stage %s, ready in %.1f s" % (
        state.stage, seconds), expand=False))
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        render.warn("listening on %s: anyone who can reach this machine can connect and use the management API"
                    % options.host)
    render.line("Ctrl-C to stop; `wsctl --local status` in another terminal", style="dim")
    sys.stdout.flush()


def stop_running(name: str | None = None) -> dict:
    """`wsctl local down`: SIGTERM the emulator (named, or the only one running) and wait for it
    to finish; returns its state."""
    state = read_state(name)
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not alive(pid):
            return state
        time.sleep(0.05)
    raise WsctlError("the emulator (pid %d) did not stop within 15 s" % pid)

