"""wsctl connect: the live client (interactive on a terminal, scriptable otherwise)."""

import json
import sys
import time

import typer

from ..exitstatus import ExitStatus
from . import app


def _stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)


class LineView:
    """Plain or coloured lines: `12:00:01.123 < {...}` received, `>` sent, `!` errors, `*` notes.

    `mode`: compact (JSON frames on one line), pretty (JSON indented) or raw (exactly as received)."""

    MAX_SHOWN = 2000  # characters of one frame shown on screen (jsonl carries everything)
    HANG = False  # indent a frame's later lines under its first (the live client does)

    def __init__(self, mode: str = "pretty", color: bool = False):
        from rich.console import Console

        self.mode = mode
        self.console = Console(file=sys.stdout, highlight=False, force_terminal=color, no_color=not color,
                               soft_wrap=True)

    def emit(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def _render(self, *renderables) -> str:
        with self.console.capture() as capture:
            self.console.print(*renderables, end="")
        return capture.get()

    def _frame(self, marker: str, style: str, data) -> str:
        from rich.text import Text

        from ..apigw import ERROR_MEANINGS, gateway_error

        head = Text("%s %s " % (_stamp(), marker), style=style)
        if isinstance(data, bytes):
            return self._render(head + Text("<binary, %d bytes> %s" % (len(data), data[:32].hex()), style="magenta"))
        error = gateway_error(data)
        if error:
            return self._render(head + Text("API Gateway error: %s (%s)  " % (error, ERROR_MEANINGS[error]),
                                            style="bold red") + Text(data, style="red"))
        if len(data) > self.MAX_SHOWN:
            return self._render(head + Text("%s… (%d characters)" % (data[:self.MAX_SHOWN], len(data))))
        if self.mode == "raw":
            return self._render(head + Text(data))
        body = Text(data)
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if isinstance(document, (dict, list)):
            if self.mode == "pretty":
                from rich.json import JSON

                body = JSON.from_data(document, indent=2).text
            else:
                from rich.highlighter import JSONHighlighter

                body = JSONHighlighter()(json.dumps(document, ensure_ascii=False))
        if self.HANG and "\n" in body.plain:  # a hanging indent keeps each frame's lines together
            body = Text("\n" + " " * len(head)).join(body.split("\n", allow_blank=True))
        return self._render(head + body)

    def opened(self, url: str, subprotocol) -> None:
        self.info("connected to %s%s" % (url, " (subprotocol %s)" % subprotocol if subprotocol else ""))

    def sent(self, data: str) -> None:
        self.emit(self._frame(">", "green", data))

    def received(self, data) -> None:
        self.emit(self._frame("<", "cyan", data))

    def closed(self, code, reason: str, by: str) -> None:
        from ..apigw import close_meaning

        self.info("closed by %s: %s %s%s" % (by, code, close_meaning(code), (" (reason: %s)" % reason) if reason else ""))

    def info(self, text: str) -> None:
        from rich.text import Text

        self.emit(self._render(Text("%s * %s" % (_stamp(), text), style="dim")))

    def error(self, text: str, status: int | None = None) -> None:
        from rich.text import Text

        sys.stderr.write(self._render(Text("%s ! %s" % (_stamp(), text), style="bold red")) + "\n")
        sys.stderr.flush()


class TerminalView(LineView):
    """The interactive client, on prompt_toolkit: the line being typed stays at the bottom, and
    every frame prints whole above it (run under `patch_stdout`, which erases the prompt, writes,
    and draws the prompt again), whatever its size or timing. History persists between runs;
    Tab completes slash commands and the API's route names."""

    PROMPT = "> "
    HANG = True

    def __init__(self, history_path, routes=lambda: (), mode: str = "compact"):
        super().__init__(mode=mode, color=True)
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion, ThreadedCompleter
        from prompt_toolkit.history import FileHistory
        from prompt_toolkit.shortcuts import CompleteStyle

        from ..client import complete

        class Slash(Completer):
            def get_completions(self, document, complete_event):
                replaced, candidates = complete(document.text_before_cursor, routes())
                for candidate in candidates:
                    yield Completion(candidate, start_position=-replaced)

        try:
            history_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            history = FileHistory(str(history_path))
        except OSError:
            from prompt_toolkit.history import InMemoryHistory

            history = InMemoryHistory()
        # Readline-like completion (common prefix, then a list on a second Tab): no floating menu
        # over the frames, and Enter always sends the line.
        self.session = PromptSession(history=history, completer=ThreadedCompleter(Slash()),
                                     complete_style=CompleteStyle.READLINE_LIKE, complete_while_typing=False,
                                     enable_suspend=False)

    def emit(self, text: str) -> None:
        sys.stdout.write(text + "\n")  # sys.stdout is patch_stdout's proxy: above the prompt
        sys.stdout.flush()

    def error(self, text: str, status: int | None = None) -> None:
        from rich.text import Text

        self.emit(self._render(Text("%s ! %s" % (_stamp(), text), style="bold red")))

    def sent(self, data: str) -> None:
        pass  # the typed line is already on screen

    async def prompt(self) -> str:
        return await self.session.prompt_async(self.PROMPT)


class JsonlView:
    """One JSON object per event, for tests and tools."""

    raw = True

    def emit(self, event: str, **fields) -> None:
        sys.stdout.write(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}) + "\n")
        sys.stdout.flush()

    def opened(self, url, subprotocol):
        self.emit("open", url=url, subprotocol=subprotocol)

    def sent(self, data):
        if isinstance(data, bytes):
            self.emit("sent", binary=True, data=data.hex())
            return
        self.emit("sent", data=data)

    def received(self, data):
        from ..apigw import gateway_error

        if isinstance(data, bytes):
            self.emit("received", binary=True, data=data.hex())
            return
        fields = {"data": data}
        error = gateway_error(data)
        if error:
            fields["gatewayError"] = error
        self.emit("received", **fields)

    def closed(self, code, reason, by):
        from ..apigw import close_meaning

        self.emit("closed", code=code, reason=reason, by=by, meaning=close_meaning(code))

    def info(self, text):
        self.emit("info", message=text)

    def error(self, text, status=None):
        self.emit("error", message=text, **({"status": status} if status else {}))


