"""Execution environments: one worker process each, serving one invocation at a time
through the Runtime API, reused warm, replaced after a timeout or a crash.

An environment's life is a Lifecycle (lifecycle.py: STARTING, WAITING on /next, BUSY,
ANSWERED, DEAD, with the Runtime API's refusals as values). The Runtime API's handlers
(runtime_api.py) drive it from the runtime's side; `invoke` and the process's end from ours.
"""

import asyncio
import os
import signal
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
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.current: Invocation | None = None
        self.ready: asyncio.Future | None = None  # initialisation's end: None, or its failure
        self.init_error: errors.FunctionError | None = None  # what the runtime reported on /init/error
        self.init_ms: float | None = None
        self.init_reported = False  # the first invocation's REPORT carries the Init Duration
        self.started_at = 0.0
        self.stopped = asyncio.Event()  # wakes a /next that waits on an environment being stopped
        self.at_next = asyncio.Event()  # set while the lifecycle is WAITING: wakes back_at_next
        self.returncode: int | None = None
        self.invocations = 0
        self._tasks: list = []

    @property
    def dead(self) -> bool:
        return self.life.dead

    @dead.setter
    def dead(self, value: bool) -> None:
        if value:
            self.life.die()

    # -- process ---------------------------------------------------------------------------
    async def start(self, command: list[str], env: dict, cwd: str) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.started_at = time.perf_counter()
        try:
            argv, preexec = tied_to_parent(command, env.get("PATH"))
            self.process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
                preexec_fn=preexec)
        except OSError as error:
            self.life.die()
            failure = errors.FunctionError("Runtime.InvalidEntrypoint", "RequestId: %s Error: %s" % (
                "", "cannot start %s: %s" % (command[0], error.strerror)))
            self.ready.set_result(failure)
            return
        self._tasks = [asyncio.create_task(self._pump(self.process.stdout)),
                       asyncio.create_task(self._pump(self.process.stderr)),
                       asyncio.create_task(self._watch())]

    async def _pump(self, stream) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            self.emit(line.decode("utf-8", "replace").rstrip("\n"), self.current)

    def emit(self, line: str, invocation: "Invocation | None") -> None:
        if invocation is not None:
            invocation.log.append(line)
        self.sink(self.spec.name, line, invocation)

    async def _watch(self) -> None:
        self.returncode = await self.process.wait()
        self.life.die()
        self.stopped.set()
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
        self.life.die()
        self.stopped.set()
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the runtime and anything it started
            except (ProcessLookupError, PermissionError):
                pass

    async def stop(self, grace: float = 2.0) -> None:
        """Shutdown: SIGTERM, then SIGKILL after `grace` seconds, as Lambda does."""
        self.life.die()
        self.stopped.set()
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
            await self.site.stop()
            self.site = None

    def max_memory_mb(self) -> int:
        try:
            with open("/proc/%d/status" % self.process.pid) as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return max(1, int(line.split()[1]) // 1024)
        except (OSError, ValueError, AttributeError):
            pass
        return 0

    # -- the Runtime API's side ---------------------------------------------------------------
    def runtime_ready(self) -> None:
        """The runtime asked for its first event: initialisation is over."""
        if self.init_ms is None:
            self.init_ms = (time.perf_counter() - self.started_at) * 1000
            if not self.ready.done():
                self.ready.set_result(None)

    # -- the caller's side --------------------------------------------------------------------------
    async def back_at_next(self) -> bool:
        """Wait until the runtime asks for its next event (an invocation ends there for Lambda) or
        dies; True when it is ready for another. A Node runtime may answer and then exit."""
        if self.at_next.is_set() or self.dead:
            return not self.dead
        stopped = asyncio.ensure_future(self.stopped.wait())
        ready = asyncio.ensure_future(self.at_next.wait())
        await asyncio.wait((stopped, ready), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        ready.cancel()
        return not self.dead

    async def wait_ready(self) -> None:
        try:
            failure = await asyncio.wait_for(asyncio.shield(self.ready), INIT_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.kill()
            raise errors.FunctionError("Sandbox.Timedout", "RequestId: %s Error: Init timed out after %.2f seconds"
                                       % ("", INIT_TIMEOUT_S)) from None
        if failure is not None:
            raise failure

    async def invoke(self, invocation: Invocation) -> bytes:
        """Run one invocation; returns the response payload or raises FunctionError."""
        loop = asyncio.get_running_loop()
        invocation.future = loop.create_future()
        invocation.deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
        self.current = invocation
        self.invocations += 1
        started = time.perf_counter()
        cold = not self.init_reported
        self.init_reported = True
        self.emit(logs.start_line(invocation.request_id), invocation)
        outcome = None
        timeout_ms = None
        try:
            self.queue.put_nowait(invocation)
            remaining = invocation.deadline_ms / 1000 - time.time()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    return await invocation.future
            except TimeoutError:
                self.kill()
                outcome = "timeout"
                timeout_ms = int(invocation.timeout_s * 1000)
                self.emit(logs.timeout_line(invocation.request_id, time.perf_counter() - started), invocation)
                raise errors.timed_out(invocation.request_id, invocation.timeout_s) from None
            except errors.FunctionError as failure:
                if failure.error_type == "Runtime.ExitError":
                    outcome = "error\tError Type: Runtime.ExitError"
                raise
        finally:
            duration = (time.perf_counter() - started) * 1000
            self.emit(logs.end_line(invocation.request_id), invocation)
            self.emit(logs.report_line(
                invocation.request_id, duration, self.spec.memory_mb, self.max_memory_mb(),
                self.init_ms if cold else None, timeout_ms, outcome), invocation)
            self.current = None
            while not self.queue.empty():  # an event the runtime never took (it died first)
                self.queue.get_nowait()
