"""deploy, status, destroy, bundle, token."""

import re

import typer

from .. import limits
from . import app


def _plan_table(plan, title: str) -> None:
    from .. import render

    rows = [[i, step.action, step.resource, step.name, step.detail] for i, step in enumerate(plan.steps, 1)]
    render.table(["#", "action", "resource", "name", "detail"], rows, title=title)


def _plan_document(plan_or_steps) -> list:
    steps = getattr(plan_or_steps, "steps", plan_or_steps)
    return [{"action": str(s.action), "resource": s.resource, "name": s.name, "detail": s.detail,
             "service": s.call.service, "call": s.op} for s in steps]


@app.command()
def deploy(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and change nothing."),
    auth: str = typer.Option("jwt", "--auth", help="jwt: a REQUEST authorizer verifies a token at $connect; "
                                                   "none: anonymous connections (unsafe)."),
    allow_client_broadcast: bool = typer.Option(False, "--allow-client-broadcast",
                                                help="Let any client use the broadcastAll route."),
    ttl_seconds: int = typer.Option(limits.DEFAULT_TTL_SECONDS, "--ttl-seconds", min=60, max=30 * 86400,
                                    help="Registry entry lifetime (default just past API Gateway's 2 h cap)."),
    log_retention_days: int = typer.Option(limits.DEFAULT_LOG_RETENTION_DAYS, "--log-retention-days",
                                           help="CloudWatch retention (1, 3, 5, 7, 14, 30, 60, 90, ...)."),
    rotate_key: bool = typer.Option(False, "--rotate-key",
                                    help="Rotate the token signing key: connected clients stay connected, new tokens "
                                         "use the new key, tokens of the old key work until they expire (24 h at most)."),
    print_policy: bool = typer.Option(False, "--print-policy",
                                      help="Print the least-privilege IAM policy for the identity that runs deploy, "
                                           "status, destroy and the operating commands on this stack; change nothing."),
):
    """Bundle lambda_src and create or converge the stack (idempotent)."""
    from .. import aws, render
    from ..apispec import default_spec
    from ..deploy import DeployOptions, outputs, partial_summary, plan_deploy, run_plan
    from ..errors import UsageError, WsctlError

    options = ctx.obj
    if options.local:
        raise UsageError("deploy acts on AWS; the local emulator runs lambda_src from source (`wsctl local up`)")
    if log_retention_days not in (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653):
        raise UsageError("--log-retention-days must be one CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, ...")
    target = options.target()
    if print_policy:
        from ..deploy.policy import deployer_policy_for

        render.print_json(deployer_policy_for(target))
        return
    deploy_options = DeployOptions(spec=default_spec(auth), allow_client_broadcast=allow_client_broadcast,
                                   ttl_seconds=ttl_seconds, log_retention_days=log_retention_days,
                                   rotate_key=rotate_key)
    config, plan = plan_deploy(target, deploy_options)
    if options.json and dry_run:
        render.print_json({"target": target.describe(), "dryRun": True, "steps": _plan_document(plan),
                           "warnings": plan.warnings})
        return
    if plan.empty:
        if not options.json:
            render.line("Stack %s is up to date: nothing to do." % target.stack, style="green")
    elif not options.json:
        _plan_table(plan, "Plan for %s (%d steps)" % (target.describe(), len(plan.steps)))
    for warning in plan.warnings:
        render.warn(warning)
    if dry_run:
        if not options.json:
            render.line("dry run: nothing was changed", style="dim")
        return
    if auth == "none" and not options.json:
        render.warn("--auth none: anyone who knows the URL can connect, as an anonymous user")
    started = []

    def progress(step):
        started.append(step)
        if not options.json:
            render.line("  %s %s %s" % (step.action, step.resource, step.name), style="dim", stderr=True)

    def notify(text):
        render.line("  " + text, style="yellow", stderr=True)

    try:
        context = run_plan(target, plan, progress, notify)
    except KeyboardInterrupt:
        raise WsctlError("interrupted during step %d (%s %s %s): %s" % (
            len(started), started[-1].action, started[-1].resource, started[-1].name,
            partial_summary(target, plan, started[:-1])) if started else "interrupted", 130) from None
    except Exception as error:
        done = started[:-1]
        if not done:
            raise
        reason = str(error) if isinstance(error, WsctlError) else (
            aws.describe(error) or "%s: %s" % (type(error).__name__, error))
        raise WsctlError("%s; %s" % (reason.rstrip("."), partial_summary(target, plan, done))) from None
    result = outputs(target, context)
    if options.json:
        render.print_json(dict(result, steps=_plan_document(plan), warnings=plan.warnings))
        return
    render.key_values([("WebSocket URL", result["url"]), ("management endpoint", result["managementEndpoint"]),
                       ("table", result["table"])],
                      title="Deployed %s (%d changes)" % (target.stack, len(started)))


