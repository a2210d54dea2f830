"""Queries and writes over the connection registry (DynamoDB, low-level client).

Used by the deployed handler and by wsctl's operating commands alike, so both
read the table the same way. Every read skips items whose `ttl` has passed:
DynamoDB deletes expired items lazily (hours or days later), and DynamoDB
Local, dynalite and moto never do.
"""

import random
import time

from . import keys

# DynamoDB caps BatchWriteItem at 25 requests (moto does not enforce it; we do).
BATCH_LIMIT = 25
_LIVE = "(attribute_not_exists(#ttl) OR #ttl > :now)"


def decode(item: dict) -> dict:
    """A low-level DynamoDB item -> plain Python values (integral numbers as int)."""
    return {name: _decode_value(value) for name, value in item.items()}


def _decode_value(value: dict):
    (kind, raw), = value.items()
    if kind == "S" or kind == "B":
        return raw
    if kind == "N":
        number = float(raw)
        return int(number) if number.is_integer() and "e" not in raw.lower() else number
    if kind == "BOOL":
        return raw
    if kind == "NULL":
        return None
    if kind == "M":
        return decode(raw)
    if kind == "L":
        return [_decode_value(v) for v in raw]
    if kind in ("SS", "NS", "BS"):
        return list(raw)
    return raw


def encode_value(value) -> dict:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): encode_value(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [encode_value(v) for v in value]}
    return {"S": str(value)}


def encode(item: dict) -> dict:
    return {name: encode_value(value) for name, value in item.items() if value is not None}


class ConnectionExists(Exception):
    """A connection item with this id is already registered (conditional write failed)."""


