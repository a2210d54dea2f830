"""local up / local down: the emulator."""

import typer

from . import app

local_app = typer.Typer(help="Run the whole API on this machine (no AWS account needed).", no_args_is_help=True)
app.add_typer(local_app, name="local")

FAULT_KINDS = ("mgmt-410", "mgmt-429", "mgmt-500", "handler-error", "handler-timeout", "disconnect-loss")


def parse_faults(values: list[str], seed: int | None):
    from ..errors import UsageError
    from ..local.gateway import Faults

    faults = Faults(seed=seed)
    for value in values:
        kind, sep, share_text = value.partition("=")
        try:
            share = float(share_text)
        except ValueError:
            share = -1.0
        if not sep or kind not in FAULT_KINDS or not 0 <= share <= 1:
            raise UsageError("--fault %r: use KIND=SHARE with SHARE in 0..1 and KIND one of %s"
                             % (value, ", ".join(FAULT_KINDS)))
        if kind.startswith("mgmt-"):
            faults.management[int(kind[5:])] = share
        else:
            setattr(faults, kind.replace("-", "_"), share)
    if sum(faults.management.values()) > 1:
        raise UsageError("--fault: the management API shares add up to more than 1")
    return faults


@local_app.command("up")
def up(
    ctx: typer.Context,
    port: int = typer.Option(8080, "--port", "-p", help="Port for ws://, wss://, http:// and https:// (0: any free)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless you say otherwise)."),
    auth: str = typer.Option("jwt", "--auth", help="jwt (the authorizer, as deployed) or none (anonymous)."),
    source: str = typer.Option(None, "--source", help="Folder holding your own handler (default: bundled lambda_src)."),
    handler: str = typer.Option(None, "--handler", help="module.function in --source (e.g. app.handler)."),
    authorizer: str = typer.Option(None, "--authorizer", help="module.function of your REQUEST authorizer (--auth jwt)."),
    identity_source: list[str] = typer.Option(None, "--identity-source",
                                              help="Authorizer identity source, e.g. route.request.querystring.token "
                                                   "(repeatable; a missing one answers 401)."),
    routes: str = typer.Option(None, "--routes", help="Route definition JSON (default: the bundled handler's)."),
    dynamodb_endpoint: str = typer.Option(None, "--dynamodb-endpoint",
                                          help="Use this DynamoDB (DynamoDB Local, dynalite, ...) instead of moto."),
    env: list[str] = typer.Option(None, "--env", "-e", help="KEY=VALUE for the handler's environment (repeatable)."),
    env_file: str = typer.Option(None, "--env-file", help="File of KEY=VALUE lines for the handler's environment."),
    idle_timeout: float = typer.Option(600, "--idle-timeout", help="Seconds without data frames before 1001 (AWS: 600)."),
    max_duration: float = typer.Option(7200, "--max-duration", help="Connection lifetime cap in seconds (AWS: 7200)."),
    integration_timeout: float = typer.Option(29, "--integration-timeout", help="Handler timeout in seconds (AWS: 29)."),
    ttl_seconds: int = typer.Option(7500, "--ttl-seconds", help="Registry entry lifetime (CONNECTION_TTL_SECONDS)."),
    allow_client_broadcast: bool = typer.Option(False, "--allow-client-broadcast", help="Enable the broadcastAll route."),
    workers: int = typer.Option(64, "--workers", help="Handler threads (concurrent invocations)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-event log lines."),
    network_management: bool = typer.Option(False, "--network-management",
                                            help="Handlers reach the management API over TCP/TLS like any client "
                                                 "(default: in-process, same requests and answers, no sockets)."),
    fault: list[str] = typer.Option(None, "--fault", help="Test option, KIND=SHARE: " + ", ".join(FAULT_KINDS)
                                                           + " (repeatable)."),
    fault_seed: int = typer.Option(None, "--fault-seed", help="Seed for --fault, for repeatable runs."),
):
    """Start the local emulator: API Gateway, the handler, and an embedded DynamoDB."""
    from ..apispec import check_auth, default_spec, load_spec
    from ..errors import UsageError
    from ..local import LocalOptions, parse_env_file, parse_env_pairs, run

    options = ctx.obj
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    for name, value in (("--idle-timeout", idle_timeout), ("--max-duration", max_duration),
                        ("--integration-timeout", integration_timeout)):
        if value <= 0:
            raise UsageError("%s must be positive" % name)
    check_auth(auth)
    spec = load_spec(routes, auth) if routes else default_spec(auth)
    if routes is None and source is not None:
        from ..apispec import ApiSpec, Route

        # Someone else's handler: every message goes to $default unless --routes says otherwise.
        spec = ApiSpec(routes=(Route("$connect"), Route("$disconnect"), Route("$default", two_way=True)), auth=auth)
    handler_env = parse_env_file(env_file) if env_file else {}
    handler_env.update(parse_env_pairs(env or []))
    from .. import stack as names

    run(LocalOptions(spec=spec, host=host, port=port, stage=names.check_stage(options.stage),
                     stack=names.check_stack(options.stack), source=source, handler=handler, authorizer=authorizer,
                     identity_sources=tuple(identity_source) if identity_source else ("route.request.header.Host",),
                     dynamodb_endpoint=dynamodb_endpoint, env=handler_env, idle_timeout=idle_timeout,
                     max_duration=max_duration, integration_timeout=integration_timeout, ttl_seconds=ttl_seconds,
                     allow_client_broadcast=allow_client_broadcast, workers=workers, quiet=quiet,
                     network_management=network_management,
                     faults=parse_faults(fault or [], fault_seed)))


@local_app.command("down")
def down():
    """Stop the running emulator (as Ctrl-C would)."""
    from .. import render
    from ..local import stop_running

    render.line("stopped the local emulator (pid %d)" % stop_running())
