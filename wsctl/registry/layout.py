"""A connection registry as a value: which table, how a connection's item is keyed, where its user
and rooms are found, and its TTL attribute. Pure: no I/O.

AWS has no call that lists a WebSocket API's connections, so every project keeps its own table, each
in its own design. AWS's canonical sample keys a table by `connectionId` alone; single-table designs
key a connection as `PK=CONN#{id}, SK=CONN`; wsctl's own layout (lambda_src/keys.py) is one value of
this type (`wsctl_layout`). Nothing outside this module reads key names: code asks the layout.
"""

import re
from dataclasses import dataclass, field

from lambda_src import keys

_PLACEHOLDER = re.compile(r"\{(id|user|room)\}")


@dataclass(frozen=True)
class Template:
    """A key value: a constant (`CONN`), or a constant prefix and suffix around one placeholder
    (`CONN#{id}`, `{id}`, `USER#{user}`)."""
    text: str

    def __post_init__(self):
        found = _PLACEHOLDER.findall(self.text)
        if len(found) > 1 or "{" in _PLACEHOLDER.sub("", self.text):
            raise ValueError("%r: a template holds at most one of {id}, {user} or {room}" % self.text)

    @property
    def placeholder(self) -> str | None:
        found = _PLACEHOLDER.search(self.text)
        return found.group(1) if found else None

    @property
    def constant(self) -> bool:
        return self.placeholder is None

    def _parts(self) -> tuple[str, str]:
        found = _PLACEHOLDER.search(self.text)
        return self.text[:found.start()], self.text[found.end():]

    def render(self, value: str = "") -> str:
        return self.text if self.constant else _PLACEHOLDER.sub(lambda _: value, self.text)

    def parse(self, value) -> str | None:
        """The placeholder's value in `value`; for a constant, "" when it matches. None: no match."""
        if not isinstance(value, str):
            return None
        if self.constant:
            return "" if value == self.text else None
        prefix, suffix = self._parts()
        if len(value) <= len(prefix) + len(suffix) or not value.startswith(prefix) or not value.endswith(suffix):
            return None
        return value[len(prefix):len(value) - len(suffix)]

    @property
    def prefix(self) -> str:
        return self.text if self.constant else self._parts()[0]


@dataclass(frozen=True)
class KeyPart:
    attribute: str
    template: Template

    def __str__(self) -> str:
        return "%s=%s" % (self.attribute, self.template.text)


@dataclass(frozen=True)
class Lookup:
    """Where a connection's user (or a room's members) is found: the items whose `attribute` holds
    `template` filled with the user (room). With an `index`, a Query on it finds them (a user's
    connections, a room's members); without one the attribute is only shown."""
    attribute: str
    template: Template
    index: str | None = None

    def __str__(self) -> str:
        return "%s%s=%s" % (self.index + ":" if self.index else "", self.attribute, self.template.text)


