"""wsctl connect: the live client (interactive on a terminal, scriptable otherwise)."""

import json
import sys
import time

import typer

from . import app


def _stamp() -> str:
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)


class LineView:
    """Plain or coloured lines: `12:00:01.123 < {...}` received, `>` sent, `!` errors, `*` notes."""

    MAX_SHOWN = 2000  # characters of one frame shown on screen (jsonl carries everything)

    def __init__(self, pretty: bool = True, color: bool = False):
        from rich.console import Console

        self.raw = not pretty
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

        from ..client import GATEWAY_ERRORS, gateway_error

        head = Text("%s %s " % (_stamp(), marker), style=style)
        if isinstance(data, bytes):
            return self._render(head, Text("<binary, %d bytes> %s" % (len(data), data[:32].hex()), style="magenta"))
        error = gateway_error(data)
        if error:
            return self._render(head, Text("API Gateway error: %s (%s)  " % (error, GATEWAY_ERRORS[error]),
                                           style="bold red"), Text(data, style="red"))
        if len(data) > self.MAX_SHOWN:
            return self._render(head, Text("%s… (%d characters)" % (data[:self.MAX_SHOWN], len(data))))
        if not self.raw:
            try:
                document = json.loads(data)
            except ValueError:
                document = None
            if isinstance(document, (dict, list)):
                from rich.json import JSON

                return self._render(head, JSON.from_data(document, indent=2))
        return self._render(head, Text(data))

    def opened(self, url: str, subprotocol) -> None:
        self.info("connected to %s%s" % (url, " (subprotocol %s)" % subprotocol if subprotocol else ""))

    def sent(self, data: str) -> None:
        self.emit(self._frame(">", "green", data))

    def received(self, data) -> None:
        self.emit(self._frame("<", "cyan", data))

    def closed(self, code, reason: str, by: str) -> None:
        from ..client import close_meaning

        self.info("closed by %s: %s %s%s" % (by, code, close_meaning(code), (" (reason: %s)" % reason) if reason else ""))

    def info(self, text: str) -> None:
        from rich.text import Text

        self.emit(self._render(Text("%s * %s" % (_stamp(), text), style="dim")))

    def error(self, text: str, status: int | None = None) -> None:
        from rich.text import Text

        sys.stderr.write(self._render(Text("%s ! %s" % (_stamp(), text), style="bold red")) + "\n")
        sys.stderr.flush()


class TerminalView(LineView):
    """The interactive prompt: readline history and editing; frames print above the prompt."""

    PROMPT = "> "

    def __init__(self, history_path):
        super().__init__(pretty=True, color=True)
        import readline

        self.readline = readline
        self.history_path = history_path
        try:
            readline.read_history_file(history_path)
        except OSError:
            pass
        readline.set_history_length(1000)

    def emit(self, text: str) -> None:
        # Print above the line being edited (the technique of `python -m websockets`).
        sys.stdout.write("\0337\n\033[A\033[L" + text.replace("\n", "\n\033[L") + "\n\0338\033[B")
        sys.stdout.flush()

    def sent(self, data: str) -> None:
        pass  # the typed line is already on screen

    def prompt(self) -> str:
        line = input(self.PROMPT)
        try:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.history_path)
        except OSError:
            pass
        return line


class JsonlView:
    """One JSON object per event, for tests and tools."""

    raw = True

    def emit(self, event: str, **fields) -> None:
        sys.stdout.write(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}) + "\n")
        sys.stdout.flush()

    def opened(self, url, subprotocol):
        self.emit("open", url=url, subprotocol=subprotocol)

    def sent(self, data):
        self.emit("sent", data=data)

    def received(self, data):
        from ..client import gateway_error

        if isinstance(data, bytes):
            self.emit("received", binary=True, data=data.hex())
            return
        fields = {"data": data}
        error = gateway_error(data)
        if error:
            fields["gatewayError"] = error
        self.emit("received", **fields)

    def closed(self, code, reason, by):
        from ..client import close_meaning

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


def _iam_presign(url: str, target) -> str:
    """Presign the handshake with SigV4 (query parameters) for APIs whose $connect uses AWS_IAM."""
    from urllib.parse import urlsplit, urlunsplit

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    from ..errors import WsctlError

    parts = urlsplit(url)
    host = parts.hostname or ""
    region = host.split(".")[2] if ".execute-api." in host else target.region_name
    credentials = target.session.get_credentials()
    if credentials is None:
        raise WsctlError("--iam needs AWS credentials (aws configure, AWS_PROFILE, ...)")
    https = urlunsplit(parts._replace(scheme="https" if parts.scheme == "wss" else "http"))
    request = AWSRequest(method="GET", url=https)
    SigV4QueryAuth(credentials.get_frozen_credentials(), "execute-api", region, expires=300).add_auth(request)
    return urlunsplit(urlsplit(request.url)._replace(scheme=parts.scheme))


