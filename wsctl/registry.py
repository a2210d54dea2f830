"""Queries over a target's connection registry for the operating commands.

The item-level reads and deletes are lambda_src.registry's (the handler's own),
so the CLI and the deployed function read the table identically; this module
adds what only operators need: counting, listing with rooms, parallel scans.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from lambda_src import keys
from lambda_src.registry import Registry, decode

PARALLEL_SCAN_SEGMENTS = 4
# The registry's DynamoDB client. botocore's defaults wait 60 s for each answer, and the
# control-plane retries (8 retries) made a DynamoDB that stops answering hang a command for
# about 9 minutes; this gives one clear error after about 3 x 10 s (at once when the endpoint
# refuses connections). A scan page takes moto about 0.65 ms per item in the table, so 10 s
# leaves room for ~15,000 items there; DynamoDB itself answers in milliseconds.
DATA_CONFIG = {"max_pool_connections": 32, "connect_timeout": 3, "read_timeout": 10,
               "retries": {"mode": "standard", "total_max_attempts": 3}}


def _client(target):
    return target.client("dynamodb", **DATA_CONFIG)


def registry_for(target) -> Registry:
    return Registry(_client(target), target.table)


def _live_connections() -> dict:
    """Scan parameters that keep only connection items whose ttl has not passed."""
    return {"FilterExpression": "SK = :conn AND (attribute_not_exists(#ttl) OR #ttl > :now)",
            "ExpressionAttributeNames": {"#ttl": keys.TTL_ATTRIBUTE},
            "ExpressionAttributeValues": {":conn": {"S": keys.CONN_SK}, ":now": {"N": str(int(time.time()))}}}


def count_live(target) -> int:
    """Live connection entries (ttl not passed), by a COUNT scan."""
    client = _client(target)
    kwargs = {"TableName": target.table, "Select": "COUNT", **_live_connections()}
    total = 0
    while True:
        answer = client.scan(**kwargs)
        total += answer.get("Count", 0)
        if not answer.get("LastEvaluatedKey"):
            return total
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def live_connection_ids(target, segments: int = PARALLEL_SCAN_SEGMENTS, on_page=None) -> list[str]:
    """Ids of the live connections only (what a broadcast needs): a parallel scan that asks
    DynamoDB for the id of live connection items, not whole items. `on_page(ids)` sees each
    page as it arrives (from the scan's threads), so sending can start before the scan ends."""
    page_ids = None if on_page is None else (lambda items: on_page([i["connectionId"] for i in items]))
    items = scan_all(target, segments, include_expired=True, on_page=page_ids,
                     projection={"ProjectionExpression": "connectionId", **_live_connections()})
    return [item["connectionId"] for item in items]


def scan_all(target, segments: int = PARALLEL_SCAN_SEGMENTS, include_expired: bool = False,
             projection: dict | None = None, on_page=None) -> list[dict]:
    """Every item of the table (connections and memberships), in parallel scan segments."""
    client = _client(target)
    now = int(time.time())

    def segment(index: int) -> list[dict]:
        kwargs = {"TableName": target.table, "Segment": index, "TotalSegments": segments, **(projection or {})}
        items = []
        while True:
            answer = client.scan(**kwargs)
            page = [decode(i) for i in answer.get("Items", ())]
            if on_page is not None and page:
                on_page(page)
            items += page
            if not answer.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    with ThreadPoolExecutor(max_workers=segments) as pool:
        items = [item for part in pool.map(segment, range(segments)) for item in part]
    if include_expired:
        return items
    return [item for item in items if item.get(keys.TTL_ATTRIBUTE) is None or item[keys.TTL_ATTRIBUTE] > now]
