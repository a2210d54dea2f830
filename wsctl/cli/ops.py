"""connections list/show, send, broadcast, prune, disconnect: operating a live API."""

import asyncio
import time

import typer

from .. import limits
from . import app

connections_app = typer.Typer(help="Who is connected: the registry joined with API Gateway's view.",
                              no_args_is_help=True)
app.add_typer(connections_app, name="connections")

# Options shared by the commands that deliver (one definition, so they never drift apart).
CONCURRENCY_OPTION = typer.Option(limits.DEFAULT_CONCURRENCY, "--concurrency",
                                  help="Management API calls in flight at once.")
MAX_RATE_OPTION = typer.Option(None, "--max-rate", help="At most this many management API calls per second "
                                                        "(default: find the rate API Gateway accepts).")
MESSAGE_ARGUMENT = typer.Argument(None, help="The payload, sent as given (text or JSON); - reads stdin.")
FILE_OPTION = typer.Option(None, "--file", "-f", help="Read the payload from this file (- for stdin).")
NO_PRUNE_OPTION = typer.Option(False, "--no-prune", help="Keep registry entries of gone connections.")
PRUNE_OPTION = typer.Option(False, "--prune", help="Remove gone connections' entries from a registry wsctl did not "
                                                   "make (wsctl's own are removed unless --no-prune).")


def _prune_choice(prune: bool, no_prune: bool) -> bool | None:
    """--prune, --no-prune, or neither (None: the registry's owner decides, see ops.prunes)."""
    from ..errors import UsageError

    if prune and no_prune:
        raise UsageError("give --prune or --no-prune, not both")
    return True if prune else False if no_prune else None


def _show(delivery, json_output: bool) -> None:
    """One renderer for every delivery (send, broadcast, client-side or server-side), then its exit."""
    from .. import render
    from ..fanout.report import GONE

    if json_output:
        render.print_json(delivery.document())
    elif not delivery.recipients and not delivery.server_side and not delivery.connection and \
            delivery.exit_status() == 0:
        render.line("No live connections in the registry: nothing to send.", style="yellow")
    else:
        rows = [[outcome, count] for outcome, count in delivery.counts.items() if count or outcome == "delivered"]
        if delivery.pruned:
            rows.append(["pruned from registry", delivery.pruned])
        elif delivery.gone_kept:
            rows.append(["gone, left in the registry (not wsctl's table: --prune removes them)",
                         delivery.counts[GONE]])
        if delivery.retries:
            rows.append(["retries", delivery.retries])
        if delivery.throttles:
            rows.append(["throttled answers (%s)" % ("posted again" if delivery.server_side else "retried"),
                         delivery.throttles])
        title = "%d recipient(s) in %.2f s" % (delivery.recipients, delivery.seconds)
        if delivery.server_side:
            title += ", %d segment(s) in %s" % (len(delivery.segments), delivery.function)
        render.table(["outcome", "connections"], rows, title="%s (%s)" % (title, delivery.target))
    _finish(delivery)


def _deliver(ctx, run) -> None:
    """Run a delivery service coroutine with a progress line, then show its report and exit."""
    from .. import render

    options = ctx.obj
    progress = render.DelayedProgress("sending", enabled=not options.json)
    try:
        delivery = asyncio.run(run(progress))
    finally:
        progress.close()
    _show(delivery, options.json)


def _check_concurrency(concurrency: int) -> int:
    from ..errors import UsageError

    if not 1 <= concurrency <= 1024:
        raise UsageError("--concurrency must be between 1 and 1024")
    return concurrency


@app.command()
def send(
    ctx: typer.Context,
    message: str = MESSAGE_ARGUMENT,
    connection: str = typer.Option(None, "--connection", "-c", help="One connection id."),
    user: str = typer.Option(None, "--user", "-u", help="Every live connection of this user."),
    room: str = typer.Option(None, "--room", "-r", help="Every live member of this room."),
    file: str = FILE_OPTION,
    concurrency: int = CONCURRENCY_OPTION,
    no_prune: bool = NO_PRUNE_OPTION,
    prune: bool = PRUNE_OPTION,
    max_rate: float = MAX_RATE_OPTION,
    server_side: bool = typer.Option(False, "--server-side",
                                     help="With --room: the deployed function posts, inside AWS."),
):
    """Send a message to a connection, a user or a room. Exit 0 only when every live recipient got it."""
    from .. import ops
    from ..errors import UsageError
    from ..ops import read_payload

    payload = read_payload(message, file)
    _check_concurrency(concurrency)
    pruning = _prune_choice(prune, no_prune)
    rate = _check_rate(max_rate)
    if server_side:
        if not room or connection or user:
            raise UsageError("--server-side sends to a room: use it with --room only")
        _server_side(ctx, payload, 1, no_prune, room)
        return
    target = ctx.obj.target()
    _deliver(ctx, lambda progress: ops.send(target, payload, connection, user, room, concurrency, pruning, progress,
                                            rate))


