"""`wsctl local up`: the whole API on this machine.

One process runs the gateway (aiohttp, one port for ws/wss and http/https)
and the handler (from source, in threads); a second process runs moto's
DynamoDB and SSM, unless --dynamodb-endpoint names another DynamoDB. The
handler gets the environment `deploy` gives the Lambda function, plus
AWS_ENDPOINT_URL_* and AWS_CA_BUNDLE so an unmodified handler's boto3 clients
reach the local services.
"""

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from lambda_src import signing

from .. import stack as names
from ..apispec import ApiSpec
from ..errors import UsageError, WsctlError
from ..target import home, remove_local_state, write_local_state

REGION = "us-east-1"


@dataclass
class LocalOptions:
    spec: ApiSpec
    host: str = "127.0.0.1"
    port: int = 8080
    stage: str = names.DEFAULT_STAGE
    stack: str = names.DEFAULT_STACK
    source: str | None = None  # None: the bundled lambda_src
    handler: str | None = None
    authorizer: str | None = None
    identity_sources: tuple = ("route.request.header.Host",)
    dynamodb_endpoint: str | None = None
    env: dict = field(default_factory=dict)
    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    integration_timeout: float = 29.0
    ttl_seconds: int = 7500
    allow_client_broadcast: bool = False
    workers: int = 64
    quiet: bool = False
    network_management: bool = False  # handlers reach @connections over sockets, not in-process
    faults: object = None


def parse_env_file(path: str) -> dict:
    """KEY=VALUE lines; blank lines and # comments skipped; optional quotes removed."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise UsageError("cannot read --env-file %s: %s" % (path, error.strerror)) from None
    env = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise UsageError("--env-file %s line %d is not KEY=VALUE" % (path, number))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def parse_env_pairs(pairs: list[str]) -> dict:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError("--env %r is not KEY=VALUE" % pair)
        env[key] = value
    return env


def _local_keyset(folder: Path) -> str:
    """The emulator's signing keys, kept across restarts so minted tokens stay valid (owner-only)."""
    path = folder / "local-signing-keys.json"
    try:
        keyset = path.read_text()
        signing.parse(keyset)
        return keyset
    except (OSError, ValueError):
        keyset = signing.new_keyset()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(keyset)
        return keyset


def _handler_locations(options: LocalOptions) -> tuple[Path, str, Path]:
    """(folder on sys.path, module.function, folder to watch)."""
    for option, value in (("--handler", options.handler), ("--authorizer", options.authorizer)):
        if value is not None and not value.rpartition(".")[0]:
            raise UsageError("%s must be module.function (e.g. app.handler), not %r" % (option, value))
    if options.source is None:
        import lambda_src

        package = Path(lambda_src.__file__).resolve().parent
        return package.parent, options.handler or "lambda_src.app.handler", package
    source = Path(options.source).resolve()
    if not source.is_dir():
        raise UsageError("--source %s is not a folder" % options.source)
    if not options.handler:
        raise UsageError("--source needs --handler module.function (e.g. --handler app.handler)")
    return source, options.handler, source


def run(options: LocalOptions) -> None:
    import sys

    # Handler threads share the GIL with the event loop; a shorter switch interval (default
    # 5 ms) keeps a busy handler from holding socket I/O back that long (relay p99).
    sys.setswitchinterval(0.001)
    asyncio.run(_serve(options))


