"""Reading a registry's layout off a table: its key schema, indexes, TTL and a few of its items.
Pure: the caller does DescribeTable, DescribeTimeToLive and the sample scan, then proves the ids the
guess yields with GetConnection (wsctl.targets.discovery).

What the items say decides, never the names alone: a connection's id is 16 characters of URL-safe
base64 ending in `=` (docs/apigw-websocket.md#ids); the attribute and key template that hold such
values are the layout. When the items cannot tell (an empty table with a composite key), the guess
says what it found and which option decides.
"""

import re
from collections import Counter
from dataclasses import dataclass, field

from .layout import KeyPart, Layout, Lookup, Template

CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]{15}=$")
# A key prefix ends at one of these (`CONN#`, `conn:`, `connection|`); ids never hold them.
_SEPARATORS = "#:|/"
_USER_WORDS = ("user", "sub", "principal", "owner", "account", "member")
_ROOM_WORDS = ("room", "group", "channel", "topic", "chat", "conversation", "game", "lobby", "session")
_TABLE_ARN = re.compile(r"^arn:aws[a-z-]*:dynamodb:[^:]*:\d*:table/([A-Za-z0-9_.-]{3,255})(/.*)?$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ID_NAMES = ("connectionId", "connectionID", "connection_id", "ConnectionId", "connId", "conn_id", "id")


@dataclass
class Guess:
    layout: Layout | None
    found: list[str] = field(default_factory=list)  # what the table showed, in words
    missing: str = ""  # when layout is None: which option decides, and why
    sample_ids: list[str] = field(default_factory=list)  # ids to prove with GetConnection


def looks_like_id(value) -> bool:
    return isinstance(value, str) and bool(CONNECTION_ID.match(value))


def _split(value: str, connection_id: str) -> Template | None:
    """The template that makes `value` out of `connection_id` (CONN#{id}, {id}, conn:{id}:meta)."""
    at = value.find(connection_id)
    if at < 0:
        return None
    return Template(value[:at] + "{id}" + value[at + len(connection_id):])


def _id_in(value) -> str | None:
    """A connection id inside a key value: the whole of it, or after a separator."""
    if not isinstance(value, str):
        return None
    if looks_like_id(value):
        return value
    for piece in re.split("[%s]" % re.escape(_SEPARATORS), value):
        if looks_like_id(piece):
            return piece
    return None


def _key_schema(description: dict) -> tuple[str, str | None]:
    hash_key = next(k["AttributeName"] for k in description["KeySchema"] if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in description["KeySchema"] if k["KeyType"] == "RANGE"), None)
    return hash_key, range_key


def infer(description: dict, ttl_attribute: str | None, items: list[dict], owned: bool = False) -> Guess:
    """The layout that the table's schema and sample items (decoded) show, with what was seen."""
    table = description["TableName"]
    hash_key, range_key = _key_schema(description)
    schema = "key %s%s" % (hash_key, " + %s" % range_key if range_key else "")
    found = ["table %s: %s, %d item(s) sampled%s" % (table, schema, len(items),
                                                     ", ttl %s" % ttl_attribute if ttl_attribute else "")]
    # the connection items: those whose key holds an id
    holders = [(item, _id_in(item.get(hash_key))) for item in items]
    holders = [(item, cid) for item, cid in holders if cid]
    if not items:
        if range_key is None:
            layout = Layout(table, (KeyPart(hash_key, Template("{id}")),), id_attribute=hash_key,
                            ttl_attribute=ttl_attribute)
            found.append("no items yet: a table keyed by %s alone holds one connection an item" % hash_key)
            return find_lookups(description, layout, [], found, owned)
        return Guess(None, found, "the table is empty, so its items cannot show how a connection is keyed: "
                                  "give --registry-key %s=PREFIX{id}%s" % (
                                      hash_key, " --registry-key %s=VALUE" % range_key))
    if not holders:
        names = sorted({name for item in items for name, v in item.items() if looks_like_id(v)})
        return Guess(None, found, "no item's key %s holds a connection id%s: give --registry-key "
                                  "(e.g. %s=CONN#{id}) or choose another table with --registry" % (
                                      hash_key, " (ids seen in %s)" % ", ".join(names) if names else "", hash_key))
    templates = Counter(_split(item[hash_key], cid).text for item, cid in holders)
    hash_template, _ = templates.most_common(1)[0]
    key = [KeyPart(hash_key, Template(hash_template))]
    connections = [(item, cid) for item, cid in holders if Template(hash_template).parse(item[hash_key]) == cid]
    if range_key:
        part, connections, note = _range_part(range_key, connections)
        if part is None:
            return Guess(None, found, note)
        key.append(part)
        found.append(note)
    id_attribute = next((name for name in _ID_NAMES if all(item.get(name) == cid for item, cid in connections)),
                        None)
    if id_attribute is None:
        id_attribute = next((name for name in sorted(connections[0][0]) if all(
            item.get(name) == cid for item, cid in connections)), None)
    layout = Layout(table, tuple(key), id_attribute=id_attribute, ttl_attribute=ttl_attribute,
                    cascade=bool(range_key) and owned)
    found.append("connection items keyed %s%s" % (" ".join(str(p) for p in key),
                                                   ", id in %s" % id_attribute if id_attribute else ""))
    guess = find_lookups(description, layout, items, found, owned)
    guess.sample_ids = [cid for _, cid in connections][:10]
    return guess


