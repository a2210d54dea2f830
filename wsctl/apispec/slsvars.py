"""Serverless Framework variables (`${self:custom.table}`, `${opt:stage, 'dev'}`...), resolved (pure).

The syntax is the Framework's (v3 and v4): `${source:address}` anywhere in a string value,
nested at any depth (`${file(./config.${sls:stage}.yml):table}`), fallbacks after commas (a
quoted literal, a number, true/false/null, or another variable, with or without its `${}`).
A value that is one variable keeps its type (a map from `${file(...)}`, a number); inside a
longer string each variable must give a scalar. `${...}` with neither a colon nor parentheses
(`${Api}`), and `${AWS::Region}`-style names, are CloudFormation's (Fn::Sub): left as they are.

Sources served here: `self` (this file, dotted path), `opt` (`stage` from --stage), `sls`
(`stage`, `instanceId`), `env`, `file(path)` (YAML or JSON, through a reader given by the
caller), `param` (the service's `params`/`stages` blocks), `aws` (`region`, `accountId`,
`partition`: the emulator's), `strToBool`. Anything else (`ssm`, `cf`, `s3`, a plugin's source)
has a value only if `--var 'source:address=VALUE'` gives one; so can any variable.

Resolution is lazy: `Variables.get(path)` resolves what one setting needs, so a variable in a
part of the file the emulator never reads (a deployment bucket, IAM statements) is never an
error. What cannot be resolved is one line naming the variable and the option that supplies it.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UsageError

MISSING = object()  # a source that has no value for an address (the next fallback is tried)
_CLOUDFORMATION = ("AWS", "PROP", "iot")  # `${AWS::Region}`...: Fn::Sub's, not a variable (as the Framework)
_SOURCE = re.compile(r"^(?P<source>[A-Za-z][\w-]*)(?:\((?P<params>.*)\))?(?::(?P<address>.*))?$", re.S)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_WHY = {
    "ssm": "reads SSM Parameter Store, which wsctl does not read",
    "cf": "reads another stack's output, which wsctl does not read",
    "s3": "reads an S3 object, which wsctl does not read",
    "output": "reads another service's output, which wsctl does not read",
}


@dataclass(frozen=True)
class Sources:
    """Where variables' values come from, besides the file itself."""
    stage: str | None = None  # --stage (what `${opt:stage}` reads)
    env: dict = field(default_factory=dict)  # the environment, and the service's .env files
    given: dict = field(default_factory=dict)  # --var 'source:address=VALUE'
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"
    instance_id: str = "0"
    read_file: Callable[[str], object] = lambda path: MISSING  # parsed content of a file, or MISSING


class _Missing(Exception):
    """A candidate without a value: why (for the error if no fallback has one)."""


def _scan(text: str):
    """(start, end, body) of each top-level `${...}` in text, nested ones inside the body."""
    depth, start = 0, -1
    index = 0
    while index < len(text):
        if text.startswith("${", index):
            if depth == 0:
                start = index
            depth += 1
            index += 2
            continue
        if text[index] == "}" and depth:
            depth -= 1
            if depth == 0:
                yield start, index + 1, text[start + 2:index]
        index += 1


def _split_top(text: str, separator: str) -> list:
    """text split on `separator` where it is outside parentheses, quotes and `${...}`."""
    parts, depth, quote, begin, index = [], 0, None, 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif text.startswith("${", index):
            depth += 1
            index += 1
        elif char == "(":
            depth += 1
        elif char in ")}" and depth:
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[begin:index])
            begin = index + 1
        index += 1
    parts.append(text[begin:])
    return parts


def is_variable(body: str) -> bool:
    """Whether `${body}` is the Framework's (else CloudFormation's Fn::Sub, left as it is)."""
    first = _split_top(body, ",")[0].strip()
    source = re.split(r"[:(]", first, maxsplit=1)[0]
    if source in _CLOUDFORMATION or first.startswith("!"):
        return False
    return ":" in first or ("(" in first and ")" in first)


def _literal(text: str):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.match(text) or text in ("true", "false", "null"):
        return json.loads(text)
    return text


def _describe(value) -> str:
    return "a map" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


