"""Which description of the API `wsctl local up` runs: a template, a route file, a handler
given on the command line, or wsctl's own API (in that order of precedence)."""

import sys
from dataclasses import replace
from pathlib import Path

from .. import limits, names
from ..errors import UsageError
from .bundled import default_spec
from .model import ApiSpec, Authorizer, FunctionSpec, Route
from .routefile import load_spec


def guess_runtime(source: Path, handler: str) -> str:
    """python3.x or nodejs*.x from the handler's file: app.handler -> app.py, app.mjs, app.js, ..."""
    module = handler.rpartition(".")[0]
    base = source / module.replace(".", "/")
    for suffix, runtime in ((".py", "python%d.%d" % sys.version_info[:2]), (".mjs", "nodejs"), (".cjs", "nodejs"),
                            (".js", "nodejs")):
        if base.with_name(base.name + suffix).exists() or \
                (suffix == ".js" and (source / (module + suffix)).exists()):
            if runtime == "nodejs":
                from ..local.functions.runtimes import local_node_major  # the Lambda service brings aiohttp

                return "nodejs%sx" % ("%d." % (local_node_major() or 20))
            return runtime
    raise UsageError("--handler %s: found no %s.py, .mjs, .cjs or .js in %s (or say --runtime)"
                     % (handler, module, source))


def _cli_function(name: str, source: Path, handler: str, runtime: str | None, option: str) -> FunctionSpec:
    if not handler.rpartition(".")[0]:
        raise UsageError("%s must be module.function (e.g. app.handler), not %r" % (option, handler))
    return FunctionSpec(name=name, runtime=runtime or guess_runtime(source, handler), code_dir=source,
                        handler=handler, timeout_s=float(limits.INTEGRATION_TIMEOUT_S))


def read_template(template: str, parameter_overrides: list[str], variables: list[str], *, stack: str,
                  stage: str | None, cache: Path | None) -> ApiSpec:
    """--template: a SAM/CloudFormation template, a CDK cloud assembly (the folder, or one of its
    templates) or a Serverless Framework service file; `stage` is --stage when given, `cache`
    where zipped code is unpacked."""
    # Templates bring PyYAML: imported only here.
    from . import cdk, serverless
    from .intrinsics import parse_parameter_overrides
    from .template import load_document, read_document

    path = Path(template)
    api_id = names.local_api_id(stack)
    if serverless.is_service_file(path):
        if parameter_overrides:
            raise UsageError("--parameter-overrides sets a CloudFormation template's Parameters; a serverless.yml "
                             "takes its variables' values with --var")
        return serverless.load_service(path, serverless.parse_variables(variables), stage=stage, api_id=api_id,
                                       cache=cache)
    if variables:
        raise UsageError("--var gives a Serverless Framework variable's value: it needs --template serverless.yml")
    overrides = parse_parameter_overrides(parameter_overrides)
    if path.is_dir():
        if not (path / cdk.MANIFEST).is_file():
            raise UsageError("--template %s is a folder without %s: give a template file, a CDK cloud assembly "
                             "(cdk.out) or a serverless.yml" % (template, cdk.MANIFEST))
        return cdk.load_stack(path, overrides, api_id=api_id, cache=cache)
    document = load_document(path)
    if cdk.is_cdk_template(path, document):
        return cdk.load_stack(path, overrides, api_id=api_id, cache=cache)
    return read_document(document, template, path.resolve().parent, overrides, stack_name=stack, api_id=api_id)


def build_spec(*, template: str | None, parameter_overrides: list[str], routes: str | None, source: str | None,
               handler: str | None, runtime: str | None, authorizer: str | None, identity_sources: tuple,
               auth: str, stack: str, ttl_seconds: int, allow_client_broadcast: bool,
               variables: list[str] = (), stage: str | None = None, cache: Path | None = None) -> ApiSpec:
    if template is not None:
        if source or handler or routes or authorizer:
            raise UsageError("--template defines the functions and routes: drop --source, --handler, --routes "
                             "and --authorizer")
        return read_template(template, parameter_overrides, list(variables), stack=stack, stage=stage, cache=cache)
    if parameter_overrides or variables:
        raise UsageError("%s needs --template" % ("--parameter-overrides" if parameter_overrides else "--var"))
    if source is None and (handler or authorizer or runtime):
        raise UsageError("--handler, --authorizer and --runtime need --source FOLDER")
    if source is None and routes is None:
        spec = default_spec(auth, stack, ttl_seconds, allow_client_broadcast)
        if identity_sources and spec.authorizer:
            spec = _with_authorizer(spec, Authorizer(spec.authorizer.function, identity_sources))
        return spec
    cli_functions, default, cli_authorizer = [], None, None
    if source is not None:
        folder = Path(source).resolve()
        if not folder.is_dir():
            raise UsageError("--source %s is not a folder" % source)
        if handler is None and routes is None:
            raise UsageError("--source needs --handler module.function (e.g. --handler app.handler)")
        if handler is not None:
            default = names.function_name(stack)
            cli_functions.append(_cli_function(default, folder, handler, runtime, "--handler"))
        if authorizer is not None:
            name = names.function_name(stack) + "-authorizer"
            cli_functions.append(_cli_function(name, folder, authorizer, runtime, "--authorizer"))
            cli_authorizer = Authorizer(name, identity_sources or limits.HOST_IDENTITY_SOURCES)
    if routes is not None:
        spec = load_spec(routes, auth, tuple(cli_functions), default, cli_authorizer)
        missing = [r.key for r in spec.routes if r.function is None]
        if missing:
            raise UsageError("route file %s: route %s names no function (add \"function\", or give --source and "
                             "--handler for routes without one)" % (routes, missing[0]))
        return spec
    if auth == "jwt" and cli_authorizer is None:
        raise UsageError("--auth jwt with your own --handler needs --authorizer module.function (or --auth none)")
    # Someone else's handler: every message goes to $default unless --routes says otherwise.
    route_list = (Route("$connect", function=default), Route("$disconnect", function=default),
                  Route("$default", two_way=True, function=default))
    return ApiSpec(routes=route_list, auth=auth, functions=tuple(cli_functions), authorizer=cli_authorizer,
                   origin="%s from %s" % (handler, source))


def project_folder(template: str | None, routes: str | None, source: str | None) -> Path:
    """The project's folder (it names the emulator, and `local ls` shows it): the template's or
    route file's, else --source, else the current folder."""
    if template or routes:
        folder = Path(template or routes).resolve()
        folder = folder if folder.is_dir() else folder.parent
        while (folder / "manifest.json").is_file() and folder.parent != folder:  # a CDK assembly: its app's
            folder = folder.parent
        return folder
    return Path(source).resolve() if source else Path.cwd()


def stage_for(spec: ApiSpec, stage: str, stage_given: bool) -> str:
    """The stage the API runs at: a template's StageName, unless --stage (or WSCTL_STAGE) says."""
    return stage if stage_given or not spec.stage else spec.stage


def _with_authorizer(spec: ApiSpec, authorizer: Authorizer) -> ApiSpec:
    return replace(spec, authorizer=authorizer)
