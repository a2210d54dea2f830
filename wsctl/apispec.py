"""The API's route definition: one description that drives both `deploy` and `local up`.

For the bundled handler it is derived from lambda_src's action table; for any
other handler run by the emulator it can be given as a JSON file:

    {"routeSelectionExpression": "$request.body.action",
     "routes": [{"key": "$connect"}, {"key": "sendmessage", "twoWay": true}]}
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

AUTH_MODES = ("jwt", "none")
SPECIAL_ROUTES = ("$connect", "$disconnect", "$default")


@dataclass(frozen=True)
class Route:
    key: str
    two_way: bool = False  # API Gateway sends the integration's `body` back only on two-way routes


@dataclass(frozen=True)
class ApiSpec:
    routes: tuple[Route, ...]
    route_selection_expression: str = "$request.body.action"
    auth: str = "jwt"  # "jwt": the REQUEST authorizer on $connect; "none": anonymous connections
    integration_timeout_ms: int = 29000

    def route(self, key: str) -> Route | None:
        return next((r for r in self.routes if r.key == key), None)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.routes)


def check_auth(auth: str) -> str:
    if auth not in AUTH_MODES:
        raise UsageError("--auth must be one of: %s" % ", ".join(AUTH_MODES))
    return auth


def default_spec(auth: str = "jwt") -> ApiSpec:
    """The bundled handler's API: $connect/$disconnect, plus $default and every action two-way."""
    from lambda_src.app import ACTIONS

    routes = [Route("$connect"), Route("$disconnect"), Route("$default", two_way=True)]
    routes += [Route(action, two_way=True) for action in ACTIONS]
    return ApiSpec(routes=tuple(routes), auth=check_auth(auth))


def load_spec(path: str, auth: str = "jwt") -> ApiSpec:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError("cannot read route definition %s: %s" % (path, error.strerror)) from None
    except ValueError as error:
        raise UsageError("route definition %s is not valid JSON: %s" % (path, error)) from None
    if not isinstance(document, dict) or not isinstance(document.get("routes"), list):
        raise UsageError('route definition %s needs a "routes" list' % path)
    routes = []
    for entry in document["routes"]:
        key = entry.get("key") if isinstance(entry, dict) else entry
        if not isinstance(key, str) or not key:
            raise UsageError("route definition %s: every route needs a non-empty key" % path)
        if key.startswith("$") and key not in SPECIAL_ROUTES:
            raise UsageError("route key %r: keys starting with $ are reserved" % key)
        routes.append(Route(key, bool(isinstance(entry, dict) and entry.get("twoWay"))))
    return ApiSpec(routes=tuple(routes),
                   route_selection_expression=document.get("routeSelectionExpression", "$request.body.action"),
                   auth=check_auth(document.get("auth", auth)))