@dataclass(frozen=True)
class Layout:
    table: str
    key: tuple[KeyPart, ...]  # the connection item's primary key, hash first
    id_attribute: str | None = None  # an attribute holding the bare id (else it is read from the key)
    user: Lookup | None = None
    room: Lookup | None = None
    ttl_attribute: str | None = None
    owned: bool = False  # wsctl's own table: gone entries are removed without asking
    cascade: bool = False  # a connection's other items (memberships) share its partition: delete them with it
    connected_at: tuple[str, ...] = field(default=("connectedAt", "connected_at", "createdAt", "created_at",
                                                   "timestamp"))

    # -- keys ----------------------------------------------------------------------------------
    def key_for(self, connection_id: str) -> dict:
        """The connection item's primary key (plain values)."""
        return {part.attribute: part.template.render(connection_id) for part in self.key}

    @property
    def partition(self) -> KeyPart:
        return self.key[0]

    def partition_for(self, connection_id: str) -> str:
        return self.partition.template.render(connection_id)

    def connection_id(self, item: dict) -> str | None:
        """The id of a connection item; None for any other item (a membership, another entity)."""
        found = None
        for part in self.key:
            value = part.template.parse(item.get(part.attribute))
            if value is None:
                return None
            if value:
                found = value
        if self.id_attribute and isinstance(item.get(self.id_attribute), str):
            return item[self.id_attribute]
        return found

    def owner_id(self, item: dict) -> str | None:
        """The connection an item belongs to: its id attribute, or its partition key read as the
        connection's (a membership under CONN#{id})."""
        if self.id_attribute and isinstance(item.get(self.id_attribute), str):
            return item[self.id_attribute]
        return self.partition.template.parse(item.get(self.partition.attribute)) or None

    def user_of(self, item: dict) -> str | None:
        return self.user.template.parse(item.get(self.user.attribute)) if self.user else None

    def room_of(self, item: dict) -> str | None:
        return self.room.template.parse(item.get(self.room.attribute)) if self.room else None

    def is_live(self, item: dict, now: float) -> bool:
        """DynamoDB deletes expired items lazily (a day or two later): readers skip them."""
        if not self.ttl_attribute:
            return True
        ttl = item.get(self.ttl_attribute)
        return not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl > now

    def expired(self, item: dict, now: float) -> bool:
        return not self.is_live(item, now)

    def connected_at_of(self, item: dict):
        return next((item[name] for name in self.connected_at if item.get(name) is not None), None)

    # -- what DynamoDB is asked ------------------------------------------------------------------
    def connection_filter(self, now: float | None = None) -> dict:
        """Scan parameters that keep only connection items (their key's constant parts), and only
        live ones when `now` is given and the table has a TTL attribute."""
        names, values, terms = {}, {}, []
        for number, part in enumerate(self.key):
            name = "#k%d" % number
            if part.template.constant:
                names[name], values[":k%d" % number] = part.attribute, {"S": part.template.text}
                terms.append("%s = :k%d" % (name, number))
            elif part.template.prefix:
                names[name], values[":k%d" % number] = part.attribute, {"S": part.template.prefix}
                terms.append("begins_with(%s, :k%d)" % (name, number))
        if now is not None and self.ttl_attribute:
            names["#ttl"], values[":now"] = self.ttl_attribute, {"N": str(int(now))}
            terms.append("(attribute_not_exists(#ttl) OR #ttl > :now)")
        if not terms:
            return {}
        return {"FilterExpression": " AND ".join(terms), "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values}

    def id_projection(self) -> list[str]:
        """The attributes a connection's id (and its liveness) is read from."""
        wanted = [part.attribute for part in self.key]
        for name in (self.id_attribute, self.ttl_attribute):
            if name and name not in wanted:
                wanted.append(name)
        return wanted

    # -- words and storage ----------------------------------------------------------------------------
    def describe(self) -> str:
        words = ["table %s" % self.table, "key %s" % " ".join(str(part) for part in self.key)]
        if self.id_attribute and self.id_attribute not in [p.attribute for p in self.key]:
            words.append("id in %s" % self.id_attribute)
        for label, lookup in (("users", self.user), ("rooms", self.room)):
            if lookup:
                words.append("%s %s %s" % (label, "by index" if lookup.index else "in", lookup))
        words.append("ttl %s" % self.ttl_attribute if self.ttl_attribute else "no ttl")
        return ", ".join(words)

    def to_dict(self) -> dict:
        def lookup(value: Lookup | None):
            return None if value is None else {"attribute": value.attribute, "template": value.template.text,
                                               "index": value.index}
        return {"table": self.table, "key": [{"attribute": p.attribute, "template": p.template.text} for p in self.key],
                "idAttribute": self.id_attribute, "user": lookup(self.user), "room": lookup(self.room),
                "ttlAttribute": self.ttl_attribute, "owned": self.owned, "cascade": self.cascade}

    @classmethod
    def from_dict(cls, data: dict) -> "Layout":
        def lookup(value):
            return None if not value else Lookup(value["attribute"], Template(value["template"]), value.get("index"))
        return cls(table=data["table"], key=tuple(KeyPart(p["attribute"], Template(p["template"])) for p in data["key"]),
                   id_attribute=data.get("idAttribute"), user=lookup(data.get("user")), room=lookup(data.get("room")),
                   ttl_attribute=data.get("ttlAttribute"), owned=bool(data.get("owned")),
                   cascade=bool(data.get("cascade")))


def wsctl_layout(table: str) -> Layout:
    """wsctl's own single-table layout (lambda_src/keys.py): connections and room memberships under
    CONN#{id}, users and rooms on GSI1."""
    return Layout(
        table=table,
        key=(KeyPart("PK", Template(keys.CONN_PREFIX + "{id}")), KeyPart("SK", Template(keys.CONN_SK))),
        id_attribute="connectionId",
        user=Lookup("GSI1PK", Template(keys.USER_PREFIX + "{user}"), keys.GSI1),
        room=Lookup("GSI1PK", Template(keys.ROOM_PREFIX + "{room}"), keys.GSI1),
        ttl_attribute=keys.TTL_ATTRIBUTE, owned=True, cascade=True)


# -- the options that describe a registry -------------------------------------------------------------
def parse_key(values: list[str]) -> tuple[KeyPart, ...]:
    """--registry-key ATTR=TEMPLATE (given once per key attribute, hash first)."""
    parts = []
    for value in values:
        for piece in [p for p in value.split(",") if p.strip()]:
            attribute, sep, text = piece.strip().partition("=")
            if not sep or not attribute or not text:
                raise ValueError("--registry-key %r: write ATTRIBUTE=TEMPLATE, e.g. PK=CONN#{id}" % piece)
            template = Template(text)
            if template.placeholder not in (None, "id"):
                raise ValueError("--registry-key %r: a key template holds {id} or nothing" % piece)
            parts.append(KeyPart(attribute, template))
    if parts and all(part.template.constant for part in parts):
        raise ValueError("--registry-key: one key attribute must hold the id ({id})")
    if len(parts) > 2:
        raise ValueError("--registry-key: a DynamoDB key has one or two attributes")
    return tuple(parts)


def parse_lookup(value: str, what: str) -> Lookup:
    """--registry-user [INDEX:]ATTR[=TEMPLATE] (and --registry-room): `GSI1:GSI1PK=USER#{user}`,
    `byUser:userId`, or `userId` (shown, not queried)."""
    option = "--registry-%s" % what
    head, sep, text = value.partition("=")
    index, colon, attribute = head.rpartition(":")
    if not attribute or (colon and not index):
        raise ValueError("%s %r: write [INDEX:]ATTRIBUTE[=TEMPLATE], e.g. GSI1:GSI1PK=%s#{%s}"
                         % (option, value, what.upper(), what))
    template = Template(text if sep else "{%s}" % what)
    if template.placeholder != what:
        raise ValueError("%s %r: the template must hold {%s}" % (option, value, what))
    return Lookup(attribute, template, index or None)


__all__ = ["Template", "KeyPart", "Lookup", "Layout", "wsctl_layout", "parse_key", "parse_lookup"]