@app.command()
def status(ctx: typer.Context):
    """The target's URLs, resources and live registry entries (`--local`: the emulator)."""
    from .. import render

    options = ctx.obj
    target = options.target()
    if options.local:
        from ..registry import count_live

        state = target.local_state
        document = {"target": "local", "url": state["ws_url"], "tlsUrl": state.get("wss_url"),
                    "managementEndpoint": state["management_endpoint"],
                    "tlsManagementEndpoint": state.get("tls_management_endpoint"),
                    "lambdaEndpoint": state.get("lambda_endpoint"), "caBundle": state.get("ca_bundle"),
                    "dynamodbEndpoint": state["dynamodb_endpoint"], "dynamodbBackend": state.get("backend"),
                    "api": state.get("origin"), "table": state.get("table"), "tables": state.get("tables"),
                    "stage": state["stage"], "auth": state["auth"] if target.bundled else None, "pid": state["pid"],
                    "name": state.get("name"), "project": state.get("project")}
        functions = target.local_view("functions") if "lambda_endpoint" in state else []
        routes = state.get("routes", {})
        for function in functions:
            function["routes"] = [key for key, name in routes.items() if name == function["name"]]
            if state.get("authorizer") == function["name"]:
                function["routes"].insert(0, "(authorizer)")
        document["functions"] = functions
        document["notEmulated"] = state.get("not_emulated", [])
        document["liveConnections"] = count_live(target) if target.bundled else len(target.local_view("connections"))
        if options.json:
            render.print_json(document)
        else:
            render.key_values([(k, v) for k, v in document.items() if v not in (None, [], {})
                               and k not in ("functions", "tables", "notEmulated")], title="Local emulator")
            render.table(["function", "runtime", "handler", "warm", "invocations", "routes"],
                         [[f["name"], f["runtime"], f["handler"], "%d/%d" % (f["warm"], f["maxEnvironments"]),
                           f["invocations"], ", ".join(f["routes"]) or "-"] for f in functions])
            if document["notEmulated"]:
                render.line("not emulated: " + ", ".join(document["notEmulated"]), style="dim")
        return
    from ..deploy import status as stack_status

    document = stack_status(target)
    if options.json:
        render.print_json(document)
        if not document["deployed"] or document["partial"]:
            raise typer.Exit(3)
        return
    if not document["deployed"]:
        render.line("Stack %s is not deployed in %s%s." % (
            target.stack, target.region_name, " (but some of its resources exist)" if document["partial"] else ""),
            style="yellow")
        render.table(["resource", "name", "state"],
                     [[r["resource"], r["name"], r["state"]] for r in document["resources"]])
        for unread in document["unread"]:
            render.warn("could not read " + unread)
        raise typer.Exit(3)
    else:
        render.key_values([("WebSocket URL", document["url"]), ("management endpoint", document["managementEndpoint"]),
                           ("table", document["table"]),
                           ("auth", (document["auth"] or "?") + ("  UNSAFE: anyone can connect" if document["unsafe"] else "")),
                           ("live connections", document.get("liveConnections", "-"))],
                          title="Stack %s (%s)%s" % (target.stack, target.describe(),
                                                     ": PARTIAL" if document["partial"] else ""))
    render.table(["resource", "name", "state"], [[r["resource"], r["name"], r["state"]] for r in document["resources"]])
    for unread in document["unread"]:
        render.warn("could not read " + unread)
    for foreign in document["foreign"]:
        render.warn("%s exists but is not tagged as this stack's" % foreign)
    if document["partial"]:
        render.warn("the stack is partial: `wsctl deploy` completes it, `wsctl destroy` removes it")
        raise typer.Exit(3)