@app.command()
def connect(
    ctx: typer.Context,
    url: str = typer.Argument(None, help="ws:// or wss:// URL (default: the current target's stage)."),
    token: str = typer.Option(None, "--token", "-t", help="Send this token (as ?token=, or with --auth-header)."),
    user: str = typer.Option(None, "--user", "-u", help="Mint a token for this user (as `wsctl token` does)."),
    auth_header: bool = typer.Option(False, "--auth-header", help="Send the token as Authorization: Bearer."),
    header: list[str] = typer.Option(None, "--header", "-H", help="Extra handshake header 'Name: value' (repeatable)."),
    subprotocol: list[str] = typer.Option(None, "--subprotocol", help="Offer this subprotocol (repeatable)."),
    origin: str = typer.Option(None, "--origin", help="Origin header to send."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to wait for the handshake."),
    iam: bool = typer.Option(False, "--iam", help="Sign the handshake with SigV4 (APIs with AWS_IAM on $connect)."),
    ping_interval: float = typer.Option(None, "--ping-interval",
                                        help="Send a ping every N seconds (off by default: API Gateway's idle timer "
                                             "counts only data frames, so pings do not keep a connection open)."),
    reconnect: bool = typer.Option(False, "--reconnect", help="Reconnect with exponential backoff when dropped."),
    send: list[str] = typer.Option(None, "--send", "-s", help="Send this frame after the handshake (repeatable)."),
    wait: float = typer.Option(None, "--wait", "-w", help="After the last send, keep receiving this many seconds."),
    count: int = typer.Option(None, "--count", "-n", min=1, help="Exit after receiving N frames."),
    raw: bool = typer.Option(False, "--raw", help="Print frames as received (no JSON pretty-printing)."),
):
    """A live WebSocket client for debugging: interactive on a terminal, scriptable with --send/--wait/--count.

    Exit codes: 0 opened and closed normally; 1 could not connect; 2 usage; 3 handshake refused (HTTP status);
    4 closed abnormally (dropped, or a close code other than 1000/1001).
    """
    import asyncio
    import ssl
    from urllib.parse import urlencode, urlsplit

    from lambda_src import signing

    from ..client import EXIT_OK, Options, Session
    from ..errors import UsageError
    from ..target import home

    options = ctx.obj
    target = options.target()
    if token and user:
        raise UsageError("give --token or --user, not both")
    url = url or target.ws_url
    if urlsplit(url).scheme not in ("ws", "wss"):
        raise UsageError("the URL must start with ws:// or wss:// (got %r)" % url)
    if user:
        from .deploy import parse_duration

        token = signing.mint(target.keyset(), target.audience_stack, user, parse_duration("1h"))
    headers = []
    for item in header or []:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError("-H %r is not 'Name: value'" % item)
        headers.append((name.strip(), value.strip()))
    if token:
        if auth_header:
            headers.append(("Authorization", "Bearer " + token))
        else:
            url += ("&" if urlsplit(url).query else "?") + urlencode({"token": token})
    if iam:
        url = _iam_presign(url, target)
    context = None
    if url.startswith("wss://") and options.local:
        context = ssl.create_default_context(cafile=target.local_state.get("ca_bundle"))
    stdin_tty, stdout_tty = sys.stdin.isatty(), sys.stdout.isatty()
    scripted = bool(send) or wait is not None or count is not None or not stdin_tty or options.output == "jsonl"
    if options.output == "jsonl":
        view = JsonlView()
    elif not scripted and stdout_tty:
        view = TerminalView(home() / "connect_history")
        view.raw = raw
        view.info("type a frame, or /help; Ctrl-D to quit")
    else:
        view = LineView(pretty=not raw, color=stdout_tty)
    session = Session(Options(url=url, headers=headers, subprotocols=list(subprotocol or []), origin=origin,
                              connect_timeout=connect_timeout, ping_interval=ping_interval, reconnect=reconnect,
                              sends=list(send or []), wait=wait, count=count, ssl=context,
                              interactive=not scripted and stdin_tty, read_stdin=not stdin_tty), view)
    saved_tty = _tty_state() if isinstance(view, TerminalView) else None
    try:
        code = asyncio.run(session.run())
    except KeyboardInterrupt:
        code = EXIT_OK
    finally:
        _restore_tty(saved_tty)
    if code:
        raise typer.Exit(code)
