"""The `wsctl` command line: global options, error handling, and the command modules.

Commands parse options, call one service and render (no AWS call and no
business rule here). The services import boto3, aiohttp and moto only when
they are called, so `wsctl --help` stays fast.
"""

import re
import sys
from dataclasses import dataclass

import typer
from typer.core import TyperGroup

from .. import __version__, names
from ..exitstatus import ExitStatus
from ..exitstatus import table as exit_table

# Target and output options work anywhere on the line, as the AWS CLI's do:
# `wsctl send --local --user bob hi` means `wsctl --local send --user bob hi`.
GLOBAL_FLAGS = {"--local", "--debug"}
GLOBAL_VALUED = {"--profile", "--region", "--endpoint-url", "--stack", "--stage", "--output", "-o", "--name",
                 "--transport"}
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
        if arg in GLOBAL_FLAGS:
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


def _silence_stdout() -> None:
    from ..render import detach

    detach()


def _one_line_usage_error(error, ctx) -> None:
    """Typer prints usage errors as a four-line block; wsctl says it in one line."""
    from .. import render

    if type(error).__name__ == "NoArgsIsHelpError":  # `wsctl connections`: show the help
        raise error
    command = getattr(getattr(error, "ctx", None), "command_path", None) or ctx.command_path
    render.error("%s (see `%s --help`)" % (error.format_message(), command))
    raise typer.Exit(ExitStatus(getattr(error, "exit_code", ExitStatus.USAGE))) from None


class WsctlGroup(TyperGroup):
    def parse_args(self, ctx, args):
        from .helpfmt import polish

        polish(self)  # once: placeholders, whole summaries, global options in every help
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
        except BrokenPipeError:  # the reader went away (wsctl ... | head): end quietly, as SIGPIPE would
            _silence_stdout()
            raise typer.Exit(ExitStatus.BROKEN_PIPE) from None
        except KeyboardInterrupt:
            from .. import render

            render.error("interrupted")
            raise typer.Exit(ExitStatus.INTERRUPTED) from None
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
            raise typer.Exit(ExitStatus.ERROR) from None


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
    name: str | None = None  # --name: which local emulator (implies --local); `local up`: the new one's name
    stage_given: bool = True  # --stage or WSCTL_STAGE was set (a template's StageName yields otherwise)
    transport: str = "lean"  # hidden --transport: how the management API is called (wsctl.target.TRANSPORTS)

    def target(self):
        from ..target import Target

        return Target(stack=names.check_stack(self.stack), stage=names.check_stage(self.stage),
                      profile=self.profile, region=self.region, endpoint_url=self.endpoint_url, local=self.local,
                      local_name=self.name, transport=self.transport)

    @property
    def json(self) -> bool:
        return self.output == "json"


# Help fills the terminal up to 120 columns (click stops at 80 by default, cutting summaries).
app = typer.Typer(cls=WsctlGroup, no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
                  help="Build, deploy, operate and locally emulate API Gateway WebSocket APIs.\n\n"
                       "Global options (--local, --name, --profile, --region, --endpoint-url, --stack, --stage, "
                       "--output, --debug) may be given anywhere on the line, as with the AWS CLI.",
                  epilog="Environment: WSCTL_HOME (default ~/.wsctl) holds the local emulators' state (one folder "
                         "each under local/, with its CA bundle), their signing keys, and the live client's "
                         "history. WSCTL_STACK, WSCTL_STAGE and WSCTL_LOCAL_NAME set --stack, --stage and --name; "
                         "AWS_* variables work as with the AWS CLI.\n\nExit codes (each means one thing):\n\n\b\n"
                         + exit_table())


def _version(value: bool):
    if value:
        print("wsctl " + __version__)
        raise typer.Exit(ExitStatus.OK)


@app.callback()
def root(
    ctx: typer.Context,
    local: bool = typer.Option(False, "--local", help="Act on the running local emulator (`wsctl local up`)."),
    name: str = typer.Option(None, "--name", envvar="WSCTL_LOCAL_NAME", show_envvar=False,
                             autocompletion=lambda: _running_names(),
                             help="The local emulator to act on, when several run (implies --local; see `wsctl "
                                  "local ls`). With `local up`: the new one's name (default: the project folder's)."),
    profile: str = typer.Option(None, "--profile", help="AWS profile (as the AWS CLI).", envvar="AWS_PROFILE",
                                show_envvar=False),
    region: str = typer.Option(None, "--region", help="AWS region (default: AWS_REGION / your config)."),
    endpoint_url: str = typer.Option(None, "--endpoint-url",
                                     help="Send AWS calls to this endpoint instead of AWS's. It must implement every "
                                          "operation the command calls: deploy needs API Gateway v2 (with "
                                          "deployments), Lambda, IAM, DynamoDB, SSM and CloudWatch Logs."),
    stack: str = typer.Option(names.DEFAULT_STACK, "--stack", envvar="WSCTL_STACK", help="Stack name."),
    stage: str = typer.Option(names.DEFAULT_STAGE, "--stage", envvar="WSCTL_STAGE", help="Stage name."),
    output: str = typer.Option("text", "--output", "-o", help="Output format: text, json (one document) or jsonl "
                                                                 "(connect: one event a line)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and AWS call details."),
    transport: str = typer.Option("lean", "--transport", hidden=True,
                                  help="How the management API is called: lean (aiohttp + SigV4) or boto3."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    if output not in OUTPUT_FORMATS:
        raise typer.BadParameter("use text, json or jsonl", param_hint="--output")
    from ..target import TRANSPORTS

    if transport not in TRANSPORTS:
        raise typer.BadParameter("use %s" % " or ".join(TRANSPORTS), param_hint="--transport")
    if name is not None:
        from ..errors import UsageError
        from ..target import check_name

        try:
            check_name(name)
        except UsageError as error:
            raise typer.BadParameter(str(error).split(": ", 1)[1], param_hint="--name %r" % name) from None
    ctx.obj = Options(local=local or name is not None, name=name, profile=profile, region=region, endpoint_url=endpoint_url, stack=stack,
                      stage=stage, output=output, debug=debug, transport=transport,
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


def _running_names() -> list[str]:
    """Completion of --name: the running emulators."""
    try:
        from ..target import local_states

        return [state["name"] for state in local_states()[0]]
    except Exception:
        return []


class Terminated(SystemExit):
    """SIGTERM or SIGHUP: unwinds like an exception, so every `finally` runs and every process
    wsctl started is stopped (a signal's default action would end wsctl on the spot)."""


def _terminate(signum, frame):
    raise Terminated(ExitStatus(128 + signum))  # TERMINATED or HANGUP


def main() -> None:
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _terminate)
    # A closed pipe (wsctl ... | head) ends wsctl quietly, as SIGPIPE ends other tools, after the
    # `finally` blocks have stopped what it started; exit status 141 (128 + SIGPIPE) as a shell's.
    try:
        app(prog_name="wsctl")
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(ExitStatus.BROKEN_PIPE)