def _tty_state():
    """The terminal's settings, to put back at exit: a session can end (closed by the server)
    while readline has the terminal in its own mode (no echo, no line editing)."""
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        return None
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):
        return None


def _restore_tty(state) -> None:
    if state is None:
        return
    import termios

    try:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, state)
    except (termios.error, OSError, ValueError):
        pass


def _route_names(target):
    """The API's route keys, for completion after /action: asked once, on the first Tab, in the
    completer's thread (on AWS a GetRoutes call)."""
    cache = []

    def names():
        if not cache:
            try:
                found = target.route_keys()
            except Exception:  # completion never fails the session
                found = []
            cache.append(found)
        return cache[0]
    return names


def _messages(texts: list[str], text_files: list[str], binary_files: list[str]) -> list:
    """--send, --send-file and --send-binary, in that order, each a message API Gateway takes."""
    from ..client import CommandError, check_message, read_message_file
    from ..errors import UsageError

    try:
        return ([check_message(text, "--send message %d" % i) for i, text in enumerate(texts, 1)]
                + [read_message_file(path, binary=False) for path in text_files]
                + [read_message_file(path, binary=True) for path in binary_files])
    except CommandError as error:
        raise UsageError(str(error)) from None


_HELP = """A live WebSocket client for debugging: interactive on a terminal, scriptable with --send/--wait/--count.

Messages over 32 KB go in frames of at most 32 KB; a message over 128 KB is refused before anything is
sent (API Gateway's limits).

On a terminal: frames print above the prompt, one a line; Tab completes /commands and route names;
history persists ($WSCTL_HOME/connect-history); Ctrl-C or Ctrl-D closes with 1000.

Exit codes: %d opened and closed normally; %d could not connect; %d usage; %d handshake refused (HTTP status);
%d closed abnormally (dropped, or a close code other than 1000/1001).
""" % (ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE, ExitStatus.REFUSED, ExitStatus.CLOSED_ABNORMALLY)


