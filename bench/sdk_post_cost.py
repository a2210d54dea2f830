"""What one PostToConnection costs the process that makes it: boto3, the JavaScript SDK v3, and
wsctl's lean sender, each against the same bare server, in the same run.

Why: a round trip through `@connections` in bench/vs_serverless_offline.py is a frame in, an
invocation, and the handler's own PostToConnection. The last is the handler's code (boto3 in a
Python function, the SDK v3 in a Node one), the same under wsctl and serverless-offline; this
bench says how much of a round trip it is, beside what a lean signed sender spends.

One bare aiohttp server (its own process) answers every POST /{stage}/@connections/{id} with 200
and nothing else. Each client runs in a process of its own, makes W unmeasured posts, then N
sequential posts on one kept-alive connection, and reports its CPU (user + system) and wall time
per post:
- boto3: `client("apigatewaymanagementapi").post_to_connection` (the venv's boto3);
- node-sdk-v3: `ApiGatewayManagementApiClient.send(PostToConnectionCommand)` (from
  bench/.scratch/sls, the copy serverless-offline's bench installs);
- wsctl-lean: wsctl.fanout.transport.LeanTransport.call, the CLI's broadcast sender.

    python bench/sdk_post_cost.py                     # 3,000 posts each
    python bench/sdk_post_cost.py --posts 300 --warmup 50 --rounds 1 --windows 50,100

Then the warm-up curve: a fresh boto3 and SDK v3 process each, CPU per post in consecutive windows
from its first post (`--windows`), since an execution environment that has served a hundred
invocations pays the early windows' price.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from backends import SCRATCH, banner, free_port, median, stop_process, wait_quiet

STAGE = "dev"
CONNECTION = "AbCdEfGhIjKlMnO="

NODE_CLIENT = r"""
const { ApiGatewayManagementApiClient, PostToConnectionCommand } = require("@aws-sdk/client-apigatewaymanagementapi")
const [endpoint, warmup, posts] = [process.argv[1], +process.argv[2], +process.argv[3]]  // node -e: no script path
const windows = process.argv[4] ? process.argv[4].split(",").map(Number) : null
const client = new ApiGatewayManagementApiClient({ region: "us-east-1", endpoint,
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" } })
const post = () => client.send(new PostToConnectionCommand({ ConnectionId: "%s", Data: '{"type":"echo"}' }))
;(async () => {
  if (windows) {  // CPU per post in consecutive windows from the process's first post (V8 warming up)
    const out = []
    for (const n of windows) {
      const cpu = process.cpuUsage()
      for (let i = 0; i < n; i++) await post()
      const used = process.cpuUsage(cpu)
      out.push((used.user + used.system) / 1e6)
    }
    console.log(JSON.stringify({ windows: out }))
    return
  }
  for (let i = 0; i < warmup; i++) await post()
  const cpu = process.cpuUsage(), start = process.hrtime.bigint()
  for (let i = 0; i < posts; i++) await post()
  const used = process.cpuUsage(cpu), wall = Number(process.hrtime.bigint() - start) / 1e9
  console.log(JSON.stringify({ cpu: (used.user + used.system) / 1e6, wall }))
})()
""" % CONNECTION


def serve(port: int) -> None:
    from aiohttp import web

    async def answer(request):
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{stage}/@connections/{id}", answer)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def python_client(kind: str, endpoint: str, warmup: int, posts: int, windows: list | None = None) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")
    data = b'{"type":"echo"}'
    if kind == "boto3":
        import boto3

        client = boto3.client("apigatewaymanagementapi", region_name="us-east-1", endpoint_url=endpoint)

        def run(count):
            for _ in range(count):
                client.post_to_connection(ConnectionId=CONNECTION, Data=data)
        if windows:
            out = []
            for count in windows:
                cpu = time.process_time()
                run(count)
                out.append(time.process_time() - cpu)
            print(json.dumps({"windows": out}))
            return
        run(warmup)
        cpu, start = time.process_time(), time.perf_counter()
        run(posts)
        used, wall = time.process_time() - cpu, time.perf_counter() - start
    else:
        import asyncio

        import botocore.credentials

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from wsctl.fanout.transport import LeanTransport

        async def main():
            credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "secret")
            async with LeanTransport(endpoint, credentials, "us-east-1", concurrency=1) as transport:
                for _ in range(warmup):
                    await transport.call("POST", CONNECTION, data)
                cpu, start = time.process_time(), time.perf_counter()
                for _ in range(posts):
                    answer = await transport.call("POST", CONNECTION, data)
                used, wall = time.process_time() - cpu, time.perf_counter() - start
                assert answer.status == 200, answer
                return used, wall
        used, wall = asyncio.run(main())
    print(json.dumps({"cpu": used, "wall": wall}))


def measure(kind: str, endpoint: str, warmup: int, posts: int, windows: list | None = None) -> dict:
    if kind == "node-sdk-v3":
        modules = SCRATCH / "sls" / "node_modules"
        if not (modules / "@aws-sdk" / "client-apigatewaymanagementapi").is_dir():
            raise SystemExit("no SDK v3 under %s: run bench/vs_serverless_offline.py once (it installs it)" % modules)
        command = ["node", "-e", NODE_CLIENT, endpoint, str(warmup), str(posts)] + (
            [",".join(map(str, windows))] if windows else [])
        env = dict(os.environ, NODE_PATH=str(modules))
    else:
        command = [sys.executable, __file__, "--client", kind, endpoint, str(warmup), str(posts)] + (
            [",".join(map(str, windows))] if windows else [])
        env = dict(os.environ)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit("%s failed:\n%s" % (kind, done.stderr[-2000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve(int(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        windows = [int(n) for n in sys.argv[6].split(",")] if len(sys.argv) > 6 else None
        return python_client(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), windows)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="each client this many times, interleaved")
    parser.add_argument("--windows", default="100,400,500,1000,2000",
                        help="the warm-up curve's windows of posts, from a fresh process's first")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="wait up to this many s for a quiet machine")
    args = parser.parse_args()
    if args.quiet_wait:
        wait_quiet(timeout=args.quiet_wait)
    banner("one PostToConnection's cost to its sender: boto3, the JavaScript SDK v3, wsctl's lean sender")
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    endpoint = "http://127.0.0.1:%d/%s" % (port, STAGE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the bare server did not start")
                time.sleep(0.1)
        kinds = ("boto3", "node-sdk-v3", "wsctl-lean")
        results = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            for kind in (kinds if round_ % 2 == 0 else kinds[::-1]):
                results[kind].append(measure(kind, endpoint, args.warmup, args.posts))
        windows = [int(n) for n in args.windows.split(",")]
        curves = {kind: measure(kind, endpoint, 0, 0, windows)["windows"] for kind in ("boto3", "node-sdk-v3")}
    finally:
        stop_process(server)
    print("%d sequential posts each on one kept-alive connection, after %d unmeasured; median of %d rounds"
          % (args.posts, args.warmup, args.rounds))
    print("%-12s %14s %14s %10s" % ("sender", "CPU/post, us", "wall/post, us", "CPU ratio"))
    cpu = {kind: median(r["cpu"] for r in rows) / args.posts * 1e6 for kind, rows in results.items()}
    wall = {kind: median(r["wall"] for r in rows) / args.posts * 1e6 for kind, rows in results.items()}
    for kind in results:
        print("%-12s %14.1f %14.1f %9.1fx" % (kind, cpu[kind], wall[kind], cpu[kind] / cpu["wsctl-lean"]))
    print("(CPU ratio: beside wsctl's lean sender in the same run)")
    print("\nCPU per post (us) by how many posts the process had made before (a fresh process each; what an")
    print("execution environment that has handled that many invocations pays: V8 and CPython warming up)")
    edges, start = [], 0
    for n in windows:
        edges.append("%d-%d" % (start + 1, start + n))
        start += n
    print("%-12s" % "posts" + "".join("%14s" % e for e in edges))
    for kind, seconds in curves.items():
        print("%-12s" % kind + "".join("%14.0f" % (s / n * 1e6) for s, n in zip(seconds, windows)))


if __name__ == "__main__":
    main()
