"""The embedded DynamoDB's reads with moto as shipped and with wsctl's sorted-items upkeep
(`wsctl/local/motoserver.py: keep_items_sorted`), side by side in one run.

moto 5 sorts the whole table for every Query and every Scan page. Both servers are
`python -m wsctl.local.motoserver`'s HTTP/1.1 server on loopback; the baseline skips the
upkeep. Each gets the registry table and N connection items (10 per user), then:

- query a user's connections (GSI1), as sendMessage does;
- query one connection's partition, as $disconnect and whoami do;
- put a connection, then query its partition: the churn pattern (each read follows a write);
- scan the whole registry, paginated (`connections list`, `broadcast`, `prune`).

    python bench/embedded_moto.py                    # 10,000 items
    python bench/embedded_moto.py --items 1000       # CI size
"""

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request

from backends import ROOT, banner, exit_on_sigterm, free_port, stop_process

from lambda_src import keys
from wsctl.apispec import TableSpec
from wsctl.local import dynamo

TABLE = "bench-registry"
REGION = "us-east-1"
SERVE_PLAIN = "from wsctl.local import motoserver; motoserver.serve('127.0.0.1', %d)"


def start(plain: bool):
    port = free_port()
    args = ["-c", SERVE_PLAIN % port] if plain else ["-m", "wsctl.local.motoserver", "127.0.0.1", str(port)]
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d" % port
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto server did not start")


def item(n: int) -> dict:
    pk = keys.conn_pk("c%07d=" % n)
    return {"PK": {"S": pk}, "SK": {"S": keys.CONN_SK}, "GSI1PK": {"S": keys.user_key("u%d" % (n // 10))},
            "GSI1SK": {"S": pk}, "ttl": {"N": str(int(time.time()) + 7500)}}


def timed(function, repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(endpoint: str, items: int, repeat: int) -> dict:
    dynamo.prepare_table(endpoint, TableSpec(TABLE, keys.table_definition(TABLE), keys.TTL_ATTRIBUTE), REGION)
    ddb = dynamo.client("dynamodb", endpoint, REGION)
    started = time.perf_counter()
    for first in range(0, items, 25):
        ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item(n)}}
                                                   for n in range(first, min(first + 25, items))]})
    load = time.perf_counter() - started
    user = keys.user_key("u%d" % (items // 20))
    pk = keys.conn_pk("c%07d=" % (items // 2))
    extra = iter(range(items, items + 10 * repeat))

    def churn():
        n = next(extra)
        ddb.put_item(TableName=TABLE, Item=item(n))
        ddb.query(TableName=TABLE, KeyConditionExpression="PK = :p",
                  ExpressionAttributeValues={":p": {"S": keys.conn_pk("c%07d=" % n)}})

    def scan():
        count = 0
        for page in ddb.get_paginator("scan").paginate(TableName=TABLE, PaginationConfig={"PageSize": 1000}):
            count += len(page["Items"])
        assert count >= items

    return {
        "load (batch writes), s": load,
        "GSI query, one user, ms": timed(lambda: ddb.query(
            TableName=TABLE, IndexName=keys.GSI1, KeyConditionExpression="GSI1PK = :u",
            ExpressionAttributeValues={":u": {"S": user}}), repeat),
        "partition query, ms": timed(lambda: ddb.query(
            TableName=TABLE, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": pk}}), repeat),
        "put then partition query, ms": timed(churn, repeat),
        "full scan, pages of 1,000, ms": timed(scan, max(3, repeat // 10)),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=30, help="calls per read measured (median)")
    args = parser.parse_args()
    banner("embedded moto: %d registry items, moto as shipped vs wsctl's sorted-items upkeep" % args.items)
    results = {}
    for label, plain in (("moto as shipped", True), ("wsctl motoserver", False)):
        process, endpoint = start(plain)
        try:
            results[label] = measure(endpoint, args.items, args.repeat)
        finally:
            stop_process(process)
        print("  %s: done" % label, flush=True)
    base, ours = results["moto as shipped"], results["wsctl motoserver"]
    print("\n%-34s %16s %16s %8s" % ("median", "moto as shipped", "wsctl", "ratio"))
    for name in base:
        print("%-34s %16.2f %16.2f %7.1fx" % (name, base[name], ours[name], base[name] / ours[name]))


if __name__ == "__main__":
    main()