@app.command()
def destroy(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")):
    """Remove everything the stack made (safe to run twice; what cannot be removed is named)."""
    from .. import render
    from ..deploy import destroy as destroy_stack
    from ..deploy import plan_destroy
    from ..errors import UsageError, WsctlError

    options = ctx.obj
    if options.local:
        raise UsageError("destroy acts on AWS; stop the local emulator with Ctrl-C or `wsctl local down`")
    target = options.target()
    plan = plan_destroy(target)
    for warning in plan.warnings:
        render.warn(warning)
    if plan.empty:
        if plan.warnings:
            raise WsctlError("stack %s: nothing to delete was found, but not everything could be checked (see above)"
                             % target.stack)
        if options.json:
            render.print_json({"stack": target.stack, "deleted": [], "left": []})
        else:
            render.line("Nothing of stack %s is left in %s." % (target.stack, target.region_name), style="green")
        return
    if not options.json:
        _plan_table(plan, "Destroy %s" % target.describe())
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise WsctlError("destroy needs --yes when not run from a terminal")
        typer.confirm("Delete these %d resources?" % len(plan.steps), abort=True)
    report = destroy_stack(target, plan, lambda step: None if options.json else render.line(
        "  delete %s %s" % (step.resource, step.name), style="dim", stderr=True))
    for step, why in report.failed:
        render.warn("could not delete %s %s: %s" % (step.resource, step.name, why))
    if options.json:
        render.print_json({"stack": target.stack, "deleted": _plan_document(report.deleted),
                           "failed": [dict(_plan_document([step])[0], error=why) for step, why in report.failed],
                           "left": [{"resource": kind, "name": name, "why": why} for kind, name, why in report.left]})
    if report.left:
        raise WsctlError("stack %s is not fully destroyed: left %s" % (target.stack, "; ".join(
            "%s %s (%s)" % (kind, name, why) for kind, name, why in report.left)))
    if not options.json:
        render.line("Stack %s destroyed." % target.stack, style="green")


@app.command()
def bundle(output: str = typer.Option(..., "--out", help="Write the Lambda zip here (-o is --output, as "
                                                             "everywhere).")):
    """Write the deterministic Lambda bundle (lambda_src + PyJWT)."""
    from pathlib import Path

    from .. import render
    from ..deploy import bundle as bundler
    from ..errors import WsctlError

    data = bundler.build()
    try:
        Path(output).write_bytes(data)
    except OSError as error:
        raise WsctlError("cannot write %s: %s" % (output, error.strerror)) from None
    render.line("%s  %d bytes  sha256 %s" % (output, len(data), bundler.sha256_hex(data)))


_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(text: str) -> int:
    from ..errors import UsageError

    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError("duration %r: use seconds or a number with s, m, h or d (e.g. 90s, 15m, 1h)" % text)
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@app.command()
def token(ctx: typer.Context, user: str = typer.Option(..., "--user", "-u", help="The user id (the token's sub)."),
          ttl: str = typer.Option("1h", "--ttl", help="Lifetime, e.g. 15m, 1h (at most 24h).")):
    """Mint a connection token for a user of the current target; prints only the token."""
    from lambda_src import jwts

    from ..errors import UsageError

    seconds = parse_duration(ttl)  # bad input first, before any AWS call
    target = ctx.obj.target()
    try:
        print(jwts.mint(target.keyset(), target.audience_stack, user, seconds))
    except ValueError as error:
        raise UsageError(str(error)) from None
