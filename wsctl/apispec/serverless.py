"""A Serverless Framework service (`--template serverless.yml`): the WebSocket API it describes.

The service is compiled as the Framework compiles it (reference formats-and-operators.md §2.3,
serverless/serverless lib/plugins/aws/package/compile): functions become `<Fn>LambdaFunction`,
`websocket` events the API `WebsocketsApi` with `<Fn>WebsocketsIntegration`,
`<Route>WebsocketsRoute`, `<Route>WebsocketsRouteResponse`, `<Fn>WebsocketsAuthorizer` and the
stage `WebsocketsDeploymentStage`, and `resources.Resources` merged in (same id: the user's
wins). The CloudFormation reader (template.py) then reads that template, so `!Ref WebsocketsApi`,
`!GetAtt ConnectLambdaFunction.Arn` and a `resources` table resolve as they do on AWS.

Variables are resolved by slsvars (pure) only where a setting the emulator uses needs them.
A function's code is the service folder (the Framework's default package), or its
`package.artifact` when that is a local folder or zip. Events other than `websocket`, and
resources whose variables have no value here, are listed as not emulated.
"""

import os
from dataclasses import replace
from pathlib import Path

from .. import limits
from ..envfile import parse_env_file
from ..errors import UsageError
from . import cfn_yaml, codezip
from .model import ApiSpec
from .slsvars import MISSING, Sources, Variables
from .template import read_document, read_text

DEFAULT_RUNTIME = "nodejs20.x"  # the Framework's (v4) when neither the function nor provider says
DEFAULT_TIMEOUT_S = 6  # the Framework's defaults, not Lambda's
DEFAULT_MEMORY_MB = 1024
DEFAULT_IDENTITY_SOURCE = ["route.request.header.Auth"]
API = "WebsocketsApi"
STAGE = "WebsocketsDeploymentStage"


def is_service_file(path: Path) -> bool:
    """serverless.yml and its kin (serverless.dev.yml, serverless.ts...), by name, as the Framework finds them."""
    return path.is_file() and path.name.startswith("serverless.") and \
        path.suffix in (".yml", ".yaml", ".json", ".ts", ".js", ".mjs", ".cjs")


def parse_variables(values: list[str]) -> dict:
    """--var 'source:address=VALUE' (the variable as written inside `${}`, then its value)."""
    given = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or ":" not in key and not key.startswith("file("):
            raise UsageError("--var %r is not SOURCE:ADDRESS=VALUE (e.g. 'ssm:/chat/secret=abc')" % value)
        given[key.strip()] = text
    return given


def _normalized(name: str) -> str:
    """The Framework's getNormalizedResourceName: upper first letter, `-` -> Dash, `_` -> Underscore."""
    name = name.replace("-", "Dash").replace("_", "Underscore")
    return name[:1].upper() + name[1:]


def _route_id(key: str) -> str:
    """The Framework's getNormalizedWebsocketsRouteKey, as a logical id."""
    for old, new in (("$", "S"), ("/", "Slash"), ("-", "Dash"), ("_", "Underscore"), (".", "Period")):
        key = key.replace(old, new)
    return key + "WebsocketsRoute"


def _lambda_uri(function_arn) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":apigateway:", {"Ref": "AWS::Region"},
                              ":lambda:path/2015-03-31/functions/", function_arn, "/invocations"]]}


def _file_reader(base: Path, name: str):
    """`${file(path)}`: YAML or JSON parsed, other files as text; MISSING when there is no such file."""
    def read(relative: str):
        path = (base / os.path.expanduser(relative)).resolve()
        if not path.is_file():
            return MISSING
        if path.suffix in (".js", ".mjs", ".cjs", ".ts"):
            raise UsageError("%s: ${file(%s)} is JavaScript, which wsctl does not run: give the value with "
                             "--var 'file(%s):KEY=VALUE'" % (name, relative, relative))
        text = read_text(path)
        return cfn_yaml.load(text, str(path)) if path.suffix in (".yml", ".yaml", ".json") else text
    return read


