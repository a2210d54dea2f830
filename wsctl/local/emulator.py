"""The emulator as an object: `build` (choose its name, bind its ports, make its certificates),
`start` (the embedded DynamoDB and its tables, the front door for AWS host names, the Lambda
service and its Invoke API, the gateway; then the banner and the state file that says it is
ready), `stop` (the same in reverse: sockets closed with 1001 and their $disconnect, functions,
moto, the state file). `serve` runs one until a signal or a closed stdout.

One process runs the gateway (aiohttp, one port for ws/wss and http/https), the Lambda service
(functions in execution environments of their own, worker processes on the Runtime API),
Lambda's Invoke API and the front door; another runs moto's DynamoDB and SSM, unless
--dynamodb-endpoint names another DynamoDB. Every function gets the environment Lambda gives it,
local credentials, AWS_ENDPOINT_URL_* pointing at the local services, and every AWS host name it
dials sent to the front door (every service not emulated answers "not emulated"), so unmodified
code, on any SDK, reaches only this machine.
"""

import asyncio
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
from . import awsnames, banner, listener, observe, output

# How a stop is bounded. It waits for the $disconnects of the sockets it closes (and of clients that
# had just left) DISCONNECT_WAIT_S at most; a burst of thousands queued behind a function's few
# environments would otherwise hold it for minutes. Then what still waits for an environment fails
# at once, environments get SIGTERM and SIGKILL after ENVIRONMENT_GRACE_S (Lambda's shutdown), and
# each server gives a request still in progress HANDLER_GRACE_S. Past STOP_BOUND_S, or at a second
# signal (Ctrl-C twice), the stop is forced: every child is killed and nothing more is waited for.
DISCONNECT_WAIT_S = 10.0
ENVIRONMENT_GRACE_S = 2.0
HANDLER_GRACE_S = 2.0
STOP_BOUND_S = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
    eager: bool = False  # --warm-containers eager: one environment per function started with the emulator
    page: bool = True  # the live page (wsctl/local/view/) on a port of its own
    page_port: int = 0  # 0: any free port
    open_page: bool = False  # --open: the default browser opens the page
    faults: object = None
    throttle: object = None  # the management API's token bucket (--throttle RATE:BURST)
    name: str | None = None  # --name; default: the project folder's name (or NAME-PORT if that one runs)
    project: str = ""  # the project's folder, shown by `local ls`


def run(options: LocalOptions) -> None:
    from .sockets import require_frame_gate  # imports aiohttp: only when an emulator starts

    require_frame_gate()  # one line and no start on an aiohttp whose internals the gate does not match
    asyncio.run(Emulator(options).serve())


def stop_running(name: str | None = None) -> EmulatorState:
    """`wsctl local down`: SIGTERM the emulator (named, or the only one running) and wait for it
    to finish, as long as its own stop may take (STOP_BOUND_S, then a forced stop); returns its state."""
    state = read_state(name)
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    waited = STOP_BOUND_S + 10
    deadline = time.monotonic() + waited
    while time.monotonic() < deadline:
        if not alive(pid):
            return state
        time.sleep(0.05)
    raise WsctlError("the emulator (pid %d) did not stop within %d s" % (pid, waited))


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


