"""The canonical-shaped chat project and its Python twin, under wsctl and under serverless-offline,
with DynamoDB Local behind both; and 10,000 idle connections on the three-function project.

Projects (tests/fixtures/projects/):
- simple-chat-node: three Node.js ES-module functions (onconnect, ondisconnect, sendmessage)
  writing the connection registry with the AWS SDK v3 (DynamoDBDocumentClient), sendmessage
  scanning the table and posting to every connection through @connections;
- python-chat: the same three functions in Python (boto3).

Servers, each started fresh, against one DynamoDB Local (bench/.scratch/ddb; warmed up first,
the project's table deleted and created again before each server):
- wsctl: `wsctl local up --template tests/fixtures/projects/<project>/template.yaml
  --dynamodb-endpoint URL`: the handlers unmodified, in wsctl's execution environments;
- serverless-offline 13.10 (serverless 3): a serverless.yml written into
  bench/.scratch/sls/svc-chat-<lang>/ with the same three functions and one websocket event per
  route, DynamoDB Local through AWS_ENDPOINT_URL_DYNAMODB; Node handlers --useInProcess (as
  vs_serverless_offline.py), Python handlers in its python child processes. The Node handlers
  find @aws-sdk/client-dynamodb and lib-dynamodb in bench/.scratch/sls/node_modules (installed
  on first run).

serverless-offline cannot run sendmessage as it is: both versions post to
"https://" + requestContext.domainName + "/" + requestContext.stage, and serverless-offline
sets domainName to "localhost" (stage "local") and serves @connections over plain http on its
websocket port (no TLS, no port 443), so every PostToConnection fails to connect and nothing
is relayed. The script shows it (an extra route, `sendmessageasis`, runs the file as shipped:
the message does not arrive; the error is quoted from serverless-offline's log, and from the
function's answer when invoked through serverless-offline's Lambda endpoint), and measures the
relay on serverless-offline with a copy of sendmessage whose only change is that the endpoint
comes from MGMT_ENDPOINT when that is set (http://127.0.0.1:<websocket port>). wsctl runs every
file as shipped (its https endpoint, with the CA bundle wsctl gives functions), and, relay
only, the same http copy (servers wsctl-node-http, wsctl-python-http): what https costs.

Figures per server: connects/s for N connections from cold (median of per-batch rates; each a
$connect PutItem; 16 handshakes in flight by default), the registry afterwards, RSS, CPU per
connect by process group; then, with R clients connected (the sample's sendmessage scans the
whole table, so R is small), relay latency: a sendmessage from one client until each other
client has the data (p50/p99 over every receipt), and until all R have it; CPU per message.

Idle capacity (wsctl only): 10,000 connections through $connect of python-chat (or the Node
project) with DynamoDB Local, held idle: gateway RSS, the execution environments' RSS summed
(the bootstrap processes are the emulator's children), DynamoDB Local's RSS, connect rate.

    python bench/projects_vs_sls.py                                   # full size
    python bench/projects_vs_sls.py --connections 200 --messages 50 --idle-connections 500   # CI size
    python bench/projects_vs_sls.py --phases idle                     # only the 10,000 idle connections
    python bench/projects_vs_sls.py --profile /tmp/prof               # + py-spy of the gateway (and the Python
                                                                      #   sendmessage) during the relay

Goals: wsctl's connects/s at least 1.5x serverless-offline's with the same handlers; gateway RSS
under 600 MB at 10,000 idle connections (environments reported apart). Relay latency: reported.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import (ROOT, CpuWatch, DynamoDBLocal, Emulator, PySpy, banner, cmdline, cpu_seconds, descendants,  # noqa: E402
                      exit_on_sigterm, free_port, group_cpu, group_cpu_per_op, median, npm_install, percentile,
                      raise_nofile, rss_mb, verdict, wait_quiet)
from loadgen import ConnectionPool, batch_rates  # noqa: E402
from vs_serverless_offline import SLS_DIR, _comm, ensure_serverless_offline  # noqa: E402

PROJECTS = ROOT / "tests" / "fixtures" / "projects"
# serverless 3 knows runtimes up to python3.11 (python-chat's template says python3.12; both wsctl and
# serverless-offline run it on the local Python 3.11 anyway); timeouts as in the templates (Node: none given).
PROJECT = {"node": {"folder": "simple-chat-node", "table": "simplechat_connections", "ext": "mjs",
                    "runtime": "nodejs20.x", "timeout": None},
           "python": {"folder": "python-chat", "table": "pychat_connections", "ext": "py", "runtime": "python3.11",
                      "timeout": 10}}
SDK_PACKAGES = ("@aws-sdk/client-dynamodb@3", "@aws-sdk/lib-dynamodb@3")
GOAL_CONNECT_RATIO = 1.5
GOAL_RSS_MB = 600
# The one change serverless-offline needs: the management endpoint from MGMT_ENDPOINT when set.
ENDPOINT_PATCH = {
    "node": ('new ApiGatewayManagementApiClient({ endpoint: "https://" + domainName + "/" + stage })',
             'new ApiGatewayManagementApiClient({ endpoint: process.env.MGMT_ENDPOINT ?? '
             '("https://" + domainName + "/" + stage) })'),
    "python": ('endpoint_url="https://%s/%s" % (request["domainName"], request["stage"])',
               'endpoint_url=os.environ.get("MGMT_ENDPOINT") or "https://%s/%s" % (request["domainName"], '
               'request["stage"])'),
}


# -- DynamoDB -----------------------------------------------------------------------------------------
def dynamodb(endpoint: str):
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


def reset_table(ddb, name: str, create: bool = True) -> None:
    try:
        ddb.delete_table(TableName=name)
        ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    except ddb.exceptions.ResourceNotFoundException:
        pass
    if create:
        ddb.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def count_items(ddb, name: str) -> int:
    total, key = 0, None
    while True:
        page = ddb.scan(TableName=name, Select="COUNT", **({"ExclusiveStartKey": key} if key else {}))
        total += page["Count"]
        key = page.get("LastEvaluatedKey")
        if not key:
            return total


def clear_items(ddb, name: str) -> int:
    removed, key = 0, None
    while True:
        page = ddb.scan(TableName=name, ProjectionExpression="connectionId", **({"ExclusiveStartKey": key} if key else {}))
        for item in page["Items"]:
            ddb.delete_item(TableName=name, Key={"connectionId": item["connectionId"]})
            removed += 1
        key = page.get("LastEvaluatedKey")
        if not key:
            return removed


def warm_dynamodb(ddb, items: int) -> float:
    """DynamoDB Local's JIT is slow for the first thousands of requests: put, scan and delete on a
    scratch table first, so the first server measured does not pay for it."""
    started = time.monotonic()
    reset_table(ddb, "bench_warmup")
    for index in range(items):
        ddb.put_item(TableName="bench_warmup", Item={"connectionId": {"S": "warm-%d" % index}})
        if index % 50 == 0:
            ddb.scan(TableName="bench_warmup", ProjectionExpression="connectionId", Limit=20)
    for index in range(items):
        ddb.delete_item(TableName="bench_warmup", Key={"connectionId": {"S": "warm-%d" % index}})
    reset_table(ddb, "bench_warmup", create=False)
    return time.monotonic() - started


# -- servers ----------------------------------------------------------------------------------------------
class WsctlProject:
    """The project as shipped; with http=True, a copy whose sendmessage takes its endpoint from
    MGMT_ENDPOINT (http://127.0.0.1:PORT/STAGE, no TLS), the change serverless-offline needs: it
    shows what the https PostToConnections of the shipped handler cost."""

    bounded = True  # at most --max-environments processes per function, however many invocations

    def __init__(self, lang: str, ddb_endpoint: str, args, http: bool = False):
        self.lang = lang
        self.http = http
        self.key = "wsctl-" + lang + ("-http" if http else "")
        template = PROJECTS / PROJECT[lang]["folder"] / "template.yaml"
        extra, port = [], 0
        self.copy = None
        if http:
            self.copy = Path(tempfile.mkdtemp(prefix="wsctl-bench-project-"))
            shutil.copytree(template.parent, self.copy / "project", ignore=shutil.ignore_patterns("__pycache__"))
            template = self.copy / "project" / "template.yaml"
            patch_sendmessage(template.parent / "sendmessage" / ("app." + PROJECT[lang]["ext"]), lang)
            stage = re.search(r"StageName:\s*(\S+)", template.read_text()).group(1)
            port = free_port()
            extra = ["--env", "MGMT_ENDPOINT=http://127.0.0.1:%d/%s" % (port, stage)]
        self.name = "wsctl local up --template %s/template.yaml%s" % (
            PROJECT[lang]["folder"], ", sendmessage posting over http (MGMT_ENDPOINT)" if http else "")
        self.emulator = Emulator("--template", str(template), *extra, *args.emulator_arg, port=port,
                                 dynamodb_endpoint=ddb_endpoint)

    def start(self) -> float:
        self.emulator.start(timeout=600)  # the first Node start installs the AWS SDK v3 (npm), once
        self.ws_url = self.emulator.url
        return self.emulator.ready_in

    def rss(self) -> dict:
        environments, count = self.emulator.environments_rss_mb()
        return {"gateway": rss_mb(self.emulator.pid), "%d environments" % count: environments,
                "moto (idle)": rss_mb(self.emulator.moto_pid())}

    def log(self) -> str:
        return self.emulator.output()

    def pids(self) -> dict:
        return {"gateway": [self.emulator.pid], "environments": self.emulator.environment_pids()}

    def sendmessage_pids(self) -> list:
        return [pid for pid in self.emulator.environment_pids()
                if _environ(pid).get("AWS_LAMBDA_FUNCTION_NAME") == "SendMessageFunction"]

    def stop(self):
        self.emulator.stop(timeout=15)
        if self.copy:
            shutil.rmtree(self.copy, ignore_errors=True)


def _environ(pid: int) -> dict:
    try:
        raw = Path("/proc/%d/environ" % pid).read_bytes()
    except OSError:
        return {}
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if b"=" in item)


def patch_sendmessage(handler: Path, lang: str) -> None:
    old, new = ENDPOINT_PATCH[lang]
    text = handler.read_text()
    if text.count(old) != 1:
        raise RuntimeError("%s changed: the endpoint line to patch is not there" % handler)
    handler.write_text(text.replace(old, new))


class SlsProject:
    def __init__(self, lang: str, ddb_endpoint: str, args):
        self.lang = lang
        self.key = "sls-" + lang
        self.name = "serverless-offline, %s" % ("Node handlers in process" if lang == "node" else "Python handlers")
        self.ddb_endpoint = ddb_endpoint
        self.process = None
        self.bounded = lang == "node"  # Python: one process per concurrent invocation, no limit

    def _service(self, port: int) -> Path:
        project = PROJECT[self.lang]
        folder = SLS_DIR / ("svc-chat-" + self.lang)
        shutil.rmtree(folder, ignore_errors=True)
        source = PROJECTS / project["folder"]
        for function in ("onconnect", "ondisconnect", "sendmessage"):
            shutil.copytree(source / function, folder / function, ignore=shutil.ignore_patterns("__pycache__"))
        # sendmessage as shipped, on a route of its own; the measured route gets the endpoint patch.
        shutil.copytree(source / "sendmessage", folder / "sendmessageasis", ignore=shutil.ignore_patterns("__pycache__"))
        patch_sendmessage(folder / "sendmessage" / ("app." + project["ext"]), self.lang)
        functions = "".join("""\
  %(name)s:
    handler: %(folder)s/app.handler
    events:
      - websocket:
          route: %(route)s
""" % {"name": name, "folder": folder_name, "route": route} for name, folder_name, route in (
            ("OnConnectFunction", "onconnect", "$connect"), ("OnDisconnectFunction", "ondisconnect", "$disconnect"),
            ("SendMessageFunction", "sendmessage", "sendmessage"),
            ("SendMessageAsShipped", "sendmessageasis", "sendmessageasis")))
        (folder / "serverless.yml").write_text("""\
service: wsbench-chat-%(lang)s
frameworkVersion: "3"
provider:
  name: aws
  runtime: %(runtime)s
  region: us-east-1
  stage: local%(timeout)s
  websocketsApiRouteSelectionExpression: $request.body.action
  environment:
    TABLE_NAME: %(table)s
    AWS_ENDPOINT_URL_DYNAMODB: %(ddb)s
    MGMT_ENDPOINT: http://127.0.0.1:%(port)d
    AWS_ACCESS_KEY_ID: local
    AWS_SECRET_ACCESS_KEY: local
    AWS_REGION: us-east-1
    AWS_DEFAULT_REGION: us-east-1
plugins:
  - serverless-offline
custom:
  serverless-offline:
    host: 127.0.0.1
    websocketPort: %(port)d
    httpPort: %(http)d
    lambdaPort: %(lambda)d
functions:
%(functions)s""" % {"lang": self.lang, "runtime": project["runtime"], "table": project["table"], "ddb": self.ddb_endpoint,
                    "port": port, "http": free_port(), "lambda": self.lambda_port, "functions": functions,
                    "timeout": "\n  timeout: %d" % project["timeout"] if project["timeout"] else ""})
        return folder

    def invoke_as_shipped(self) -> str:
        """Invoke sendmessage as shipped through serverless-offline's Lambda API, with the event its
        websocket route gives it, while clients are connected: its answer says why nothing arrives."""
        import urllib.request

        event = {"requestContext": {"routeKey": "sendmessageasis", "eventType": "MESSAGE", "connectionId": "x",
                                    "domainName": "localhost", "stage": "local", "apiId": "private"},
                 "body": json.dumps({"action": "sendmessageasis", "data": "as-shipped"}), "isBase64Encoded": False}
        request = urllib.request.Request(
            "http://127.0.0.1:%d/2015-03-31/functions/wsbench-chat-%s-local-SendMessageAsShipped/invocations"
            % (self.lambda_port, self.lang), data=json.dumps(event).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode("utf-8", "replace")
        except Exception as error:  # report, never fail the run on it
            return "(could not invoke it: %s)" % error
        try:
            answer = json.loads(text)
            if isinstance(answer, dict) and "body" in answer:
                text = "statusCode %s, body %s" % (answer.get("statusCode"), str(answer["body"]).splitlines()[0])
            elif isinstance(answer, dict) and "errorMessage" in answer:
                text = "%s: %s" % (answer.get("errorType"), answer["errorMessage"])
        except ValueError:
            pass
        return text[:400]

    def start(self) -> float:
        ensure_packages()
        port = free_port()
        self.lambda_port = free_port()
        folder = self._service(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", SLS_DEPRECATION_DISABLE="*",
                   AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_EC2_METADATA_DISABLED="true",
                   PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
        command = ["node", str(SLS_DIR / "node_modules/serverless/bin/serverless.js"), "offline", "start"]
        if self.lang == "node":
            command.append("--useInProcess")
        self.log_path = folder / "offline.log"
        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = started + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("serverless offline exited (%s):\n%s" % (self.process.returncode, self.log()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("serverless offline did not listen on %d within 120 s:\n%s" % (port, self.log()[-3000:]))
        self.ws_url = "ws://127.0.0.1:%d" % port
        return time.monotonic() - started

    def rss(self) -> dict:
        kids = descendants(self.process.pid)
        node = [p for p in [self.process.pid, *kids] if _comm(p) == "node"]
        python = [p for p in kids if _comm(p).startswith("python")]
        out = {"node": sum(rss_mb(p) or 0 for p in node)}
        if python:
            out["%d python children" % len(python)] = sum(rss_mb(p) or 0 for p in python)
        return out

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def pids(self) -> dict:
        kids = descendants(self.process.pid)
        return {"node": [p for p in [self.process.pid, *kids] if _comm(p) == "node"],
                "python children": [p for p in kids if _comm(p).startswith("python")]}

    def sendmessage_pids(self) -> list:
        return [pid for pid in self.pids()["python children"] if "sendmessage/app" in cmdline(pid)]

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def ensure_packages() -> None:
    ensure_serverless_offline()
    needed = [SLS_DIR / "node_modules/@aws-sdk/client-dynamodb/package.json",
              SLS_DIR / "node_modules/@aws-sdk/lib-dynamodb/package.json"]
    if not all(p.exists() for p in needed):
        npm_install(SLS_DIR, *SDK_PACKAGES)


def sdk_version(folder: Path) -> str:
    try:
        return json.loads((folder / "@aws-sdk/client-dynamodb/package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "?"


# -- measurements --------------------------------------------------------------------------------------------
def process_cpu(server) -> dict:
    return group_cpu(server.pids())


def cpu_used(server, before: dict, count: int) -> dict:
    return group_cpu_per_op(server.pids(), before, count)


def connects(server, ddb, table: str, args) -> dict:
    wait_quiet(timeout=args.quiet_wait)

    def urls(start, size):
        return [server.ws_url] * size

    pool = ConnectionPool(urls, args.connections, args.procs, args.inflight, timeout=60)
    cpu0 = process_cpu(server)
    watch = CpuWatch()
    t0, times, errors, client_cpu, wall = pool.run()
    machine = watch.stop()
    cpu_per_connect = cpu_used(server, cpu0, len(times))
    rates = batch_rates(t0, times, max(20, args.connections // 10))
    time.sleep(1.0)
    out = {"opened": len(times), "errors": errors, "rates": rates, "median": median(rates),
           "overall": len(times) / (times[-1] - t0) if times else 0.0, "machine": machine, "rss": server.rss(),
           "registered": count_items(ddb, table), "cpu_per_connect": cpu_per_connect}
    if not server.bounded:
        # serverless-offline's Python mode starts one python process per concurrent invocation:
        # N clients dropping at once would start N processes (about 1,000 here: the machine, shared
        # with others, was swamped the one time it ran). Stop it first; a fresh one does the relay.
        server.stop()
        pool.close()
        out["left_after_drain"] = None
        clear_items(ddb, table)
        server.start()
        return out
    pool.close()
    # The clients' sockets dropped at once: every $disconnect deletes its item. Wait for them.
    started = time.monotonic()
    left = out["registered"]
    while left and time.monotonic() - started < args.drain:
        time.sleep(0.5)
        left = count_items(ddb, table)
    out["drain_s"] = time.monotonic() - started
    out["left_after_drain"] = left
    if left:
        clear_items(ddb, table)
    return out


async def _relay(url: str, clients: int, messages: int, warmup: int, asis=None, measuring=None) -> dict:
    from websockets.asyncio.client import connect

    sockets = []
    for _ in range(clients):
        sockets.append(await connect(url, ping_interval=None, compression=None, max_queue=None))
    await asyncio.sleep(1.0)  # every $connect's PutItem is in before the first scan
    arrivals, done = {}, {}

    async def reader(index, ws):
        async for text in ws:
            at = time.perf_counter()
            seen = arrivals.setdefault(text, {})
            seen[index] = at
            if len(seen) == clients and text in done:
                done[text].set()

    readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
    out = {"to_other": [], "to_all": [], "lost": 0, "asis_arrived": None}
    try:
        if asis:  # sendmessage as shipped (serverless-offline only): through the route, then its answer
            await sockets[0].send(json.dumps({"action": "sendmessageasis", "data": "as-shipped"}))
            await asyncio.sleep(3.0)
            out["asis_arrived"] = len(arrivals.get("as-shipped", {}))
            out["asis_answer"] = await asyncio.to_thread(asis)
        for index in range(warmup + messages):
            if index == warmup and measuring:
                measuring()  # warm: the function's environments / processes exist now
            data = "relay-%d" % index
            done[data] = asyncio.Event()
            started = time.perf_counter()
            await sockets[0].send(json.dumps({"action": "sendmessage", "data": data}))
            try:
                await asyncio.wait_for(done[data].wait(), 15)
            except TimeoutError:
                out["lost"] += 1
                continue
            if index >= warmup:
                # every other client's receipt counts (the sample posts in its scan's order, so one
                # fixed receiver's place in that order would decide its figure)
                seen = arrivals[data]
                out["to_other"] += [(at - started) * 1000 for receiver, at in seen.items() if receiver != 0]
                out["to_all"].append((max(seen.values()) - started) * 1000)
    finally:
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
    return out


def relay(server, ddb, table: str, args) -> dict:
    wait_quiet(timeout=args.quiet_wait)
    clear_items(ddb, table)
    spy = None
    if args.profile and isinstance(server, WsctlProject):
        spy = PySpy(server.emulator.pid, os.path.join(args.profile, "relay-%s.txt" % server.key),
                    args.profile_seconds, rate=250, gil=True)
    cpu0 = process_cpu(server)
    function_spies = []

    def measuring():  # py-spy the Python process(es) running sendmessage, once they exist
        if args.profile and server.lang == "python":
            for pid in server.sendmessage_pids()[:1]:
                function_spies.append(PySpy(pid, os.path.join(args.profile, "relay-%s-sendmessage.txt" % server.key),
                                            args.profile_seconds, rate=250))  # not --gil: ssl releases it

    watch = CpuWatch()
    out = asyncio.run(_relay(server.ws_url, args.relay_clients, args.messages, args.relay_warmup,
                             asis=server.invoke_as_shipped if isinstance(server, SlsProject) else None,
                             measuring=measuring))
    out["machine"] = watch.stop()
    out["cpu_per_message"] = cpu_used(server, cpu0, args.messages + args.relay_warmup)
    out["spy"] = spy
    out["function_spies"] = function_spies
    if out["asis_arrived"] is not None:
        out["asis_error"] = next((line.strip() for line in server.log().splitlines()
                                  if "ECONNREFUSED" in line or "Could not connect to the endpoint URL" in line),
                                 "(nothing in its log)")
    time.sleep(1.0)
    clear_items(ddb, table)
    return out


def measure(server, ddb, args) -> dict:
    table = PROJECT[server.lang]["table"]
    reset_table(ddb, table, create=isinstance(server, SlsProject))  # wsctl creates the template's table
    out = {"name": server.name, "start": server.start()}
    try:
        time.sleep(0.5)
        if getattr(server, "http", False):  # the same $connect as the shipped project: only the relay differs
            out["connect"] = None
        else:
            out["connect"] = connects(server, ddb, table, args)
        try:
            out["relay"] = relay(server, ddb, table, args)
        except Exception as error:  # the connect figures still count
            out["relay"] = {"to_other": [], "to_all": [], "lost": args.messages, "asis_arrived": None,
                            "machine": None, "error": "%s: %s" % (type(error).__name__, error)}
    finally:
        out["log_tail"] = server.log()[-1500:]
        server.stop()
    c, r = out["connect"], out["relay"]
    print("\n-- %s (ready in %.2f s) --" % (out["name"], out["start"]))
    if c is not None:
        print_connects(c, args)
    print_relay(r, args, out)
    return out


def print_connects(c, args) -> None:
    print("connects: %d of %d opened (failures %s); median of per-batch rates %.0f/s, overall %.0f/s" % (
        c["opened"], args.connections, c["errors"] or "none", c["median"], c["overall"]))
    print("  per-batch rates: %s" % " ".join("%.0f" % x for x in c["rates"]))
    print("  " + CpuWatch.describe(c["machine"]))
    print("  CPU per connect (ms): %s" % ", ".join("%s %.2f" % kv for kv in c["cpu_per_connect"].items()))
    if c["left_after_drain"] is None:
        print("  registry after the connects: %d items; the server was stopped before the clients dropped (no "
              "$disconnect storm: one python process per concurrent invocation), then started again" % c["registered"])
    else:
        print("  registry after the connects: %d items; after the clients dropped: %d left after %.1f s" % (
            c["registered"], c["left_after_drain"], c["drain_s"]))
    print("RSS at %d connections: %s MiB" % (c["opened"], ", ".join("%s %.0f" % (k, v or 0) for k, v in c["rss"].items())))


def print_relay(r, args, out) -> None:
    if r.get("asis_arrived") is not None:
        print("sendmessage as shipped: the message reached %d of %d clients in 3 s; serverless-offline's log: %s" % (
            r["asis_arrived"], args.relay_clients, r.get("asis_error")))
        print("  the same function invoked through serverless-offline's Lambda endpoint with a sendmessage event "
              "(domainName %r, stage %r) answers: %s" % ("localhost", "local", r.get("asis_answer")))
    if r["to_other"]:
        print("relay with %d clients (%d messages, sequential): to another client (each receipt) p50 %.2f ms, "
              "p99 %.2f ms; to all %d (last receipt) p50 %.2f ms, p99 %.2f ms; lost %d" % (
                  args.relay_clients, args.messages, percentile(r["to_other"], 50), percentile(r["to_other"], 99),
                  args.relay_clients, percentile(r["to_all"], 50), percentile(r["to_all"], 99), r["lost"]))
        print("  CPU per relayed message (ms): %s" % ", ".join("%s %.2f" % kv for kv in r["cpu_per_message"].items()))
    elif r.get("error"):
        print("relay: could not be measured: %s\n  the server's log ends with:\n%s" % (r["error"], out["log_tail"]))
    else:
        print("relay: nothing arrived (lost %d)" % r["lost"])
    if r["machine"]:
        print("  " + CpuWatch.describe(r["machine"]))
    if r.get("spy"):
        r.pop("spy").finish("wsctl gateway during the relay (GIL holder samples)")
    for spy in r.pop("function_spies", []):
        spy.finish("the Python process running sendmessage during the relay (active samples)")


def idle_capacity(ddb_server, args) -> dict:
    """N idle connections through $connect of the project under wsctl (emulator_capacity.py's measure)."""
    from emulator_capacity import measure as capacity_measure
    from emulator_capacity import report as capacity_report

    lang = args.idle_project
    ddb = dynamodb(ddb_server.endpoint)
    reset_table(ddb, PROJECT[lang]["table"], create=False)
    emulator = Emulator("--template", str(PROJECTS / PROJECT[lang]["folder"] / "template.yaml"),
                        "--idle-timeout", "3600", *args.emulator_arg, dynamodb_endpoint=ddb_server.endpoint)
    emulator.start(timeout=600)
    result = None
    try:
        def urls(start, size):
            return [emulator.url] * size

        pids = {"gateway (wsctl local up)": emulator.pid, "DynamoDB Local (java)": ddb_server.pid,
                "moto (idle)": emulator.moto_pid()}
        options = SimpleNamespace(procs=args.procs, inflight=args.idle_inflight, timeout=120.0, settle=2.0, batch=0,
                                  profile=None)
        label = "wsctl local up, %s, DynamoDB Local, %d idle connections" % (PROJECT[lang]["folder"],
                                                                            args.idle_connections)
        env_before = emulator.environments_rss_mb()
        env_cpu0 = {pid: cpu_seconds(pid) or 0 for pid in emulator.environment_pids()}
        result = capacity_measure(label, urls, args.idle_connections, options, pids)
        result["environments_before"] = env_before
        result["environments"] = emulator.environments_rss_mb()
        result["environments_cpu"] = sum((cpu_seconds(pid) or 0) - env_cpu0.get(pid, 0)
                                         for pid in emulator.environment_pids())
        result["registered"] = count_items(ddb, PROJECT[lang]["table"])
        result.pop("spies")
        capacity_report(result)
        print("  %-26s RSS %7.0f -> %7.0f MiB summed over %d -> %d processes; CPU during connects %.1f s "
              "(%.0f%% of one core)" % (
                  "execution environments", env_before[0], result["environments"][0], env_before[1],
                  result["environments"][1], result["environments_cpu"],
                  100 * result["environments_cpu"] / result["wall"] if result["wall"] else 0))
        opened = max(1, result["opened"])
        print("  CPU per connect (ms): gateway %.2f, environments %.2f, DynamoDB Local %.2f" % (
            1000 * (result["cpu"]["gateway (wsctl local up)"] or 0) / opened, 1000 * result["environments_cpu"] / opened,
            1000 * (result["cpu"]["DynamoDB Local (java)"] or 0) / opened))
        print("  registry: %d items" % result["registered"])
        return result
    finally:
        emulator.stop(timeout=20)  # its shutdown closes the connections (1001) before the clients go
        if result is not None:
            result["pool"].close()


# -- main -------------------------------------------------------------------------------------------------------
def main():
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="compare,idle", help="comma list of compare, idle")
    parser.add_argument("--servers", default="wsctl-node,wsctl-node-http,sls-node,wsctl-python,wsctl-python-http,"
                        "sls-python", help="comma list of wsctl-node, wsctl-node-http (relay only: sendmessage "
                        "posting over http, as on serverless-offline), sls-node, and the same for python")
    parser.add_argument("--profile", metavar="DIR", help="py-spy wsctl's gateway during the relay (collapsed "
                        "stacks go to DIR; needs `pip install py-spy`)")
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--connections", "-n", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=2, help="client processes opening connections")
    parser.add_argument("--inflight", type=int, default=16,
                        help="handshakes in flight, all clients together (at 64, serverless-offline's Python mode "
                        "starts 64 python processes at once, each importing boto3, and its $connects time out)")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the $disconnects")
    parser.add_argument("--relay-clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=300, help="relayed messages measured")
    parser.add_argument("--relay-warmup", type=int, default=30)
    parser.add_argument("--idle-connections", type=int, default=10000)
    parser.add_argument("--idle-inflight", type=int, default=256)
    parser.add_argument("--idle-project", choices=("python", "node"), default="python")
    parser.add_argument("--ddb-warmup", type=int, default=3000, help="items put and deleted to warm DynamoDB Local")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="before each phase, wait at most this many seconds for other processes to go quiet")
    parser.add_argument("--emulator-arg", action="append", default=[])
    args = parser.parse_args()
    limit = raise_nofile()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    banner("chat projects under wsctl and serverless-offline, DynamoDB Local (RLIMIT_NOFILE %d)" % limit)
    ddb_server = DynamoDBLocal()
    ddb_server.start()
    results, failures, idle = {}, {}, None
    try:
        ddb = dynamodb(ddb_server.endpoint)
        print("DynamoDB Local at %s (started in %.1f s); warm-up: %d items put, scanned, deleted in %.1f s" % (
            ddb_server.endpoint, ddb_server.started_in, args.ddb_warmup, warm_dynamodb(ddb, args.ddb_warmup)))
        if "compare" in phases:
            for key in [s.strip() for s in args.servers.split(",") if s.strip()]:
                kind, lang, *http = key.split("-")
                if kind == "wsctl":
                    server = WsctlProject(lang, ddb_server.endpoint, args, http=bool(http))
                else:
                    server = SlsProject(lang, ddb_server.endpoint, args)
                try:
                    results[key] = measure(server, ddb, args)
                except Exception as error:  # report and go on
                    failures[key] = "%s: %s" % (type(error).__name__, error)
                    print("\n-- %s: could not be measured --\n%s" % (key, failures[key]))
        if "idle" in phases:
            wait_quiet(timeout=args.quiet_wait)
            idle = idle_capacity(ddb_server, args)
    finally:
        ddb_server.stop()

    print("\n== summary ==")
    if results:
        print("AWS SDK v3 client-dynamodb: wsctl's %s, serverless-offline's %s; %d connections, %d relay clients, "
              "%d messages" % (_wsctl_sdk_version(), sdk_version(SLS_DIR / "node_modules"), args.connections,
                               args.relay_clients, args.messages))
        columns = [k for k in ("wsctl-node", "wsctl-node-http", "sls-node", "wsctl-python", "wsctl-python-http",
                               "sls-python") if k in results]
        titles = {k: k.replace("-python", "-py").replace("wsctl-", "w-") for k in columns}
        print("%-34s" % "" + "".join("%12s" % titles[k] for k in columns))

        def c(figure):
            return lambda r: figure(r["connect"]) if r["connect"] else "(same)"

        rows = [("connects/s (median of batches)", c(lambda x: "%.0f" % x["median"])),
                ("connects/s (overall)", c(lambda x: "%.0f" % x["overall"])),
                ("connect failures", c(lambda x: "%d" % sum(x["errors"].values()))),
                ("RSS at N connections, MiB", c(lambda x: "%.0f" % sum(v or 0 for v in x["rss"].values()))),
                ("registry left after drops", c(lambda x: "-" if x["left_after_drain"] is None
                                                 else "%d" % x["left_after_drain"])),
                ("relay to another client p50, ms", lambda r: _p(r["relay"]["to_other"], 50)),
                ("relay to another client p99, ms", lambda r: _p(r["relay"]["to_other"], 99)),
                ("relay to all %d p50, ms" % args.relay_clients, lambda r: _p(r["relay"]["to_all"], 50)),
                ("relay to all %d p99, ms" % args.relay_clients, lambda r: _p(r["relay"]["to_all"], 99)),
                ("relay lost", lambda r: "%d" % r["relay"]["lost"])]
        for title, value in rows:
            print("%-34s" % title + "".join("%12s" % value(results[k]) for k in columns))
        print("(w-: wsctl; sls-: serverless-offline. sls-* and w-*-http run sendmessage with the endpoint from "
              "MGMT_ENDPOINT, plain http;\n w-node and w-py run it as shipped: https to the emulator)")
    for key, why in failures.items():
        print("NOT MEASURED %s: %s" % (key, why.splitlines()[0][:300]))

    print("\ngoals:")
    for lang in ("node", "python"):
        w, s = results.get("wsctl-" + lang), results.get("sls-" + lang)
        if w and s:
            ratio = w["connect"]["median"] / s["connect"]["median"] if s["connect"]["median"] else float("inf")
            print("  %s %s project: wsctl connects/s %.0f >= %.1fx serverless-offline's %.0f (%.2fx)" % (
                verdict(ratio >= GOAL_CONNECT_RATIO), lang, w["connect"]["median"], GOAL_CONNECT_RATIO,
                s["connect"]["median"], ratio))
        if w and s and w["relay"]["to_other"] and s["relay"]["to_other"]:
            print("  reported %s project: relay p50 %.2f ms vs %.2f ms, p99 %.2f vs %.2f ms (wsctl vs serverless-offline)"
                  % (lang, percentile(w["relay"]["to_other"], 50), percentile(s["relay"]["to_other"], 50),
                     percentile(w["relay"]["to_other"], 99), percentile(s["relay"]["to_other"], 99)))
    if idle:
        gateway = idle["rss_after"]["gateway (wsctl local up)"]
        print("  %s gateway RSS %.0f MiB (%.0f MB) < %d MB at %d idle connections (%s); execution environments "
              "%.0f MiB over %d processes, DynamoDB Local %.0f MiB, reported apart" % (
                  verdict(gateway is not None and gateway * 1.048576 < GOAL_RSS_MB
                          and idle["opened"] == args.idle_connections),
                  gateway or 0, (gateway or 0) * 1.048576, GOAL_RSS_MB, idle["opened"], PROJECT[args.idle_project]["folder"],
                  idle["environments"][0], idle["environments"][1], idle["rss_after"]["DynamoDB Local (java)"] or 0))
        if idle["opened"] != args.idle_connections:
            print("     (only %d of %d connections opened: %s)" % (idle["opened"], args.idle_connections, idle["errors"]))


def _p(values, q) -> str:
    return "%.2f" % percentile(values, q) if values else "-"


def _wsctl_sdk_version() -> str:
    from wsctl.local.functions.sdks import NODE_V3

    return NODE_V3.version


if __name__ == "__main__":
    main()
