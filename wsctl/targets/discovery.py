"""Finding a foreign API's connection registry: which table, and how it keeps connections.

The candidates come from where the API's project names its tables: the CloudFormation stack that made
the API (its AWS::DynamoDB::Table resources), the environment of the functions behind the API's
routes (a variable whose value is a table), a template given with --template, or the user
(--registry). Each candidate is then read as DynamoDB describes it (DescribeTable,
DescribeTimeToLive) and by a few of its items (wsctl.registry.infer), and the ids that reading
yields are proved with GetConnection: 200 (connected) or 410 (gone) on ids of API Gateway's shape.
When wsctl cannot tell, it says what it found and which option decides.
"""

import logging
from dataclasses import dataclass, field, replace

from lambda_src.registry import decode

from .. import aws
from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus
from ..registry import DATA_CONFIG
from ..registry.infer import Guess, find_lookups, infer, looks_like_id
from ..registry.layout import Layout, parse_key, parse_lookup

_log = logging.getLogger("wsctl.targets")
SAMPLE_ITEMS = 25  # one Scan page's worth: enough to see the key's shape and a few ids
PROVE_IDS = 5  # GetConnection calls per candidate table


@dataclass(frozen=True)
class RegistryOptions:
    """What the user said of the registry: --registry TABLE and the parts wsctl cannot always tell."""
    table: str | None = None
    key: tuple[str, ...] = ()
    id_attribute: str | None = None
    user: str | None = None
    room: str | None = None
    ttl: str | None = None

    def __post_init__(self):
        if (self.key or self.id_attribute or self.user or self.room or self.ttl) and not self.table:
            raise UsageError("--registry-key, --registry-id, --registry-user, --registry-room and --registry-ttl "
                             "describe the table --registry names: give --registry TABLE too")
        try:  # refuse a malformed option before any AWS call
            parse_key(list(self.key))
            for what in ("user", "room"):
                if getattr(self, what):
                    parse_lookup(getattr(self, what), what)
        except ValueError as error:
            raise UsageError(str(error)) from None

    def apply(self, layout: Layout) -> Layout:
        """The layout with what the user gave in place of what was read."""
        changes = {}
        if self.id_attribute:
            changes["id_attribute"] = self.id_attribute
        for what in ("user", "room"):
            if getattr(self, what):
                changes[what] = parse_lookup(getattr(self, what), what)
        if self.ttl:
            changes["ttl_attribute"] = None if self.ttl.lower() == "none" else self.ttl
        return replace(layout, **changes)


@dataclass
class Finding:
    """The registry found (or not), with what was seen on the way, in words."""
    layout: Layout | None
    lines: list = field(default_factory=list)
    missing: str = ""


def discover(target, candidates: list[tuple[str, str]], options: RegistryOptions, owned: bool = False) -> Finding:
    """The registry among `candidates` ((table, where it was named), in order), or the one the user
    named. Raises WsctlError when the tables cannot be read at all (permissions, endpoint)."""
    if options.table:
        candidates = [(options.table, "--registry")]
    seen, unique = set(), []
    for table, where in candidates:
        if table not in seen:
            seen.add(table)
            unique.append((table, where))
    if not unique:
        return Finding(None, ["no table found: the API's functions name none in their environment%s" % (
            "" if target.local else ", and no CloudFormation stack names one")], "no table found")
    ddb = target.client("dynamodb", **DATA_CONFIG)  # the registry reader's own client, made once
    proven, lines, problems = [], [], []
    for table, where in unique:
        guess = _read(ddb, table, options, owned)
        if guess is None:
            lines.append("%s (named in %s): no such table" % (table, where))
            if options.table:
                raise WsctlError("--registry %s: no such table in %s" % (table, target.describe()),
                                 ExitStatus.NOT_FOUND)
            continue
        lines += ["%s (named in %s): %s" % (table, where, line) if n == 0 else "  " + line
                  for n, line in enumerate(guess.found)]
        if guess.layout is None:
            problems.append("%s: %s" % (table, guess.missing))
            continue
        verdict = _prove(target, guess)
        lines.append("  " + verdict[1])
        if verdict[0]:
            proven.append(guess.layout)
        else:
            problems.append("%s: %s" % (table, verdict[1]))
    for line in lines:  # --debug shows what discovery saw: commands never guess silently
        _log.debug("registry: %s", line)
    if len(proven) == 1:
        return Finding(proven[0], lines)
    if len(proven) > 1:
        raise UsageError("%d tables could be the registry (%s): choose one with --registry TABLE" % (
            len(proven), ", ".join(layout.table for layout in proven)))
    return Finding(None, lines, "; ".join(problems) or "no table holds connection ids")


