"""Every AWS call of a run, turned into the IAM request AWS would authorize, checked against a policy.

Calls are recorded with botocore's event hooks (`recorder`, a fixture), each is mapped to the
(action, resource ARN, condition context) AWS authorizes (`iam_requests`), and `allows` says whether
a policy allows it. The mapping from API operations to IAM requests is this file's own, written from
AWS's service authorization reference, not the product's, so a new call in wsctl fails a policy test
until the policy (and this table) name it. Used by tests/test_deploy_policy.py (the deployer's
policy) and tests/test_foreign_apis.py (the operator's, `wsctl policy`).
"""

import fnmatch
from urllib.parse import quote, urlsplit

import boto3
import botocore.handlers
import pytest

REGION, ACCOUNT, PARTITION = "us-east-1", "123456789012", "aws"  # moto's account


# -- recording --------------------------------------------------------------------------------
class Recorder:
    """(service, operation, api params, url) of every AWS call while `on`."""

    def __init__(self):
        self.on = False
        self.calls: list[dict] = []

    def params(self, event_name, params, context, **_):  # before-parameter-build.{service}.{Operation}
        if self.on:
            _, service, operation = event_name.split(".", 2)
            entry = {"service": service, "operation": operation, "params": dict(params), "url": None}
            self.calls.append(entry)
            context["wsctl_recorded"] = entry

    def request(self, params, context, **_):  # before-call: the resolved URL
        if "wsctl_recorded" in context:
            context["wsctl_recorded"]["url"] = params.get("url")


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [
        *botocore.handlers.BUILTIN_HANDLERS, ("before-parameter-build", recorder.params),
        ("before-call", recorder.request)])
    return recorder


# -- API operations -> IAM requests (AWS's service authorization reference) -------------------------
def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return "arn:%s:%s:%s:%s:%s" % (PARTITION, service, region, account, resource)


def _function(name: str) -> str:
    return name if name.startswith("arn:") else _arn("lambda", "function:" + name)


def _table(name: str) -> str:
    return name if name.startswith("arn:") else _arn("dynamodb", "table/" + name)


def _parameter(name: str) -> str:
    return _arn("ssm", "parameter" + (name if name.startswith("/") else "/" + name))


_TAGGING = {  # tag-on-create needs the service's tagging permission as well
    ("iam", "CreateRole"): ("Tags", "iam:TagRole"),
    ("lambda", "CreateFunction"): ("Tags", "lambda:TagResource"),
    ("dynamodb", "CreateTable"): ("Tags", "dynamodb:TagResource"),
    ("cloudwatch-logs", "CreateLogGroup"): ("tags", "logs:TagResource"),
    ("ssm", "PutParameter"): ("Tags", "ssm:AddTagsToResource"),
}
_PREFIX = {"cloudwatch-logs": "logs"}
_ACTION = {("lambda", "Invoke"): "lambda:InvokeFunction"}


def iam_requests(call: dict) -> list[tuple[str, str, dict]]:
    """The (action, resource, condition context) requests AWS authorizes for one call."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if (service, operation) == ("sts", "GetCallerIdentity"):
        return []  # needs no permission
    if (service, operation) == ("lambda", "GetAccountSettings"):
        return [("lambda:GetAccountSettings", "*", {})]  # names no resource
    if service == "apigatewayv2":
        model = boto3.client("apigatewayv2", region_name=REGION).meta.service_model.operation_model(operation)
        path = model.http["requestUri"].split("?")[0]
        for name, value in params.items():  # the URI names each parameter by its location name (apiId)
            member = model.input_shape.members.get(name)
            where = member.serialization.get("name", name) if member is not None else name
            path = path.replace("{%s}" % where, quote(str(value), safe=""))
        assert "{" not in path, (operation, path)
        tags = params.get("Tags") or {}
        context = {"aws:RequestTag/%s" % key: value for key, value in tags.items()}  # tag-on-create conditions
        requests = [("apigateway:" + model.http["method"], "arn:%s:apigateway:%s::%s" % (
            PARTITION, REGION, path[len("/v2"):]), context)]
        if tags:  # the resource being made: a new API has no id yet, a stage is named
            made = "/apis/new" if operation == "CreateApi" else "/apis/%s/stages/%s" % (
                params["ApiId"], params["StageName"])
            requests.append(("apigateway:POST", "arn:%s:apigateway:%s::/tags/%s" % (PARTITION, REGION, quote(
                _arn("apigateway", made, account=""), safe="")), context))
        return requests
    if service == "apigatewaymanagementapi":
        url = urlsplit(call["url"])
        api_id = url.hostname.split(".")[0]
        stage = url.path.strip("/").split("/")[0]
        method = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}[operation]
        return [("execute-api:ManageConnections", _arn("execute-api", "%s/%s/%s/@connections/%s" % (
            api_id, stage, method, params["ConnectionId"])), {})]
    action = _ACTION.get((service, operation), "%s:%s" % (_PREFIX.get(service, service), operation))
    if service == "cloudformation":
        # by stack name: that stack; by a resource's physical id: whichever stack holds it, unknown to the caller
        stack = params.get("StackName")
        return [(action, _arn("cloudformation", "stack/%s/*" % stack if stack else "stack/*"), {})]
    if service == "lambda":
        resource = _function(params["FunctionName"] if "FunctionName" in params else params["Resource"])
    elif service == "iam":
        resource = "arn:%s:iam::%s:role/%s" % (PARTITION, ACCOUNT, params["RoleName"])
    elif service == "dynamodb":
        if operation == "BatchWriteItem":
            return [(action, _table(name), {}) for name in params["RequestItems"]]
        resource = _table(params.get("TableName") or params["ResourceArn"])
        if params.get("IndexName"):
            resource += "/index/" + params["IndexName"]
    elif service == "cloudwatch-logs":
        group = params.get("logGroupName")
        resource = _arn("logs", "log-group:" + group if group else "log-group:*")
    elif service == "ssm":
        resource = _parameter(params.get("Name") or params["ResourceId"])
    else:
        raise AssertionError("no IAM mapping for %s %s: add it here and to the policy" % (service, operation))
    context = {}
    if service == "iam" and params.get("PermissionsBoundary"):  # CreateRole, PutRolePermissionsBoundary
        context["iam:PermissionsBoundary"] = params["PermissionsBoundary"]
    requests = [(action, resource, context)]
    if service == "lambda" and operation == "GetFunction":
        requests.append(("lambda:ListTags", resource, {}))  # GetFunction returns tags only with ListTags
    if service == "lambda" and params.get("Role"):
        requests.append(("iam:PassRole", params["Role"], {"iam:PassedToService": "lambda.amazonaws.com"}))
    tagging = _TAGGING.get((service, operation))
    if tagging and params.get(tagging[0]):
        requests.append((tagging[1], resource, {}))
    return requests


def allows(policy: dict, action: str, resource: str, context: dict) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        conditions = statement.get("Condition", {})
        if all(operator == "StringEquals" and all(context.get(key) == value for key, value in pairs.items())
               for operator, pairs in conditions.items()):
            return True
    return False
