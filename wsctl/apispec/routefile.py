"""The route file (`--routes routes.json`): an API for projects without a template.

    {"routeSelectionExpression": "$request.body.action",
     "functions": {"Connect": {"runtime": "nodejs20.x", "code": "onconnect", "handler": "app.handler",
                               "environment": {"TABLE_NAME": "chat"}, "timeout": 3, "memorySize": 128}},
     "routes": [{"key": "$connect", "function": "Connect"}, {"key": "sendmessage", "twoWay": true}],
     "authorizer": {"function": "Auth", "identitySources": ["route.request.querystring.token"]},
     "tables": [{"TableName": "chat", "KeySchema": [...], "AttributeDefinitions": [...], "ttlAttribute": "ttl"}]}

Code folders are relative to the route file. A route without "function" goes to
the function given on the command line (--source/--handler), if any. Every
field is checked: an unknown one is an error, never silently ignored.
"""

import json
from pathlib import Path

from ..errors import UsageError
from ..limits import DEFAULT_MAX_ENVIRONMENTS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, HOST_IDENTITY_SOURCES
from .model import AUTH_MODES, SPECIAL_ROUTES, ApiSpec, Authorizer, FunctionSpec, Route, TableSpec

_TOP = {"routeSelectionExpression", "routes", "auth", "functions", "authorizer", "tables", "stage"}
_ROUTE = {"key", "twoWay", "function"}
_FUNCTION = {"runtime", "code", "handler", "environment", "timeout", "memorySize", "maxEnvironments"}
_AUTHORIZER = {"function", "identitySources"}


def check_auth(auth: str) -> str:
    if auth not in AUTH_MODES:
        raise UsageError("--auth must be one of: %s" % ", ".join(AUTH_MODES))
    return auth


def _unknown(where: str, value: dict, allowed: set) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise UsageError("%s: unknown field %r (allowed: %s)" % (where, extra[0], ", ".join(sorted(allowed))))


def _function(path: str, base: Path, name: str, entry) -> FunctionSpec:
    where = "route file %s, function %s" % (path, name)
    if not isinstance(entry, dict):
        raise UsageError("%s: must be an object" % where)
    _unknown(where, entry, _FUNCTION)
    for required in ("runtime", "handler"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise UsageError("%s: needs %r (a string)" % (where, required))
    code = (base / entry.get("code", ".")).resolve()
    if not code.is_dir():
        raise UsageError("%s: code folder %s does not exist" % (where, code))
    env = entry.get("environment", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
        raise UsageError("%s: environment must map names to strings" % where)
    numbers = {}
    for field_name, default, kind in (("timeout", DEFAULT_TIMEOUT_S, float), ("memorySize", DEFAULT_MEMORY_MB, int),
                                      ("maxEnvironments", DEFAULT_MAX_ENVIRONMENTS, int)):
        value = entry.get(field_name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise UsageError("%s: %s must be a positive number" % (where, field_name))
        numbers[field_name] = kind(value)
    return FunctionSpec(name=name, runtime=entry["runtime"], code_dir=code, handler=entry["handler"],
                        environment={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()},
                        timeout_s=numbers["timeout"], memory_mb=numbers["memorySize"],
                        max_environments=numbers["maxEnvironments"])


def load_spec(path: str, auth: str = "jwt", cli_functions: tuple[FunctionSpec, ...] = (),
              default_function: str | None = None, default_authorizer: Authorizer | None = None) -> ApiSpec:
    """Read a route file; `cli_functions` come from --source/--handler/--authorizer, and routes
    that name no function go to `default_function`."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError("cannot read route definition %s: %s" % (path, error.strerror)) from None
    except ValueError as error:
        raise UsageError("route definition %s is not valid JSON: %s" % (path, error)) from None
    if not isinstance(document, dict) or not isinstance(document.get("routes"), list):
        raise UsageError('route definition %s needs a "routes" list' % path)
    _unknown("route file %s" % path, document, _TOP)
    base = Path(path).resolve().parent
    functions = {}
    raw_functions = document.get("functions", {})
    if not isinstance(raw_functions, dict):
        raise UsageError('route file %s: "functions" must map names to functions' % path)
    for name, entry in raw_functions.items():
        functions[name] = _function(path, base, name, entry)
    for function in cli_functions:
        functions.setdefault(function.name, function)

    def known(name, where):
        if name is not None and name not in functions:
            raise UsageError("route file %s: %s names function %r, which is not defined" % (path, where, name))
        return name

    routes = []
    for entry in document["routes"]:
        key = entry.get("key") if isinstance(entry, dict) else entry
        if not isinstance(key, str) or not key:
            raise UsageError("route definition %s: every route needs a non-empty key" % path)
        if key.startswith("$") and key not in SPECIAL_ROUTES:
            raise UsageError("route key %r: keys starting with $ are reserved" % key)
        if isinstance(entry, dict):
            _unknown("route file %s, route %s" % (path, key), entry, _ROUTE)
        function = entry.get("function") if isinstance(entry, dict) else None
        if function is None:
            function = default_function
        routes.append(Route(key, bool(isinstance(entry, dict) and entry.get("twoWay")),
                            known(function, "route %s" % key)))

    authorizer = default_authorizer
    raw_authorizer = document.get("authorizer")
    if raw_authorizer is not None:
        if not isinstance(raw_authorizer, dict) or not isinstance(raw_authorizer.get("function"), str):
            raise UsageError('route file %s: "authorizer" needs {"function": NAME}' % path)
        _unknown("route file %s, authorizer" % path, raw_authorizer, _AUTHORIZER)
        sources = raw_authorizer.get("identitySources", list(HOST_IDENTITY_SOURCES))
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise UsageError("route file %s: authorizer identitySources must be a list of strings" % path)
        authorizer = Authorizer(known(raw_authorizer["function"], "the authorizer"), tuple(sources))

    tables = []
    for entry in document.get("tables", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("TableName"), str):
            raise UsageError('route file %s: each table needs "TableName" and CreateTable\'s fields' % path)
        args = {k: v for k, v in entry.items() if k != "ttlAttribute"}
        args.setdefault("BillingMode", "PAY_PER_REQUEST")
        tables.append(TableSpec(entry["TableName"], args, entry.get("ttlAttribute")))
    # "auth" is the bundled app's switch; for any other code, an authorizer is what decides.
    mode = document.get("auth", auth)
    if raw_functions or cli_functions:
        mode = "jwt" if authorizer is not None else "none"
    return ApiSpec(routes=tuple(routes),
                   route_selection_expression=document.get("routeSelectionExpression", "$request.body.action"),
                   auth=check_auth(mode), functions=tuple(functions.values()),
                   authorizer=authorizer, tables=tuple(tables), stage=document.get("stage"),
                   origin="route file %s" % path)
