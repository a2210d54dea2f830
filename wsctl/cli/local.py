"""local up / local down: the emulator."""

from pathlib import Path

import typer

from .. import limits, names
from ..local.faults import FAULT_KINDS
from . import app

local_app = typer.Typer(help="Run the whole API on this machine (no AWS account needed).", no_args_is_help=True)
app.add_typer(local_app, name="local")

def _warm_containers(value: str) -> bool:
    from ..errors import UsageError

    if value.lower() not in ("lazy", "eager"):
        raise UsageError("--warm-containers %r: use lazy (the default, as Lambda) or eager" % value)
    return value.lower() == "eager"


def parse_faults(values: list[str], seed: int | None):
    from ..errors import UsageError
    from ..local.faults import Faults

    try:
        return Faults.parse(values, seed)
    except ValueError as error:
        raise UsageError(str(error)) from None


@local_app.command("up")
def up(
    ctx: typer.Context,
    port: int = typer.Option(8080, "--port", "-p", help="Port for ws://, wss://, http:// and https:// (0: any free)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless you say otherwise)."),
    template: str = typer.Option(None, "--template", "-t",
                                 help="The project's API, functions and tables: a SAM or CloudFormation template "
                                      "(YAML or JSON), a CDK cloud assembly (cdk.out, or one of its "
                                      "*.template.json) or a Serverless Framework serverless.yml."),
    parameter_overrides: list[str] = typer.Option(None, "--parameter-overrides",
                                                  help="Template parameters, as SAM takes them: Key=Value "
                                                       "(repeatable, or several in one quoted value)."),
    variables: list[str] = typer.Option(None, "--var",
                                        help="A serverless.yml variable's value where wsctl has none: "
                                             "'ssm:/path=VALUE', 'cf:stack.Output=VALUE', 'opt:name=VALUE' "
                                             "(repeatable)."),
    auth: str = typer.Option("jwt", "--auth", help="jwt (the authorizer, as deployed) or none (anonymous)."),
    source: str = typer.Option(None, "--source", help="Folder holding your own handler (default: bundled lambda_src)."),
    handler: str = typer.Option(None, "--handler", help="module.function in --source (e.g. app.handler)."),
    runtime: str = typer.Option(None, "--runtime",
                                help="Runtime of --handler: python3.x or nodejs*.x (default: from the file found)."),
    authorizer: str = typer.Option(None, "--authorizer", help="module.function of your REQUEST authorizer (--auth jwt)."),
    identity_source: list[str] = typer.Option(None, "--identity-source",
                                              help="Authorizer identity source, e.g. route.request.querystring.token "
                                                   "(repeatable; a missing one answers 401)."),
    routes: str = typer.Option(None, "--routes", help="Route file (JSON): routes, functions, authorizer, tables."),
    dynamodb_endpoint: str = typer.Option(None, "--dynamodb-endpoint",
                                          help="Use this DynamoDB (DynamoDB Local, dynalite, ...) instead of moto."),
    env: list[str] = typer.Option(None, "--env", "-e", help="KEY=VALUE for every function's environment (repeatable)."),
    env_file: str = typer.Option(None, "--env-file", help="File of KEY=VALUE lines for every function's environment."),
    idle_timeout: float = typer.Option(limits.IDLE_TIMEOUT_S, "--idle-timeout",
                                       help="Seconds without data frames before 1001 (AWS: %d)."
                                            % limits.IDLE_TIMEOUT_S),
    max_duration: float = typer.Option(limits.MAX_CONNECTION_S, "--max-duration",
                                       help="Connection lifetime cap in seconds (AWS: %d)." % limits.MAX_CONNECTION_S),
    integration_timeout: float = typer.Option(limits.INTEGRATION_TIMEOUT_S, "--integration-timeout",
                                              help="API Gateway's integration timeout in seconds (AWS: %d)."
                                                   % limits.INTEGRATION_TIMEOUT_S),
    ttl_seconds: int = typer.Option(limits.DEFAULT_TTL_SECONDS, "--ttl-seconds",
                                    help="Registry entry lifetime (CONNECTION_TTL_SECONDS)."),
    allow_client_broadcast: bool = typer.Option(False, "--allow-client-broadcast", help="Enable the broadcastAll route."),
    max_environments: int = typer.Option(None, "--max-environments",
                                         help="Execution environments per function (concurrent invocations; "
                                              "default %d each)." % limits.DEFAULT_MAX_ENVIRONMENTS),
    warm_containers: str = typer.Option("lazy", "--warm-containers",
                                        help="lazy: an execution environment starts when an invocation needs one, "
                                             "as on Lambda (cold starts included); eager: one per function at "
                                             "start-up, as SAM CLI's EAGER."),
    aws_passthrough: bool = typer.Option(False, "--aws-passthrough",
                                         help="Let functions reach real AWS (your credentials) for services the "
                                              "emulator does not serve. Off: they get a local error."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Nothing per event: no gateway line per connect/message/disconnect, no "
                                    "START/END/REPORT (what functions print still shows)."),
    page: bool = typer.Option(True, "--page/--no-page",
                              help="Serve the live page (connections, frames, function logs) on a port of its own; "
                                   "the banner prints its URL, which carries the page's secret."),
    page_port: int = typer.Option(0, "--page-port", help="The page's port (default 0: any free port)."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser once ready."),
    fault: list[str] = typer.Option(None, "--fault", help="Test option, KIND=SHARE: " + ", ".join(FAULT_KINDS)
                                                           + " (repeatable)."),
    fault_seed: int = typer.Option(None, "--fault-seed", help="Seed for --fault, for repeatable runs."),
    throttle: str = typer.Option(None, "--throttle",
                                 help="Throttle the management API as AWS does: RATE[:BURST] calls per second "
                                      "(past them: 429 LimitExceededException)."),
):
    """Start the local emulator: API Gateway, the functions (Lambda), and an embedded DynamoDB.

    Several may run at once (other projects, other ports), each with its own state under
    $WSCTL_HOME/local/NAME: --name names it (default: the project folder's name), and
    `wsctl --name NAME ...` acts on it when more than one runs (`wsctl local ls` lists them).
    """
    from ..apispec import check_auth
    from ..errors import UsageError
    from ..envfile import parse_env_file, parse_env_pairs
    from ..local import LocalOptions, run
    from ..local.throttle import parse as parse_throttle
    from ..apispec.cdk import ChooseStack
    from ..apispec.project import build_spec, project_folder, stage_for
    from ..targets.emulator import home

    options = ctx.obj
    for name, value in (("--port", port), ("--page-port", page_port)):
        if not 0 <= value <= 65535:
            raise UsageError("%s must be between 0 and 65535" % name)
    if open_page and not page:
        raise UsageError("--open opens the page: it goes without --no-page")
    for name, value in (("--idle-timeout", idle_timeout), ("--max-duration", max_duration),
                        ("--integration-timeout", integration_timeout)):
        if value <= 0:
            raise UsageError("%s must be positive" % name)
    if max_environments is not None and not 1 <= max_environments <= 1000:
        raise UsageError("--max-environments must be between 1 and 1000")
    check_auth(auth)
    stack = names.check_stack(options.stack)
    choice = {}
    while True:
        try:
            spec = build_spec(template=choice.get("template", template), parameter_overrides=parameter_overrides or [],
                              routes=routes, source=source, handler=handler, runtime=runtime, authorizer=authorizer,
                              identity_sources=tuple(identity_source or ()), auth=auth, stack=stack,
                              ttl_seconds=ttl_seconds, allow_client_broadcast=allow_client_broadcast,
                              variables=variables or [], stage=options.stage if options.stage_given else None,
                              cache=home() / "unpacked")
            break
        except ChooseStack as several:
            choice["template"] = _ask_stack(several)
    stage = stage_for(spec, options.stage, options.stage_given)
    function_env = parse_env_file(env_file) if env_file else {}
    function_env.update(parse_env_pairs(env or []))
    project = project_folder(template, routes, source)
    run(LocalOptions(name=options.name, project=str(project), spec=spec, host=host, port=port, stage=names.check_stage(stage), stack=stack,
                     dynamodb_endpoint=dynamodb_endpoint, env=function_env, idle_timeout=idle_timeout,
                     max_duration=max_duration, integration_timeout=integration_timeout,
                     max_environments=max_environments, aws_passthrough=aws_passthrough, quiet=quiet,
                     eager=_warm_containers(warm_containers),
                     page=page, page_port=page_port, open_page=open_page,
                     faults=parse_faults(fault or [], fault_seed),
                     throttle=parse_throttle(throttle) if throttle else None))


def _ask_stack(several) -> str:
    """In a terminal, which of a CDK app's WebSocket stacks to run; elsewhere the one-line list stands."""
    import sys

    import click

    from .. import render

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise several
    choices = list(several.choices.items())
    render.line("This CDK app has %d stacks with a WebSocket API:" % len(choices))
    for number, (name, path) in enumerate(choices, 1):
        render.line("  %d. %s  (%s)" % (number, name, path))
    answer = typer.prompt("Run which one", type=click.IntRange(1, len(choices)))
    return choices[answer - 1][1]


@local_app.command("down")
def down(ctx: typer.Context,
         all_: bool = typer.Option(False, "--all", help="Stop every running emulator.")):
    """Stop the running emulator (as Ctrl-C would): the only one, the one --name names, or --all."""
    from .. import render
    from ..errors import UsageError
    from ..local import stop_running
    from ..targets.emulator import states

    options = ctx.obj
    if all_:
        if options.name:
            raise UsageError("give --name or --all, not both")
        names = [state.name for state in states()[0]]
        if not names:
            render.line("No local emulator is running.")
    else:
        names = [options.name]
    for name in names:
        state = stop_running(name)
        render.line("stopped the local emulator %s (pid %d, %s)" % (state.name, state.pid, state.ws_url))


def _uptime(seconds: float) -> str:
    from ..render import duration

    return duration(seconds)


@local_app.command("ls")
def ls(ctx: typer.Context):
    """The running emulators: name, WebSocket URL, project folder, uptime (stale state files are cleared)."""
    from .. import render
    from ..targets.emulator import local_root, rows as emulators

    options = ctx.obj
    rows, stale = emulators()
    if options.json:
        render.print_json({"emulators": [dict(row, started=render.iso_time(row["started"]) if row["started"] else None)
                                         for row in rows],
                           "clearedStale": [{"name": s.name, "pid": s.pid} for s in stale]})
        return
    for state in stale:
        render.line("cleared the stale state of %s (pid %s is gone)" % (state.name, state.pid),
                    style="dim", stderr=True)
    if not rows:
        render.line("No local emulator is running (%s). Start one with `wsctl local up`." % local_root())
        return
    render.table(["name", "URL", "project", "uptime", "pid"],
                 [[r["name"], r["url"], _home_relative(r["project"]), _uptime(r["uptimeSeconds"] or 0), r["pid"]]
                  for r in rows],
                 title="%d local emulator(s)%s" % (len(rows), "" if len(rows) == 1 else
                                                   ": choose one with --name NAME"))


def _home_relative(path: str | None) -> str:
    if not path:
        return "-"
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return path
