"""deploy, status, destroy, bundle, token."""

import typer

from .. import limits
from ..tokens import DEFAULT_LIFETIME
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
                                           "status, destroy and the operating commands on this stack (with "
                                           "--role-arn, and what that role needs); change nothing."),
    role_arn: str = typer.Option(None, "--role-arn",
                                 help="Run the function with this existing role; wsctl neither creates nor changes "
                                      "it (--print-policy says what it needs)."),
    permissions_boundary: str = typer.Option(None, "--permissions-boundary",
                                             help="Set this managed policy as the permissions boundary of the role "
                                                  "wsctl creates."),
    throttle: str = typer.Option(None, "--throttle", metavar="RATE[:BURST]",
                                 help="The stage's default route throttling, in requests a second (default %d:%d, a "
                                      "tenth of the account's rate)." % (limits.STAGE_RATE, limits.STAGE_BURST)),
    reserved_concurrency: str = typer.Option(None, "--reserved-concurrency", metavar="N|off",
                                             help="Reserve N concurrent executions for the function (headroom for "
                                                  "broadcast --server-side), or off; unchanged when not given."),
):
    """Bundle lambda_src and create or converge the stack (idempotent)."""
    from .. import render
    from ..apispec import default_spec
    from ..deploy import DeployOptions, apply_plan, plan_deploy
    from ..deploy.options import check_log_retention, parse_reserved_concurrency, parse_throttle
    from ..deploy.role import check_boundary_arn, check_role_arn
    from ..errors import UsageError

    options = ctx.obj
    if options.local:
        raise UsageError("deploy acts on AWS; the local emulator runs lambda_src from source (`wsctl local up`)")
    check_log_retention(log_retention_days)
    throttling, reserved = parse_throttle(throttle), parse_reserved_concurrency(reserved_concurrency)
    check_role_arn(role_arn)
    check_boundary_arn(permissions_boundary, role_arn)
    spec = default_spec(auth)
    target = options.stack_target("deploy")
    if print_policy:
        from ..deploy.policy import deployer_policy_for

        policy, api_id = deployer_policy_for(target, spec.auth, role_arn, permissions_boundary)
        render.print_json(policy)
        if api_id is None:
            render.warn("stack %s has no API yet: this is the bootstrap policy, which may create an API only "
                        "tagged as the stack's but manages every API of the region (API Gateway chooses the id at "
                        "creation); after the first deploy, run `wsctl deploy --print-policy` again for one scoped "
                        "to the API" % target.stack)
        else:
            render.line("scoped to API %s of stack %s; to deploy the stack again after `wsctl destroy`, use the "
                        "bootstrap policy it prints then" % (api_id, target.stack), style="dim", stderr=True)
        return
    deploy_options = DeployOptions(spec=spec, allow_client_broadcast=allow_client_broadcast,
                                   ttl_seconds=ttl_seconds, log_retention_days=log_retention_days,
                                   rotate_key=rotate_key, role_arn=role_arn, permissions_boundary=permissions_boundary,
                                   throttle=throttling, reserved_concurrency=reserved)
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

    result = apply_plan(target, plan, progress, notify)
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
        from ..local.status import document as local_status

        document = local_status(target)
        functions = document["functions"]
        if options.json:
            render.print_json(document)
        else:
            render.key_values([(k, v) for k, v in document.items() if v not in (None, [], {})
                               and k not in ("functions", "tables", "notEmulated", "inFlight")],
                              title="Local emulator")
            render.table(["function", "runtime", "handler", "warm", "busy", "invocations", "routes"],
                         [[f["name"], f["runtime"], f["handler"], "%d/%d" % (f["warm"], f["maxEnvironments"]),
                           "%d%s" % (f["busy"], " (+%d queued)" % f["queued"] if f["queued"] else ""),
                           f["invocations"], ", ".join(f["routes"]) or "-"] for f in functions])
            pending = document["inFlight"]
            if pending["handshakes"] or pending["messages"] or pending["disconnects"]:
                render.line("in flight: %d handshakes, %d frames, %d $disconnects" % (
                    pending["handshakes"], pending["messages"], pending["disconnects"]), style="dim")
            if document["notEmulated"]:
                render.line("not emulated: " + ", ".join(document["notEmulated"]), style="dim")
        return
    if options.api or options.saved_target:
        from ..targets.overview import api_status

        document = api_status(target)
        if options.json:
            render.print_json(document)
            return
        render.key_values([("API", "%s (%s)" % (document["apiId"], document["name"])), ("stage", document["stage"]),
                           ("WebSocket URL", document["url"]), ("management endpoint", document["managementEndpoint"]),
                           ("made by", document["madeBy"]), ("registry", document["registry"] or "none found"),
                           ("live registry entries", document.get("liveConnections", "-"))],
                          title=target.describe())
        for line in document["found"]:
            render.line(line, style="dim")
        return
    from ..deploy import status as stack_status
    from ..deploy import status_exit

    document = stack_status(target)
    code = status_exit(document)
    if options.json:
        render.print_json(document)
        if code:
            raise typer.Exit(code)
        return
    if not document["deployed"] or not document["servesStage"]:
        render.line("Stack %s is not deployed in %s%s." % (
            target.stack, target.region_name, " (but some of its resources exist)" if document["partial"] else
            " for stage %s" % target.stage if document["deployed"] else ""), style="yellow")
        render.table(["resource", "name", "state"],
                     [[r["resource"], r["name"], r["state"]] for r in document["resources"]])
        for unread in document["unread"]:
            render.warn("could not read " + unread)
        for note in document["notes"]:
            render.warn(note)
        raise typer.Exit(code)
    else:
        render.key_values([("WebSocket URL", document["url"]), ("management endpoint", document["managementEndpoint"]),
                           ("table", document["table"]),
                           ("auth", (document["auth"] or "?") + ("  UNSAFE: anyone can connect" if document["unsafe"] else "")),
                           ("throttle", "%g requests/s, burst %s" % (document["throttle"]["rate"],
                                                                     document["throttle"]["burst"])
                            if document["throttle"] else "none (only the account's %d requests/s)"
                            % limits.ACCOUNT_RATE),
                           ("reserved concurrency", document["reservedConcurrency"] or "none"),
                           ("live connections", document.get("liveConnections", "-"))],
                          title="Stack %s (%s)%s" % (target.stack, target.describe(),
                                                     ": PARTIAL" if document["partial"] else ""))
    render.table(["resource", "name", "state"], [[r["resource"], r["name"], r["state"]] for r in document["resources"]])
    for unread in document["unread"]:
        render.warn("could not read " + unread)
    for foreign in document["foreign"]:
        render.warn("%s exists but is not tagged as this stack's" % foreign)
    for note in document["notes"]:
        render.warn(note)
    if document["partial"]:
        render.warn("the stack is partial: `wsctl deploy` completes it, `wsctl destroy` removes it")
    if code:
        raise typer.Exit(code)