class Emulator:
    def __init__(self, options: LocalOptions):
        self.options = options
        self.state: EmulatorState | None = None
        self.started = time.monotonic()
        # what start() made, stopped in reverse by stop()
        self.moto = self.front_door = self.service = self.invoke_api = self.lambda_runner = None
        self.gateway = self.gateway_runner = self.sniffer = None
        self.page = self.page_sock = None
        self.journal = observe.Journal()  # what the page shows; it records only while a page watches
        self.sink = None
        self.notes: list = []
        self.forced = asyncio.Event()  # the stop waits for nothing more (see force)

    # -- build: name, ports, certificates (nothing runs yet) -----------------------------------------------
    def build(self) -> None:
        options = self.options
        self.state_home = home()
        self.state_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _choose_name(options, None)  # fail fast on a name in use, before anything starts
        self.sock = listener.bind(options.host, options.port)  # and on a taken port
        self.lambda_sock = listener.bind("127.0.0.1", 0)
        if options.page:
            self.page_sock = listener.bind(options.host, options.page_port, "--page-port")
        self.port = self.sock.getsockname()[1]
        self.name = _choose_name(options, self.port)
        self.folder = instance_dir(self.name)  # this emulator's own: state, certificate, moto's log
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.advertised = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
        self.origin = "%s:%d" % (("[%s]" % self.advertised) if ":" in self.advertised else self.advertised, self.port)
        self.api_id = names.local_api_id(options.stack)
        # The API's AWS host name too: a handler that builds https://{apiId}.execute-api.{region}.
        # amazonaws.com/{stage} is pointed here (see the runtimes' host map) and must trust it.
        self.aws_host = "%s.execute-api.%s.amazonaws.com" % (self.api_id, limits.LOCAL_REGION)
        from .certs import Authority

        self.authority = Authority(self.folder / "tls")
        self.gateway_tls = self.authority.server_context(
            ["localhost", "127.0.0.1", "::1", self.advertised, self.aws_host], "gateway.pem")
        self.bundle = self.authority.bundle()
        self.stage_path = "%s/%s" % (self.origin, options.stage)
        self.lambda_url = "http://127.0.0.1:%d" % self.lambda_sock.getsockname()[1]

    # -- start: every service, then the banner and the state file ------------------------------------------
    async def start(self) -> EmulatorState:
        from . import dynamo  # the emulator's services load only here: `local down` and `local ls` need none

        options, spec = self.options, self.options.spec
        self.moto = dynamo.EmbeddedMoto(self.folder / "moto.log")
        aws_endpoint = await asyncio.to_thread(self.moto.start)
        ddb_endpoint = options.dynamodb_endpoint or aws_endpoint
        for table in spec.tables:
            note = await asyncio.to_thread(dynamo.prepare_table, ddb_endpoint, table, limits.LOCAL_REGION)
            if note:  # the banner says each note once
                self.notes.append(note)
        keyset = None
        if spec.bundled and spec.auth == "jwt":
            keyset = _local_keyset(self.state_home)
            await asyncio.to_thread(dynamo.put_keyset, aws_endpoint, names.signing_key_param(options.stack),
                                    keyset, limits.LOCAL_REGION)
        await self._start_functions(ddb_endpoint, aws_endpoint)
        await self._start_gateway()
        self.state = self._describe(ddb_endpoint, aws_endpoint, keyset)
        if self.page_sock is not None:
            await self._start_page()
        page_url = self.page.url(self.advertised) if self.page is not None else None
        # The banner (and its warnings) first: the state file is the signal that start-up is
        # complete, so whoever waits for it can read everything start-up printed.
        banner.show(self.state, self.notes, options, time.monotonic() - self.started, page_url)
        write_state(self.state)
        if page_url and options.open_page:
            await _open_browser(page_url)
        return self.state

    async def _start_functions(self, ddb_endpoint: str, aws_endpoint: str) -> None:
        """The front door for AWS host names, the Lambda service and its Invoke API."""
        from aiohttp import web

        from .frontdoor import FrontDoor
        from .functions import LambdaService
        from .functions.invoke_api import InvokeApi

        options, sink = self.options, self.sink
        self.front_door = FrontDoor(self.authority, {"dynamodb": ddb_endpoint, "ssm": aws_endpoint,
                                                     "lambda": self.lambda_url, "execute-api": "http://" + self.origin},
                                    self.api_id, log=lambda text: sink("wsctl", text, None))
        await self.front_door.start()
        endpoints = {"DYNAMODB": ddb_endpoint, "SSM": aws_endpoint, "LAMBDA": self.lambda_url,
                     "APIGATEWAYMANAGEMENTAPI": "http://" + self.stage_path}
        if not options.aws_passthrough:
            endpoints[""] = self.front_door.url  # every other service: the sealed answer
        platform_env = _sealed_environment(self.state_home, options.aws_passthrough)
        platform_env["_WSCTL_HOST_MAP"] = awsnames.redirect_rules(
            ("127.0.0.1", self.front_door.port), (self.advertised, self.port), self.aws_host, options.aws_passthrough)
        # Sealed, botocore in a function only ever reaches this emulator: it verifies against our
        # one CA. urllib3 loads AWS_CA_BUNDLE into every new TLS connection, 28 ms for the system
        # bundle against 0.6 ms for one certificate (bench/README.md, projects_vs_sls.py).
        function_ca = self.bundle if options.aws_passthrough else self.authority.cert_path
        self.service = LambdaService(_functions(options, self.state_home), self.state_home, limits.LOCAL_REGION,
                                     endpoints=endpoints, sink=sink, credentials=platform_env,
                                     ca_bundle=str(function_ca), extra_ca=str(self.authority.cert_path), watch=True)
        await self.service.start()
        if options.eager:
            await self.service.prewarm()
        self.invoke_api = InvokeApi(self.service, log=lambda text: self.service.sink("lambda", text, None))
        self.lambda_runner = web.AppRunner(self.invoke_api.app(), handle_signals=False, access_log=None,
                                           shutdown_timeout=HANDLER_GRACE_S)
        await self.lambda_runner.setup()
        await web.SockSite(self.lambda_runner, self.lambda_sock).start()

    async def _start_gateway(self) -> None:
        from aiohttp import web

        from .gateway import Gateway, GatewayConfig
        from .faults import Faults

        options, spec, service = self.options, self.options.spec, self.service
        invokers = {route.key: service.invoker(route.function) for route in spec.routes if route.function}
        authorizer = service.invoker(spec.authorizer.function) if spec.authorizer else None
        config = GatewayConfig(stage=options.stage, api_id=self.api_id, region=limits.LOCAL_REGION, spec=spec,
                               identity_sources=spec.authorizer.identity_sources if spec.authorizer else (),
                               idle_timeout=options.idle_timeout, max_duration=options.max_duration,
                               integration_timeout=options.integration_timeout,
                               faults=options.faults or Faults(), quiet=options.quiet, throttle=options.throttle)
        self.gateway = gateway = Gateway(config, invokers, authorizer, journal=self.journal)
        self.gateway_runner = web.AppRunner(gateway.app(), handle_signals=False, access_log=None,
                                            shutdown_timeout=HANDLER_GRACE_S)
        await self.gateway_runner.setup()
        self.sniffer = listener.SniffingListener(self.sock, self.gateway_runner.server, self.gateway_tls)
        # the emulator's own views (`connections list` of a project without a registry, `status`)
        self.invoke_api.views["connections"] = lambda: [
            {"connectionId": c.id, "sourceIp": c.origin.source_ip, "connectedAt": c.origin.connected_at,
             "lastActiveAt": int(c.last_active * 1000),
             "principalId": (c.origin.authorizer or {}).get("principalId")} for c in gateway.connections.values()]
        self.invoke_api.views["functions"] = lambda: [
            {"name": name, "runtime": pool.spec.runtime, "handler": pool.spec.handler, "warm": pool.warm,
             "busy": pool.busy, "queued": pool.queued, "coldStarts": pool.cold_starts,
             "invocations": pool.invocations, "maxEnvironments": pool.spec.max_environments}
            for name, pool in service.pools.items()]
        self.invoke_api.views["gateway"] = gateway.in_flight

    async def _start_page(self) -> None:
        """The live page of connections, frames and function logs (wsctl/local/view/)."""
        from .view import ViewServer

        state = self.state
        about = {"name": state.name, "stage": state.stage, "wsUrl": state.ws_url, "api": state.origin,
                 "routes": dict(state.routes), "authorizer": state.authorizer, "bundled": state.bundled}
        # --host, when it is a name: the Host header may carry it too
        self.page = ViewServer(self.journal, self.gateway, self.service, about, self.page_sock, output.log_line,
                               (self.options.host.lower(),))
        await self.page.start()

    def _describe(self, ddb_endpoint: str, aws_endpoint: str, keyset: str | None) -> EmulatorState:
        options, spec = self.options, self.options.spec
        return EmulatorState(
            name=self.name, project=options.project or os.getcwd(), pid=os.getpid(), stack=options.stack,
            stage=options.stage, region=limits.LOCAL_REGION, api_id=self.api_id,
            ws_url="ws://" + self.stage_path, wss_url="wss://" + self.stage_path,
            management_endpoint="http://" + self.stage_path, tls_management_endpoint="https://" + self.stage_path,
            lambda_endpoint=self.lambda_url, dynamodb_endpoint=ddb_endpoint,
            backend="external" if options.dynamodb_endpoint else "moto", aws_endpoint=aws_endpoint,
            auth=spec.auth, ca_bundle=str(self.bundle), origin=spec.origin, bundled=spec.bundled, started=time.time(),
            functions=tuple(FunctionInfo(f.name, f.runtime, f.handler, str(f.code_dir), f.timeout_s, f.memory_mb,
                                         dict(f.environment)) for f in self.service.specs.values()),
            routes={route.key: route.function for route in spec.routes if route.function},
            authorizer=spec.authorizer.function if spec.authorizer else None,
            tables=tuple(t.name for t in spec.tables), table=spec.tables[0].name if spec.bundled else None,
            not_emulated=tuple(spec.not_emulated), aws_passthrough=options.aws_passthrough,
            keyset=keyset)  # the signing keys: why the state file is owner-only

    # -- stop: the same in reverse ---------------------------------------------------------------------
    async def stop(self) -> None:
        try:
            if self.page is not None:
                await self.page.close()
            if self.gateway is not None:
                if not self.options.quiet:
                    render.line("shutting down: closing %d connections with 1001, waiting up to %d s for "
                                "$disconnects (Ctrl-C again to stop at once)"
                                % (len(self.gateway.connections), DISCONNECT_WAIT_S), style="dim")
                left = await self.gateway.shutdown(DISCONNECT_WAIT_S, self.forced)
                if left and not self.options.quiet:
                    render.line("shutting down: %d $disconnect invocations not waited for" % left, style="dim")
        finally:
            try:
                # The functions first: whatever still waits on one (a $disconnect past the wait, a
                # handshake's authorizer, an Invoke) fails now, so the servers close without waiting.
                if self.service is not None:
                    await self.service.close(0.0 if self.forced.is_set() else ENVIRONMENT_GRACE_S)
                if self.sniffer is not None:
                    self.sniffer.close()
                if self.gateway_runner is not None:
                    await self.gateway_runner.cleanup()
                if self.invoke_api is not None:
                    await self.invoke_api.close()
                if self.lambda_runner is not None:
                    await self.lambda_runner.cleanup()
                if self.front_door is not None:
                    await self.front_door.close()
            finally:
                self.sock.close()
                self.lambda_sock.close()
                if self.page_sock is not None:
                    self.page_sock.close()
                if self.moto is not None:
                    self.moto.stop()
                remove_state(os.getpid(), self.name)

    def force(self, why: str) -> None:
        """Stop now (a second signal, or a stop past STOP_BOUND_S): every execution environment and
        moto killed, no invocation left to run; the stop under way then finishes at once."""
        if self.forced.is_set():
            return
        self.forced.set()
        render.line("stopping now (%s): execution environments killed" % why, style="dim")
        if self.gateway is not None:
            self.gateway.give_up()
        if self.service is not None:
            self.service.kill()
        if self.moto is not None:
            self.moto.kill()

    # -- serve: until a signal, or until the reader of stdout goes away -------------------------------------
    async def serve(self) -> None:
        self.build()
        # Signals first: whatever stops the emulator from here on (Ctrl-C, SIGTERM, a closed terminal,
        # a closed pipe) unwinds through stop(), which stops every process started. Ctrl-C handling is
        # in place before the state file says we are ready: a stop requested right after start-up
        # still closes sockets, runs $disconnect, exits 0.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stopping.is_set():  # Ctrl-C again: stop without waiting
                self.force("a second signal")
            stopping.set()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal)
        original_stdout = sys.stdout
        sys.stdout = output.GuardedStdout(original_stdout, lambda: loop.call_soon_threadsafe(stopping.set))
        self.sink = self.journal.sink(output.sink(self.options.quiet, self.options.spec.bundled,
                                                  terminal=original_stdout.isatty()))
        try:
            await self.start()
            if not stopping.is_set():
                await stopping.wait()
        finally:
            bound = loop.call_later(STOP_BOUND_S, self.force, "still stopping after %d s" % STOP_BOUND_S)
            try:
                await self.stop()
            finally:
                bound.cancel()
                sys.stdout = original_stdout
                for signum in STOP_SIGNALS:
                    loop.remove_signal_handler(signum)


async def _open_browser(url: str) -> None:
    """--open: the default browser (webbrowser honours $BROWSER), without holding up the loop."""
    import webbrowser

    if not await asyncio.to_thread(webbrowser.open, url):
        output.log_line("--open: no browser to open here; open the page's URL yourself")


__all__ = ["LocalOptions", "Emulator", "run", "stop_running"]