def _read(ddb, table: str, options: RegistryOptions, owned: bool) -> Guess | None:
    try:
        description = ddb.describe_table(TableName=table)["Table"]
    except Exception as error:  # noqa: BLE001 - botocore's ClientError
        if aws.error_code(error) == "ResourceNotFoundException":
            return None
        raise
    ttl = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    ttl_attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
    items = [decode(item) for item in ddb.scan(TableName=table, Limit=SAMPLE_ITEMS).get("Items", [])]
    if options.key:
        guess = _given_key(description, ttl_attribute, items, options, owned)
    else:
        guess = infer(description, ttl_attribute, items, owned)
    if guess.layout is not None:
        guess.layout = options.apply(guess.layout)
    return guess


def _given_key(description, ttl_attribute, items, options: RegistryOptions, owned: bool) -> Guess:
    """The layout with the key the user gave; users, rooms and TTL still read off the table."""
    key = parse_key(list(options.key))
    schema = [k["AttributeName"] for k in description["KeySchema"]]
    if sorted(part.attribute for part in key) != sorted(schema):
        raise UsageError("--registry-key names %s, but the table %s is keyed by %s" % (
            ", ".join(p.attribute for p in key), description["TableName"], " and ".join(schema)))
    key = tuple(sorted(key, key=lambda part: schema.index(part.attribute)))
    layout = Layout(description["TableName"], key, ttl_attribute=ttl_attribute, owned=owned)
    connections = [item for item in items if layout.connection_id(item) is not None]
    if options.id_attribute is None and connections:  # an attribute holding the bare id, if one does
        layout = replace(layout, id_attribute=next((name for name in sorted(connections[0]) if name not in schema
                                                    and all(looks_like_id(i.get(name)) for i in connections)), None))
    found = ["connection items keyed %s (as given)" % " ".join(str(p) for p in key)]
    guess = find_lookups(description, layout, items, found, owned)
    guess.sample_ids = [layout.connection_id(item) for item in connections][:10]
    return guess


def _prove(target, guess: Guess) -> tuple[bool, str]:
    """GetConnection on a few of the ids the guess reads: (proved, what was seen)."""
    ids = [cid for cid in guess.sample_ids if cid][:PROVE_IDS]
    if not ids:
        empty = all(part.template.placeholder == "id" or part.template.constant for part in guess.layout.key)
        return empty, "no connection in the table yet: nothing to prove the layout with (taken as read)"
    client = target.management_client()
    answers = {}
    for cid in ids:
        try:
            client.get_connection(ConnectionId=cid)
            answers[cid] = 200
        except Exception as error:  # noqa: BLE001 - botocore's ClientError and connection errors
            status = aws.status_code(error)
            if status == 403:
                raise WsctlError("GetConnection on %s answered 403: the stage %s is wrong or your identity lacks "
                                 "execute-api:ManageConnections on %s" % (cid, target.stage, target.forbidden_where()),
                                 ExitStatus.FORBIDDEN) from None
            answers[cid] = status or str(error)
    live = sum(1 for status in answers.values() if status == 200)
    gone = sum(1 for status in answers.values() if status == 410)
    shaped = all(looks_like_id(cid) for cid in ids)
    words = "GetConnection on %d sampled id(s): %d connected, %d gone (410)" % (len(ids), live, gone)
    others = len(ids) - live - gone
    if others:
        words += ", %d other answers (%s)" % (others, ", ".join(sorted({str(s) for s in answers.values()
                                                                         if s not in (200, 410)})))
    if live:
        return True, words + ": the ids are this API's connections"
    if gone == len(ids) and shaped:
        return True, words + ": ids of API Gateway's shape, none connected now"
    return False, words + ": these are not this API's connection ids (another stage or API?)"


__all__ = ["RegistryOptions", "Finding", "discover"]
