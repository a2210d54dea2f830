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

import base64
import ipaddress
import json
import re
import shlex
from pathlib import Path

from .. import limits, names
from ..errors import UsageError
from ..limits import DEFAULT_MAX_ENVIRONMENTS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
from . import cfn_yaml
from .model import SPECIAL_ROUTES, ApiSpec, Authorizer, FunctionSpec, Route, TableSpec

SAM_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
TABLE = "AWS::DynamoDB::Table"
SIMPLE_TABLE = "AWS::Serverless::SimpleTable"
API = "AWS::ApiGatewayV2::Api"
SAM_WEBSOCKET_API = "AWS::Serverless::WebSocketApi"
ROUTE = "AWS::ApiGatewayV2::Route"
INTEGRATION = "AWS::ApiGatewayV2::Integration"
ROUTE_RESPONSE = "AWS::ApiGatewayV2::RouteResponse"
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
STAGE = "AWS::ApiGatewayV2::Stage"
NESTED_STACK = "AWS::CloudFormation::Stack"
FUNCTIONS = (SAM_FUNCTION, LAMBDA_FUNCTION)
TABLES = (TABLE, SIMPLE_TABLE)
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
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SHORT_OVERRIDE = re.compile(r"^([A-Za-z0-9]+)=(.*)$", re.S)
_LONG_OVERRIDE = re.compile(r"^ParameterKey=([A-Za-z0-9]+),ParameterValue=(.*)$", re.S)


class _NoValue:
    def __repr__(self):
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def parse_parameter_overrides(values: list[str]) -> dict:
    """SAM's --parameter-overrides forms, each value holding one or more space-separated pairs:
    `Key=Value` (the value may be quoted) or `ParameterKey=Key,ParameterValue=Value`."""
    overrides = {}
    for value in values:
        try:
            tokens = shlex.split(value)
        except ValueError as error:
            raise UsageError("--parameter-overrides %r: %s" % (value, error)) from None
        if not tokens:
            raise UsageError("--parameter-overrides: empty value (expected Key=Value)")
        for token in tokens:
            match = _LONG_OVERRIDE.match(token) or _SHORT_OVERRIDE.match(token)
            if match is None or match.group(1) == "ParameterKey":
                raise UsageError("--parameter-overrides: %r is not Key=Value or "
                                 "ParameterKey=Key,ParameterValue=Value" % token)
            overrides[match.group(1)] = match.group(2)
    return overrides


def _is_intrinsic(value) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Ref" or (isinstance(key, str) and key.startswith("Fn::"))


