"""A SAM/CloudFormation template (`--template template.yaml`): the WebSocket API it describes.

Reads `AWS::ApiGatewayV2::{Api,Route,Integration,RouteResponse,Authorizer,Stage}` or SAM's
`AWS::Serverless::WebSocketApi`, the Lambda functions the routes reach (`AWS::Serverless::Function`
with `Globals.Function`, `AWS::Lambda::Function`), and the DynamoDB tables (`AWS::DynamoDB::Table`,
`AWS::Serverless::SimpleTable`). Parameters (with `--parameter-overrides`), Conditions, Mappings,
pseudo parameters and the intrinsics are evaluated lazily: only values the emulator needs must
resolve. Ref/GetAtt to resources that are not emulated give placeholders (the logical id, an
ARN-shaped string); those resources are listed in `ApiSpec.not_emulated`, never an error.

Pure translation: reads the template and checks that code folders exist; no network, no AWS calls.
"""

import re
from pathlib import Path

from .. import limits, names
from ..errors import UsageError
from ..limits import DEFAULT_MAX_ENVIRONMENTS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from . import cfn_yaml
from .intrinsics import (API, FUNCTIONS, NESTED_STACK, SAM_FUNCTION, SAM_WEBSOCKET_API, SIMPLE_TABLE, TABLES,
                         Template, scalar_text)
from .model import SPECIAL_ROUTES, ApiSpec, Authorizer, FunctionSpec, Route, TableSpec

ROUTE = "AWS::ApiGatewayV2::Route"
INTEGRATION = "AWS::ApiGatewayV2::Integration"
ROUTE_RESPONSE = "AWS::ApiGatewayV2::RouteResponse"
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
STAGE = "AWS::ApiGatewayV2::Stage"
API_CHILDREN = (ROUTE, INTEGRATION, ROUTE_RESPONSE, AUTHORIZER, STAGE)
# Permissions and plumbing: nothing to emulate, nothing worth listing.
WIRING = {"AWS::ApiGatewayV2::Deployment", "AWS::Lambda::Permission", "AWS::IAM::Role", "AWS::IAM::Policy",
          "AWS::IAM::ManagedPolicy", "AWS::Logs::LogGroup", "AWS::Lambda::Version", "AWS::Lambda::Alias",
          "AWS::Serverless::Connector", "AWS::CDK::Metadata"}
KNOWN_TRANSFORMS = {"AWS::Serverless-2016-10-31", "AWS::LanguageExtensions"}
RUNTIME_PREFIXES = ("python3", "nodejs", "provided")
SAM_DEFAULT_STAGE = "default"  # what SAM names a WebSocketApi's stage when StageName is not given
INLINE = "inline code is not supported by the local emulator; put it in a folder and use CodeUri"
_LAMBDA_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]*:lambda:path/[^/]+/functions/(?P<fn>.+)/invocations$")


