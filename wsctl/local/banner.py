"""The banner `wsctl local up` prints once it is ready: where it listens, what it runs, and how this
machine differs from Lambda."""

import sys

from .. import render
from ..targets.emulator import EmulatorState


def show(state: EmulatorState, notes: list, options, seconds: float, page_url: str | None = None) -> None:
    """`options`: the LocalOptions it was started with; `page_url`: the live page's, secret included."""
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
    if options.eager:
        rows.append(("environments", "one per function started ahead (--warm-containers eager); more on demand"))
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
    if page_url:  # on a line of its own, never wrapped or cut: the URL carries the page's secret
        render.line("page: %s" % page_url)
        render.line("      live connections, frames and function logs (the URL is the page's key: keep it to "
                    "yourself)", style="dim")
    render.line("Ctrl-C to stop; `wsctl --local status` in another terminal", style="dim")
    sys.stdout.flush()
