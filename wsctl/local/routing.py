"""Route selection, as API Gateway evaluates `RouteSelectionExpression` (pure).

Forms (docs/apigw-websocket.md#route-selection): `$request.body.action`, the wrapped `${request.body.action}`,
several variables mixed with static text (`${request.body.service}/${request.body.action}`),
nested paths (`$request.body.data.kind`, array indexes `items[0]`), a purely
static value, and `\\$default` for the literal `$default`. A path that is not
found contributes "". The result is stringified (arrays as "[a, b]") and
matched exactly and case-sensitively against the custom route keys. A body
that is not JSON, an expression that cannot be evaluated, or a value that
names no route falls back to `$default`; without `$default`, None (the
gateway then answers the Forbidden error frame and keeps the connection).
"""

import json
import re
from dataclasses import dataclass
from functools import lru_cache

_PATH = r"[A-Za-z0-9_\-]+(?:\[\d+\])*(?:\.[A-Za-z0-9_\-]+(?:\[\d+\])*)*"
_TOKEN = re.compile(r"\\\$default|\$\{request\.body\.(" + _PATH + r")\}|\$request\.body\.(" + _PATH + r")")
_SEGMENT = re.compile(r"([A-Za-z0-9_\-]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class Expression:
    parts: tuple  # str literals and tuple paths

    @property
    def static(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@lru_cache(maxsize=64)
def parse(expression: str) -> Expression:
    parts, position = [], 0
    for match in _TOKEN.finditer(expression):
        if match.start() > position:
            parts.append(expression[position:match.start()])
        if match.group(0) == "\\$default":
            parts.append("$default")
        else:
            path = match.group(1) or match.group(2)
            parts.append(tuple(int(index) if index else name for name, index in _SEGMENT.findall(path)))
        position = match.end()
    if position < len(expression):
        parts.append(expression[position:])
    return Expression(tuple(parts))


def _lookup(document, path: tuple):
    value = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return _MISSING
            value = value[step]
    return value


def stringify(value) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(stringify(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def evaluate(expression: str, body: str):
    """The expression's value for this message body, or None if it cannot be evaluated."""
    parsed = parse(expression)
    if parsed.static:
        return "".join(parsed.parts)
    try:
        document = json.loads(body)
        return "".join(part if isinstance(part, str) else stringify(_lookup(document, part))
                       for part in parsed.parts)
    except (TypeError, ValueError):
        return None  # non-JSON messages always go to $default
    except RecursionError:
        return None  # nested deeper than Python can parse or stringify: cannot be evaluated


def select(expression: str, body: str, route_keys) -> str | None:
    """The route key a message goes to, `$default`, or None when nothing matches."""
    value = evaluate(expression, body)
    if value is not None and value in route_keys and value not in ("$connect", "$disconnect"):
        return value
    return "$default" if "$default" in route_keys else None
