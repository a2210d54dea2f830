"""A cold-start storm on the authorizer's key read: N cold Lambda containers take their first
$connect at the same moment, each reading the signing key set from SSM, whose standard
throughput is 40 GetParameter calls a second per account and region (shared).

The SSM here is a small HTTP server in a process of its own that speaks SSM's JSON protocol
for GetParameter and throttles as SSM does: above --rate admitted reads in any one second it
answers ThrottlingException (HTTP 400, as SSM does; --status 429 for the 429 variant).
Each container is a fresh copy of lambda_src/auth.py (module state of its own, as a cold
container has) with its client made before the storm (the init phase), then every container
calls authorize() with a valid token at once, through a barrier.

It runs the storm twice in one run: with the authorizer's retries (as deployed) and, as the
baseline, with its retry budget set to 0 (no retry), and prints for each: admitted, refused,
failed, SSM calls (admitted and throttled, peak admitted reads a second), time to answer
(p50/p90/p99/max), and the attempts per container. PASS: the retrying authorizer refuses
none (every token is valid, so any refusal is one a retry could have admitted).

    python bench/ssm_storm.py                          # 200 containers against 40/s
    python bench/ssm_storm.py --containers 40 --rate 10   # CI size
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARAM = "/wsctl/storm/signing-key"
STACK = "storm"


# -- the throttling SSM (its own process) -----------------------------------------------------
def serve(port: int, rate: int, status: int, keyset_file: str) -> None:
    keyset = Path(keyset_file).read_text()
    lock = threading.Lock()
    admitted, stats = deque(), {"admitted": 0, "throttled": 0, "peak": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, code: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "storm")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # /stats
            with lock:
                self._answer(200, dict(stats))

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("X-Amz-Target") != "AmazonSSM.GetParameter":
                self._answer(400, {"__type": "UnknownOperationException", "message": "only GetParameter"})
                return
            with lock:
                now = time.monotonic()
                while admitted and now - admitted[0] >= 1.0:
                    admitted.popleft()
                throttled = len(admitted) >= rate
                if throttled:
                    stats["throttled"] += 1
                else:
                    admitted.append(now)
                    stats["admitted"] += 1
                    stats["peak"] = max(stats["peak"], len(admitted))
            if throttled:
                self._answer(status, {"__type": "ThrottlingException", "message": "Rate exceeded"})
            else:
                self._answer(200, {"Parameter": {"Name": PARAM, "Type": "SecureString", "Value": keyset,
                                                 "Version": 1, "ARN": "arn:aws:ssm:us-east-1:0:parameter" + PARAM}})

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    Server(("127.0.0.1", port), Handler).serve_forever()


# -- the storm ----------------------------------------------------------------------------------------
def container(index: int):
    """A fresh copy of lambda_src.auth: one cold container's module state."""
    from lambda_src import auth

    spec = importlib.util.spec_from_file_location("lambda_src._storm_%d" % index, auth.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authorizer_event(token: str) -> dict:
    return {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect",
            "headers": {"Host": "abc.execute-api.us-east-1.amazonaws.com"}, "queryStringParameters": {"token": token}}


def storm(containers: int, token: str, budget: float | None) -> dict:
    import boto3.session
    import botocore.session

    init = time.perf_counter()
    modules = [container(i) for i in range(containers)]
    calls = [0] * containers
    logged = []
    # Each container makes its client as the product does (auth._client), from one shared botocore
    # session here so that making 200 clients does not reload botocore's data files 200 times.
    core = botocore.session.get_session()
    real_session = boto3.session.Session
    boto3.session.Session = lambda **kwargs: real_session(botocore_session=core, **kwargs)
    try:
        for i, module in enumerate(modules):
            if budget is not None:
                module.KEYSET_READ_BUDGET = budget
            module._log = lambda **fields: logged.append(fields)  # the lines CloudWatch would get, counted
            module._client()
    finally:
        boto3.session.Session = real_session
    for i, module in enumerate(modules):
        module._client().meta.events.register(
            "before-call.ssm.GetParameter", lambda _i=i, **_: calls.__setitem__(_i, calls[_i] + 1))
    init = time.perf_counter() - init
    event = authorizer_event(token)
    barrier = threading.Barrier(containers + 1)
    results = [None] * containers

    def connect(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            modules[i].authorize(event)
            outcome = "admitted"
        except Exception as error:  # noqa: BLE001
            outcome = "refused (401)" if str(error) == "Unauthorized" else "failed (500)"
        results[i] = (outcome, time.perf_counter() - started)

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(containers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    outcomes = {}
    for outcome, _ in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"outcomes": outcomes, "seconds": elapsed, "times": sorted(t for _, t in results),
            "admittedTimes": sorted(t for o, t in results if o == "admitted"), "calls": calls, "init": init,
            "throttleLines": sum(1 for f in logged if f.get("keyset") == "throttled" and "retryInMs" in f),
            "gaveUp": sum(1 for f in logged if f.get("outcome") == "gave up")}


def pct(values, q):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def report(title: str, run: dict, before: dict, after: dict) -> None:
    admitted = after["admitted"] - before["admitted"]
    throttled = after["throttled"] - before["throttled"]
    times = run["times"]
    print("\n%s" % title)
    print("  outcomes: %s" % ", ".join("%s %d" % kv for kv in sorted(run["outcomes"].items())))
    print("  SSM GetParameter calls: %d (admitted %d, throttled %d); peak admitted in one second: %d"
          % (admitted + throttled, admitted, throttled, after["peak"]))
    print("  storm over in %.2f s; time to answer p50 %.2f s, p90 %.2f s, p99 %.2f s, max %.2f s"
          % (run["seconds"], pct(times, 50), pct(times, 90), pct(times, 99), times[-1]))
    print("  attempts per container: mean %.1f, max %d; log lines: %d throttled-and-retrying, %d gave up"
          % (sum(run["calls"]) / len(run["calls"]), max(run["calls"]), run["throttleLines"], run["gaveUp"]))
    print("  (init: %d containers' modules and SSM clients made in %.1f s, before the storm)"
          % (len(run["calls"]), run["init"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--rate", type=int, default=40, help="SSM's admitted GetParameter calls a second")
    parser.add_argument("--status", type=int, default=400, choices=(400, 429),
                        help="HTTP status of a throttled answer (SSM: 400 ThrottlingException)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without retries")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keyset-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.rate, args.status, args.keyset_file)
        return

    from backends import banner, free_port, stop_process

    from lambda_src import auth, jwts

    banner("SSM cold-start storm: %d cold containers' first $connect against %d GetParameter/s"
           % (args.containers, args.rate))
    import tempfile

    keyset = jwts.new_keyset()
    keyset_file = Path(tempfile.mkstemp(prefix="ssm-storm-", suffix=".json")[1])
    keyset_file.write_text(keyset)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--rate", str(args.rate),
                               "--status", str(args.status), "--keyset-file", str(keyset_file)])
    endpoint = "http://127.0.0.1:%d" % port
    os.environ.update({"AWS_ENDPOINT_URL_SSM": endpoint, "AWS_ACCESS_KEY_ID": "storm", "AWS_SECRET_ACCESS_KEY": "storm",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                       "SIGNING_KEY_PARAM": PARAM, "STACK_NAME": STACK})

    def stats() -> dict:
        import urllib.request

        for _ in range(100):
            try:
                with urllib.request.urlopen(endpoint + "/stats", timeout=2) as answer:
                    return json.loads(answer.read())
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the throttling SSM did not start")

    token = jwts.mint(keyset, STACK, "alice")
    ok = True
    try:
        stats()
        print("authorizer: retry budget %.0f s, backoff %.1f s doubling to %.1f s with full jitter; throttled "
              "answers are HTTP %d" % (auth.KEYSET_READ_BUDGET, auth.RETRY_BASE, auth.RETRY_CAP, args.status))
        runs = [("with the authorizer's retries (as deployed)", None)]
        if not args.no_baseline:
            runs.append(("baseline: no retry (budget 0)", 0.0))
        for title, budget in runs:
            time.sleep(1.5)  # the throttle's window empties between runs
            before = stats()
            run = storm(args.containers, token, budget)
            after = stats()
            report(title, run, before, after)
            if budget is None:
                ok = run["outcomes"].get("admitted", 0) == args.containers
    finally:
        stop_process(server)
        keyset_file.unlink()
    print("\n%s: the retrying authorizer refused %s of %d valid first connects"
          % ("PASS" if ok else "FAIL", "none" if ok else "some", args.containers))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
