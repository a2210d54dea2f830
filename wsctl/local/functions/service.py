"""The Lambda service: the functions of one API, their execution environments, the
Runtime API they talk to, and Invoke.

Each function has a pool of environments: an idle one is reused (warm), a new
one is started when invocations overlap, up to the function's limit; past it
an invocation waits for one to free up, and the log says so once per burst.
A change to a function's code retires its environments: the next invocation
starts cold on the new code.
"""

import asyncio
import json
import os
import sys
import threading
import uuid
from collections import deque
from pathlib import Path

from ...apispec import FunctionSpec
from ...limits import LOCAL_ACCOUNT_ID, LOCAL_KEY, LOCAL_REGION
from . import errors, logs, runtimes, sdks
from .environment import Environment, Invocation
from .runtime_api import RuntimeApi

WATCH_INTERVAL = 0.5
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": LOCAL_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_KEY, "AWS_SESSION_TOKEN": LOCAL_KEY}


def function_arn(region: str, name: str) -> str:
    return "arn:aws:lambda:%s:%s:function:%s" % (region, LOCAL_ACCOUNT_ID, name)


def print_sink(function: str, line: str, invocation) -> None:
    sys.stdout.write("[%s] %s\n" % (function, line))
    sys.stdout.flush()


class FunctionPool:
    def __init__(self, spec: FunctionSpec, service: "LambdaService"):
        self.spec = spec
        self.service = service
        self.idle: list[Environment] = []
        self.environments: set[Environment] = set()
        self.waiters: deque = deque()
        self.returning: set[Environment] = set()
        self.generation = 0
        self.queued_note = False
        self.cold_starts = 0
        self.invocations = 0

    async def _start_environment(self) -> Environment:
        service = self.service
        if service.closing:  # a stop under way: its environments are being stopped, start none
            raise errors.shutting_down()
        environment = Environment(self.spec, self.generation, service.sink)
        self.environments.add(environment)
        self.cold_starts += 1
        address = await service.runtime_api.listen(environment)
        env = runtimes.variables(
            self.spec, runtime_api=address, region=service.region,
            log_stream=logs.stream_name("$LATEST", environment.id), account_id=LOCAL_ACCOUNT_ID,
            endpoints=service.endpoints, credentials=service.credentials, ca_bundle=service.ca_bundle,
            extra_ca=service.extra_ca, sdk_path=service.sdk_path(self.spec), host_env=os.environ)
        try:
            command = runtimes.command(self.spec)
        except runtimes.RuntimeUnavailable as error:
            self._retire(environment)
            raise errors.FunctionError("Runtime.InvalidEntrypoint", str(error)) from None
        if self.spec.language == "provided" and not os.access(command[0], os.X_OK):
            self._retire(environment)
            raise errors.FunctionError("Runtime.InvalidEntrypoint", "RequestId: Error: Couldn't find valid "
                                       "bootstrap(s): [%s]" % command[0])
        await environment.start(command, env, str(self.spec.code_dir))
        if service.closing:  # the stop began while it was spawned: close() did not see its process
            environment.kill()
            raise errors.shutting_down()
        return environment

    async def prewarm(self) -> None:
        """One environment started ahead of any invocation (--warm-containers eager). Its init failure is
        logged as Lambda logs one, and the first invocation meets it as it would have."""
        if self.environments:
            return
        try:
            environment = await self._cold_start()
        except errors.FunctionError:
            return
        environment.init_reported = True  # as with provisioned concurrency: no invocation paid for its init
        self.release(environment)

    async def _cold_start(self) -> Environment:
        """A new environment, initialised; its init failure retires it and is raised."""
        environment = await self._start_environment()
        try:
            await environment.wait_ready()
        except errors.FunctionError:
            self._retire(environment)
            raise
        return environment

    def _warm(self) -> Environment | None:
        """An idle environment of the current code, if there is one."""
        while self.idle:
            environment = self.idle.pop()
            if not environment.dead and environment.generation == self.generation:
                return environment
            self._retire(environment)
        return None

    async def acquire(self) -> Environment:
        while True:
            if self.service.closing:  # waiting for an environment when the stop began: not run
                raise errors.shutting_down()
            environment = self._warm()
            if environment is not None:
                return environment
            if len(self.returning) > len(self.waiters):  # about to be free (within a millisecond): no cold start
                waiter = asyncio.get_running_loop().create_future()
                self.waiters.append(waiter)
                await waiter
                continue
            if len(self.environments) < self.spec.max_environments:
                return await self._cold_start()
            if not self.queued_note:
                self.queued_note = True
                self.service.sink(self.spec.name, "all %d execution environments are busy: invocations wait for "
                                  "one to free up (--max-environments)" % self.spec.max_environments, None)
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def release(self, environment: Environment) -> None:
        if not environment.dead and environment.generation == self.generation and not environment.at_next:
            # Answered, but its runtime has not asked for the next event yet (it may still exit,
            # as Node does after an unhandled rejection): it is handed out again once it does.
            self.returning.add(environment)
            environment.when_back(lambda: self._came_back(environment))
            return
        if environment.dead or environment.generation != self.generation:
            self._retire(environment)
        else:
            self.idle.append(environment)
        if not self.waiters:
            self.queued_note = False
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _came_back(self, environment: Environment) -> None:
        self.returning.discard(environment)
        self.release(environment)

    def _retire(self, environment: Environment) -> None:
        if environment in self.environments:
            self.environments.discard(environment)
            self.service.runtime_api.forget(environment)
            self.service.spawn(environment.stop())

    def code_changed(self) -> None:
        self.generation += 1
        for environment in list(self.idle):
            self.idle.remove(environment)
            self._retire(environment)

    def run_warm(self, invocation: Invocation) -> asyncio.Future | None:
        """The invocation's future when a warm environment takes it at once (no task, no wait), else None."""
        environment = self._warm()
        if environment is None:
            return None
        self.invocations += 1
        return self._run_on(environment, invocation)

    def _run_on(self, environment: Environment, invocation: Invocation) -> asyncio.Future:
        future = environment.run(invocation)
        future.add_done_callback(lambda _: self.release(environment))
        return future

    async def invoke(self, invocation: Invocation) -> bytes:
        """An invocation that waits for an environment: a free one, or a cold start."""
        self.invocations += 1
        return await self._run_on(await self.acquire(), invocation)

    def wake_waiters(self) -> None:
        """Every invocation waiting for an environment looks again (and, the service closing, fails)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def kill(self) -> None:
        for environment in list(self.environments):
            environment.kill()

    async def close(self, grace: float) -> None:
        self.wake_waiters()
        await asyncio.gather(*(e.stop(grace) for e in list(self.environments)), return_exceptions=True)
        self.environments.clear()
        self.idle.clear()

    @property
    def warm(self) -> int:
        return sum(1 for e in self.environments if not e.dead)

    @property
    def busy(self) -> int:
        """Environments running an invocation (or starting for one) now."""
        return self.warm - len(self.idle)

    @property
    def queued(self) -> int:
        """Invocations waiting for an environment to free up."""
        return len(self.waiters)


class LambdaService:
    def __init__(self, functions, home: Path, region: str = LOCAL_REGION, endpoints: dict | None = None,
                 sink=None, credentials: dict | None = None, ca_bundle: str | None = None,
                 sdk_paths: dict | None = None, watch: bool = False, extra_ca: str | None = None):
        self.specs = {f.name: f for f in functions}
        self.home = Path(home)
        self.region = region
        self.endpoints = dict(endpoints or {})  # service id suffix ("DYNAMODB", "" for all) -> URL
        self.sink = sink or print_sink
        self.credentials = dict(LOCAL_CREDENTIALS if credentials is None else credentials)
        self.ca_bundle = ca_bundle  # AWS_CA_BUNDLE: what botocore verifies against
        self.extra_ca = extra_ca  # NODE_EXTRA_CA_CERTS: added to Node's own roots
        self.sdk_paths = dict(sdk_paths or {})  # sdks.Sdk -> the folder its functions search
        self.runtime_api = RuntimeApi()
        self.pools = {name: FunctionPool(spec, self) for name, spec in self.specs.items()}
        self.tasks: set = set()
        self.watch = watch
        self.closing = False  # a stop began: no environment starts, no queued invocation runs
        self._stop = threading.Event()
        self._loop = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        say = lambda text: self.sink("wsctl", text, None)  # noqa: E731
        for sdk in dict.fromkeys(sdks.for_runtime(spec.runtime) for spec in self.specs.values()):
            if sdk is not None and sdk not in self.sdk_paths:
                self.sdk_paths[sdk] = str(await asyncio.to_thread(sdks.ensure, sdks.cache_root(self.home), sdk, say))
        if self.watch:
            threading.Thread(target=self._watch, name="code-watcher", daemon=True).start()

    def sdk_path(self, spec: FunctionSpec) -> str | None:
        return self.sdk_paths.get(sdks.for_runtime(spec.runtime))

    def spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def function_arn(self, name: str) -> str:
        return function_arn(self.region, name)

    async def invoke(self, name: str, payload: bytes, *, invoked_arn: str | None = None,
                     trace_id: str = "", client_context: str | None = None,
                     request_id: str | None = None, log: list | None = None) -> bytes:
        """Invoke a function synchronously; returns its response payload or raises FunctionError.
        KeyError: no such function."""
        pool = self.pools[name]
        invocation = Invocation(request_id=request_id or str(uuid.uuid4()), payload=payload,
                                timeout_s=pool.spec.timeout_s, invoked_arn=invoked_arn or self.function_arn(name),
                                trace_id=trace_id, client_context=client_context)
        if log is not None:
            invocation.log = log
        # A caller that stops waiting (API Gateway's 29 s) does not stop the function: it runs on
        # to its own timeout in its environment, which stays busy until then, as on Lambda.
        warm = pool.run_warm(invocation)
        if warm is not None:
            warm.add_done_callback(_consume)
            return await asyncio.shield(warm)
        task = asyncio.ensure_future(pool.invoke(invocation))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(_consume)
        return await asyncio.shield(task)

    async def prewarm(self) -> None:
        """An environment for every function before the first invocation (--warm-containers eager)."""
        await asyncio.gather(*(pool.prewarm() for pool in self.pools.values()))

    def invoker(self, name: str) -> "FunctionInvoker":
        return FunctionInvoker(self, name)

    # -- code changes ----------------------------------------------------------------------------------
    def _watch(self) -> None:
        snapshots = {name: _snapshot(spec.watch_dir or spec.code_dir) for name, spec in self.specs.items()}
        while not self._stop.wait(WATCH_INTERVAL):
            for name, spec in self.specs.items():
                current = _snapshot(spec.watch_dir or spec.code_dir)
                if current != snapshots[name]:
                    snapshots[name] = current
                    self._loop.call_soon_threadsafe(self._changed, name)

    def _changed(self, name: str) -> None:
        self.sink(name, "code changed: the next invocation starts a new environment", None)
        self.pools[name].code_changed()

    async def close(self, grace: float = 2.0) -> None:
        """Stop: invocations waiting for an environment fail at once (however many a burst queued,
        say thousands of $disconnects), running ones end with their environment (SIGTERM, SIGKILL
        after `grace` seconds), and no environment starts again."""
        self.closing = True
        self._stop.set()
        await asyncio.gather(*(pool.close(grace) for pool in self.pools.values()), return_exceptions=True)
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.runtime_api.close()

    def kill(self) -> None:
        """A forced stop: every environment SIGKILLed now, nothing queued runs (close() then finds
        nothing left to wait for)."""
        self.closing = True
        for pool in self.pools.values():
            pool.wake_waiters()
            pool.kill()


def _consume(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # a result nobody waits for any more is not an "unretrieved" error


WATCHED_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".json")


def _snapshot(folder: Path) -> dict:
    found = {}
    try:
        for path in folder.rglob("*"):
            if path.suffix in WATCHED_SUFFIXES and "node_modules" not in path.parts and \
                    "__pycache__" not in path.parts:
                try:
                    found[str(path)] = path.stat().st_mtime_ns
                except OSError:
                    pass
    except OSError:
        pass
    return found


class FunctionInvoker:
    """What the gateway calls: invoke(event dict) -> the decoded result, or raises FunctionError."""

    def __init__(self, service: LambdaService, name: str):
        self.service = service
        self.name = name

    async def invoke(self, event: dict):
        payload = await self.service.invoke(self.name, json.dumps(event).encode())
        try:
            return json.loads(payload) if payload else None
        except ValueError:
            return payload.decode("utf-8", "replace")