def _merge_globals(global_value, local_value):
    """SAM's Globals rule: maps merge (local wins), lists concatenate, anything else: local wins."""
    if (isinstance(global_value, dict) and isinstance(local_value, dict)
            and not _is_intrinsic(global_value) and not _is_intrinsic(local_value)):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def _text(value) -> str | None:
    """A scalar as CloudFormation's string form; None for lists, maps and AWS::NoValue."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


class _Template:
    def __init__(self, name: str, document: dict, overrides: dict, base: Path, region: str, account_id: str,
                 stack_name: str, api_id: str):
        self.name = name
        self.api_id = api_id  # what the emulator serves the WebSocket API as: every Ref to it gives this
        self.base = base
        self.resources = document["Resources"]
        self.parameters = self._section(document, "Parameters")
        self.mappings = self._section(document, "Mappings")
        self.condition_exprs = self._section(document, "Conditions")
        self.globals = self._section(document, "Globals")
        for key in overrides:
            if key not in self.parameters:
                known = ", ".join(sorted(self.parameters)) or "none"
                raise UsageError("%s: parameter override %r names no parameter of the template (parameters: %s)"
                                 % (name, key, known))
        self.overrides = overrides
        china = region.startswith("cn-")
        self.region, self.account_id = region, account_id
        self.partition = "aws-cn" if china else "aws"
        self.pseudo = {
            "AWS::Region": region, "AWS::AccountId": account_id, "AWS::StackName": stack_name,
            "AWS::Partition": self.partition, "AWS::URLSuffix": "amazonaws.com.cn" if china else "amazonaws.com",
            "AWS::StackId": "arn:%s:cloudformation:%s:%s:stack/%s/51af3dc0-da77-11e4-872e-1234567db123"
                            % (self.partition, region, account_id, stack_name),
            "AWS::NotificationARNs": [], "AWS::NoValue": NO_VALUE}
        self._conditions = {}
        self._names = {}
        self._busy = set()

    def _section(self, document, key) -> dict:
        value = document.get(key) or {}
        if not isinstance(value, dict):
            raise UsageError("%s: %s must be a map" % (self.name, key))
        return value

    def fail(self, where: str, text: str):
        raise UsageError("%s: %s %s" % (self.name, where, text))

    # -- resources ------------------------------------------------------------------------------

    def type_of(self, logical_id: str) -> str:
        return self.resources[logical_id]["Type"]

    def props(self, logical_id: str) -> dict:
        props = self.resources[logical_id].get("Properties") or {}
        if not isinstance(props, dict):
            self.fail("%s.Properties" % logical_id, "must be a map")
        if self.type_of(logical_id) == SAM_FUNCTION:
            props = _merge_globals(self.globals.get("Function") or {}, props)
        elif self.type_of(logical_id) == SAM_WEBSOCKET_API:
            props = _merge_globals(self.globals.get("WebSocketApi") or {}, props)
        return props

    def exists(self, logical_id: str) -> bool:
        """False when the resource's `Condition:` is false (CloudFormation does not create it)."""
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition, "%s.Condition" % logical_id)

    def resource(self, logical_id, where: str) -> str:
        if not isinstance(logical_id, str) or logical_id not in self.resources:
            self.fail(where, "names resource %r, which is not in the template" % (logical_id,))
        if not self.exists(logical_id):
            self.fail(where, "names resource %r, which does not exist (its Condition %r is false)"
                      % (logical_id, self.resources[logical_id]["Condition"]))
        return logical_id

    def physical_name(self, logical_id: str) -> str:
        """A function's or table's name: its FunctionName/TableName property, else its logical id."""
        if logical_id not in self._names:
            prop = "FunctionName" if self.type_of(logical_id) in FUNCTIONS else "TableName"
            if logical_id in self._busy:
                self.fail("%s.%s" % (logical_id, prop), "refers to its own name (circular reference)")
            self._busy.add(logical_id)
            try:
                raw = self.props(logical_id).get(prop)
                name = logical_id
                if raw is not None:
                    value = self.resolve(raw, "%s.%s" % (logical_id, prop))
                    if value is not NO_VALUE:
                        name = self.string(value, "%s.%s" % (logical_id, prop))
                self._names[logical_id] = name
            finally:
                self._busy.discard(logical_id)
        return self._names[logical_id]

    def function_arn(self, name: str) -> str:
        return "arn:%s:lambda:%s:%s:function:%s" % (self.partition, self.region, self.account_id, name)

    def placeholder_arn(self, logical_id: str) -> str:
        parts = self.type_of(logical_id).split("::")
        service = parts[1].lower() if len(parts) > 2 else "cloudformation"
        return "arn:%s:%s:%s:%s:%s" % (self.partition, service, self.region, self.account_id, logical_id)

    def is_websocket_api(self, logical_id: str) -> bool:
        kind = self.type_of(logical_id)
        if kind == API:
            return self.get(logical_id, self.props(logical_id), "ProtocolType", "") == "WEBSOCKET"
        return kind == SAM_WEBSOCKET_API

    def api_endpoint(self) -> str:
        return "wss://%s.execute-api.%s.%s" % (self.api_id, self.region, self.pseudo["AWS::URLSuffix"])

    def ref_resource(self, logical_id: str, where: str):
        kind = self.type_of(logical_id)
        props = self.props(logical_id)
        if self.is_websocket_api(logical_id):
            return self.api_id
        if kind in FUNCTIONS or kind in TABLES:
            return self.physical_name(logical_id)
        if kind in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            function = self.string(self.resolve(props.get("FunctionName"), "%s.FunctionName" % logical_id),
                                   "%s.FunctionName" % logical_id)
            arn = function if function.startswith("arn:") else self.function_arn(function)
            if kind == "AWS::Lambda::Version":
                return arn + ":1"
            return arn + ":" + self.string(self.resolve(props.get("Name"), "%s.Name" % logical_id),
                                           "%s.Name" % logical_id)
        return logical_id

    def get_att(self, logical_id: str, attribute: str, where: str):
        self.resource(logical_id, where)
        kind = self.type_of(logical_id)
        if kind in FUNCTIONS and attribute == "Arn":
            return self.function_arn(self.physical_name(logical_id))
        if kind == SAM_FUNCTION and attribute in ("Alias", "Version"):  # SAM's ${Function.Alias}
            return self.ref("%s.%s" % (logical_id, attribute), where)
        if kind in TABLES and attribute in ("Arn", "StreamArn"):
            arn = "arn:%s:dynamodb:%s:%s:table/%s" % (self.partition, self.region, self.account_id,
                                                       self.physical_name(logical_id))
            return arn if attribute == "Arn" else arn + "/stream/1970-01-01T00:00:00.000"
        if attribute in ("ApiEndpoint", "ApiId") and self.is_websocket_api(logical_id):
            return self.api_id if attribute == "ApiId" else self.api_endpoint()
        if kind == NESTED_STACK and attribute.startswith("Outputs."):
            self.fail(where, "needs %s from nested stack %s (%s), which the local emulator cannot run"
                      % (attribute, logical_id, kind))
        if attribute.endswith("Arn"):
            return self.placeholder_arn(logical_id)
        return "%s.%s" % (logical_id, attribute)

    # -- parameters and conditions ---------------------------------------------------------------

    def parameter(self, key: str, where: str):
        spec = self.parameters[key]
        if not isinstance(spec, dict):
            self.fail("Parameters.%s" % key, "must be a map")
        kind = str(spec.get("Type", "String"))
        if key in self.overrides:
            value = self.overrides[key]
        elif kind.startswith("AWS::SSM::Parameter::Value<"):
            self.fail(where, "uses parameter %r, whose value lives in SSM: give it with a parameter override"
                      % key)
        elif "Default" in spec:
            value = spec["Default"]
        else:
            self.fail(where, "uses parameter %r, which has no Default and no parameter override" % key)
        allowed = spec.get("AllowedValues")
        if isinstance(allowed, list) and _text(value) not in [_text(v) for v in allowed]:
            self.fail("Parameters.%s" % key, "value %r is not one of AllowedValues %s" % (value, allowed))
        if (kind == "CommaDelimitedList" or kind.startswith("List<")) and isinstance(value, str):
            return [item.strip() for item in value.split(",")]
        return value

    def condition(self, name, where: str) -> bool:
        if not isinstance(name, str) or name not in self.condition_exprs:
            self.fail(where, "names condition %r, which is not in Conditions" % (name,))
        if name not in self._conditions:
            self._conditions[name] = None  # in progress: a cycle ends here
            self._conditions[name] = self.truth(self.condition_exprs[name], "Conditions.%s" % name)
        elif self._conditions[name] is None:
            self.fail("Conditions.%s" % name, "refers to itself (circular condition)")
        return self._conditions[name]

    def truth(self, expr, where: str) -> bool:
        if isinstance(expr, bool):
            return expr
        if not isinstance(expr, dict) or len(expr) != 1:
            self.fail(where, "must be a condition function (Fn::Equals, Fn::And, Fn::Or, Fn::Not, Condition)")
        (key, arg), = expr.items()
        if key == "Condition":
            return self.condition(arg, where)
        if key == "Fn::Equals":
            if not isinstance(arg, list) or len(arg) != 2:
                self.fail(where, "Fn::Equals needs [value, value]")
            left, right = (self.resolve(v, where) for v in arg)
            return (_text(left) if _text(left) is not None else left) == \
                (_text(right) if _text(right) is not None else right)
        if key in ("Fn::And", "Fn::Or", "Fn::Not"):
            if not isinstance(arg, list) or not arg or (key == "Fn::Not" and len(arg) != 1):
                self.fail(where, "%s needs a list of conditions" % key)
            values = [self.truth(item, where) for item in arg]
            return all(values) if key == "Fn::And" else any(values) if key == "Fn::Or" else not values[0]
        value = self.resolve(expr, where)
        if isinstance(value, bool) or _text(value) in ("true", "false"):
            return value is True or _text(value) == "true"
        self.fail(where, "must be a condition function (Fn::Equals, Fn::And, Fn::Or, Fn::Not, Condition)")

    # -- intrinsics --------------------------------------------------------------------------------

    def resolve(self, value, where: str):
        """Evaluate every intrinsic in `value`; AWS::NoValue drops map entries and list items."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref":
                    return self.ref(arg, where)
                if isinstance(key, str) and key.startswith("Fn::"):
                    return self.function(key, arg, where)
            resolved = {}
            for key, item in value.items():
                item = self.resolve(item, "%s.%s" % (where, key))
                if item is not NO_VALUE:
                    resolved[key] = item
            return resolved
        if isinstance(value, list):
            return [item for item in (self.resolve(v, where) for v in value) if item is not NO_VALUE]
        return value

    def string(self, value, where: str, what: str = "") -> str:
        text = _text(value)
        if text is None:
            self.fail(where, "%smust be a string, not %s" % (what, _describe(value)))
        return text

    def ref(self, target, where: str):
        target = self.resolve(target, where) if isinstance(target, dict) else target
        if not isinstance(target, str):
            self.fail(where, "Ref needs a name, not %s" % _describe(target))
        if target in self.pseudo:
            return self.pseudo[target]
        if target in self.parameters:
            return self.parameter(target, where)
        if target in self.resources:
            return self.ref_resource(self.resource(target, where), where)
        function, dot, suffix = target.partition(".")  # SAM: !Ref Function.Alias / Function.Version
        if dot and suffix in ("Alias", "Version") and self.resources.get(function, {}).get("Type") == SAM_FUNCTION:
            arn = self.function_arn(self.physical_name(self.resource(function, where)))
            alias = self.props(function).get("AutoPublishAlias")
            return arn + ":" + (self.string(self.resolve(alias, where), where) if suffix == "Alias" and alias else "1")
        self.fail(where, "uses Ref %r, which is not a parameter or resource of the template" % target)

    def function(self, key: str, arg, where: str):
        handler = getattr(self, "_fn_" + key[4:].lower(), None)
        if handler is None:
            self.fail(where, "uses %s, which the local emulator cannot resolve" % key)
        return handler(arg, where)

    def _pair(self, key, arg, where, size=2) -> list:
        if not isinstance(arg, list) or len(arg) != size:
            self.fail(where, "%s needs a list of %d items, not %s" % (key, size, _describe(arg)))
        return arg

    def _fn_getatt(self, arg, where):
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        resource, attribute = (self.string(self.resolve(v, where), where, "Fn::GetAtt's items ")
                               for v in self._pair("Fn::GetAtt", arg, where))
        return self.get_att(resource, attribute, where)

    def _fn_sub(self, arg, where):
        variables = {}
        if isinstance(arg, list):
            arg, variables = self._pair("Fn::Sub", arg, where)
            if not isinstance(variables, dict):
                self.fail(where, "Fn::Sub's variables must be a map")
        if not isinstance(arg, str):
            self.fail(where, "Fn::Sub needs a string, not %s" % _describe(arg))

        def substitute(match):
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + match.group(1)[1:] + "}"
            if name in variables:
                value = self.resolve(variables[name], where)
            elif "." in name:
                value = self.get_att(*name.split(".", 1), where)
            else:
                value = self.ref(name, where)
            return self.string(value, where, "${%s} " % name)

        return _SUB_VARIABLE.sub(substitute, arg)

    def _fn_join(self, arg, where):
        delimiter, items = self._pair("Fn::Join", arg, where)
        items = self.resolve(items, where)
        if not isinstance(delimiter, str) or not isinstance(items, list):
            self.fail(where, "Fn::Join needs [delimiter, [values]]")
        return delimiter.join(self.string(item, where, "Fn::Join's items ") for item in items)

    def _fn_select(self, arg, where):
        index, items = (self.resolve(v, where) for v in self._pair("Fn::Select", arg, where))
        if not isinstance(items, list) or not str(index).isdigit():
            self.fail(where, "Fn::Select needs [index, [values]]")
        if int(index) >= len(items):
            self.fail(where, "Fn::Select index %s is out of range (%d items)" % (index, len(items)))
        return items[int(index)]

    def _fn_split(self, arg, where):
        delimiter, text = (self.resolve(v, where) for v in self._pair("Fn::Split", arg, where))
        if not isinstance(delimiter, str) or not delimiter:
            self.fail(where, "Fn::Split needs a delimiter")
        return self.string(text, where, "Fn::Split's source ").split(delimiter)

    def _fn_if(self, arg, where):
        condition, when_true, when_false = self._pair("Fn::If", arg, where, 3)
        return self.resolve(when_true if self.condition(condition, where) else when_false, where)

    def _fn_findinmap(self, arg, where):
        if isinstance(arg, list) and len(arg) == 4 and isinstance(arg[3], dict):
            arg, default = arg[:3], arg[3].get("DefaultValue", NO_VALUE)  # AWS::LanguageExtensions
        else:
            default = NO_VALUE
        names = [self.string(self.resolve(v, where), where, "Fn::FindInMap's keys ")
                 for v in self._pair("Fn::FindInMap", arg, where, 3)]
        value = self.mappings
        for depth, name in enumerate(names):
            if not isinstance(value, dict) or name not in value:
                if default is not NO_VALUE:
                    return self.resolve(default, where)
                self.fail(where, "Fn::FindInMap: Mappings%s has no key %r"
                          % ("".join("." + n for n in names[:depth]), name))
            value = value[name]
        return value

    def _fn_base64(self, arg, where):
        return base64.b64encode(self.string(self.resolve(arg, where), where).encode()).decode()

    def _fn_getazs(self, arg, where):
        region = self.resolve(arg, where) or self.region
        return ["%s%s" % (region, zone) for zone in "abc"]

    def _fn_cidr(self, arg, where):
        block, count, bits = (self.resolve(v, where) for v in self._pair("Fn::Cidr", arg, where, 3))
        try:
            network = ipaddress.ip_network(str(block), strict=False)
            subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
            return [str(next(subnets)) for _ in range(int(count))]
        except (ValueError, StopIteration):
            self.fail(where, "Fn::Cidr cannot split %r into %s blocks of %s bits" % (block, count, bits))

    def _fn_length(self, arg, where):
        value = self.resolve(arg, where)
        if not isinstance(value, list):
            self.fail(where, "Fn::Length needs a list")
        return len(value)

    def _fn_tojsonstring(self, arg, where):
        return json.dumps(self.resolve(arg, where), separators=(",", ":"))

    def _fn_importvalue(self, arg, where):
        export = arg if isinstance(arg, str) else None
        self.fail(where, "uses Fn::ImportValue%s, an import from another stack, which the local emulator cannot "
                  "run (it runs one stack)" % (" %r" % export if export else ""))

    def _fn_equals(self, arg, where):
        return self.truth({"Fn::Equals": arg}, where)

    def _fn_and(self, arg, where):
        return self.truth({"Fn::And": arg}, where)

    def _fn_or(self, arg, where):
        return self.truth({"Fn::Or": arg}, where)

    def _fn_not(self, arg, where):
        return self.truth({"Fn::Not": arg}, where)

    # -- property helpers --------------------------------------------------------------------------

    def get(self, logical_id: str, props: dict, key: str, default=None):
        """A property's resolved value; `default` when absent or AWS::NoValue."""
        if key not in props:
            return default
        value = self.resolve(props[key], "%s.%s" % (logical_id, key))
        return default if value is NO_VALUE else value

    def get_string(self, logical_id, props, key, default=None):
        value = self.get(logical_id, props, key)
        if value is None:
            if default is None:
                self.fail("%s.%s" % (logical_id, key), "is missing")
            return default
        return self.string(value, "%s.%s" % (logical_id, key))

    def get_number(self, logical_id, props, key, default, kind=float):
        value = self.get(logical_id, props, key, default)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(float(value)) if kind is int else kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or number < 0 or (number == 0 and key != "ReservedConcurrentExecutions"):
            self.fail("%s.%s" % (logical_id, key), "must be a positive number, not %r" % (value,))
        return number


def _describe(value) -> str:
    if value is NO_VALUE:
        return "AWS::NoValue"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Reader:
    """Builds the ApiSpec from a _Template: the one WebSocket API, what it reaches, the tables."""

    def __init__(self, template: _Template):
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
        if isinstance(ttl, dict) and _text(ttl.get("Enabled")) == "true":
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
                value = _text(self.t.resolve(output.get("Value"), "Outputs.%s.Value" % name))
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
    template = _Template(name, document, overrides, base, region, account_id, stack_name,
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
