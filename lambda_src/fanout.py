"""Server-side fan-out: one segment of the registry (or one room), posted from inside AWS.

`wsctl broadcast --server-side --segments N` invokes the function N times, at
once, with

    {"wsctl": "fanout", "version": 1, "segment": i, "totalSegments": N,
     "data": "<base64 payload>", "endpoint": "https://{api}.execute-api.{region}.amazonaws.com/{stage}",
     "prune": true}

(or `"room": "lobby"` instead of the segments, for `send --room --server-side`).
Each copy scans its segment of the registry (DynamoDB parallel scan), posts in
region through the management API and deletes ids that answer 410, as every
sender does. It stops taking new connections a few seconds before its own
timeout and says how many it did not reach, so a segment too large for one
invocation is reported, never silently cut short.

Only an IAM-authorised Lambda Invoke can start this: API Gateway's events
always carry a requestContext, which this event never has.
"""

import base64
import random
import time

from . import delivery
from .limits import MAX_MESSAGE_BYTES

KIND = "fanout"
VERSION = 1
BATCH = 500  # ids posted per batch (a scan page holds up to about 10,000)
RESERVE_MS = 3000  # stop taking new ids this long before the function's own timeout
# What API Gateway throttled (429, after botocore's own attempts) is posted again, after a pause
# that doubles each round: many segments at once share the account's rate, and a segment that
# backs off lets the others through. Then it is counted as throttled and the run is partial.
THROTTLE_ROUNDS = 5
THROTTLE_PAUSE_S = 0.25
THROTTLE_PAUSE_MAX_S = 4.0


def is_fanout(event) -> bool:
    return isinstance(event, dict) and event.get("wsctl") == KIND


def _ids(registry, event):
    if event.get("room") is not None:
        for item in registry.members_of_room(event["room"]):
            yield item["connectionId"]
        return
    total = int(event.get("totalSegments") or 1)
    segment = int(event.get("segment") or 0)
    for item in registry.scan_connections(segment, total) if total > 1 else registry.scan_connections():
        yield item["connectionId"]


def handle(event: dict, context, registry, client=None) -> dict:
    started = time.monotonic()
    data = base64.b64decode(event.get("data") or "")
    report = {"wsctlFanout": VERSION, "segment": event.get("segment", 0), "totalSegments": event.get("totalSegments", 1),
              "room": event.get("room"), "recipients": 0, "counts": {o: 0 for o in delivery.OUTCOMES},
              "pruned": 0, "complete": True, "unreached": 0, "scanComplete": True, "throttles": 0, "retried": 0}
    if len(data) > MAX_MESSAGE_BYTES:
        report.update(complete=False, error="the payload is over %d KB" % (MAX_MESSAGE_BYTES // 1024))
        return report
    client = client or delivery.management_client(event["endpoint"])
    prune = event.get("prune", True)
    batch: list[str] = []

    def post(ids):
        pause = THROTTLE_PAUSE_S
        for round_no in range(THROTTLE_ROUNDS + 1):
            throttled = []
            for connection_id, outcome in delivery.post_many(client, ids, data).items():
                if outcome == delivery.THROTTLED:
                    throttled.append(connection_id)
                    continue
                report["counts"][outcome] += 1
                if outcome == delivery.GONE and prune and registry.delete_connection(connection_id):
                    report["pruned"] += 1
            report["throttles"] += len(throttled)
            if not throttled or round_no == THROTTLE_ROUNDS or out_of_time(pause):
                break
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, THROTTLE_PAUSE_MAX_S)
            report["retried"] += len(throttled)
            ids = throttled
        report["counts"][delivery.THROTTLED] += len(throttled)

    def out_of_time(pause_s: float = 0.0) -> bool:
        return context is not None and context.get_remaining_time_in_millis() < RESERVE_MS + 1000 * pause_s

    ids = _ids(registry, event)
    for connection_id in ids:
        report["recipients"] += 1
        batch.append(connection_id)
        if len(batch) >= BATCH:
            if out_of_time():
                break
            post(batch)
            batch = []
    else:
        ids = None
    if batch and not out_of_time():
        post(batch)
        batch = []
    if batch or ids is not None:  # stopped early: what was read and not posted, and the scan's rest
        report["unreached"] = len(batch)
        report["complete"] = False
        report["scanComplete"] = ids is None
        report["error"] = "stopped %d ms before the function's timeout" % RESERVE_MS
    counts = report["counts"]
    if counts[delivery.THROTTLED] or counts[delivery.FAILED] or counts[delivery.FORBIDDEN]:
        report["complete"] = False
    report["seconds"] = round(time.monotonic() - started, 3)
    return report
