"""The emulator's DynamoDB (and SSM, for the signing key): moto's server in its own
process, or any DynamoDB-compatible endpoint the user runs."""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..aws import describe
from ..errors import WsctlError
from ..targets.local import LOCAL_CREDENTIALS
from .procs import tied_to_parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedMoto:
    """moto's DynamoDB/SSM server on loopback, in a child process."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.log_path = log_path
        self.process = None

    def start(self, timeout: float = 30.0) -> str:
        log = open(self.log_path, "wb")
        # -P and a folder of its own: `-m` would put the working directory (the user's project) first
        # on sys.path, and a project's vendored botocore/ or moto/ would then stand in for moto's own.
        argv, preexec = tied_to_parent([sys.executable, "-P", "-m", "wsctl.local.motoserver", "127.0.0.1",
                                        str(self.port)])
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=preexec, cwd=self.log_path.parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WsctlError("the embedded DynamoDB (moto) exited at start; see %s" % self.log_path)
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return self.endpoint
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise WsctlError("the embedded DynamoDB (moto) did not start within %ds; see %s" % (timeout, self.log_path))

    def kill(self) -> None:
        """A forced stop: no grace."""
        if self.process and self.process.poll() is None:
            self.process.kill()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def client(service: str, endpoint: str, region: str):
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10),
                        **LOCAL_CREDENTIALS)


def prepare_table(endpoint: str, table, region: str) -> str:
    """Create a table of the API (a TableSpec) if it is missing, with TTL on its attribute.
    Returns a note for the start-up panel when the server lacks TTL support."""
    ddb = client("dynamodb", endpoint, region)
    try:
        ddb.create_table(**table.create_args)
        ddb.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    except ddb.exceptions.ResourceInUseException:
        pass
    except Exception as error:
        raise WsctlError("cannot create table %s at %s: %s" % (table.name, endpoint, describe(error) or error)) \
            from None
    if not table.ttl_attribute:
        return ""
    try:
        status = ddb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"].get("TimeToLiveStatus")
        if status not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=table.name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": table.ttl_attribute})
    except Exception:
        return "this DynamoDB has no TTL support; readers filter expired items anyway"
    return ""


def put_keyset(endpoint: str, name: str, keyset: str, region: str) -> None:
    client("ssm", endpoint, region).put_parameter(Name=name, Value=keyset, Type="SecureString", Overwrite=True)
