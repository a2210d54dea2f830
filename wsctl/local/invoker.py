"""Running a handler from source as Lambda would: off the event loop, with a context
object and a timeout, reloaded when its files change.

Handlers run in a thread pool so a slow one never stalls other connections.
A source watcher marks the module stale when any .py file under the watched
folder changes; the next invocation re-imports it (a fresh "cold start"),
while invocations already running finish on the code they started with.
"""

import asyncio
import importlib
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import WsctlError

WATCH_INTERVAL = 0.5


class HandlerFailed(Exception):
    """The handler raised (or could not be imported); `error` is what it raised."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class HandlerTimedOut(Exception):
    pass


class LambdaContext:
    """The attributes and method of Lambda's Python context object that handlers use."""

    def __init__(self, function_name: str, region: str, memory_mb: int, timeout_s: float):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:%s:123456789012:function:%s" % (region, function_name)
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/aws/lambda/" + function_name
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _snapshot(folder: Path) -> dict:
    found = {}
    for path in folder.rglob("*.py"):
        try:
            found[str(path)] = path.stat().st_mtime_ns
        except OSError:
            pass
    return found


class Invoker:
    def __init__(self, source_dir: Path, handler: str, watch_dir: Path, function_name: str, region: str,
                 timeout_s: float = 29.0, workers: int = 64, memory_mb: int = 256):
        module, _, function = handler.rpartition(".")
        if not module or not function:
            raise WsctlError("--handler must be module.function (e.g. app.handler), not %r" % handler)
        self.source_dir, self.module_name, self.function_name = Path(source_dir).resolve(), module, function
        self.watch_dir = Path(watch_dir).resolve()
        self.lambda_name, self.region, self.timeout_s, self.memory_mb = function_name, region, timeout_s, memory_mb
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda")
        self._lock = threading.Lock()
        self._function = None
        self._stale = True
        self._files = _snapshot(self.watch_dir)
        self._stop = threading.Event()
        self.reloads = 0

    # -- loading ------------------------------------------------------------
    def load(self):
        """Import (or re-import) the handler; raises what the import raised."""
        with self._lock:
            if not self._stale and self._function is not None:
                return self._function
            if str(self.source_dir) not in sys.path:
                sys.path.insert(0, str(self.source_dir))
            for name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None)
                if path and Path(path).resolve().is_relative_to(self.watch_dir):
                    del sys.modules[name]
            importlib.invalidate_caches()
            module = importlib.import_module(self.module_name)
            function = getattr(module, self.function_name, None)
            if not callable(function):
                raise AttributeError("%s has no function %s" % (self.module_name, self.function_name))
            self._function, self._stale = function, False
            self.reloads += 1
            return function

    def check_loadable(self) -> None:
        """At start-up: a handler that cannot be imported is a one-line error, not a traceback later."""
        if not self.source_dir.is_dir():
            raise WsctlError("--source %s is not a folder" % self.source_dir)
        try:
            self.load()
        except Exception as error:
            raise WsctlError("cannot load handler %s.%s from %s: %s: %s" % (
                self.module_name, self.function_name, self.source_dir, type(error).__name__, error)) from None

    def start_watching(self) -> None:
        threading.Thread(target=self._watch, name="source-watcher", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            files = _snapshot(self.watch_dir)
            if files != self._files:
                self._files = files
                self._stale = True

    # -- invoking ------------------------------------------------------------------
    def _call(self, event: dict, timeout_s: float):
        try:
            function = self.load()
        except Exception as error:  # Lambda's Runtime.ImportModuleError
            traceback.print_exc()
            raise HandlerFailed(error) from None
        try:
            return function(event, LambdaContext(self.lambda_name, self.region, self.memory_mb, timeout_s))
        except Exception as error:
            if str(error) != "Unauthorized":  # an authorizer's normal refusal is not a crash
                traceback.print_exc()
            raise HandlerFailed(error) from None

    async def invoke(self, event: dict, timeout_s: float | None = None):
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self._call, event, timeout_s)
        try:
            async with asyncio.timeout(timeout_s):  # lighter than wait_for: no extra task per call
                return await future
        except TimeoutError:
            raise HandlerTimedOut() from None  # the thread runs on; its result is dropped, as on Lambda

    def close(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