def _range_part(range_key: str, holders: list) -> tuple[KeyPart | None, list, str]:
    """The sort key of a connection item: a constant (CONN, METADATA) that one item in every
    connection's partition has, or a template of the id."""
    by_partition: dict = {}
    for item, cid in holders:
        by_partition.setdefault(cid, []).append(item)
    templated = [(item, cid) for item, cid in holders if _split(str(item.get(range_key, "")), cid)]
    if templated and len(templated) == len(by_partition):
        counts = Counter(_split(item[range_key], cid).text for item, cid in templated)
        text, _ = counts.most_common(1)[0]
        return KeyPart(range_key, Template(text)), templated, "sort key %s=%s" % (range_key, text)
    counts = Counter(str(item.get(range_key)) for item, _ in holders)
    shared = [value for value, count in counts.items() if count == len(by_partition)
              and all(any(str(i.get(range_key)) == value for i in group) for group in by_partition.values())]
    if len(shared) == 1:
        value = shared[0]
        chosen = [(item, cid) for item, cid in holders if str(item.get(range_key)) == value]
        return (KeyPart(range_key, Template(value)), chosen,
                "sort key %s=%s on the connection item (other sort keys: %s)" % (
                    range_key, value, ", ".join(sorted({v.split("#")[0] + ("#..." if "#" in v else "")
                                                        for v in counts if v != value})) or "none"))
    return None, [], ("the sort key %s does not show which item is the connection's (%s): give "
                      "--registry-key %s=VALUE" % (range_key, ", ".join(sorted(counts)[:4]), range_key))


def find_lookups(description: dict, layout: Layout, items: list[dict], found: list[str], owned: bool) -> Guess:
    """Where users and rooms are: an index whose key values carry a USER#/ROOM# prefix or whose key
    attribute is named for users or rooms; else an attribute on the connection item (shown only)."""
    from dataclasses import replace

    user = room = None
    # Global indexes only: a local one shares the table's partition key, so it cannot find a user's connections.
    for index in description.get("GlobalSecondaryIndexes", []):
        attribute = next(k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH")
        values = [item[attribute] for item in items if isinstance(item.get(attribute), str)]
        prefixes = Counter(v[:i + 1] for v in values for i, ch in enumerate(v) if ch in _SEPARATORS
                           and not any(c in _SEPARATORS for c in v[:i]))
        for prefix in prefixes:
            word = prefix.rstrip(_SEPARATORS).lower()
            if user is None and any(w in word for w in _USER_WORDS):
                user = Lookup(attribute, Template(prefix + "{user}"), index["IndexName"])
            elif room is None and any(w in word for w in _ROOM_WORDS):
                room = Lookup(attribute, Template(prefix + "{room}"), index["IndexName"])
        if not prefixes:
            name = attribute.lower()
            if user is None and any(w in name for w in _USER_WORDS):
                user = Lookup(attribute, Template("{user}"), index["IndexName"])
            elif room is None and any(w in name for w in _ROOM_WORDS):
                room = Lookup(attribute, Template("{room}"), index["IndexName"])
    keys = {part.attribute for part in layout.key}
    plain = sorted({name for item in items for name, v in item.items() if isinstance(v, str) and name not in keys})
    if user is None:
        name = next((n for n in plain if n.lower() in ("userid", "user_id", "user", "username", "sub")), None)
        user = Lookup(name, Template("{user}")) if name else None
    if room is None:
        name = next((n for n in plain if n.lower() in ("roomid", "room_id", "room", "channel", "groupid")), None)
        room = Lookup(name, Template("{room}")) if name else None
    for label, lookup in (("users", user), ("rooms", room)):
        if lookup:
            found.append("%s %s" % (label, "by index %s" % lookup if lookup.index else "in attribute %s (no index: "
                                    "shown, not queried)" % lookup.attribute))
    return Guess(replace(layout, user=user, room=room, owned=owned), found)


def tables_in_environment(environment: dict) -> list[str]:
    """Values of a function's variables that may name a table: a table ARN, or a name-shaped value
    of a variable whose name speaks of a table."""
    found = []
    for name, value in (environment or {}).items():
        if not isinstance(value, str):
            continue
        arn = _TABLE_ARN.match(value)
        if arn:
            found.append(arn.group(1))
        elif _TABLE_NAME.match(value) and re.search(r"TABLE|DYNAMO|DDB|REGISTRY|CONNECTIONS", name.upper()):
            found.append(value)
    return found


__all__ = ["Guess", "infer", "find_lookups", "tables_in_environment", "looks_like_id", "CONNECTION_ID"]
