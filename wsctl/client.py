"""The live WebSocket client behind `wsctl connect`.

Pure parts first (slash commands, what a close code or an API Gateway error
frame means, the jsonl event shapes), then the session that drives a
`websockets` connection and reports every event to a view: the interactive
terminal view, plain lines, or one JSON object per event.
"""

import asyncio
import json
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .apigw import HANDSHAKE_MEANINGS, NORMAL_CLOSES  # what a close or a refusal means: wsctl.apigw
from .exitstatus import ExitStatus
from .limits import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

HELP = """\
/action NAME key=value ...   send {"action": NAME, ...} (values parsed as JSON when they can be)
/action NAME {"k": "v"}      the same with a JSON object
/file PATH                   send the file's text as one message
/binary PATH                 send the file's bytes as one binary message
/ping [data]                 send a ping and show the round trip
/close [code [reason]]       close the connection (default 1000)
/pretty                      toggle pretty-printing of JSON frames (default: one frame a line)
/raw                         toggle showing frames exactly as received
/help                        this help
/quit                        close with 1000 and exit (as do Ctrl-D and Ctrl-C)
anything else                sent as one text message (start it with // to send a leading /)
A message over 32 KB goes in frames of at most 32 KB; over 128 KB it is refused, unsent (API Gateway's limits).
Tab completes commands and, after /action, the API's route names; Up/Down browse the history."""

# Slash commands, and whether each takes arguments (completion adds a space after those that do).
COMMANDS = {"action": True, "file": True, "binary": True, "ping": True, "close": True, "pretty": False,
            "raw": False, "help": False, "quit": False}


class CommandError(ValueError):
    pass


class MessageTooBig(CommandError):
    pass


def message_bytes(message: str | bytes) -> int:
    return len(message) if isinstance(message, bytes) else len(message.encode("utf-8", "surrogatepass"))


def check_message(message: str | bytes, what: str = "message") -> str | bytes:
    """A message API Gateway takes (128 KB at most), or MessageTooBig saying so, before anything is sent."""
    size = message_bytes(message)
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooBig(_too_big(what, size))
    return message