async def _serve(options: LocalOptions) -> None:
    from aiohttp import web

    from .. import render
    from . import dynamo, listener
    from .events import api_id_for
    from .gateway import Faults, Gateway, GatewayConfig
    from .invoker import Invoker

    source_dir, handler, watch_dir = _handler_locations(options)
    jwt_auth = options.spec.auth == "jwt"
    if jwt_auth and options.source is not None and not options.authorizer:
        raise UsageError("--auth jwt with your own --handler needs --authorizer module.function (or --auth none)")
    state_home = home()
    state_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = listener.bind(options.host, options.port)  # fail fast on a taken port, before anything starts
    port = sock.getsockname()[1]
    advertised = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    origin = "%s:%d" % (("[%s]" % advertised) if ":" in advertised else advertised, port)
    cert, key = listener.make_certificate(state_home / "tls", [advertised])
    bundle = listener.ca_bundle(state_home / "tls", cert)

    table = names.table_name(options.stack)
    moto = dynamo.EmbeddedMoto(state_home / "moto.log")
    started = time.monotonic()
    try:
        aws_endpoint = await asyncio.to_thread(moto.start)
        ddb_endpoint = options.dynamodb_endpoint or aws_endpoint
        note = await asyncio.to_thread(dynamo.prepare_table, ddb_endpoint, table, REGION)
        keyset = _local_keyset(state_home) if jwt_auth else None
        if jwt_auth:
            await asyncio.to_thread(dynamo.put_keyset, aws_endpoint, names.signing_key_param(options.stack),
                                    keyset, REGION)
        stage_path = "%s/%s" % (origin, options.stage)
        env = names.handler_environment(options.stack, options.spec.auth, options.ttl_seconds,
                                        options.allow_client_broadcast)
        env.update({
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": ddb_endpoint, "AWS_ENDPOINT_URL_SSM": aws_endpoint,
            "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": "http://" + stage_path,
            "AWS_CA_BUNDLE": str(bundle),
            "AWS_LAMBDA_FUNCTION_NAME": names.function_name(options.stack),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "LAMBDA_TASK_ROOT": str(source_dir),
            "AWS_LAMBDA_LOG_GROUP_NAME": names.log_group(options.stack),
        })
        if "AWS_ACCESS_KEY_ID" not in os.environ and not (options.dynamodb_endpoint or "").endswith("amazonaws.com"):
            env.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
        env.update(options.env)  # the user's own settings win
        os.environ.update(env)  # this process is the handler's "container"
        loopback = None
        if not options.network_management:  # before the handler is imported: it may make clients then
            from .loopback import Loopback

            loopback = Loopback(asyncio.get_running_loop(), port, [advertised])
            loopback.install()

        function = names.function_name(options.stack)
        invoker = Invoker(source_dir, handler, watch_dir, function, REGION, options.integration_timeout, options.workers)
        invoker.check_loadable()
        authorizer_invoker = None
        if jwt_auth:
            authorizer_invoker = invoker if not options.authorizer else Invoker(
                source_dir, options.authorizer, watch_dir, function, REGION, options.integration_timeout, 8)
            authorizer_invoker.check_loadable()
        invoker.start_watching()
        if authorizer_invoker is not None and authorizer_invoker is not invoker:
            authorizer_invoker.start_watching()

        api_id = api_id_for(options.stack)
        config = GatewayConfig(stage=options.stage, api_id=api_id, region=REGION, spec=options.spec,
                               identity_sources=tuple(options.identity_sources),
                               idle_timeout=options.idle_timeout, max_duration=options.max_duration,
                               integration_timeout=options.integration_timeout,
                               faults=options.faults or Faults(), quiet=options.quiet)
        gateway = Gateway(config, invoker, authorizer_invoker)
        if loopback is not None:
            loopback.gateway = gateway
        runner = web.AppRunner(gateway.app(), handle_signals=False, access_log=None)
        await runner.setup()
        sniffer = listener.SniffingListener(sock, runner.server, listener.server_context(cert, key))
        state = {
            "pid": os.getpid(), "stack": options.stack, "stage": options.stage, "region": REGION, "api_id": api_id,
            "ws_url": "ws://" + stage_path, "wss_url": "wss://" + stage_path,
            "management_endpoint": "http://" + stage_path, "tls_management_endpoint": "https://" + stage_path,
            "dynamodb_endpoint": ddb_endpoint, "backend": "external" if options.dynamodb_endpoint else "moto",
            "aws_endpoint": aws_endpoint, "table": table, "auth": options.spec.auth, "ca_bundle": str(bundle),
            "source": str(watch_dir), "handler": handler, "started": time.time(),
        }
        # Ctrl-C handling is in place before the state file says we are ready: a stop
        # requested right after start-up still closes sockets, runs $disconnect, exits 0.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if keyset:
            state["keyset"] = keyset
        # The banner (and its warnings) first: the state file is the signal that start-up is
        # complete, so whoever waits for it can read everything start-up printed.
        _panel(state, note, options, time.monotonic() - started)
        write_local_state(state)

        await stop.wait()
        if not options.quiet:
            render.line("shutting down: closing %d connections with 1001" % len(gateway.connections), style="dim")
        await gateway.shutdown()
        sniffer.close()
        await runner.cleanup()
        invoker.close()
    finally:
        sock.close()
        moto.stop()
        remove_local_state(os.getpid())


def _panel(state: dict, note: str, options: LocalOptions, seconds: float) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from .. import render

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    backend = ("moto (embedded; fine for development, slow past ~10k items)" if state["backend"] == "moto"
               else "external DynamoDB-compatible server")
    rows = [
        ("WebSocket URL", "%s  (also %s)" % (state["ws_url"], state["wss_url"])),
        ("management API", "%s  (also %s)" % (state["management_endpoint"], state["tls_management_endpoint"])),
        ("DynamoDB", "%s  %s" % (state["dynamodb_endpoint"], backend)),
        ("table", state["table"]),
        ("handler", "%s from %s (reloaded on change)" % (state["handler"], state["source"])),
        ("auth", "JWT authorizer on $connect" if state["auth"] == "jwt" else "none: anonymous connections"),
        ("connect", "wsctl --local connect --user alice" if state["auth"] == "jwt" else "wsctl --local connect"),
    ]
    if note:
        rows.append(("note", note))
    for key, value in rows:
        grid.add_row(key, value)
    render.console().print(Panel(grid, title="wsctl local emulator: stage %s, ready in %.1f s" % (
        state["stage"], seconds), expand=False))
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        render.warn("listening on %s: anyone who can reach this machine can connect and use the management API"
                    % options.host)
    render.line("Ctrl-C to stop; `wsctl --local status` in another terminal", style="dim")
    import sys

    sys.stdout.flush()


def stop_running() -> int:
    """`wsctl local down`: SIGTERM the emulator named by the state file; returns its pid."""
    from ..target import read_local_state

    state = read_local_state()
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.05)
    raise WsctlError("the emulator (pid %d) did not stop within 15 s" % pid)