@app.command(help=_HELP)
def connect(
    ctx: typer.Context,
    url: str = typer.Argument(None, help="ws:// or wss:// URL (default: the current target's stage)."),
    token: str = typer.Option(None, "--token", "-t", help="Send this token (as ?token=, or with --auth-header)."),
    user: str = typer.Option(None, "--user", "-u", help="Mint a token for this user (as `wsctl token` does)."),
    auth_header: bool = typer.Option(False, "--auth-header", help="Send the token as Authorization: Bearer."),
    header: list[str] = typer.Option(None, "--header", "-H", help="Extra handshake header 'Name: value' (repeatable)."),
    query: list[str] = typer.Option(None, "--query", help="Extra query parameter 'name=value' for the handshake, "
                                                                "as a $connect authorizer reads it (repeatable)."),
    subprotocol: list[str] = typer.Option(None, "--subprotocol", help="Offer this subprotocol (repeatable)."),
    origin: str = typer.Option(None, "--origin", help="Origin header to send."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to wait for the handshake."),
    iam: bool = typer.Option(False, "--iam", help="Sign the handshake with SigV4 (APIs with AWS_IAM on $connect)."),
    ping_interval: float = typer.Option(None, "--ping-interval",
                                        help="Send a ping every N seconds (off by default: API Gateway's idle timer "
                                             "counts only data frames, so pings do not keep a connection open)."),
    reconnect: bool = typer.Option(False, "--reconnect", help="Reconnect with exponential backoff when dropped."),
    send: list[str] = typer.Option(None, "--send", "-s", help="Send this message after the handshake (repeatable)."),
    send_file: list[str] = typer.Option(None, "--send-file", help="Then send this file's text as one message "
                                                                  "(repeatable)."),
    send_binary: list[str] = typer.Option(None, "--send-binary", help="Then send this file's bytes as one binary "
                                                                      "message (repeatable)."),
    wait: float = typer.Option(None, "--wait", "-w", help="After the last send, keep receiving this many seconds."),
    count: int = typer.Option(None, "--count", "-n", min=1, help="Exit after receiving N frames."),
    raw: bool = typer.Option(False, "--raw", help="Print frames exactly as received."),
    pretty: bool = typer.Option(False, "--pretty",
                                help="Pretty-print JSON frames (the default when not interactive; the live "
                                     "client prints one frame a line, /pretty toggles)."),
):
    import asyncio

    from ..client import Options, Session
    from ..errors import UsageError
    from ..handshake import prepare
    from ..targets.emulator import home

    options = ctx.obj
    target = options.target()
    if token and user:
        raise UsageError("give --token or --user, not both")
    if raw and pretty:
        raise UsageError("give --raw or --pretty, not both")
    sends = _messages(send or [], send_file or [], send_binary or [])  # every one checked before connecting
    handshake = prepare(target, url, token=token, user=user, auth_header=auth_header, headers=header or [],
                        iam=iam, query=query or [])
    stdin_tty, stdout_tty = sys.stdin.isatty(), sys.stdout.isatty()
    scripted = bool(sends) or wait is not None or count is not None or not stdin_tty or options.output == "jsonl"
    if options.output == "jsonl":
        view = JsonlView()
    elif not scripted and stdout_tty:
        view = TerminalView(home() / "connect-history", _route_names(target),
                            mode="raw" if raw else "pretty" if pretty else "compact")
    else:
        view = LineView(mode="raw" if raw else "pretty", color=stdout_tty)
    session = Session(Options(url=handshake.url, headers=handshake.headers, subprotocols=list(subprotocol or []),
                              origin=origin, connect_timeout=connect_timeout, ping_interval=ping_interval,
                              reconnect=reconnect, sends=sends, wait=wait, count=count, ssl=handshake.ssl,
                              interactive=not scripted and stdin_tty, read_stdin=not stdin_tty), view)
    interactive = isinstance(view, TerminalView)
    saved_tty = _tty_state() if interactive else None
    try:
        if interactive:
            from prompt_toolkit.patch_stdout import patch_stdout

            with patch_stdout(raw=True):  # every print goes above the prompt
                view.info("type a frame or /help; Tab completes; Ctrl-C or Ctrl-D closes")
                code = asyncio.run(session.run())
        else:
            code = asyncio.run(session.run())
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl-C while closing
        code = ExitStatus.OK
    finally:
        _restore_tty(saved_tty)
    if code:
        raise typer.Exit(code)
