"""Fixtures that run the real local emulator (`wsctl local up`) in a subprocess.

Tests talk to it over real sockets: `websockets` clients on the ws:// URL and
boto3's apigatewaymanagementapi client on the management endpoint. The
session-wide `emulator` is shared (use unique user ids per test); tests that
need other options start their own with `start_emulator`.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from lambda_src import jwts
from wsctl.targets.emulator import find_state, state_path

ROOT = Path(__file__).resolve().parents[2]
# One copy of the AWS SDKs Lambda's runtimes provide (the JavaScript SDK v3 and v2, boto3) for every
# emulator and Lambda service of this test session (per process: xdist-safe), installed on first use.
SDK_CACHE = tempfile.mkdtemp(prefix="wsctl-test-sdks-")


def _clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WSCTL_"))}
    env.update(WSCTL_HOME=str(home), AWS_EC2_METADATA_DISABLED="true", NO_COLOR="1", PYTHONUNBUFFERED="1")
    env["WSCTL_SDK_CACHE"] = SDK_CACHE  # npm and pip install the SDKs once per test session
    return env


class Emulator:
    """One running `wsctl local up`, and helpers to talk to it."""

    def __init__(self, home: Path, args: list[str], stack: str = "app", env: dict | None = None, cwd: Path = ROOT):
        self.home = home
        self.stack = stack
        self.env = _clean_env(home)
        self.env.update(env or {})
        self.log_path = home / "emulator.log"
        home.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        # -P: as the `wsctl` command runs, without the working directory (a project's folder) on sys.path
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "wsctl", "--stack", stack, "local", "up", "--port", "0", *args],
            cwd=cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.state = self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("emulator exited with %s:\n%s" % (self.process.returncode, self.output()))
            state = find_state(self.process.pid, self.home)
            if state is not None:
                return state
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("emulator not ready in %ss:\n%s" % (timeout, self.output()))

    # -- coordinates ----------------------------------------------------------
    @property
    def state_file(self) -> Path:
        """Where this emulator's state is ($WSCTL_HOME/local/NAME/state.json)."""
        return state_path(self.state.name, self.home)

    @property
    def url(self) -> str:
        return self.state.ws_url

    @property
    def wss_url(self) -> str:
        return self.state.wss_url

    @property
    def endpoint(self) -> str:
        return self.state.management_endpoint

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def token(self, user: str, ttl: int = 600) -> str:
        return jwts.mint(self.state.keyset, self.stack, user, ttl)

    def url_for(self, user: str) -> str:
        return "%s?token=%s" % (self.url, self.token(user))

    # -- clients -----------------------------------------------------------------
    def management(self, endpoint: str | None = None, **config):
        import boto3
        from botocore.config import Config

        config.setdefault("retries", {"mode": "standard", "max_attempts": 1})
        return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint or self.endpoint,
                            region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
                            config=Config(**config))

    def lambda_client(self, **config):
        import boto3
        from botocore.config import Config

        config.setdefault("retries", {"mode": "standard", "max_attempts": 1})
        config.setdefault("read_timeout", 30)
        return boto3.client("lambda", endpoint_url=self.state.lambda_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local", config=Config(**config))

    def dynamodb(self):
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.state.dynamodb_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def view(self, name: str):
        """One of the emulator's own views (connections, functions), as `wsctl --local status` reads it."""
        import json
        import urllib.request

        with urllib.request.urlopen("%s/-/wsctl/%s" % (self.state.lambda_endpoint, name), timeout=10) as answer:
            return json.loads(answer.read())

    def wait_idle(self, timeout: float = 45.0, settle: float = 0.5) -> None:
        """Until the emulator has nothing in flight (no handshake, frame or $disconnect under way, no
        function busy or queued) on two looks `settle` seconds apart: a client that sent its request
        and left may not have been read yet at the first look."""
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise AssertionError("the emulator was still busy after %ss: %s %s" % (
                    timeout, self.view("gateway"), self.view("functions")))
            gateway = self.view("gateway")
            functions = self.view("functions")
            idle = not (gateway["handshakes"] or gateway["messages"] or gateway["disconnects"]
                        or any(f["busy"] or f["queued"] for f in functions))
            quiet = quiet + 1 if idle else 0
            time.sleep(settle if idle else 0.1)

    def registry(self):
        from lambda_src.registry import Registry

        return Registry(self.dynamodb(), self.state.table)

    def cli(self, *args, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run `wsctl --local ARGS` in a subprocess against this emulator."""
        return subprocess.run([sys.executable, "-m", "wsctl", "--local", *args], cwd=ROOT, env=self.env,
                              input=input, capture_output=True, text=True, timeout=timeout)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def unique(prefix: str = "u") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


@pytest.fixture(scope="session", autouse=True)
def sdk_cache():
    """Remove the session's SDK copies at the end (up to about 180 MB)."""
    yield SDK_CACHE
    import shutil

    shutil.rmtree(SDK_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """One emulator for the whole session: JWT auth, the bundled handler, broadcast allowed."""
    instance = Emulator(tmp_path_factory.mktemp("emulator"), ["--allow-client-broadcast"])
    yield instance
    instance.stop()


@pytest.fixture
def start_emulator(tmp_path):
    """Start emulators with other options; each is stopped at the end of the test."""
    started = []

    def start(*args: str, stack: str = "app") -> Emulator:
        instance = Emulator(tmp_path / ("emulator-%d" % len(started)), list(args), stack=stack)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