def _environment(base: Path, stage: str) -> dict:
    """The process environment over the service's `.env` and `.env.<stage>` (as the Framework v4 loads them)."""
    env = {}
    for dotenv in (base / ".env", base / (".env." + stage)):
        if dotenv.is_file():
            env.update(parse_env_file(dotenv, "the service's"))
    env.update(os.environ)
    return env


class _Compiler:
    """serverless.yml -> a CloudFormation document (and what is listed as not emulated)."""

    def __init__(self, variables: Variables, base: Path, cache: Path | None):
        self.v = variables
        self.base = base
        self.cache = cache
        self.name = variables.name
        self.not_emulated = []
        self.resources = {}
        self.routes = []  # (function key, websocket event as resolved)

    def fail(self, where: str, text: str):
        raise UsageError("%s: %s %s" % (self.name, where, text))

    def service(self) -> str:
        service = self.v.get(("service",))
        if isinstance(service, dict):  # the Framework v1's {name: ...}
            service = service.get("name")
        if not isinstance(service, str) or not service:
            self.fail("service", "is missing (the service's name)")
        provider = self.v.get(("provider", "name"), "aws")
        if provider != "aws":
            self.fail("provider.name", "is %r; the local emulator runs AWS services" % provider)
        return service

    def code(self, key: str, individually: bool):
        """The function's Code: the service folder, or a local package.artifact (folder or zip)."""
        artifact = self.v.get(("functions", key, "package", "artifact"))
        if artifact is None and not individually:
            artifact = self.v.get(("package", "artifact"))
        if artifact is None:
            return str(self.base)
        where = "functions.%s.package.artifact" % key
        if not isinstance(artifact, str):
            self.fail(where, "must be a path")
        if artifact.startswith("s3://"):
            bucket, _, object_key = artifact[5:].partition("/")
            return {"S3Bucket": bucket, "S3Key": object_key}  # the reader refuses it if a route needs it
        path = (self.base / artifact).resolve()
        if path.is_file():
            if self.cache is None:
                self.fail(where, "is a zip, and there is no folder to unpack it into")
            path = codezip.unpacked(path, self.cache, "%s: %s" % (self.name, where))
        return str(path)

    def function(self, key: str, service: str, stage: str, individually: bool) -> None:
        get = self.v.get
        provider = ("provider",)
        logical_id = _normalized(key) + "LambdaFunction"
        properties = {"FunctionName": get(("functions", key, "name"), "%s-%s-%s" % (service, stage, key)),
                      "Timeout": get(("functions", key, "timeout"), get(provider + ("timeout",), DEFAULT_TIMEOUT_S)),
                      "MemorySize": get(("functions", key, "memorySize"),
                                        get(provider + ("memorySize",), DEFAULT_MEMORY_MB))}
        image = get(("functions", key, "image"))
        if image is not None:
            properties["Code"] = {"ImageUri": image if isinstance(image, str) else str(image)}
            properties["PackageType"] = "Image"
        else:
            properties["Code"] = self.code(key, individually)
            properties["Handler"] = get(("functions", key, "handler"))
            if properties["Handler"] is None:
                self.fail("functions.%s.handler" % key, "is missing")
        properties["Runtime"] = get(("functions", key, "runtime"), get(provider + ("runtime",), DEFAULT_RUNTIME))
        environment = dict(get(provider + ("environment",), {}) or {})
        environment.update(get(("functions", key, "environment"), {}) or {})
        if environment:
            properties["Environment"] = {"Variables": environment}
        reserved = get(("functions", key, "reservedConcurrency"))
        if reserved is not None:
            properties["ReservedConcurrentExecutions"] = reserved
        self.resources[logical_id] = {"Type": "AWS::Lambda::Function", "Properties": properties}
        events = self.v.shallow(self.v.node(("functions", key, "events")), "functions.%s.events" % key)
        for index, event in enumerate(events if isinstance(events, list) else []):
            where = ("functions", key, "events", index)
            event = self.v.shallow(event, ".".join(map(str, where)))
            kind = next(iter(event), None) if isinstance(event, dict) and len(event) == 1 else None
            if kind == "websocket":
                self.routes.append((key, get(where + ("websocket",))))
            else:
                self.not_emulated.append("functions.%s.events[%d] (%s)" % (key, index, kind or "event"))

    def websocket(self, key: str, event, routes: dict) -> None:
        where = "functions.%s.events: websocket" % key
        if isinstance(event, str):
            event = {"route": event}
        if not isinstance(event, dict) or not isinstance(event.get("route"), str) or not event["route"]:
            self.fail(where, "needs a route (e.g. websocket: $connect, or websocket: {route: sendMessage})")
        unknown = sorted(set(event) - {"route", "routeResponseSelectionExpression", "authorizer"})
        if unknown:
            self.fail(where, "has %r, which the Framework does not allow (route, routeResponseSelectionExpression, "
                      "authorizer)" % unknown[0])
        route = event["route"]
        integration = _normalized(key) + "WebsocketsIntegration"
        self.resources.setdefault(integration, {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": API}, "IntegrationType": "AWS_PROXY",
            "IntegrationUri": _lambda_uri({"Fn::GetAtt": [_normalized(key) + "LambdaFunction", "Arn"]})}})
        properties = {"ApiId": {"Ref": API}, "RouteKey": route, "AuthorizationType": "NONE",
                      "Target": {"Fn::Join": ["/", ["integrations", {"Ref": integration}]]}}
        if event.get("routeResponseSelectionExpression"):
            properties["RouteResponseSelectionExpression"] = event["routeResponseSelectionExpression"]
            self.resources[_route_id(route) + "Response"] = {
                "Type": "AWS::ApiGatewayV2::RouteResponse",
                "Properties": {"ApiId": {"Ref": API}, "RouteId": {"Ref": _route_id(route)},
                               "RouteResponseKey": "$default"}}
        if event.get("authorizer") is not None:
            properties["AuthorizationType"] = "CUSTOM"
            properties["AuthorizerId"] = {"Ref": self.authorizer(where, event["authorizer"])}
        if route in routes:
            self.fail(where, "repeats route %r (also functions.%s)" % (route, routes[route]))
        routes[route] = key
        self.resources[_route_id(route)] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": properties}

    def authorizer(self, where: str, authorizer) -> str:
        """The authorizer's logical id: a function of this service (by name) or an ARN, as the Framework has it."""
        identity = DEFAULT_IDENTITY_SOURCE
        if isinstance(authorizer, dict):
            identity = authorizer.get("identitySource", identity)
            name, arn = authorizer.get("name"), authorizer.get("arn")
            if arn is not None and name is None:
                name = arn.rsplit(":", 1)[-1] if isinstance(arn, str) else None
            if not isinstance(name, str):
                self.fail(where + ".authorizer", "needs a name (a function of this service) or an arn")
        elif isinstance(authorizer, str):
            name, arn = (authorizer.rsplit(":", 1)[-1], authorizer) if ":" in authorizer else (authorizer, None)
        else:
            self.fail(where + ".authorizer", "must be a function name, an ARN or {name, arn, identitySource}")
        if arn is None:
            if name not in self.v.keys(("functions",)):
                self.fail(where + ".authorizer", "names function %r, which is not in functions" % name)
            arn = {"Fn::GetAtt": [_normalized(name) + "LambdaFunction", "Arn"]}
        logical_id = _normalized(name) + "WebsocketsAuthorizer"
        self.resources[logical_id] = {"Type": "AWS::ApiGatewayV2::Authorizer", "Properties": {
            "ApiId": {"Ref": API}, "Name": name, "AuthorizerType": "REQUEST", "AuthorizerUri": _lambda_uri(arn),
            "IdentitySource": identity}}
        return logical_id

    def user_resources(self) -> tuple[dict, dict]:
        """`resources` (a map, or the Framework's list of maps): Resources and Outputs, each resource's
        variables resolved on its own (one without values here is listed, its properties dropped)."""
        node = self.v.shallow(self.v.node(("resources",)), "resources")
        parts = [(("resources",), node)] if isinstance(node, dict) else \
            [(("resources", i), self.v.shallow(p, "resources[%d]" % i))
             for i, p in enumerate(node if isinstance(node, list) else [])]
        resources, outputs = {}, {}
        for path, part in parts:
            if not isinstance(part, dict):
                continue
            for logical_id in self.v.keys(path + ("Resources",)):
                try:
                    resources[logical_id] = self.v.get(path + ("Resources", logical_id))
                except UsageError as error:
                    raw = self.v.node(path + ("Resources", logical_id))
                    kind = raw.get("Type") if isinstance(raw, dict) else None
                    if kind in ("AWS::DynamoDB::Table", "AWS::Lambda::Function") or \
                            str(kind).startswith("AWS::ApiGatewayV2::"):
                        raise  # the emulator needs it: its one-line error stands
                    self.not_emulated.append("%s (%s: %s)" % (logical_id, kind, str(error).split(": ")[-1]))
                    resources[logical_id] = {"Type": kind or "AWS::CloudFormation::WaitConditionHandle"}
            for name in self.v.keys(path + ("Outputs",)):
                try:
                    outputs[name] = self.v.get(path + ("Outputs", name))
                except UsageError:
                    continue  # an output is shown when it resolves, never needed
        return resources, outputs

    def compile(self, stage: str) -> tuple[dict, str]:
        """The CloudFormation document and the stack's name."""
        service = self.service()
        individually = bool(self.v.get(("package", "individually"), False))
        for key in self.v.keys(("functions",)):
            self.function(key, service, stage, individually)
        if not self.routes:
            self.fail("functions", "have no websocket events: there is no WebSocket API to run")
        routes = {}
        for key, event in self.routes:
            self.websocket(key, event, routes)
        get = self.v.get
        self.resources[API] = {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": get(("provider", "websocketsApiName"), "%s-%s-websockets" % (stage, service)),
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": get(("provider", "websocketsApiRouteSelectionExpression"),
                                            "$request.body.action")}}
        self.resources[STAGE] = {"Type": "AWS::ApiGatewayV2::Stage",
                                 "Properties": {"ApiId": {"Ref": API}, "StageName": stage}}
        resources, outputs = self.user_resources()
        self.resources.update(resources)
        outputs.setdefault("ServiceEndpointWebsocket", {"Value": {"Fn::Join": ["", [
            "wss://", {"Ref": API}, ".execute-api.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"},
            "/" + stage]]}})
        stack_name = get(("provider", "stackName"), "%s-%s" % (service, stage))
        return {"Resources": self.resources, "Outputs": outputs}, str(stack_name)


