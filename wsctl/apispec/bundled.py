"""wsctl's own API (lambda_src): one function serves every route and is its own authorizer.

The app's setup lives here, in the model that describes it, rather than in the
emulator's start-up: its function (code, handler, environment), its registry
table and, with --auth jwt, its authorizer.
"""

from pathlib import Path

import lambda_src
from lambda_src import keys

from .. import limits, names
from .model import ApiSpec, Authorizer, FunctionSpec, Route, TableSpec
from .routefile import check_auth


def default_spec(auth: str = "jwt", stack: str = names.DEFAULT_STACK, ttl_seconds: int = limits.DEFAULT_TTL_SECONDS,
                 allow_client_broadcast: bool = False, environment: dict | None = None) -> ApiSpec:
    """The bundled handler's API: $connect/$disconnect, plus $default and every action two-way."""
    from lambda_src.app import ACTIONS  # the handler brings PyJWT: apispec's other users need none of it

    check_auth(auth)
    function = names.function_name(stack)
    package = Path(lambda_src.__file__).resolve().parent
    env = names.handler_environment(stack, auth, ttl_seconds, allow_client_broadcast)
    env.update(environment or {})
    spec = FunctionSpec(name=function, runtime=limits.HANDLER_RUNTIME, code_dir=package.parent,
                        handler=limits.HANDLER, environment=env, timeout_s=float(limits.HANDLER_TIMEOUT_S),
                        memory_mb=limits.HANDLER_MEMORY_MB, watch_dir=package)
    routes = [Route("$connect", function=function), Route("$disconnect", function=function),
              Route("$default", two_way=True, function=function)]
    routes += [Route(action, two_way=True, function=function) for action in ACTIONS]
    table = names.table_name(stack)
    return ApiSpec(routes=tuple(routes), auth=auth, functions=(spec,),
                   authorizer=Authorizer(function) if auth == "jwt" else None,
                   tables=(TableSpec(table, keys.table_definition(table), keys.TTL_ATTRIBUTE),), bundled=True)