class _Reader:
    """Builds the ApiSpec from a Template: the one WebSocket API, what it reaches, the tables."""

    def __init__(self, template: Template):
        self.t = template
        self.not_emulated = []
        self.used_functions = []  # logical ids, in the order routes reach them

    def use_function(self, uri, where: str, plain_arn_ok: bool = False) -> str:
        """The FunctionSpec name behind an integration/authorizer URI (or a function ARN)."""
        uri = self.t.string(uri, where)
        match = _LAMBDA_URI.match(uri)
        target = match.group("fn") if match else uri if plain_arn_ok else None
        if target is None:
            self.t.fail(where, "is not a Lambda function URI "
                        "(arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations): %r"
                        % uri)
        name = target
        if target.startswith("arn:"):
            parts = target.split(":")
            if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
                self.t.fail(where, "names %r, which is not a Lambda function ARN" % target)
            name = parts[6]
        name = name.split(":")[0]
        for logical_id, resource in self.t.resources.items():
            if resource.get("Type") in FUNCTIONS and self.t.exists(logical_id) \
                    and self.t.physical_name(logical_id) == name:
                if logical_id not in self.used_functions:
                    self.used_functions.append(logical_id)
                return name
        self.t.fail(where, "names function %r, which is not in the template" % name)

    # -- the API ------------------------------------------------------------------------------------

    def find_api(self, resources: list[str]) -> str:
        apis = []
        for logical_id in resources:
            kind = self.t.type_of(logical_id)
            if kind == SAM_WEBSOCKET_API:
                apis.append(logical_id)
            elif kind == API:
                protocol = self.t.get(logical_id, self.t.props(logical_id), "ProtocolType", "")
                if protocol == "WEBSOCKET":
                    apis.append(logical_id)
                else:
                    self.not_emulated.append("%s (%s %s)" % (logical_id, API, protocol))
        nested = [lid for lid in resources if self.t.type_of(lid) == NESTED_STACK]
        if not apis and nested:
            self.t.fail(nested[0], "(%s) is a nested stack, which the local emulator cannot run: the WebSocket "
                        "API is not in this template" % NESTED_STACK)
        if not apis:
            self.t.fail("has no WebSocket API", "(an AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET, "
                        "or an AWS::Serverless::WebSocketApi)")
        if len(apis) > 1:
            self.t.fail("has %d WebSocket APIs (%s);" % (len(apis), ", ".join(apis)),
                        "the local emulator serves one per template")
        return apis[0]

    def belongs(self, logical_id: str) -> bool:
        """Whether an ApiGatewayV2 child resource is part of the WebSocket API (else: another API's, or a
        foreign one)."""
        api_id = self.t.get_string(logical_id, self.t.props(logical_id), "ApiId")
        if api_id == self.t.api_id:  # what !Ref gives for the WebSocket API
            return True
        if api_id not in self.t.resources:
            self.not_emulated.append("%s (%s of API %s)" % (logical_id, self.t.type_of(logical_id), api_id))
        return False

    def gateway_api(self, api: str, resources: list[str]) -> dict:
        t = self.t
        children = {kind: [lid for lid in resources if t.type_of(lid) == kind and self.belongs(lid)]
                    for kind in API_CHILDREN}
        integrations = set(children[INTEGRATION])
        authorizers = set(children[AUTHORIZER])
        two_way = set()
        for logical_id in children[ROUTE_RESPONSE]:
            props = t.props(logical_id)
            if t.get_string(logical_id, props, "RouteResponseKey") == "$default":
                two_way.add(t.get_string(logical_id, props, "RouteId"))
        routes, timeouts, authorizer = [], [], None
        for logical_id in children[ROUTE]:
            props = t.props(logical_id)
            key = t.get_string(logical_id, props, "RouteKey")
            function = None
            target = t.get(logical_id, props, "Target")
            if target is not None:
                where = "%s.Target" % logical_id
                match = re.match(r"^integrations/(.+)$", t.string(target, where))
                if match is None:
                    t.fail(where, "must be integrations/INTEGRATION_ID, not %r" % target)
                integration = match.group(1)
                if integration not in integrations:
                    t.fail(where, "names integration %r, which is not in the template" % integration)
                iprops = t.props(integration)
                kind = t.get_string(integration, iprops, "IntegrationType").upper()
                if kind != "AWS_PROXY":
                    # Declared, so served as a route: API Gateway's answer to a failing integration.
                    unserved = "integration type %s%s" % (kind, " with mapping templates"
                                                           if t.get(integration, iprops, "RequestTemplates") else "")
                    self.not_emulated.append("%s (route %s: %s)" % (logical_id, key, unserved))
                    routes.append((logical_id, Route(key, False, None, unserved)))
                    continue
                function = self.use_function(t.get(integration, iprops, "IntegrationUri"),
                                             "%s.IntegrationUri" % integration)
                timeouts.append(t.get_number(integration, iprops, "TimeoutInMillis",
                                             limits.INTEGRATION_TIMEOUT_MS, int))
            selection = t.get(logical_id, props, "RouteResponseSelectionExpression")
            routes.append((logical_id, Route(key, bool(selection) or logical_id in two_way, function)))
            auth_type = t.get_string(logical_id, props, "AuthorizationType", "NONE").upper()
            if auth_type == "CUSTOM":
                if key != "$connect":
                    t.fail("%s.AuthorizationType" % logical_id, "CUSTOM is only allowed on the $connect route")
                where = "%s.AuthorizerId" % logical_id
                authorizer_id = t.get_string(logical_id, props, "AuthorizerId")
                if authorizer_id not in authorizers:
                    t.fail(where, "names authorizer %r, which is not in the template" % authorizer_id)
                authorizer = self.gateway_authorizer(authorizer_id)
            elif auth_type == "AWS_IAM":
                self.not_emulated.append("%s (route %s: AWS_IAM authorization)" % (logical_id, key))
        stage = None
        if children[STAGE]:
            stage = t.get_string(children[STAGE][0], t.props(children[STAGE][0]), "StageName")
        api_props = t.props(api)
        return {"routes": routes, "timeouts": timeouts, "authorizer": authorizer, "stage": stage,
                "selection": t.get_string(api, api_props, "RouteSelectionExpression", "$request.body.action")}

    def gateway_authorizer(self, logical_id: str) -> Authorizer:
        t = self.t
        props = t.props(logical_id)
        kind = t.get_string(logical_id, props, "AuthorizerType").upper()
        if kind != "REQUEST":
            t.fail("%s.AuthorizerType" % logical_id, "is %s; WebSocket APIs take REQUEST authorizers" % kind)
        function = self.use_function(t.get(logical_id, props, "AuthorizerUri"), "%s.AuthorizerUri" % logical_id)
        return Authorizer(function, self.identity_sources(logical_id, props, "IdentitySource"),
                          t.get_string(logical_id, props, "Name", logical_id))

    def identity_sources(self, logical_id, props, key) -> tuple:
        sources = self.t.get(logical_id, props, key)
        if sources is None:
            return limits.HOST_IDENTITY_SOURCES
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",")]
        if not isinstance(sources, list):
            self.t.fail("%s.%s" % (logical_id, key), "must be a list of strings")
        return tuple(self.t.string(s, "%s.%s" % (logical_id, key)) for s in sources)

    def sam_api(self, api: str) -> dict:
        t = self.t
        props = t.props(api)
        raw_routes = t.get(api, props, "Routes")
        if not isinstance(raw_routes, dict) or not raw_routes:
            t.fail("%s.Routes" % api, "must map route keys to {FunctionArn: ...}")
        routes, timeouts = [], []
        for key, spec in raw_routes.items():
            where = "%s.Routes.%s" % (api, key)
            if not isinstance(spec, dict):
                t.fail(where, "must be a map with FunctionArn")
            if "FunctionArn" not in spec:
                t.fail("%s.FunctionArn" % where, "is missing")
            function = self.use_function(spec["FunctionArn"], "%s.FunctionArn" % where, plain_arn_ok=True)
            timeout = spec.get("IntegrationTimeout", limits.INTEGRATION_TIMEOUT_MS)
            timeouts.append(t.get_number(where, {"IntegrationTimeout": timeout}, "IntegrationTimeout", None, int))
            two_way = bool(t.get(where, spec, "RouteResponseSelectionExpression"))
            routes.append((api, Route(key, two_way, function)))
        authorizer = None
        auth = t.get(api, props, "Auth")
        if auth is not None:
            if not isinstance(auth, dict):
                t.fail("%s.Auth" % api, "must be a map")
            auth_type = t.string(auth.get("AuthType", "NONE"), "%s.Auth.AuthType" % api).upper()
            if auth_type == "CUSTOM":
                arn = auth.get("AuthArn", auth.get("FunctionArn"))
                if arn is None:
                    t.fail("%s.Auth.AuthArn" % api, "is missing (AuthType CUSTOM needs the authorizer function)")
                function = self.use_function(arn, "%s.Auth.AuthArn" % api, plain_arn_ok=True)
                authorizer = Authorizer(function, self.identity_sources(api + ".Auth", auth, "IdentitySource"),
                                        t.string(auth.get("Name", api + "ConnectAuthorizer"), "%s.Auth.Name" % api))
            elif auth_type == "AWS_IAM":
                self.not_emulated.append("%s (route $connect: AWS_IAM authorization)" % api)
        return {"routes": routes, "timeouts": timeouts, "authorizer": authorizer,
                "stage": t.get_string(api, props, "StageName", SAM_DEFAULT_STAGE),
                "selection": t.get_string(api, props, "RouteSelectionExpression", "$request.body.action")}

    # -- functions and tables -----------------------------------------------------------------------

    def function_spec(self, logical_id: str) -> FunctionSpec:
        t = self.t
        kind = t.type_of(logical_id)
        props = t.props(logical_id)
        if kind == SAM_FUNCTION:
            if "InlineCode" in props:
                t.fail("%s.InlineCode" % logical_id, INLINE)
            if t.get(logical_id, props, "PackageType") == "Image":
                t.fail("%s.PackageType" % logical_id, "Image: container images are not supported by the local "
                       "emulator; give a CodeUri folder")
            prop, code = "CodeUri", t.get(logical_id, props, "CodeUri", ".")
            if isinstance(code, dict) or (isinstance(code, str) and code.startswith("s3://")):
                t.fail("%s.CodeUri" % logical_id, "points at S3, which is not local; give the code folder")
        else:
            prop, code = "Code", t.get(logical_id, props, "Code")
            if code is None:
                t.fail("%s.Code" % logical_id, "is missing")
            if isinstance(code, dict):
                if "ZipFile" in code:
                    t.fail("%s.Code.ZipFile" % logical_id, INLINE)
                if "ImageUri" in code:
                    t.fail("%s.Code.ImageUri" % logical_id, "container images (a Docker image function) are not "
                           "supported by the local emulator, which runs code from a folder")
                t.fail("%s.Code" % logical_id, "points at S3 (%s), which is not local; give a local code folder "
                       "(Code: path)" % ", ".join(sorted(code)))
        runtime = t.get_string(logical_id, props, "Runtime")
        if not runtime.startswith(RUNTIME_PREFIXES):
            t.fail("%s.Runtime" % logical_id, "%r is not supported by the local emulator "
                   "(python3.x, nodejs*, provided*)" % runtime)
        handler = t.get_string(logical_id, props, "Handler")
        folder = (t.base / t.string(code, "%s.%s" % (logical_id, prop))).resolve()
        if not folder.is_dir():
            t.fail("%s.%s" % (logical_id, prop), "code folder %r does not exist (%s)" % (code, folder))
        environment = t.get(logical_id, props, "Environment", {})
        variables = (environment.get("Variables") or {}) if isinstance(environment, dict) else None
        if not isinstance(variables, dict):
            t.fail("%s.Environment.Variables" % logical_id, "must map names to strings")
        for name in variables:
            if not isinstance(name, str):
                t.fail("%s.Environment.Variables" % logical_id, "has a variable named %r, not a string "
                       "(YAML reads NO, yes, off... as booleans: quote it)" % (name,))
        variables = {name: t.string(value, "%s.Environment.Variables.%s" % (logical_id, name))
                     for name, value in variables.items()}
        environments = DEFAULT_MAX_ENVIRONMENTS
        if "ReservedConcurrentExecutions" in props:
            reserved = t.get_number(logical_id, props, "ReservedConcurrentExecutions", None, int)
            if reserved == 0:
                t.fail("%s.ReservedConcurrentExecutions" % logical_id, "is 0 (every invocation is throttled); "
                       "the local emulator needs at least 1")
            environments = min(reserved, DEFAULT_MAX_ENVIRONMENTS)
        return FunctionSpec(name=t.physical_name(logical_id), runtime=runtime, code_dir=folder, handler=handler,
                            environment=variables,
                            timeout_s=t.get_number(logical_id, props, "Timeout", DEFAULT_TIMEOUT_S),
                            memory_mb=t.get_number(logical_id, props, "MemorySize", DEFAULT_MEMORY_MB, int),
                            max_environments=environments)

    def table_spec(self, logical_id: str) -> TableSpec:
        t = self.t
        props = t.props(logical_id)
        name = t.physical_name(logical_id)
        if t.type_of(logical_id) == SIMPLE_TABLE:
            key = t.get(logical_id, props, "PrimaryKey", {})
            if not isinstance(key, dict):
                t.fail("%s.PrimaryKey" % logical_id, "must be {Name, Type}")
            key_name = t.string(key.get("Name", "id"), "%s.PrimaryKey.Name" % logical_id)
            key_type = {"String": "S", "Number": "N", "Binary": "B"}.get(key.get("Type", "String"))
            if key_type is None:
                t.fail("%s.PrimaryKey.Type" % logical_id, "must be String, Number or Binary, not %r"
                       % (key.get("Type"),))
            args = {"TableName": name, "KeySchema": [{"AttributeName": key_name, "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": key_name, "AttributeType": key_type}]}
            throughput = t.get(logical_id, props, "ProvisionedThroughput")
            if throughput is not None:
                args.update(BillingMode="PROVISIONED", ProvisionedThroughput=self.throughput(logical_id, throughput))
            else:
                args["BillingMode"] = "PAY_PER_REQUEST"
            return TableSpec(name, args)
        args = {"TableName": name}
        for key in ("KeySchema", "AttributeDefinitions"):
            value = t.get(logical_id, props, key)
            if not isinstance(value, list) or not value:
                t.fail("%s.%s" % (logical_id, key), "is missing" if value is None else "must be a list")
            args[key] = value
        throughput = t.get(logical_id, props, "ProvisionedThroughput")
        if throughput is not None:
            args["ProvisionedThroughput"] = self.throughput(logical_id, throughput)
        args["BillingMode"] = t.get_string(logical_id, props, "BillingMode",
                                           "PROVISIONED" if throughput is not None else "PAY_PER_REQUEST")
        for key, fields in (("GlobalSecondaryIndexes", ("IndexName", "KeySchema", "Projection",
                                                        "ProvisionedThroughput")),
                            ("LocalSecondaryIndexes", ("IndexName", "KeySchema", "Projection"))):
            indexes = t.get(logical_id, props, key)
            if indexes:
                if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
                    t.fail("%s.%s" % (logical_id, key), "must be a list of indexes")
                args[key] = [{f: self.throughput(logical_id, i[f]) if f == "ProvisionedThroughput" else i[f]
                              for f in fields if f in i} for i in indexes]
        stream = t.get(logical_id, props, "StreamSpecification")
        if isinstance(stream, dict) and stream.get("StreamViewType"):
            args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        ttl = t.get(logical_id, props, "TimeToLiveSpecification")
        ttl_attribute = None
        if isinstance(ttl, dict) and scalar_text(ttl.get("Enabled")) == "true":
            ttl_attribute = t.string(ttl.get("AttributeName"), "%s.TimeToLiveSpecification.AttributeName"
                                     % logical_id)
        return TableSpec(name, args, ttl_attribute)

    def outputs(self, section) -> tuple:
        """The Outputs that resolve here (one naming another stack's export, say, does not: skipped)."""
        resolved = []
        for name, output in (section or {}).items() if isinstance(section, dict) else ():
            try:
                if not isinstance(output, dict) or (
                        "Condition" in output and not self.t.condition(output["Condition"], "Outputs.%s" % name)):
                    continue
                value = scalar_text(self.t.resolve(output.get("Value"), "Outputs.%s.Value" % name))
            except UsageError:
                continue
            if value is not None:
                resolved.append((str(name), value))
        return tuple(resolved)

    def throughput(self, logical_id: str, value) -> dict:
        if not isinstance(value, dict):
            self.t.fail("%s.ProvisionedThroughput" % logical_id, "must be {ReadCapacityUnits, WriteCapacityUnits}")
        return {key: self.t.get_number(logical_id + ".ProvisionedThroughput", value, key, None, int)
                for key in ("ReadCapacityUnits", "WriteCapacityUnits")}

    # -- all of it ---------------------------------------------------------------------------------

    def read(self, document: dict, origin: str) -> ApiSpec:
        t = self.t
        for logical_id, resource in t.resources.items():
            if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
                t.fail(str(logical_id), "needs a Type")
        transforms = document.get("Transform") or []
        for transform in transforms if isinstance(transforms, list) else [transforms]:
            if isinstance(transform, str) and transform not in KNOWN_TRANSFORMS:
                self.not_emulated.append("%s (Transform)" % transform)
        resources = [lid for lid in t.resources if t.exists(lid)]
        api = self.find_api(resources)
        found = self.sam_api(api) if t.type_of(api) == SAM_WEBSOCKET_API else self.gateway_api(api, resources)
        keys = {}
        for logical_id, route in found["routes"]:
            if route.key.startswith("$") and route.key not in SPECIAL_ROUTES:
                t.fail(logical_id, "has route key %r: keys starting with $ are reserved" % route.key)
            if route.key in keys:
                t.fail(logical_id, "repeats route key %r (also %s)" % (route.key, keys[route.key]))
            keys[route.key] = logical_id
        for timeout in found["timeouts"]:
            if not limits.MIN_INTEGRATION_TIMEOUT_MS <= timeout <= limits.INTEGRATION_TIMEOUT_MS:
                t.fail(api, "has an integration timeout of %d ms; API Gateway allows %d to %d" % (
                    timeout, limits.MIN_INTEGRATION_TIMEOUT_MS, limits.INTEGRATION_TIMEOUT_MS))
        functions = [self.function_spec(lid) for lid in self.used_functions]
        tables = []
        for logical_id in resources:
            kind = t.type_of(logical_id)
            if kind in FUNCTIONS:
                if logical_id in self.used_functions:
                    continue
                try:  # not behind a route: other functions may still invoke it, if it can run here
                    functions.append(self.function_spec(logical_id))
                except UsageError as error:
                    reason = str(error).split(": ", 1)[-1]
                    self.not_emulated.append("%s (%s: %s)" % (logical_id, kind, reason))
            elif kind in TABLES:
                tables.append(self.table_spec(logical_id))
            elif kind not in WIRING and kind not in API_CHILDREN and kind not in (API, SAM_WEBSOCKET_API):
                self.not_emulated.append("%s (%s)" % (logical_id, kind))
        authorizer = found["authorizer"]
        return ApiSpec(routes=tuple(route for _, route in found["routes"]),
                       outputs=self.outputs(document.get("Outputs")),
                       route_selection_expression=found["selection"],
                       auth="jwt" if authorizer is not None else "none",
                       integration_timeout_ms=max(found["timeouts"], default=limits.INTEGRATION_TIMEOUT_MS),
                       functions=tuple(functions), authorizer=authorizer, tables=tuple(tables),
                       stage=found["stage"], not_emulated=tuple(self.not_emulated), origin=origin, bundled=False)


