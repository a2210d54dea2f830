"""The connection registry of a target, read and pruned through its layout (wsctl.registry.layout).

The I/O half: scans, index queries, gets and deletes on the registry's DynamoDB table, for the
operating commands. What an item means (which are connections, whose id, which user or room) is
the layout's; this module never names a key attribute itself. Item encoding, pagination and
batched deletes are lambda_src.registry's, so wsctl and the deployed handler share them.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from lambda_src.registry import Registry as _Table
from lambda_src.registry import decode, encode

from .layout import Layout, wsctl_layout  # noqa: F401  (the value and wsctl's own instance)

PARALLEL_SCAN_SEGMENTS = 4
# The registry's DynamoDB client. botocore's defaults wait 60 s for each answer, and the
# control-plane retries (8 retries) made a DynamoDB that stops answering hang a command for
# about 9 minutes; this gives one clear error after about 3 x 10 s (at once when the endpoint
# refuses connections). A scan page takes moto about 0.65 ms per item in the table, so 10 s
# leaves room for ~15,000 items there; DynamoDB itself answers in milliseconds.
DATA_CONFIG = {"max_pool_connections": 32, "connect_timeout": 3, "read_timeout": 10,
               "retries": {"mode": "standard", "total_max_attempts": 3}}


class RegistryReader:
    """One registry (a layout) behind one DynamoDB client."""

    def __init__(self, client, layout: Layout, clock=time.time):
        self.client = client
        self.layout = layout
        self.clock = clock
        self._table = _Table(client, layout.table, clock)

    # -- scans ------------------------------------------------------------------------------------
    def scan(self, segments: int = PARALLEL_SCAN_SEGMENTS, connections_only: bool = False, live_only: bool = False,
             projection: list[str] | None = None, on_page=None) -> list[dict]:
        """Items of the table in parallel scan segments: every item, or only connection items (the
        layout's key filter), only live ones. `on_page(items)` sees each page as it arrives (from the
        scan's threads), so sending can start before the scan ends."""
        layout = self.layout
        base: dict = {}
        if connections_only:
            base = layout.connection_filter(self.clock() if live_only else None)
        if projection:
            names = dict(base.get("ExpressionAttributeNames", {}))
            aliases = []
            for number, attribute in enumerate(projection):
                names["#p%d" % number] = attribute
                aliases.append("#p%d" % number)
            base = dict(base, ProjectionExpression=", ".join(aliases), ExpressionAttributeNames=names)

        def segment(index: int) -> list[dict]:
            kwargs = {"TableName": layout.table, "Segment": index, "TotalSegments": segments, **base}
            items = []
            while True:
                answer = self.client.scan(**kwargs)
                page = [decode(i) for i in answer.get("Items", ())]
                if connections_only:  # a prefix filter cannot tell CONN#x from CONN#x#ROOM#y: the layout can
                    page = [i for i in page if layout.connection_id(i) is not None]
                if live_only:
                    now = self.clock()
                    page = [i for i in page if layout.is_live(i, now)]
                if on_page is not None and page:
                    on_page(page)
                items += page
                if not answer.get("LastEvaluatedKey"):
                    return items
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

        with ThreadPoolExecutor(max_workers=segments) as pool:
            return [item for part in pool.map(segment, range(segments)) for item in part]

    def connection_ids(self, segments: int = PARALLEL_SCAN_SEGMENTS, on_page=None) -> list[str]:
        """Ids of the live connections only (what a broadcast needs), reading only the attributes
        that give the id."""
        layout = self.layout
        page_ids = None if on_page is None else (lambda items: on_page([layout.connection_id(i) for i in items]))
        items = self.scan(segments, connections_only=True, live_only=True, projection=layout.id_projection(),
                          on_page=page_ids)
        return [layout.connection_id(item) for item in items]

    def first_connections(self, limit: int) -> list[dict]:
        """Up to `limit` live connection items, by a plain scan that stops early."""
        layout = self.layout
        kwargs = {"TableName": layout.table, **layout.connection_filter(self.clock())}
        found = []
        while len(found) < limit:
            answer = self.client.scan(**kwargs)
            found += [i for i in map(decode, answer.get("Items", ())) if layout.connection_id(i) is not None]
            if not answer.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found[:limit]

    def count_live(self) -> int:
        """Live connection entries, by a COUNT scan (a prefix filter may count a little wide on
        designs that nest other items under the same prefix; this is a figure, not a recipient list)."""
        kwargs = {"TableName": self.layout.table, "Select": "COUNT", **self.layout.connection_filter(self.clock())}
        total = 0
        while True:
            answer = self.client.scan(**kwargs)
            total += answer.get("Count", 0)
            if not answer.get("LastEvaluatedKey"):
                return total
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # -- one connection, one user, one room ------------------------------------------------------------
    def item(self, connection_id: str) -> dict | None:
        """The connection's item, if it is there and live."""
        answer = self.client.get_item(TableName=self.layout.table, Key=encode(self.layout.key_for(connection_id)),
                                      ConsistentRead=True)
        found = answer.get("Item")
        if not found:
            return None
        found = decode(found)
        return found if self.layout.is_live(found, self.clock()) else None

    def items_of(self, connection_id: str) -> list[dict]:
        """Every live item of a connection: its item, and with a cascading layout the items that
        share its partition (room memberships)."""
        if not self.layout.cascade:
            found = self.item(connection_id)
            return [found] if found else []
        now = self.clock()
        return [item for item in self._partition(connection_id) if self.layout.is_live(item, now)]

    def rooms_of(self, connection_id: str, item: dict | None = None) -> list[str]:
        layout = self.layout
        if layout.room is None:
            return []
        if layout.cascade:
            return sorted(filter(None, (layout.room_of(i) for i in self.items_of(connection_id)
                                        if layout.connection_id(i) is None)))
        room = layout.room_of(item or {})
        return [room] if room else []

    def ids_of_user(self, user: str) -> list[str]:
        return self._by_lookup(self.layout.user, user, "user")

    def ids_of_room(self, room: str) -> list[str]:
        return self._by_lookup(self.layout.room, room, "room")

    def _by_lookup(self, lookup, value: str, what: str) -> list[str]:
        if lookup is None or lookup.index is None:
            raise LookupError(what)
        now = self.clock()
        ids = []
        for raw in self._table._paginate(
                "query", IndexName=lookup.index, KeyConditionExpression="#a = :v",
                ExpressionAttributeNames={"#a": lookup.attribute},
                ExpressionAttributeValues={":v": {"S": lookup.template.render(value)}}):
            item = decode(raw)
            if self.layout.is_live(item, now):
                owner = self.layout.owner_id(item)
                if owner and owner not in ids:
                    ids.append(owner)
        return sorted(ids)

    # -- deletes -------------------------------------------------------------------------------------
    def keys_of(self, connection_ids) -> list[dict]:
        """The primary keys that removing these connections deletes: each connection's item, and
        with a cascading layout every item under its partition."""
        if not self.layout.cascade:
            return [self.layout.key_for(cid) for cid in connection_ids]
        names = [part.attribute for part in self.layout.key]
        ids = list(connection_ids)
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(ids)))) as pool:
            found = pool.map(lambda cid: [{n: i[n] for n in names} for i in self._partition(cid)], ids)
            return [key for keys in found for key in keys]

    def delete(self, connection_ids) -> int:
        """Remove these connections' items; returns how many connections had any."""
        ids = list(connection_ids)
        if not ids:
            return 0
        if not self.layout.cascade:
            present = [cid for cid in ids if self._exists(cid)]
            self._table.delete_keys([encode(self.layout.key_for(cid)) for cid in present])
            return len(present)
        keys = self.keys_of(ids)
        owners = {self.layout.partition.template.parse(k[self.layout.partition.attribute]) for k in keys}
        self._table.delete_keys([encode(key) for key in keys])
        return len(owners)

    def delete_keys(self, item_keys: list[dict]) -> None:
        self._table.delete_keys([encode(key) for key in item_keys])

    def _exists(self, connection_id: str) -> bool:
        answer = self.client.get_item(TableName=self.layout.table, Key=encode(self.layout.key_for(connection_id)),
                                      ProjectionExpression="#k", ExpressionAttributeNames={
                                          "#k": self.layout.partition.attribute}, ConsistentRead=True)
        return "Item" in answer

    def _partition(self, connection_id: str) -> list[dict]:
        part = self.layout.partition
        return [decode(i) for i in self._table._paginate(
            "query", KeyConditionExpression="#p = :p", ExpressionAttributeNames={"#p": part.attribute},
            ExpressionAttributeValues={":p": {"S": self.layout.partition_for(connection_id)}}, ConsistentRead=True)]


__all__ = ["RegistryReader", "Layout", "wsctl_layout", "DATA_CONFIG", "PARALLEL_SCAN_SEGMENTS"]