def _too_big(what: str, size: int) -> str:
    return "%s is %d bytes, over API Gateway's %d KB (%d bytes) per message: not sent" % (
        what, size, MAX_MESSAGE_BYTES // 1024, MAX_MESSAGE_BYTES)


def fragments(message: str | bytes, size: int = MAX_FRAME_BYTES) -> list:
    """One message as frames of at most `size` bytes, as API Gateway takes them (a single frame
    over 32 KB closes the connection with 1009). Text is cut between characters: websockets
    encodes each fragment on its own, so none may end inside a character's UTF-8 bytes."""
    if isinstance(message, bytes):
        return [message[i:i + size] for i in range(0, len(message), size)] or [b""]
    data = message.encode("utf-8", "surrogatepass")
    pieces, start = [], 0
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: back to the character's start
            end -= 1
        pieces.append(data[start:end].decode("utf-8", "surrogatepass"))
        start = end
    return pieces or [""]


def read_message_file(path: str, binary: bool) -> str | bytes:
    """A file's content as one message: its bytes, or its text (UTF-8); CommandError says why not."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_MESSAGE_BYTES:  # say so without reading all of it
                raise MessageTooBig(_too_big(path, size))
            data = check_message(handle.read(MAX_MESSAGE_BYTES + 1), path)  # a pipe has no size to stat
    except OSError as error:
        raise CommandError("cannot read %s: %s" % (path, error.strerror)) from None
    if binary:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("%s is not UTF-8 text: send it as a binary message (--send-binary, /binary)"
                           % path) from None


@dataclass
class Command:
    kind: str  # send | file | binary | ping | close | pretty | raw | help | quit
    data: str = ""
    code: int = 1000
    reason: str = ""


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_line(line: str) -> Command | None:
    """A line typed at the prompt -> what to do (None for an empty line)."""
    if not line.strip():
        return None
    if not line.startswith("/") or line.startswith("//"):
        return Command("send", line[1:] if line.startswith("//") else line)
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if name == "action":
        action, _, args = rest.partition(" ")
        if not action:
            raise CommandError("usage: /action NAME key=value ... (or a JSON object)")
        frame = {"action": action}
        args = args.strip()
        if args.startswith("{"):
            try:
                extra = json.loads(args)
            except ValueError as error:
                raise CommandError("not a JSON object: %s" % error) from None
            if not isinstance(extra, dict):
                raise CommandError("not a JSON object")
            frame.update(extra)
        elif args:
            try:
                words = shlex.split(args)
            except ValueError as error:
                raise CommandError(str(error)) from None
            for word in words:
                key, sep, value = word.partition("=")
                if not sep or not key:
                    raise CommandError("%r is not key=value" % word)
                frame[key] = _value(value)
        return Command("send", json.dumps(frame))
    if name in ("file", "binary"):
        if not rest:
            raise CommandError("usage: /%s PATH" % name)
        return Command(name, rest)
    if name == "ping":
        return Command("ping", rest)
    if name == "close":
        code_text, _, reason = rest.partition(" ")
        code = 1000
        if code_text:
            if not code_text.isdigit() or not (code_text == "1000" or 3000 <= int(code_text) <= 4999):
                raise CommandError("a client may close with 1000 or a code from 3000 to 4999")
            code = int(code_text)
        return Command("close", code=code, reason=reason)
    if name in ("pretty", "raw", "help", "quit", "exit"):
        return Command("quit" if name == "exit" else name)
    raise CommandError("unknown command /%s (try /help)" % name)


def complete(text: str, routes=()) -> tuple[int, list[str]]:
    """Completion of the text before the cursor: (how many characters to replace, candidates).
    A slash command's name, or after `/action ` the API's route names ($-routes excluded)."""
    if not text.startswith("/") or text.startswith("//"):
        return 0, []
    if " " not in text:
        word = text[1:]
        return len(text), ["/%s%s" % (name, " " if args else "") for name, args in COMMANDS.items()
                           if name.startswith(word)]
    if text.startswith("/action ") and " " not in text[len("/action "):].lstrip():
        word = text[len("/action "):].lstrip()
        return len(word), sorted(r for r in dict.fromkeys(routes) if not r.startswith("$") and r.startswith(word))
    return 0, []


# -- the session ----------------------------------------------------------------------
@dataclass
class Options:
    url: str
    headers: list = field(default_factory=list)
    subprotocols: list = field(default_factory=list)
    origin: str | None = None
    connect_timeout: float = 10.0
    ping_interval: float | None = None
    reconnect: bool = False
    sends: list = field(default_factory=list)
    wait: float | None = None
    count: int | None = None
    ssl: object = None
    interactive: bool = False
    read_stdin: bool = False


class Session:
    """One `wsctl connect` run: connect (and reconnect), send, receive, report to `view`."""

    def __init__(self, options: Options, view):
        self.options = options
        self.view = view
        self.received = 0
        self.exit_code = ExitStatus.OK
        self.user_closed = False
        self.refused_input = False  # a line read from stdin was over the message limit (and not sent)
        self.done = asyncio.Event()
        self.stop = asyncio.Event()  # Ctrl-C (SIGINT) or the prompt's Ctrl-C/Ctrl-D: close with 1000
        self._main = None

    def request_stop(self) -> None:
        """The first Ctrl-C closes the connection normally (1000, the closing note); a second one,
        while that close is still under way, gives up at once."""
        if self.stop.is_set() and self._main is not None:
            self._main.cancel()
        self.stop.set()

    async def run(self) -> ExitStatus:
        loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        # Ctrl-C, and a terminal closing (SIGHUP) or a polite kill (SIGTERM): close with 1000.
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        try:
            for signum in signals:
                loop.add_signal_handler(signum, self.request_stop)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or not POSIX
            pass
        try:
            code = await self._run()
            return ExitStatus.USAGE if code == ExitStatus.OK and self.refused_input else code
        finally:
            for signum in signals:
                try:
                    loop.remove_signal_handler(signum)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass

    async def _run(self) -> ExitStatus:
        attempt = 0
        while True:
            opened = await self._connect_once()
            if not self.options.reconnect or self.user_closed or self.done.is_set() or self.stop.is_set() \
                    or self.exit_code == ExitStatus.REFUSED:
                return self.exit_code
            attempt = 0 if opened else attempt + 1
            delay = min(30.0, 0.5 * 2 ** attempt)
            self.view.info("reconnecting in %.1f s (attempt %d)" % (delay, attempt + 1))
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
                return self.exit_code
            except asyncio.TimeoutError:
                pass

    async def _connect_once(self) -> bool:
        options = self.options
        opening = asyncio.ensure_future(websockets.connect(
            options.url, additional_headers=options.headers or None,
            subprotocols=options.subprotocols or None, origin=options.origin,
            open_timeout=options.connect_timeout, ping_interval=options.ping_interval,
            ping_timeout=options.ping_interval, ssl=options.ssl, max_size=4 * 2 ** 20,
            user_agent_header="wsctl-connect", close_timeout=5))
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({opening, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            self.view.info("interrupted before the connection opened")
            self.exit_code = ExitStatus.ERROR
            return False
        try:
            connection = opening.result()
        except InvalidStatus as error:
            status = error.response.status_code
            self.view.error("handshake refused: HTTP %d %s" % (status, HANDSHAKE_MEANINGS.get(status, "")),
                            status=status)
            self.exit_code = ExitStatus.REFUSED
            return False
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as error:
            self.view.error("cannot connect to %s: %s" % (_redact(options.url), error or type(error).__name__))
            self.exit_code = ExitStatus.ERROR
            return False
        self.exit_code = ExitStatus.OK
        self.view.opened(_redact(options.url), connection.subprotocol)
        reader = asyncio.create_task(self._read(connection))
        writer = asyncio.create_task(self._write(connection))
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({reader, writer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                await self._close(connection, 1000, "")
                await reader
        finally:
            for task in (writer, stopper, reader):
                task.cancel()
            # Wait for the writer: an interactive prompt puts the terminal back as it ends.
            await asyncio.gather(writer, stopper, reader, return_exceptions=True)
        if writer.done() and not writer.cancelled():
            error = writer.exception()
            if error is not None and not isinstance(error, ConnectionClosed):
                raise error
        return True

    async def _read(self, connection) -> None:
        try:
            async for message in connection:
                self.received += 1
                self.view.received(message)
                if self.options.count is not None and self.received >= self.options.count:
                    self.done.set()
                    await self._close(connection, 1000, "")
                    break
        except ConnectionClosed:
            pass
        protocol = connection.protocol  # websockets' sans-I/O state: what each side sent
        received, sent = protocol.close_rcvd, protocol.close_sent
        if received is None:
            by, code, reason = "network", 1006, ""
        elif protocol.close_rcvd_then_sent:
            by, code, reason = "server", received.code, received.reason
        else:
            by, code, reason = "client", (sent or received).code, (sent or received).reason
        self.view.closed(code, reason, by)
        if by == "network" or (by == "server" and code not in NORMAL_CLOSES):
            self.exit_code = ExitStatus.CLOSED_ABNORMALLY

    async def _close(self, connection, code: int, reason: str) -> None:
        self.user_closed = True
        await connection.close(code, reason)

    async def _send(self, connection, message: str | bytes) -> int:
        """One message, in frames of at most 32 KB (its size is checked before: check_message); returns
        how many frames it took."""
        frames = fragments(message)
        await connection.send(frames[0] if len(frames) == 1 else frames)
        self.view.sent(message)
        return len(frames)

    async def _write(self, connection) -> None:
        for message in self.options.sends:
            await self._send(connection, message)
        if self.options.interactive:
            await self._interactive(connection)
            return
        if self.options.read_stdin:
            number = 0
            while True:
                line = await _blocking(sys.stdin.readline)
                if not line:
                    break
                number += 1
                line = line.rstrip("\r\n")
                if not line:
                    continue
                try:
                    await self._send(connection, check_message(line, "line %d" % number))
                except MessageTooBig as error:
                    self.view.error(str(error))
                    self.refused_input = True
        await self._linger()

    async def _linger(self) -> None:
        """After the last send: wait --wait seconds, or for --count frames, or for the close."""
        if self.options.count is not None and self.options.wait is None:
            await self.done.wait()
            return
        try:
            await asyncio.wait_for(self.done.wait(), self.options.wait if self.options.wait is not None else 1.0)
        except asyncio.TimeoutError:
            pass

    async def _interactive(self, connection) -> None:
        while True:
            try:
                line = await self.view.prompt()
            except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: close with 1000
                await self._close(connection, 1000, "")
                return
            try:
                command = parse_line(line)
            except CommandError as error:
                self.view.info(str(error))
                continue
            if command is None:
                continue
            if command.kind in ("send", "file", "binary"):
                try:
                    message = check_message(command.data) if command.kind == "send" else \
                        read_message_file(command.data, binary=command.kind == "binary")
                except CommandError as error:
                    self.view.info(str(error))
                    continue
                frames = await self._send(connection, message)
                if command.kind != "send":
                    self.view.info("sent %s: %d bytes%s in %d frame(s)" % (
                        command.data, message_bytes(message), " (binary)" if command.kind == "binary" else "",
                        frames))
            elif command.kind == "ping":
                started = time.perf_counter()
                waiter = await connection.ping(command.data or None)
                try:
                    await asyncio.wait_for(waiter, 10)
                    self.view.info("pong in %.1f ms" % ((time.perf_counter() - started) * 1000))
                except asyncio.TimeoutError:
                    self.view.info("no pong within 10 s")
            elif command.kind == "close":
                await self._close(connection, command.code, command.reason)
                return
            elif command.kind in ("pretty", "raw"):
                self.view.mode = command.kind if self.view.mode != command.kind else "compact"
                self.view.info({"compact": "one frame a line (compact JSON)", "pretty": "JSON frames pretty-printed",
                                "raw": "frames shown exactly as received"}[self.view.mode])
            elif command.kind == "help":
                self.view.info(HELP)
            elif command.kind == "quit":
                await self._close(connection, 1000, "")
                return


async def _blocking(read):
    """Run a blocking read (input(), stdin.readline) on a daemon thread. Not the loop's
    executor: asyncio.run waits for that executor's threads at exit, so a read still
    pending when the server closes the connection would keep the process alive until
    the user pressed Enter (or the pipe closed)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome, value):
        if not future.done():
            (future.set_result if outcome == "result" else future.set_exception)(value)

    def work():
        try:
            outcome, value = "result", read()
        except BaseException as error:  # EOFError at the prompt, mostly
            outcome, value = "error", error
        try:
            loop.call_soon_threadsafe(settle, outcome, value)
        except RuntimeError:  # the session is over and its loop closed
            pass

    threading.Thread(target=work, name="wsctl-input", daemon=True).start()
    return await future


def _redact(url: str) -> str:
    """Never print a token or a signature that is in the URL."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    hidden = [(k, "***" if k.lower() in ("token", "x-amz-signature", "x-amz-security-token", "x-amz-credential")
               else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(hidden, safe="*")))
