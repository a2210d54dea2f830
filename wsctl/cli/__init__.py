"""The `wsctl` command line: global options, error handling, and the command modules.

Commands parse options, call one service and render; they import boto3,
aiohttp and moto only inside their bodies, so `wsctl --help` stays fast.
"""

import os
import re
import sys
from dataclasses import dataclass

import typer
from typer.core import TyperGroup

from .. import __version__

# Target and output options work anywhere on the line, as the AWS CLI's do:
# `wsctl send --local --user bob hi` means `wsctl --local send --user bob hi`.
GLOBAL_FLAGS = {"--local", "--debug"}
GLOBAL_VALUED = {"--profile", "--region", "--endpoint-url", "--stack", "--stage", "--output", "-o"}
OUTPUT_FORMATS = ("text", "json", "jsonl")


# Connection ids are URL-safe base64 and one in 64 starts with "-": after `disconnect` or
# `connections show`, such an id is the argument, not an unknown option.
_ID_SHAPE = re.compile(r"^-[A-Za-z0-9_-]{14}=$")
_TAKES_ID = ("disconnect", "show")


def hoist_global_options(args: list[str]) -> list[str]:
    front, rest, tail = [], [], []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if _ID_SHAPE.match(arg) and index and args[index - 1] in _TAKES_ID and "--" not in args:
            tail = ["--", arg]
            index += 1
            continue
        name = arg.split("=", 1)[0]
        if name == "-o" and (arg[3:] if "=" in arg else (args[index + 1] if index + 1 < len(args) else "")) \
                not in OUTPUT_FORMATS:
            rest.append(arg)  # `wsctl bundle -o FILE`: a command's own -o, not the output format
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        elif name in GLOBAL_VALUED and ("=" in arg or index + 1 < len(args)):
            if "=" in arg:
                front.append(arg)
            else:
                front += [arg, args[index + 1]]
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest + tail


def _one_line_usage_error(error, ctx) -> None:
    """Typer prints usage errors as a four-line block; wsctl says it in one line."""
    from .. import render

    if type(error).__name__ == "NoArgsIsHelpError":  # `wsctl connections`: show the help
        raise error
    command = getattr(getattr(error, "ctx", None), "command_path", None) or ctx.command_path
    render.error("%s (see `%s --help`)" % (error.format_message(), command))
    raise typer.Exit(getattr(error, "exit_code", 2)) from None


class WsctlGroup(TyperGroup):
    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, hoist_global_options(list(args)))
        except typer.TyperException as error:
            _one_line_usage_error(error, ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except typer.TyperException as error:
            _one_line_usage_error(error, ctx)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            from .. import render

            render.error("interrupted")
            raise typer.Exit(130) from None
        except Exception as error:  # one line for people; the traceback only with --debug
            from .. import render
            from ..errors import WsctlError

            options = ctx.obj if isinstance(ctx.obj, Options) else None
            if options is None or options.debug:
                import traceback

                traceback.print_exc()
            if isinstance(error, WsctlError):
                render.error(str(error))
                raise typer.Exit(error.exit_code) from None
            from ..aws import describe

            render.error(describe(error) or "%s: %s" % (type(error).__name__, error))
            raise typer.Exit(1) from None


@dataclass
class Options:
    local: bool
    profile: str | None
    region: str | None
    endpoint_url: str | None
    stack: str
    stage: str
    output: str
    debug: bool
    stage_given: bool = True  # --stage or WSCTL_STAGE was set (a template's StageName yields otherwise)

    def target(self):
        from .. import stack as names
        from ..target import Target

        return Target(stack=names.check_stack(self.stack), stage=names.check_stage(self.stage),
                      profile=self.profile, region=self.region, endpoint_url=self.endpoint_url, local=self.local)

    @property
    def json(self) -> bool:
        return self.output == "json"


app = typer.Typer(cls=WsctlGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Build, deploy, operate and locally emulate API Gateway WebSocket APIs.\n\n"
                       "Target options (--local, --profile, --region, --endpoint-url, --stack, --stage) and "
                       "--output/--debug may be given anywhere on the line.")


def _version(value: bool):
    if value:
        print("wsctl " + __version__)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    local: bool = typer.Option(False, "--local", help="Act on the running local emulator (`wsctl local up`)."),
    profile: str = typer.Option(None, "--profile", help="AWS profile (as the AWS CLI).", envvar="AWS_PROFILE",
                                show_envvar=False),
    region: str = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / your config)."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="Send AWS calls to this endpoint (moto, LocalStack)."),
    stack: str = typer.Option("app", "--stack", envvar="WSCTL_STACK", help="Stack name (default app)."),
    stage: str = typer.Option("dev", "--stage", envvar="WSCTL_STAGE", help="Stage name (default dev)."),
    output: str = typer.Option("text", "--output", "-o", help="text, json (one document) or jsonl (connect)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and AWS call details."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    if output not in ("text", "json", "jsonl"):
        raise typer.BadParameter("use text, json or jsonl", param_hint="--output")
    ctx.obj = Options(local=local, profile=profile, region=region, endpoint_url=endpoint_url, stack=stack,
                      stage=stage, output=output, debug=debug,
                      stage_given=getattr(ctx.get_parameter_source("stage"), "name", "") != "DEFAULT")
    if debug:
        import logging

        # Only wsctl's own debug lines: botocore's DEBUG log prints request bodies,
        # which would include a signing key being written to SSM.
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        logging.getLogger("wsctl").setLevel(logging.DEBUG)


from . import deploy as _deploy  # noqa: E402,F401  (each module registers its commands)
from . import local as _local  # noqa: E402,F401
from . import ops as _ops  # noqa: E402,F401
from . import connect as _connect  # noqa: E402,F401


def main() -> None:
    # Keep a broken pipe (wsctl ... | head) quiet instead of a traceback.
    try:
        app(prog_name="wsctl")
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