@app.command()
def destroy(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
            only_stage: bool = typer.Option(False, "--only-stage",
                                            help="Remove only the --stage stage of a stack that has several; keep "
                                                 "the stack and its other stages.")):
    """Remove everything the stack made, with every stage of its API (safe to run twice; what cannot be
    removed is named)."""
    from .. import render
    from ..deploy import check_destroyed, check_found, plan_destroy
    from ..deploy import destroy as destroy_stack
    from ..deploy.stages import listed
    from ..errors import UsageError, WsctlError

    options = ctx.obj
    if options.local:
        raise UsageError("destroy acts on AWS; stop the local emulator with Ctrl-C or `wsctl local down`")
    target = options.stack_target("destroy")
    plan = plan_destroy(target, only_stage=only_stage)
    for warning in plan.warnings:
        render.warn(warning)
    if plan.empty:
        check_found(target, plan)
        if options.json:
            render.print_json({"stack": target.stack, "deleted": [], "left": []})
        else:
            render.line("Nothing of stack %s is left in %s." % (target.stack, target.region_name), style="green")
        return
    every_stage = len(plan.stages) > 1 and not only_stage
    if not options.json:
        _plan_table(plan, "Destroy %s" % ("stage %s of stack %s (%s)" % (target.stage, target.stack, target.region_name)
                                          if only_stage else target.describe()))
        if every_stage:
            render.line("Stack %s has stages %s: destroying it removes every one (`--only-stage` removes stage %s "
                        "alone)." % (target.stack, listed(plan.stages), target.stage), style="yellow")
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise WsctlError("destroy needs --yes when not run from a terminal")
        typer.confirm("Delete %s?" % ("stage %s" % target.stage if only_stage else "these %d resources%s" % (
            len(plan.steps), ", with stages %s" % listed(plan.stages) if every_stage else "")), abort=True)
    report = destroy_stack(target, plan, lambda step: None if options.json else render.line(
        "  delete %s %s" % (step.resource, step.name), style="dim", stderr=True), only_stage=only_stage)
    for step, why in report.failed:
        render.warn("could not delete %s %s: %s" % (step.resource, step.name, why))
    if options.json:
        render.print_json({"stack": target.stack, "stages": plan.stages, "deleted": _plan_document(report.deleted),
                           "failed": [dict(_plan_document([step])[0], error=why) for step, why in report.failed],
                           "left": [{"resource": kind, "name": name, "why": why} for kind, name, why in report.left]})
    check_destroyed(target, report, only_stage)
    if options.json:
        return
    if only_stage:
        render.line("Stage %s of stack %s removed; the stack serves %s." % (
            target.stage, target.stack, listed(report.stages)), style="green")
        if len(report.stages) == 1:
            render.line("next: `wsctl deploy --stage %s` converges the stack on that stage (its Lambda permission "
                        "and @connections grant may still name %s)" % (report.stages[0], target.stage), style="dim")
    else:
        render.line("Stack %s destroyed%s." % (target.stack, " with stages %s" % listed(plan.stages)
                                               if every_stage else ""), style="green")


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


@app.command()
def token(ctx: typer.Context, user: str = typer.Option(..., "--user", "-u", help="The user id (the token's sub)."),
          ttl: str = typer.Option(DEFAULT_LIFETIME, "--ttl", help="Lifetime, e.g. 15m, 1h (at most 24h).")):
    """Mint a connection token for a user of the current target; prints only the token."""
    from ..tokens import mint, parse_duration

    seconds = parse_duration(ttl)  # bad input first, before any AWS call
    print(mint(ctx.obj.target(), user, seconds))