@app.command()
def broadcast(
    ctx: typer.Context,
    message: str = MESSAGE_ARGUMENT,
    file: str = FILE_OPTION,
    concurrency: int = CONCURRENCY_OPTION,
    no_prune: bool = NO_PRUNE_OPTION,
    prune: bool = PRUNE_OPTION,
    max_rate: float = MAX_RATE_OPTION,
    server_side: bool = typer.Option(False, "--server-side",
                                     help="Fan out inside AWS: the deployed function posts, in parallel "
                                          "copies (needs lambda:InvokeFunction on it)."),
    segments: int = typer.Option(4, "--segments",
                                 help="With --server-side: copies of the function, each scanning one "
                                      "segment of the registry (1-100)."),
):
    """Send a message to every live connection in the registry (sending starts with the first scan page)."""
    from ..ops import read_payload

    from .. import ops

    payload = read_payload(message, file)
    _check_concurrency(concurrency)
    pruning = _prune_choice(prune, no_prune)
    rate = _check_rate(max_rate)
    if server_side:
        from ..fanout.serverside import check_segments

        _server_side(ctx, payload, check_segments(segments), no_prune, None)
        return
    target = ctx.obj.target()
    _deliver(ctx, lambda progress: ops.broadcast(target, payload, concurrency, pruning, progress, rate))


def _check_rate(max_rate: float | None) -> float | None:
    from ..errors import UsageError

    if max_rate is not None and not 1 <= max_rate <= 1_000_000:
        raise UsageError("--max-rate must be between 1 and 1000000 calls per second")
    return max_rate


def _server_side(ctx, payload: bytes, segments: int, no_prune: bool, room: str | None) -> None:
    """Run the fan-out in the deployed function, a line per segment as it ends, then the summed report."""
    from .. import render
    from ..ops import send_server_side

    options = ctx.obj

    def progress(segment) -> None:
        if options.json:
            return
        report = segment.report or {}
        counts = ", ".join("%s %d" % (k, v) for k, v in (report.get("counts") or {}).items() if v) or "nobody"
        line = "segment %d: %s in %.2f s" % (segment.number, counts, segment.seconds)
        if segment.error:
            line += "  FAILED: %s (%d read but not reached%s)" % (
                segment.error, report.get("unreached", 0), "" if report.get("scanComplete", False)
                else "; the rest of its segment was not read")
        render.line(line, style="red" if segment.error else "dim")

    _show(send_server_side(options.target(), payload, segments, not no_prune, room, progress), options.json)


@app.command()
def prune(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be removed (every key); change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete from a registry wsctl did not make (by its key "
                                                         "schema as discovered; see --dry-run first)."),
    concurrency: int = CONCURRENCY_OPTION,
):
    """Remove stale registry entries (ttl passed, or GetConnection says 410), sending no message."""
    from .. import render
    from ..ops import prune as run_prune

    options = ctx.obj
    target = options.target()
    progress = render.DelayedProgress("checking", enabled=not options.json)
    try:
        report = asyncio.run(run_prune(target, dry_run, yes, _check_concurrency(concurrency), progress))
    finally:
        progress.close()
    if options.json:
        render.print_json(report.document())
    else:
        render.key_values([("checked", report.checked), ("live", report.live),
                           ("expired (ttl passed)", len(report.expired)), ("gone (410)", len(report.gone)),
                           ("orphaned memberships", len(report.orphaned)), ("could not check", len(report.unknown)),
                           ("would remove" if dry_run else "removed",
                            len(report.expired + report.gone + report.orphaned) if dry_run else report.removed)],
                          title="Prune %s%s" % (report.target, " (dry run)" if dry_run else ""))
        if report.keys and (dry_run or not target.registry.owned):
            columns = [part.attribute for part in target.registry.key]
            render.table(columns, [[key.get(name) for name in columns] for key in report.keys],
                         title="%s %d item(s) of %s" % ("would delete" if dry_run else "deleted",
                                                         len(report.keys), report.table))
    _finish(report)


def _finish(report) -> None:
    """A report's one error line, if it failed, and its exit status."""
    from .. import render

    problem = report.problem()
    if problem:
        render.error(problem)
    if report.exit_status():
        raise typer.Exit(report.exit_status())


@app.command()
def disconnect(ctx: typer.Context, connection_id: str = typer.Argument(..., help="The connection to close."),
               prune: bool = typer.Option(False, "--prune", help="If it was already gone, remove its entry from a "
                                                                  "registry wsctl did not make.")):
    """Close a connection (DeleteConnection): API Gateway closes it with 1000 and runs $disconnect."""
    from .. import render
    from ..ops import disconnect as kick

    options = ctx.obj
    kicked = asyncio.run(kick(options.target(), connection_id, True if prune else None))
    if options.json:
        render.print_json({"connectionId": connection_id, "outcome": kicked.outcome})
    elif not kicked.exit_status():
        render.line("Disconnected %s." % connection_id, style="green")
    _finish(kicked)