class Variables:
    """The service file (`root`, parsed) and its variables, resolved on demand."""

    def __init__(self, root: dict, sources: Sources, name: str):
        self.root = root
        self.sources = sources
        self.name = name  # the file, prefixing every error
        self._busy = set()  # self: paths being resolved (a cycle ends here)

    def fail(self, where: str, text: str):
        raise UsageError("%s: %s: %s" % (self.name, where, text))

    # -- walking the document --------------------------------------------------------------------

    def shallow(self, node, where: str):
        """A node with its own variable resolved (a `${file(...)}` standing for a map), not its children's."""
        while isinstance(node, str) and self._whole(node) is not None:
            node = self.deep(node, where)
        return node

    def node(self, path: tuple, where: str | None = None):
        """The node at `path` (map keys, list indexes), resolved shallowly at each step; MISSING if absent."""
        node = self.root
        for depth, key in enumerate(path):
            node = self.shallow(node, where or ".".join(map(str, path[:depth])) or "(the file)")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                return MISSING
        return node

    def get(self, path: tuple, default=None):
        """The value at `path` with every variable in it resolved; `default` if absent."""
        where = ".".join(map(str, path))
        node = self.node(path)
        if node is MISSING:
            return default
        value = self.deep(node, where)
        return default if value is None else value

    def keys(self, path: tuple) -> list:
        node = self.shallow(self.node(path), ".".join(map(str, path)))
        return list(node) if isinstance(node, dict) else []

    # -- resolving -------------------------------------------------------------------------------

    def deep(self, node, where: str):
        if isinstance(node, dict):
            return {key: self.deep(value, "%s.%s" % (where, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self.deep(value, "%s[%d]" % (where, index)) for index, value in enumerate(node)]
        if isinstance(node, str):
            return self.string(node, where)
        return node

    def _whole(self, text: str):
        """The body when `text` is exactly one variable, else None."""
        found = list(_scan(text))
        if len(found) == 1 and found[0][0] == 0 and found[0][1] == len(text) and is_variable(found[0][2]):
            return found[0][2]
        return None

    def string(self, text: str, where: str):
        whole = self._whole(text)
        if whole is not None:
            return self.placeholder(whole, where)
        pieces, position = [], 0
        for start, end, body in _scan(text):
            if not is_variable(body):
                continue
            value = self.placeholder(body, where)
            if isinstance(value, (dict, list)) or value is None:
                self.fail(where, "${%s} gives %s, inside a longer string" % (body, _describe(value)))
            pieces += [text[position:start], json.dumps(value) if isinstance(value, bool) else str(value)]
            position = end
        return "".join(pieces) + text[position:] if pieces else text

    def placeholder(self, body: str, where: str):
        """One `${...}`: its first candidate that has a value."""
        reasons = []
        for candidate in (c.strip() for c in _split_top(body, ",")):
            try:
                return self.candidate(candidate, where)
            except _Missing as missing:
                reasons.append(str(missing))
        self.fail(where, reasons[0])

    def candidate(self, text: str, where: str):
        if text.startswith("${") and text.endswith("}") and self._whole(text) is not None:
            text = text[2:-1]
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return self.string(text[1:-1], where)  # a quoted fallback may hold variables too
        match = _SOURCE.match(text)
        if match is None or (match.group("params") is None and match.group("address") is None):
            return _literal(text)  # a bare fallback: a number, true/false/null, or a word
        source = match.group("source")
        params = self.string(match.group("params"), where) if match.group("params") is not None else None
        address = self.string(match.group("address") or "", where)
        key = "file(%s):%s" % (params, address) if source == "file" else "%s:%s" % (source, address)
        if source == "file" and not address:
            key = "file(%s)" % params
        if key in self.sources.given:
            return self.sources.given[key]
        value = self.source(source, params, address, key, where)
        if value is None or value is MISSING:
            raise _Missing(self.missing(source, address, key))
        return value

    def missing(self, source: str, address: str, key: str) -> str:
        option = "--var '%s=VALUE'" % key
        if source == "opt" and address == "stage":
            return "${opt:stage} has no value: give --stage"
        if source == "env":
            return "${env:%s} has no value: %s is not set in the environment (or give %s)" % (address, address, option)
        if source == "self":
            return "${self:%s} has no value: the file has no %s" % (address, address or "content")
        if source == "file":
            return "${%s} has no value: no such file or key" % key
        if source in ("opt", "param", "sls", "aws", "strToBool"):
            return "${%s} has no value: give it with %s" % (key, option)
        why = _WHY.get(source, "uses variable source %r, which wsctl does not know (a plugin's?)" % source)
        return "${%s} %s: give its value with %s" % (key, why, option)

    def source(self, source: str, params, address: str, key: str, where: str):
        sources = self.sources
        if source == "self":
            path = tuple(int(p) if p.isdigit() else p for p in address.split(".")) if address else ()
            if path in self._busy:
                self.fail(where, "${self:%s} refers to itself (a circular reference)" % address)
            self._busy.add(path)
            try:
                return self.get(path, MISSING)
            finally:
                self._busy.discard(path)
        if source == "opt":
            return sources.stage if address == "stage" else MISSING
        if source == "sls":
            if address == "stage":
                return sources.stage or self.get(("provider", "stage")) or "dev"
            return sources.instance_id if address == "instanceId" else MISSING
        if source == "env":
            return sources.env.get(address, MISSING)
        if source == "aws":
            return {"region": sources.region, "accountId": sources.account_id,
                    "partition": sources.partition}.get(address, MISSING)
        if source == "param":
            stage = self.source("sls", None, "stage", "sls:stage", where)
            for path in (("stages", stage, "params", address), ("params", stage, address),
                         ("stages", "default", "params", address), ("params", "default", address)):
                value = self.get(path, MISSING)
                if value is not MISSING:
                    return value
            return MISSING
        if source == "strToBool":
            text = str(params if params is not None else address).strip().lower()
            if text not in ("true", "false", "1", "0"):
                self.fail(where, "${%s}: strToBool takes true, false, 1 or 0, not %r" % (key, text))
            return text in ("true", "1")
        if source == "file":
            content = sources.read_file(params or "")
            if content is MISSING:
                return MISSING
            value = self.deep(content, "%s (in %s)" % (where, params))
            for step in (address.split(".") if address else ()):
                if not isinstance(value, dict) or step not in value:
                    return MISSING
                value = value[step]
            return value
        return MISSING
