"""Execution environments: one worker process each, serving one invocation at a time
through the Runtime API, reused warm, replaced after a timeout or a crash.

An environment's life is a Lifecycle (lifecycle.py: STARTING, WAITING on /next, BUSY,
ANSWERED, DEAD, with the Runtime API's refusals as values). The Runtime API's handlers
(runtime_api.py) drive it from the runtime's side; `invoke` and the process's end from ours.
"""

import asyncio
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from ...apispec import FunctionSpec
from ...limits import INIT_TIMEOUT_S
from ..procs import tied_to_parent
from . import errors, logs
from .lifecycle import Lifecycle


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    timeout_s: float
    invoked_arn: str
    deadline_ms: int = 0  # set when an environment takes the event (the wait for one is not billed)
    trace_id: str = ""
    client_context: str | None = None
    future: asyncio.Future = None
    log: list = field(default_factory=list)  # the invocation's log lines (for Invoke's LogType=Tail)


class Environment:
    def __init__(self, spec: FunctionSpec, generation: int, sink):
        self.spec = spec
        self.generation = generation
        self.id = uuid.uuid4().hex
        self.sink = sink  # sink(function_name, line, invocation | None)
        self.process: asyncio.subprocess.Process | None = None
        self.site = None  # the Runtime API listener for this environment
        self.life = Lifecycle()
        self._deliver = None  # the waiting /next's callback: deliver(invocation, or None when going away)
        self._pending: Invocation | None = None  # an event offered before the runtime asked for it
        self._back: list = []  # callbacks waiting for the runtime to be back on /next (or dead)
        self._hwm, self._hwm_read = 0, 0.0  # Max Memory Used, and when it was read
        self.current: Invocation | None = None
        self.ready: asyncio.Future | None = None  # initialisation's end: None, or its failure
        self.init_error: errors.FunctionError | None = None  # what the runtime reported on /init/error
        self.init_ms: float | None = None
        self.init_reported = False  # the first invocation's REPORT carries the Init Duration
        self.started_at = 0.0
        self.returncode: int | None = None
        self.invocations = 0
        self._tasks: list = []

    @property
    def dead(self) -> bool:
        return self.life.dead

    @property
    def at_next(self) -> bool:
        """The runtime waits on /next with no event (its lifecycle's WAITING phase)."""
        return self.life.at_next

    # -- process ---------------------------------------------------------------------------
    async def start(self, command: list[str], env: dict, cwd: str) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.started_at = time.perf_counter()
        try:
            argv, preexec = tied_to_parent(command, env.get("PATH"))
            transport, output = await loop.subprocess_exec(
                lambda: _Output(self), *argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
        except OSError as error:
            self.life.die()
            failure = errors.FunctionError("Runtime.InvalidEntrypoint", "RequestId: %s Error: %s" % (
                "", "cannot start %s: %s" % (command[0], error.strerror)))
            self.ready.set_result(failure)
            return
        self.process = _Process(transport, output)
        self._tasks = [asyncio.create_task(self._watch())]

    def emit(self, line: str, invocation: "Invocation | None") -> None:
        if invocation is not None:
            invocation.log.append(line)
        self.sink(self.spec.name, line, invocation)

    async def _watch(self) -> None:
        self.returncode = await self.process.wait()
        self._gone()
        failure = self.init_error or errors.exited(self.current.request_id if self.current else "", self.returncode)
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(failure)
        if self.current is not None and not self.current.future.done():
            # Give the pipes a moment so the crash's last lines come before REPORT.
            await asyncio.sleep(0.01)
            if not self.current.future.done():
                self.current.future.set_exception(errors.exited(self.current.request_id, self.returncode))

    def kill(self) -> None:
        """Lambda's reset: the runtime is killed (its /tmp would survive; ours is the host's)."""
        self._gone()
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the runtime and anything it started
            except (ProcessLookupError, PermissionError):
                pass

    async def stop(self, grace: float = 2.0) -> None:
        """Shutdown: SIGTERM, then SIGKILL after `grace` seconds, as Lambda does."""
        self._gone()
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except asyncio.TimeoutError:
                self.kill()
                await self.process.wait()
        for task in self._tasks:
            if not task.done():
                try:
                    await asyncio.wait_for(task, 1.0)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass
        if self.site is not None:
            self.site.close()
            self.site = None
        if self.process is not None:
            self.process.transport.close()

    def max_memory_mb(self) -> int:
        """REPORT's Max Memory Used: the process's high-water mark (VmHWM), read at most once a second
        (a read costs about 20 us, and every invocation's REPORT asks)."""
        now = time.monotonic()
        if now - self._hwm_read < 1.0:
            return self._hwm
        self._hwm_read = now
        try:
            with open("/proc/%d/status" % self.process.pid) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        self._hwm = max(1, int(line.split()[1]) // 1024)
                        break
        except (OSError, ValueError, AttributeError):
            pass
        return self._hwm

    def _gone(self) -> None:
        """Dead: a /next still waiting is answered (500), and whoever waits on the environment wakes."""
        self.life.die()
        deliver, self._deliver = self._deliver, None
        if deliver is not None:
            deliver(None)
        self._came_back()

    def _came_back(self) -> None:
        back, self._back = self._back, []
        for callback in back:
            callback()

    # -- the Runtime API's side ---------------------------------------------------------------
    def wait_next(self, deliver) -> None:
        """The runtime waits on /next (its lifecycle said yes): `deliver(invocation)` when an event
        comes, `deliver(None)` if the environment goes away first. A callback, not a task: this is
        every invocation's path."""
        self.runtime_ready()
        if self._pending is not None:
            invocation, self._pending = self._pending, None
            self._hand_out(deliver, invocation)
            return
        self._deliver = deliver
        self._came_back()

    def cancel_next(self) -> None:
        """The runtime's connection dropped while it waited (a runtime may ask again on a new one)."""
        if self._deliver is not None:
            self._deliver = None
            self.life.left_next()

    def _hand_out(self, deliver, invocation: "Invocation") -> None:
        self.life.hand_out(invocation.request_id)
        deliver(invocation)

    def offer(self, invocation: "Invocation") -> None:
        """An event for this environment: to the waiting /next, or kept for the next one."""
        deliver, self._deliver = self._deliver, None
        if deliver is not None:
            self._hand_out(deliver, invocation)
        else:
            self._pending = invocation

    def runtime_ready(self) -> None:
        """The runtime asked for its first event: initialisation is over."""
        if self.init_ms is None:
            self.init_ms = (time.perf_counter() - self.started_at) * 1000
            if not self.ready.done():
                self.ready.set_result(None)

    # -- the caller's side --------------------------------------------------------------------------
    async def wait_ready(self) -> None:
        try:
            failure = await asyncio.wait_for(asyncio.shield(self.ready), INIT_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.kill()
            raise errors.FunctionError("Sandbox.Timedout", "RequestId: %s Error: Init timed out after %.2f seconds"
                                       % ("", INIT_TIMEOUT_S)) from None
        if failure is not None:
            raise failure

    def run(self, invocation: Invocation) -> asyncio.Future:
        """Start one invocation: its future ends with the response payload or a FunctionError.
        Callbacks, no task: the START line now, the event to the runtime, a timer for the
        timeout, and END/REPORT when the future ends."""
        loop = asyncio.get_running_loop()
        invocation.future = loop.create_future()
        invocation.deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
        self.current = invocation
        self.invocations += 1
        started = time.perf_counter()
        cold = not self.init_reported
        self.init_reported = True
        self.emit(logs.start_line(invocation.request_id), invocation)
        timer = loop.call_later(max(0.0, invocation.deadline_ms / 1000 - time.time()), self._timed_out, invocation,
                                started)
        invocation.future.add_done_callback(lambda future: self._ended(invocation, future, started, cold, timer))
        self.offer(invocation)
        return invocation.future

    def _timed_out(self, invocation: Invocation, started: float) -> None:
        if invocation.future.done():
            return
        self.kill()  # Lambda resets the environment: the next invocation is a cold start
        self.emit(logs.timeout_line(invocation.request_id, time.perf_counter() - started), invocation)
        invocation.future.set_exception(errors.timed_out(invocation.request_id, invocation.timeout_s))

    def _ended(self, invocation: Invocation, future: asyncio.Future, started: float, cold: bool, timer) -> None:
        timer.cancel()
        if self.process is not None:  # what the function printed before it answered is its log, before END
            self.process.output.drain()
        duration = (time.perf_counter() - started) * 1000
        failure = None if future.cancelled() else future.exception()
        outcome, timeout_ms = None, None
        if isinstance(failure, errors.FunctionError):
            if failure.timed_out:
                outcome, timeout_ms = "timeout", int(invocation.timeout_s * 1000)
            elif failure.error_type == "Runtime.ExitError":
                outcome = "error\tError Type: Runtime.ExitError"
        self.emit(logs.end_line(invocation.request_id), invocation)
        self.emit(logs.report_line(invocation.request_id, duration, self.spec.memory_mb, self.max_memory_mb(),
                                   self.init_ms if cold else None, timeout_ms, outcome), invocation)
        if self.current is invocation:
            self.current = None
        self._pending = None  # an event the runtime never took (it died first)

    def when_back(self, callback) -> None:
        """`callback()` once the runtime is back on /next (an invocation ends there for Lambda) or the
        environment is dead: a Node runtime may answer and then exit."""
        if self.at_next or self.dead:
            callback()
        else:
            self._back.append(callback)


class _Output(asyncio.SubprocessProtocol):
    """The runtime's stdout and stderr, one log line per line, emitted as the bytes arrive (no task
    per stream). `drain()` reads what the pipes already hold: a function writes its log before it
    answers, so its lines belong before the invocation's END however the loop orders the two."""

    def __init__(self, environment: "Environment"):
        self.environment = environment
        self.partial = {1: b"", 2: b""}
        self.transport = None
        self.exited = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        *lines, self.partial[fd] = (self.partial[fd] + data).split(b"\n")
        for line in lines:
            self.environment.emit(line.decode("utf-8", "replace"), self.environment.current)

    def pipe_connection_lost(self, fd: int, exc) -> None:
        rest, self.partial[fd] = self.partial.get(fd, b""), b""
        if rest:
            self.environment.emit(rest.decode("utf-8", "replace"), self.environment.current)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(self.transport.get_returncode())

    def drain(self) -> None:
        for fd in (1, 2):
            pipe = self.transport.get_pipe_transport(fd) if self.transport is not None else None
            source = pipe.get_extra_info("pipe") if pipe is not None and not pipe.is_closing() else None
            if source is None:
                continue
            while True:
                try:
                    data = os.read(source.fileno(), 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self.pipe_data_received(fd, data)


class _Process:
    """The runtime's process, as the environment asks about it."""

    def __init__(self, transport, output: _Output):
        self.transport, self.output = transport, output
        self.pid = transport.get_pid()

    @property
    def returncode(self) -> int | None:
        return self.transport.get_returncode()

    async def wait(self) -> int:
        return await asyncio.shield(self.output.exited)

