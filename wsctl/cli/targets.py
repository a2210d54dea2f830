"""apis list, target add/ls/show/rm, policy: finding and naming the APIs people already have."""

import typer

from . import app

apis_app = typer.Typer(help="The region's WebSocket APIs, made by any tool.", no_args_is_help=True)
app.add_typer(apis_app, name="apis")
target_app = typer.Typer(help="Saved targets: an API, its stage and its registry, found once and named.",
                         no_args_is_help=True)
app.add_typer(target_app, name="target")


@apis_app.command("list")
def list_apis(ctx: typer.Context):
    """Every WebSocket API of the region: id, name, stages with their wss:// URLs, and who made it."""
    from .. import render
    from ..targets.overview import websocket_apis

    options = ctx.obj
    rows = websocket_apis(options.aws_target("apis list"))
    if options.json:
        render.print_json(rows)
        return
    if not rows:
        render.line("No WebSocket API in this region.")
        return
    render.table(["id", "name", "stages", "made by"],
                 [[r["apiId"], r["name"], "\n".join("%s  %s" % (s["stage"], s["url"]) for s in r["stages"]) or "-",
                   r["madeBy"]] for r in rows], title="%d WebSocket API(s)" % len(rows))


@target_app.command("add")
def add(ctx: typer.Context, name: str = typer.Argument(..., help="The name to save it under."),
        template: str = typer.Option(None, "--template", help="A SAM/CloudFormation template of the API's project: "
                                                              "its tables are registry candidates.")):
    """Find an API (--api) and its registry once, show what was found, and save it as NAME for --target."""
    from .. import render
    from ..errors import UsageError
    from ..targets.overview import save_target

    options = ctx.obj
    if not options.api:
        raise UsageError("target add needs the API: --api ID|NAME|URL")
    entry, path = save_target(options.target(), name, template)
    if options.json:
        render.print_json(dict(entry.__dict__, path=str(path)))
        return
    for line in entry.found:
        render.line(line, style="dim")
    render.key_values([("target", entry.name), ("API", "%s (%s)" % (entry.api, entry.api_name)),
                       ("stage", entry.stage), ("region", entry.region),
                       ("registry", _registry_words(entry))],
                      title="Saved %s: use it with --target %s (or WSCTL_TARGET=%s)" % (path, entry.name, entry.name))
    if entry.registry is None:
        render.warn("no registry found: connections list, broadcast, send --user/--room and prune will need "
                    "--registry TABLE (run `wsctl target add %s --api %s --registry TABLE ...` again)"
                    % (entry.name, entry.api))


def _registry_words(entry) -> str:
    if not entry.registry:
        return "none found"
    from ..registry.layout import Layout

    return Layout.from_dict(entry.registry).describe()


@target_app.command("ls")
def ls(ctx: typer.Context):
    """The saved targets."""
    from .. import render
    from ..targets import saved

    options = ctx.obj
    entries = [saved.load(name) for name in saved.all_names()]
    if options.json:
        render.print_json([entry.__dict__ for entry in entries])
        return
    if not entries:
        render.line("No saved target (%s). Save one with `wsctl target add NAME --api ...`." % saved.folder())
        return
    render.table(["name", "API", "stage", "region", "registry"],
                 [[e.name, "%s (%s)" % (e.api, e.api_name), e.stage, e.region,
                   e.registry["table"] if e.registry else "-"] for e in entries],
                 title="%d saved target(s)" % len(entries))


@target_app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="A saved target's name.")):
    """One saved target: its API, stage, AWS options and registry."""
    from .. import render
    from ..targets import saved

    entry = saved.load(name)
    if ctx.obj.json:
        render.print_json(entry.__dict__)
        return
    render.key_values([("target", entry.name), ("API", "%s (%s)" % (entry.api, entry.api_name)),
                       ("stage", entry.stage), ("region", entry.region), ("profile", entry.profile),
                       ("endpoint", entry.endpoint_url), ("management endpoint", entry.management_url),
                       ("registry", _registry_words(entry)), ("saved", entry.saved_at)])


@target_app.command("rm")
def rm(ctx: typer.Context, name: str = typer.Argument(..., help="A saved target's name.")):
    """Forget a saved target (nothing on AWS changes)."""
    from .. import render
    from ..targets import saved

    saved.remove(name)
    if ctx.obj.json:
        render.print_json({"removed": name})
    else:
        render.line("Removed the target %s." % name)


@app.command()
def policy(ctx: typer.Context):
    """The least-privilege IAM policy an operator needs for the target's operating commands (exact ARNs)."""
    from .. import render
    from ..targets.policy import operator_policy

    render.print_json(operator_policy(ctx.obj.aws_target("policy")))