def read_text(path) -> str:
    """A template's text; a file that cannot be read is one line."""
    try:
        return Path(path).read_text()
    except OSError as error:
        raise UsageError("cannot read template %s: %s" % (path, error.strerror or error)) from None
    except UnicodeDecodeError:
        raise UsageError("%s: not a text file" % path) from None


def read_document(document: dict, name: str, base: Path, parameter_overrides: dict | None = None, *,
                  stack_name: str = "local", api_id: str | None = None, region: str = limits.LOCAL_REGION,
                  account_id: str = limits.LOCAL_ACCOUNT_ID, origin: str | None = None) -> ApiSpec:
    """A CloudFormation document (already parsed) into an ApiSpec; code paths are relative to
    `base`, and the WebSocket API resolves to `api_id` (the emulator's, from the stack name)."""
    overrides = {key: str(value) for key, value in (parameter_overrides or {}).items()}
    template = Template(name, document, overrides, base, region, account_id, stack_name,
                         api_id or names.local_api_id(stack_name))
    return _Reader(template).read(document, origin or "template " + name)


def load_document(path) -> dict:
    """A CloudFormation template file, parsed; anything else is one line."""
    document = cfn_yaml.load(read_text(path), str(path))
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise UsageError("%s: not a CloudFormation template (no Resources map); --template also takes a CDK "
                         "cloud assembly (cdk.out) and a Serverless Framework serverless.yml" % path)
    return document


def load_template(path: str, parameter_overrides: dict | None = None, **options) -> ApiSpec:
    """Read a SAM/CloudFormation template into an ApiSpec (code folders are relative to it);
    `options` are read_document's."""
    return read_document(load_document(path), str(path), Path(path).resolve().parent, parameter_overrides, **options)