class Registry:
    """The registry table behind one DynamoDB client.

    `clock` returns epoch seconds; tests and the emulator may pass their own.
    """

    def __init__(self, client, table_name: str, clock=time.time):
        self.client = client
        self.table = table_name
        self.clock = clock

    # -- writes ---------------------------------------------------------
    def put_connection(self, connection_id: str, user_id: str, connected_at_ms: int, ttl: int,
                       endpoint: str, source_ip: str = "", user_agent: str = "",
                       metadata: dict | None = None) -> None:
        """Register a connection; never overwrites an existing item."""
        item = {
            "PK": keys.conn_pk(connection_id),
            "SK": keys.CONN_SK,
            "GSI1PK": keys.user_key(user_id),
            "GSI1SK": keys.conn_pk(connection_id),
            "connectionId": connection_id,
            "userId": user_id,
            "connectedAt": connected_at_ms,
            "ttl": ttl,
            "endpoint": endpoint,
            "sourceIp": source_ip or None,
            "userAgent": user_agent or None,
            "metadata": metadata or None,
        }
        try:
            self.client.put_item(TableName=self.table, Item=encode(item),
                                 ConditionExpression="attribute_not_exists(PK)")
        except self.client.exceptions.ConditionalCheckFailedException:
            raise ConnectionExists(connection_id) from None

    def join(self, connection_id: str, room: str, ttl: int, joined_at_ms: int) -> None:
        item = {
            "PK": keys.conn_pk(connection_id),
            "SK": keys.room_key(room),
            "GSI1PK": keys.room_key(room),
            "GSI1SK": keys.conn_pk(connection_id),
            "connectionId": connection_id,
            "room": room,
            "joinedAt": joined_at_ms,
            "ttl": ttl,
        }
        self.client.put_item(TableName=self.table, Item=encode(item))

    def leave(self, connection_id: str, room: str) -> bool:
        """Remove one membership; True if it existed."""
        answer = self.client.delete_item(
            TableName=self.table,
            Key=encode({"PK": keys.conn_pk(connection_id), "SK": keys.room_key(room)}),
            ReturnValues="ALL_OLD")
        return "Attributes" in answer

    def delete_connection(self, connection_id: str) -> int:
        """Delete every item under CONN#{id} (connection and memberships), in batches.

        An already-missing connection is fine: returns how many items were deleted.
        """
        pk = keys.conn_pk(connection_id)
        item_keys = [
            {"PK": item["PK"], "SK": item["SK"]}
            for item in self._paginate("query", KeyConditionExpression="PK = :pk",
                                       ExpressionAttributeValues={":pk": {"S": pk}},
                                       ProjectionExpression="PK, SK", ConsistentRead=True)
        ]
        self.delete_keys(item_keys)
        return len(item_keys)

    def delete_keys(self, item_keys: list[dict]) -> None:
        """BatchWriteItem deletes, 25 at a time, retrying unprocessed items with backoff."""
        for start in range(0, len(item_keys), BATCH_LIMIT):
            pending = {self.table: [{"DeleteRequest": {"Key": key}}
                                    for key in item_keys[start:start + BATCH_LIMIT]]}
            for attempt in range(8):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2 ** attempt) * random.random())
            if pending:
                raise RuntimeError("DynamoDB left %d deletes unprocessed" % len(pending[self.table]))

    # -- reads ----------------------------------------------------------
    def get_connection(self, connection_id: str) -> dict | None:
        answer = self.client.get_item(
            TableName=self.table,
            Key=encode({"PK": keys.conn_pk(connection_id), "SK": keys.CONN_SK}))
        item = answer.get("Item")
        if not item:
            return None
        item = decode(item)
        return item if self._live(item) else None

    def items_of(self, connection_id: str) -> list[dict]:
        """Every live item under CONN#{id}: the connection and its memberships."""
        return [decode(item) for item in self._paginate(
            "query", KeyConditionExpression="PK = :pk", FilterExpression=_LIVE,
            ExpressionAttributeNames={"#ttl": keys.TTL_ATTRIBUTE},
            ExpressionAttributeValues={":pk": {"S": keys.conn_pk(connection_id)},
                                       ":now": {"N": str(int(self.clock()))}})]

    def rooms_of(self, connection_id: str) -> list[str]:
        return sorted(keys.room_of(item["SK"]) for item in self.items_of(connection_id)
                      if item["SK"].startswith(keys.ROOM_PREFIX))

    def is_member(self, connection_id: str, room: str) -> bool:
        answer = self.client.get_item(
            TableName=self.table,
            Key=encode({"PK": keys.conn_pk(connection_id), "SK": keys.room_key(room)}))
        item = answer.get("Item")
        return bool(item) and self._live(decode(item))

    def connections_of_user(self, user_id: str) -> list[dict]:
        """Live connection items of one user (GSI1 query)."""
        return self._by_gsi1(keys.user_key(user_id))

    def members_of_room(self, room: str) -> list[dict]:
        """Live membership items of one room (GSI1 query); each has connectionId."""
        return self._by_gsi1(keys.room_key(room))

    def scan_connections(self, segment: int | None = None, total_segments: int | None = None,
                         include_expired: bool = False):
        """Yield connection items (not memberships), paginated; optionally one scan segment."""
        kwargs = {"ExpressionAttributeValues": {":conn": {"S": keys.CONN_SK}}}
        if include_expired:
            kwargs["FilterExpression"] = "SK = :conn"
        else:
            kwargs["FilterExpression"] = "SK = :conn AND " + _LIVE
            kwargs["ExpressionAttributeNames"] = {"#ttl": keys.TTL_ATTRIBUTE}
            kwargs["ExpressionAttributeValues"][":now"] = {"N": str(int(self.clock()))}
        if total_segments:
            kwargs.update(Segment=segment, TotalSegments=total_segments)
        for item in self._paginate("scan", **kwargs):
            yield decode(item)

    # -- helpers --------------------------------------------------------
    def _by_gsi1(self, partition: str) -> list[dict]:
        return [decode(item) for item in self._paginate(
            "query", IndexName=keys.GSI1, KeyConditionExpression="GSI1PK = :pk",
            FilterExpression=_LIVE,
            ExpressionAttributeNames={"#ttl": keys.TTL_ATTRIBUTE},
            ExpressionAttributeValues={":pk": {"S": partition},
                                       ":now": {"N": str(int(self.clock()))}})]

    def _live(self, item: dict) -> bool:
        ttl = item.get(keys.TTL_ATTRIBUTE)
        return ttl is None or ttl > self.clock()

    def _paginate(self, operation: str, **kwargs):
        call = getattr(self.client, operation)
        while True:
            answer = call(TableName=self.table, **kwargs)
            yield from answer.get("Items", ())
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last