def load_service(path: Path, given: dict, *, stage: str | None, api_id: str, cache: Path | None) -> ApiSpec:
    """Read a serverless.yml (.yaml, .json) into an ApiSpec; `stage` is --stage when given."""
    name = str(path)
    if path.suffix in (".ts", ".js", ".mjs", ".cjs"):
        raise UsageError("%s: a service written in JavaScript/TypeScript, which wsctl does not run: write it out "
                         "with `serverless print --format yaml > serverless.resolved.yml` and give that with "
                         "--template" % name)
    document = cfn_yaml.load(read_text(path), name)
    if not isinstance(document, dict):
        raise UsageError("%s: not a Serverless Framework service (a map with service, provider, functions)" % name)
    base = path.resolve().parent
    sources = Sources(stage=stage, env=dict(os.environ), given=given, region=limits.LOCAL_REGION,
                      account_id=limits.LOCAL_ACCOUNT_ID, read_file=_file_reader(base, name))
    stage = str(Variables(document, sources, name).source("sls", None, "stage", "sls:stage", "provider.stage"))
    sources = replace(sources, env=_environment(base, stage))  # ${opt:stage} stays what --stage says
    compiler = _Compiler(Variables(document, sources, name), base, cache)
    compiled, stack_name = compiler.compile(stage)
    spec = read_document(compiled, name, base, {}, stack_name=stack_name, api_id=api_id,
                         origin="Serverless service %s" % name)
    return replace(spec, not_emulated=tuple(compiler.not_emulated) + spec.not_emulated)
