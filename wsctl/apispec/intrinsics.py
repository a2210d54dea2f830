"""CloudFormation's side of a template: its parameters (with --parameter-overrides), conditions,
mappings, pseudo parameters, and the intrinsic functions (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If,
...), evaluated lazily as a reader asks for values. Ref and GetAtt to resources the emulator does not
run give placeholders (the logical id, an ARN-shaped string); the WebSocket API's give the emulator's
own id and endpoint. What cannot be resolved is one line naming where.

The reading of resources into the API model is template.py's; this module knows nothing of routes,
functions or tables beyond the names and ARNs CloudFormation gives them.
"""

import base64
import ipaddress
import json
import re
import shlex
from pathlib import Path

from ..errors import UsageError

SAM_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
TABLE = "AWS::DynamoDB::Table"
SIMPLE_TABLE = "AWS::Serverless::SimpleTable"
API = "AWS::ApiGatewayV2::Api"
SAM_WEBSOCKET_API = "AWS::Serverless::WebSocketApi"
NESTED_STACK = "AWS::CloudFormation::Stack"
FUNCTIONS = (SAM_FUNCTION, LAMBDA_FUNCTION)
TABLES = (TABLE, SIMPLE_TABLE)
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


def scalar_text(value) -> str | None:
    """A scalar as CloudFormation's string form; None for lists, maps and AWS::NoValue."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


class Template:
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
        if isinstance(allowed, list) and scalar_text(value) not in [scalar_text(v) for v in allowed]:
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
            return (scalar_text(left) if scalar_text(left) is not None else left) == \
                (scalar_text(right) if scalar_text(right) is not None else right)
        if key in ("Fn::And", "Fn::Or", "Fn::Not"):
            if not isinstance(arg, list) or not arg or (key == "Fn::Not" and len(arg) != 1):
                self.fail(where, "%s needs a list of conditions" % key)
            values = [self.truth(item, where) for item in arg]
            return all(values) if key == "Fn::And" else any(values) if key == "Fn::Or" else not values[0]
        value = self.resolve(expr, where)
        if isinstance(value, bool) or scalar_text(value) in ("true", "false"):
            return value is True or scalar_text(value) == "true"
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
        text = scalar_text(value)
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