@connections_app.command("list")
def list_connections(
    ctx: typer.Context,
    user: str = typer.Option(None, "--user", "-u", help="Only this user's connections (GSI1 query)."),
    room: str = typer.Option(None, "--room", "-r", help="Only this room's members (GSI1 query)."),
    live: bool = typer.Option(False, "--live", help="Ask API Gateway about each one: state and last activity."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="At most N connections."),
    concurrency: int = CONCURRENCY_OPTION,
):
    """The registry's live connections: id, user, rooms, connected, expires."""
    from .. import render
    from ..ops import connections

    options = ctx.obj
    target = options.target()
    rows = asyncio.run(connections(target, user, room, limit, live,
                                   _check_concurrency(concurrency) if live else concurrency))
    if options.json:
        render.print_json([render.json_times(row) for row in rows])
        return
    now = time.time()
    columns = ["connection", "user", "rooms", "connected", "expires"] + (["state", "last active"] if live else [])
    table = []
    for row in rows:
        cells = [row["connectionId"], row["userId"], ",".join(row["rooms"]) or "-",
                 render.relative(row["connectedAt"], now) if row["connectedAt"] else "?",
                 render.relative(row["ttl"], now) if row["ttl"] else "never"]
        if live:
            cells += [row.get("state", "?"), render.relative(row.get("lastActiveAt"), now)]
        table.append(cells)
    render.table(columns, table, title="%d connection(s) (%s)" % (len(rows), target.describe()))


@connections_app.command("show")
def show(ctx: typer.Context, connection_id: str = typer.Argument(..., help="The connection id.")):
    """One connection's registry item joined with API Gateway's GetConnection answer."""
    from .. import render
    from ..ops import show as show_one

    options = ctx.obj
    document = asyncio.run(show_one(options.target(), connection_id))
    if options.json:
        render.print_json(dict(document, registry=render.json_times(document["registry"]),
                               apiGateway=render.json_times(document["apiGateway"])))
        return
    registry = document["registry"] or {}
    api = document["apiGateway"]

    def when(value):
        moment = render.epoch(value)
        return render.local_time(moment) if moment is not None else None

    identity = api.get("identity") or {}
    render.key_values([
        ("connection", connection_id), ("user", document["userId"] or ("-" if registry else "(not in the registry)")),
        ("rooms", ", ".join(document["rooms"]) or "-"), ("connected", when(registry.get("connectedAt"))
                                                         or when(api.get("connectedAtApi"))),
        ("expires (ttl)", when(registry.get("ttl"))), ("source ip", registry.get("sourceIp")),
        ("user agent", registry.get("userAgent")), ("API Gateway", api["state"]),
        ("last active", when(api.get("lastActiveAt"))),
        ("identity", ", ".join("%s %s" % (k, v) for k, v in identity.items()) if identity else None),
    ])


@app.command()
def invoke(
    ctx: typer.Context,
    function: str = typer.Argument(..., help="Function name (or ARN)."),
    event: str = typer.Option(None, "--event", "-e", help="File holding the event JSON (- for standard input; "
                                                           "default {})."),
    log: bool = typer.Option(False, "--log", help="Print the invocation's log (the last 4 KB) on stderr."),
):
    """Invoke a function by hand, like `aws lambda invoke` (--local: the emulator's functions)."""
    import json
    import sys

    from .. import render
    from ..errors import UsageError
    from ..exitstatus import ExitStatus
    from ..ops import invoke_function

    options = ctx.obj
    if event is None:
        payload = b"{}"
    else:
        try:
            payload = sys.stdin.buffer.read() if event == "-" else open(event, "rb").read()
        except OSError as error:
            raise UsageError("cannot read --event %s: %s" % (event, error.strerror)) from None
    try:
        json.loads(payload or b"null")
    except ValueError as error:
        raise UsageError("--event %s is not JSON: %s" % (event, error)) from None
    result = invoke_function(options.target(), function, payload, tail=log)
    if log and result["log"]:
        sys.stderr.write(result["log"] if result["log"].endswith("\n") else result["log"] + "\n")
    if options.json:
        try:
            body = json.loads(result["payload"] or b"null")
        except ValueError:
            body = result["payload"].decode("utf-8", "replace")
        render.print_json({"functionError": result["functionError"], "payload": body,
                           "requestId": result["requestId"]})
    else:
        sys.stdout.write(result["payload"].decode("utf-8", "replace") + "\n")
    if result["functionError"]:
        if not options.json:
            render.error("the function failed (%s)" % result["functionError"])
        raise typer.Exit(ExitStatus.FUNCTION_ERROR)


@app.command()
def demo():
    """Show the whole job on the local emulator in about ten seconds (no AWS account needed)."""
    from ..demo import run

    run()
