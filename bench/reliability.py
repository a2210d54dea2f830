"""Shared by the reliability suites (bench/soak_churn.py, bench/faults.py) and their CI-sized
versions in tests/test_reliability.py: reading the emulator's registry and log, running the CLI
against it, a WebSocket client that records what it receives, and the registry's DynamoDB as a
process the suite can stop and start again on the same port.

The emulator, DynamoDB Local, tokens and RSS come from backends.py.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import ROOT, DynamoDBLocal, Emulator, free_port, stop_process  # noqa: E402

from lambda_src import keys  # noqa: E402

REGION = "us-east-1"
# AWS's two error frames (docs/apigw-websocket.md#integration-failures): the handler raised, or it did not answer in time.
ERROR_FRAMES = ("Internal server error", "Endpoint request timed out")


# -- the emulator and its backend ---------------------------------------------------------------
def start_stack(backend: str = "moto", dynamodb_endpoint: str | None = None, emulator_args=(),
                stack: str = "bench", home: Path | None = None):
    """(emulator, dynamodb_local or None): `wsctl local up` with embedded moto, a DynamoDB Local
    started here, or any endpoint given. Stop both with stop_stack."""
    ddb = None
    if dynamodb_endpoint is None and backend == "dynamodb-local":
        ddb = DynamoDBLocal()
        dynamodb_endpoint = ddb.start()
    elif backend not in ("moto", "dynamodb-local"):
        raise ValueError("backend must be moto or dynamodb-local, not %r" % backend)
    # Not --quiet: the suites count the handler's own log lines (-q drops them for the bundled API).
    emulator = Emulator(*emulator_args, dynamodb_endpoint=dynamodb_endpoint, stack=stack, home=home, quiet=False)
    try:
        emulator.start()
    except BaseException:
        if ddb:
            ddb.stop()
        raise
    return emulator, ddb


def stop_stack(emulator, ddb=None) -> None:
    try:
        emulator.stop(timeout=30)
    finally:
        if ddb:
            ddb.stop()


def run_on_stack(opts, emulator_args, stack: str, home, body, failures) -> dict:
    """Start the emulator (and backend) that `opts` names, run `body(emulator, opts, figures)`,
    stop them; the figures, with the options and `failures(figures)`."""
    from dataclasses import asdict

    emulator, ddb = start_stack(opts.backend, opts.dynamodb_endpoint, emulator_args, stack=stack, home=home)
    figures = {"backend": backend_name(emulator, ddb),
               "options": {k: v for k, v in asdict(opts).items() if k != "progress"}}
    try:
        asyncio.run(body(emulator, opts, figures))
    finally:
        stop_stack(emulator, ddb)
    figures["failures"] = failures(figures)
    return figures


def backend_name(emulator, ddb=None) -> str:
    if ddb:
        return "DynamoDB Local (in memory)"
    return "embedded moto" if emulator.state.backend == "moto" else \
        "external DynamoDB at %s" % emulator.state.dynamodb_endpoint


def dynamodb(endpoint: str, **config):
    import boto3
    from botocore.config import Config

    config.setdefault("retries", {"mode": "standard", "max_attempts": 3})
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(**config))


def registry_items(emulator) -> list[tuple[str, str]]:
    """(connection id, SK) of every item in the emulator's registry table, expired or not,
    read with a plain paginated Scan (not wsctl's reader, which is under test)."""
    client = dynamodb(emulator.state.dynamodb_endpoint, read_timeout=120)
    kwargs = {"TableName": emulator.state.table, "ProjectionExpression": "PK, SK"}
    found = []
    while True:
        answer = client.scan(**kwargs)
        found += [(keys.connection_id_of(i["PK"]["S"]), i["SK"]["S"]) for i in answer.get("Items", ())]
        if not answer.get("LastEvaluatedKey"):
            return found
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def registry_ids(emulator) -> tuple[set, set]:
    """(ids with a connection item, ids with any item: connection or room membership)."""
    items = registry_items(emulator)
    return {cid for cid, sk in items if sk == keys.CONN_SK}, {cid for cid, _ in items}


# -- the emulator's log (the handler prints one JSON line per invocation) --------------------------
class LogTail:
    """Reads the emulator's log as it grows: handler invocations by route and outcome, handler
    exceptions, tracebacks. `update()` reads what was appended since the last call."""

    def __init__(self, emulator):
        self.path = Path(emulator.log_path)
        self.offset = 0
        self.partial = b""
        self.routes: Counter = Counter()
        self.outcomes: Counter = Counter()  # "route outcome" (outcome before its first ':' or '=')
        self.exceptions: Counter = Counter()
        self.tracebacks = 0
        self.lines: list[dict] = []  # kept only when keep=True
        self.keep = False

    def skip_to_end(self) -> "LogTail":
        """Count only what the log says from now on."""
        self.offset = os.path.getsize(self.path)
        self.partial = b""
        return self

    def update(self) -> "LogTail":
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()  # an unfinished last line waits for the next update
        for raw in lines:
            if raw.startswith(b"[") and b"] " in raw[:80]:  # a function's line: "[function] text"
                raw = raw[raw.index(b"] ") + 2:]
            if raw.startswith(b'{"route": '):
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                route, outcome = line.get("route"), str(line.get("outcome", ""))
                self.routes[route] += 1
                self.outcomes["%s %s" % (route, re.split("[:=]", outcome, 1)[0])] += 1
                if outcome.startswith("exception"):
                    self.exceptions["%s %s" % (route, outcome)] += 1
                if self.keep:
                    self.lines.append(line)
            elif b"Traceback" in raw and not raw.startswith(b"[ERROR] Unauthorized:"):  # a refusal is no crash
                self.tracebacks += 1
        return self

    def errors(self) -> dict:
        return {"tracebacks": self.tracebacks, "exceptions": sum(self.exceptions.values()),
                "by_kind": dict(self.exceptions)}


# -- the CLI ------------------------------------------------------------------------------------------
def wsctl(emulator, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`wsctl --local ARGS` in a subprocess, against this emulator (its WSCTL_HOME)."""
    return subprocess.run([sys.executable, "-m", "wsctl", "--local", *args], cwd=ROOT, env=emulator.env,
                          capture_output=True, text=True, timeout=timeout)


def wsctl_json(emulator, *args: str, timeout: float = 600) -> tuple[int, dict, str]:
    """(exit code, the JSON document it printed, stderr) of `wsctl --local -o json ARGS`."""
    done = wsctl(emulator, "-o", "json", *args, timeout=timeout)
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else {}
    except ValueError:
        raise RuntimeError("wsctl %s printed no JSON (exit %d):\n%s\n%s" % (
            " ".join(args), done.returncode, done.stdout, done.stderr)) from None
    return done.returncode, document, done.stderr


def prune_until_checked(emulator, attempts: int = 8) -> list[dict]:
    """`wsctl --local prune`, again while it reports connections it could not check (throttled or
    failing GetConnection answers); returns every run's report."""
    reports = []
    for _ in range(attempts):
        code, report, stderr = wsctl_json(emulator, "prune")
        if "checked" not in report:
            raise RuntimeError("prune failed (exit %d): %s" % (code, stderr.strip()))
        reports.append(report)
        if not report["unknown"]:
            break
    return reports


# -- management API ------------------------------------------------------------------------------------
def lean_transport(emulator, concurrency: int = 64):
    """wsctl's own signed aiohttp transport to the emulator's @connections (async context manager)."""
    from botocore.credentials import Credentials

    from wsctl.fanout.transport import LeanTransport

    return LeanTransport(emulator.endpoint, Credentials("local", "local"), REGION, concurrency)


# -- WebSocket clients ------------------------------------------------------------------------------------
def ws_options(**extra) -> dict:
    options = {"ping_interval": None, "compression": None, "open_timeout": 60, "close_timeout": 10,
               "max_size": None}
    options.update(extra)
    return options


def refusal_status(error: BaseException) -> int | None:
    """The HTTP status of a refused WebSocket handshake (None for other failures)."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


class Client:
    """One connection that records every relayed message it receives (by message id) and answers
    requests one at a time: `request` sends a frame and returns the handler's answer, sending the
    frame again when API Gateway answers with one of its error frames (the handler raised or timed
    out, so nothing happened, or it is unknown what did)."""

    def __init__(self, name: str, user: str, room: str | None = None):
        self.name, self.user, self.room = name, user, room
        self.ws = None
        self.cid = None
        self.received: Counter = Counter()  # message id -> times received
        self.replies: asyncio.Queue | None = None
        self.reader = None
        self.connect_attempts = 0
        self.refusals: Counter = Counter()  # HTTP status of refused handshakes
        self.error_frames: Counter = Counter()

    async def open(self, url: str, attempts: int = 20) -> None:
        from websockets.asyncio.client import connect

        self.replies = asyncio.Queue()
        for attempt in range(attempts):
            self.connect_attempts += 1
            try:
                self.ws = await connect(url, **ws_options())
                break
            except Exception as error:
                status = refusal_status(error)
                self.refusals[status or type(error).__name__] += 1
                if status is None or status < 500 or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        self.reader = asyncio.create_task(self._read())
        answer = await self.request({"action": "whoami"})
        self.cid = answer["connectionId"]
        if self.room:
            answer = await self.request({"action": "join", "room": self.room})
            assert answer.get("type") == "joined", answer

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                try:
                    frame = json.loads(text)
                except ValueError:
                    frame = None
                if isinstance(frame, dict) and "mid" in frame:  # a wsctl broadcast payload
                    self.received[frame["mid"]] += 1
                elif isinstance(frame, dict) and frame.get("type") in ("message", "room", "broadcast"):
                    self.received[json.loads(frame["text"])["mid"]] += 1
                else:
                    self.replies.put_nowait(frame if isinstance(frame, dict) else {"raw": text})
        except Exception:  # the connection ended; whoever waits for a reply times out
            pass

    async def request(self, frame: dict, attempts: int = 8, timeout: float = 30) -> dict:
        """The handler's answer to `frame` (resent after an error frame, up to `attempts` times)."""
        data = json.dumps(frame)
        answer = None
        for _ in range(attempts):
            await self.ws.send(data)
            answer = await asyncio.wait_for(self.replies.get(), timeout)
            if answer.get("message") in ERROR_FRAMES and "type" not in answer:
                self.error_frames[answer["message"]] += 1
                continue
            return answer
        return answer

    def abort(self) -> None:
        """Lose the socket without a close frame (the server sees 1006)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 10)
            except asyncio.TimeoutError:
                self.reader.cancel()


# -- a DynamoDB to stop and start again ----------------------------------------------------------------------
class RestartableMoto:
    """moto's DynamoDB server (`python -m wsctl.local.motoserver`) on a fixed port: stop() kills it
    (its tables die with it), start() brings it back on the same port and recreates the registry
    table; freeze()/thaw() stop it answering (SIGSTOP) and let it go on (SIGCONT), tables kept."""

    def __init__(self, port: int | None = None, table: str | None = None):
        self.port = port or free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.table = table
        self.process = None

    def start(self, timeout: float = 30) -> float:
        started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "wsctl.local.motoserver", "127.0.0.1", str(self.port)],
                                        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError("moto server exited with %s" % self.process.returncode)
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        else:
            raise RuntimeError("moto server did not start on port %d" % self.port)
        if self.table:
            dynamodb(self.endpoint).create_table(**keys.table_definition(self.table))
        return time.monotonic() - started

    def stop(self) -> None:
        self.thaw()
        stop_process(self.process)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)


class RestartableDynamoDBLocal:
    """DynamoDB Local on a fixed port with its data in a folder (-dbPath), so a stop and a start
    keep the table and its items; freeze()/thaw() as RestartableMoto."""

    def __init__(self, db_path: Path, port: int | None = None):
        self.db_path = Path(db_path).resolve()  # DynamoDB Local runs in its own folder
        self.db_path.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.server = None

    def start(self, timeout: float = 60) -> float:
        self.server = DynamoDBLocal(port=self.port, db_path=str(self.db_path))
        self.server.start(timeout)
        return self.server.started_in

    @property
    def process(self):
        return self.server.process if self.server else None

    def stop(self) -> None:
        if self.server:
            self.thaw()
            self.server.stop()

    def freeze(self) -> None:
        os.kill(self.server.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.server and self.server.process and self.server.process.poll() is None:
            os.kill(self.server.pid, signal.SIGCONT)
