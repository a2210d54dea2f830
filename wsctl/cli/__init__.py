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
                 "--transport", "--api", "--target", "--management-url", "--registry", "--registry-key", "--registry-id",
                 "--registry-user", "--registry-room", "--registry-ttl"}
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
    transport: str = "lean"  # hidden --transport: how the management API is called (wsctl.targets.TRANSPORTS)
    stack_given: bool = False  # --stack on the command line (it then competes with --api and --target)
    api: str | None = None
    saved_target: str | None = None  # --target NAME
    management_url: str | None = None
    registry: object = None  # wsctl.targets.discovery.RegistryOptions

    def choice(self):
        from ..targets import Choice

        return Choice(local=self.local, name=self.name, api=self.api, saved=self.saved_target,
                      stack=self.stack, stack_given=self.stack_given,
                      stage=self.stage if self.stage_given else None, profile=self.profile, region=self.region,
                      endpoint_url=self.endpoint_url, management_url=self.management_url, transport=self.transport,
                      registry=self.registry)

    def target(self):
        """The one target this command acts on (chosen once: later calls return the same)."""
        if getattr(self, "_target", None) is None:
            from ..targets import resolve

            self._target = resolve(self.choice())
        return self._target

    def aws_target(self, command: str):
        """The target of a command that reads AWS only (not the emulator)."""
        if self.local:
            from ..errors import UsageError

            raise UsageError("%s reads AWS; the local emulator runs one API (see `wsctl --local status`)" % command)
        return self.target()

    def stack_target(self, command: str):
        """The target of a command that acts on a stack wsctl makes (deploy, destroy)."""
        from ..errors import UsageError

        if self.api or self.saved_target:
            raise UsageError("%s acts on a stack wsctl makes (--stack); --api and --target name an API made "
                             "elsewhere, which the operating commands act on" % command)
        return self.target()

    @property
    def json(self) -> bool:
        return self.output == "json"


# Help fills the terminal up to 120 columns (click stops at 80 by default, cutting summaries).
app = typer.Typer(cls=WsctlGroup, no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
                  help="Build, deploy, operate and locally emulate API Gateway WebSocket APIs.\n\n"
                       "Global options (--local, --name, --api, --target, --registry..., --profile, --region, "
                       "--endpoint-url, --stack, --stage, --output, --debug) may be given anywhere on the line, as "
                       "with the AWS CLI.",
                  epilog="Environment: WSCTL_HOME (default ~/.wsctl) holds the local emulators' state (one folder "
                         "each under local/, with its CA bundle), their signing keys, and the live client's "
                         "history. WSCTL_STACK, WSCTL_STAGE, WSCTL_LOCAL_NAME and WSCTL_TARGET set --stack, --stage, --name and "
                         "--target; "
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
    api: str = typer.Option(None, "--api", help="Act on this WebSocket API (made by any tool): its id, name, wss:// "
                                                     "URL or custom domain URL. See `wsctl apis list`."),
    saved_target: str = typer.Option(None, "--target", envvar="WSCTL_TARGET", show_envvar=False,
                                     help="Act on the target saved with `wsctl target add NAME`."),
    management_url: str = typer.Option(None, "--management-url", help="With --api: the management endpoint to "
                                                                       "post to (a custom domain's https://DOMAIN/PATH)."),
    registry: str = typer.Option(None, "--registry", help="The API's connection registry: the DynamoDB table its "
                                                           "$connect writes (found by itself when it can be)."),
    registry_key: list[str] = typer.Option(None, "--registry-key", help="With --registry: a connection item's key, "
                                                                         "ATTR=TEMPLATE, e.g. PK=CONN#{id} (once per key "
                                                                         "attribute)."),
    registry_id: str = typer.Option(None, "--registry-id", help="With --registry: the attribute holding the "
                                                                 "connection id."),
    registry_user: str = typer.Option(None, "--registry-user", help="With --registry: where a connection's user is, "
                                                                     "[INDEX:]ATTR[=TEMPLATE], e.g. GSI1:GSI1PK=USER#{user}."),
    registry_room: str = typer.Option(None, "--registry-room", help="With --registry: where a room's members are, "
                                                                     "[INDEX:]ATTR[=TEMPLATE], e.g. byRoom:roomId."),
    registry_ttl: str = typer.Option(None, "--registry-ttl", help="With --registry: the TTL attribute (none: no TTL; "
                                                                   "default: the table's own TTL setting)."),
    transport: str = typer.Option("lean", "--transport", hidden=True,
                                  help="How the management API is called: lean (raw HTTP/1.1 + SigV4) or boto3."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    if output not in OUTPUT_FORMATS:
        raise typer.BadParameter("use text, json or jsonl", param_hint="--output")
    from ..targets import TRANSPORTS

    if transport not in TRANSPORTS:
        raise typer.BadParameter("use %s" % " or ".join(TRANSPORTS), param_hint="--transport")
    if name is not None:
        from ..errors import UsageError
        from ..targets.emulator import check_name

        try:
            check_name(name)
        except UsageError as error:
            raise typer.BadParameter(str(error).split(": ", 1)[1], param_hint="--name %r" % name) from None
    given = {} if not (registry or registry_key or registry_id or registry_user or registry_room or registry_ttl) else dict(
        table=registry, key=tuple(registry_key or ()), id_attribute=registry_id, user=registry_user, room=registry_room,
        ttl=registry_ttl)
    if given:
        from ..errors import UsageError
        from ..targets.discovery import RegistryOptions

        try:
            given = RegistryOptions(**given)
        except UsageError as error:
            raise typer.BadParameter(str(error), param_hint="--registry") from None
    ctx.obj = Options(local=local or name is not None, name=name, profile=profile, region=region, endpoint_url=endpoint_url, stack=stack,
                      stage=stage, output=output, debug=debug, transport=transport,
                      stage_given=getattr(ctx.get_parameter_source("stage"), "name", "") != "DEFAULT",
                      stack_given=getattr(ctx.get_parameter_source("stack"), "name", "") == "COMMANDLINE",
                      api=api, saved_target=saved_target, management_url=management_url, registry=given or None)
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
from . import targets as _targets  # noqa: E402,F401


def _running_names() -> list[str]:
    """Completion of --name: the running emulators."""
    try:
        from ..targets.emulator import states

        return [state.name for state in states()[0]]
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
