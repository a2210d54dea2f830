"""Complete moto's API Gateway v2 double where wsctl relies on real AWS behaviour.

moto 5.x does not implement CreateDeployment/GetDeployment(s), GetAuthorizers,
GetRouteResponses or UpdateStage, drops a stage's DeploymentId, and accepts duplicate route
keys and stage names. The product calls the real APIs; this makes the double
answer them as AWS does (and refuse what AWS refuses), instead of letting the
product skip them. Import before the first apigatewayv2 call.

It also makes moto refuse what AWS refuses where deploy must cope: deleting an
authorizer a route still names (409), and DynamoDB TTL changes AWS does not
accept (a second TTL attribute, any change while TTL is DISABLING).
"""

import datetime
import json
import random
import string

from moto.apigatewayv2 import models as _models
from moto.apigatewayv2 import urls as _urls
from moto.apigatewayv2.responses import ApiGatewayV2Response as _R
from moto.core.exceptions import JsonRESTError


class NotFoundException(JsonRESTError):
    code = 404

    def __init__(self, message: str):
        super().__init__("NotFoundException", message)


class ConflictException(JsonRESTError):
    code = 409

    def __init__(self, message: str):
        super().__init__("ConflictException", message)


def _api(self):
    return self.apigatewayv2_backend.get_api(self.path.split("/")[3])


def _deployments(api) -> dict:
    if not hasattr(api, "_wsctl_deployments"):
        api._wsctl_deployments = {}
    return api._wsctl_deployments


def create_deployment(self):
    api = _api(self)
    body = json.loads(self.body or "{}")
    deployment = {"deploymentId": "".join(random.choices(string.ascii_lowercase + string.digits, k=6)),
                  "deploymentStatus": "DEPLOYED", "autoDeployed": False,
                  "createdDate": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    if body.get("description"):
        deployment["description"] = body["description"]
    if body.get("stageName"):
        api.get_stage(body["stageName"]).config["deploymentId"] = deployment["deploymentId"]
    _deployments(api)[deployment["deploymentId"]] = deployment
    return 201, {}, json.dumps(deployment)


def get_deployments(self):
    return 200, {}, json.dumps({"items": list(_deployments(_api(self)).values())})


def get_deployment(self):
    deployment_id = self.path.split("/")[5]
    found = _deployments(_api(self)).get(deployment_id)
    if found is None:
        raise NotFoundException("Invalid Deployment identifier specified")
    return 200, {}, json.dumps(found)


def get_authorizers(self):
    return 200, {}, json.dumps({"items": [a.to_json() for a in _api(self).authorizers.values()]})


def get_route_responses(self):
    parts = self.path.split("/")
    route = _api(self).get_route(parts[5])
    return 200, {}, json.dumps({"items": [r.to_json() for r in route.route_responses.values()]})


def update_stage(self):
    """UpdateStage (moto has none): the fields wsctl changes, DefaultRouteSettings merged as AWS does."""
    from urllib.parse import unquote

    stage = _api(self).get_stage(unquote(self.path.split("/")[5]))
    body = json.loads(self.body or "{}")
    stage.default_route_settings = {**(stage.default_route_settings or {}), **body.get("defaultRouteSettings", {})}
    if body.get("deploymentId"):
        stage.config["deploymentId"] = body["deploymentId"]
    stage.updated = datetime.datetime.now()
    return 200, {}, json.dumps(stage.to_json())


_R.update_stage = update_stage
_R.create_deployment = create_deployment
_R.get_deployments = get_deployments
_R.get_deployment = get_deployment
_R.get_authorizers = get_authorizers
_R.get_route_responses = get_route_responses
_urls.url_paths.setdefault("{0}/v2/apis/(?P<api_id>[^/]+)/deployments$", _R.dispatch)
_urls.url_paths.setdefault("{0}/v2/apis/(?P<api_id>[^/]+)/deployments/(?P<deployment_id>[^/]+)$", _R.dispatch)

# A stage reports the deployment it serves, as on AWS.
_stage_to_json = _models.Stage.to_json


def _stage_json(self):
    document = _stage_to_json(self)
    if self.config.get("deploymentId"):
        document["deploymentId"] = self.config["deploymentId"]
    return document


_models.Stage.to_json = _stage_json

# AWS refuses a second route with the same key and a second stage with the same name.
_create_route = _models.Api.create_route


def _unique_route(self, *args, **kwargs):
    key = kwargs.get("route_key")
    if any(route.route_key == key for route in self.routes.values()):
        raise ConflictException("Route with key %s already exists for this API" % key)
    return _create_route(self, *args, **kwargs)


_models.Api.create_route = _unique_route
_create_stage = _models.Api.create_stage


def _unique_stage(self, config):
    if config.get("stageName") in self.stages:
        raise ConflictException("Stage already exists")
    return _create_stage(self, config)


_models.Api.create_stage = _unique_stage

# AWS detaches a route's authorizer when its AuthorizationType becomes NONE or
# AWS_IAM (the documented way to remove one); moto keeps the stale AuthorizerId.
_update_route = _models.Route.update


def _update_route_detaching(self, *args, **kwargs):
    _update_route(self, *args, **kwargs)
    if self.authorization_type in ("NONE", "AWS_IAM") and not kwargs.get("authorizer_id"):
        self.authorizer_id = None


_models.Route.update = _update_route_detaching

# AWS refuses to delete an authorizer that a route still names (409 ConflictException,
# which botocore does not retry); moto deletes it and leaves the route dangling.
_delete_authorizer = _models.Api.delete_authorizer


def _delete_unreferenced_authorizer(self, authorizer_id):
    for route in self.routes.values():
        if route.authorizer_id == authorizer_id:
            raise ConflictException("Cannot delete authorizer '%s', is referenced in route: %s"
                                    % (authorizer_id, route.route_key))
    return _delete_authorizer(self, authorizer_id=authorizer_id)


_models.Api.delete_authorizer = _delete_unreferenced_authorizer

# DynamoDB's TTL rules (moto accepts any change at once): one TTL attribute per table, changed
# only by disabling first; disabling takes a while (DISABLING, up to an hour on AWS: a test flips
# it to DISABLED), and no change is accepted meanwhile; enabling twice is refused.
from moto.dynamodb.models import DynamoDBBackend as _DynamoDBBackend  # noqa: E402


def _ttl_validation(message):
    error = JsonRESTError("ValidationException", message)
    error.code = 400
    return error


_update_time_to_live = _DynamoDBBackend.update_time_to_live


def _update_time_to_live_as_aws(self, table_name, ttl_spec):
    table = self.get_table(table_name)
    status = table.ttl.get("TimeToLiveStatus", "DISABLED")
    if status == "DISABLING":
        raise _ttl_validation("Time to live has been modified multiple times within a fixed interval")
    if ttl_spec.get("Enabled") and status in ("ENABLED", "ENABLING"):
        raise _ttl_validation("TimeToLive is already enabled")
    if not ttl_spec.get("Enabled") and status == "DISABLED":
        raise _ttl_validation("TimeToLive is already disabled")
    _update_time_to_live(self, table_name, ttl_spec)
    if not ttl_spec.get("Enabled"):
        table.ttl["TimeToLiveStatus"] = "DISABLING"


_DynamoDBBackend.update_time_to_live = _update_time_to_live_as_aws

# CloudFormation answers DescribeStackResources by a resource's physical id with its stack's resources
# (how a tool learns which stack made an API or function); moto reads StackName only.
from moto.cloudformation import responses as _cfn_responses  # noqa: E402
from moto.core.responses import ActionResult as _ActionResult  # noqa: E402

_describe_stack_resources = _cfn_responses.CloudFormationResponse.describe_stack_resources


def _describe_stack_resources_by_physical_id(self):
    physical = self._get_param("PhysicalResourceId")
    if self._get_param("StackName") or not physical:
        return _describe_stack_resources(self)
    for stack in self.cloudformation_backend.stacks.values():
        if any(getattr(r, "physical_resource_id", None) == physical for r in stack.stack_resources):
            return _ActionResult({"StackResources": [_cfn_responses.StackResourceDTO(stack, r)
                                                     for r in stack.stack_resources]})
    raise _cfn_responses.ValidationError(message="Stack for %s does not exist" % physical)


_cfn_responses.CloudFormationResponse.describe_stack_resources = _describe_stack_resources_by_physical_id

# Lambda's GetAccountSettings (moto has none): the account's concurrency, and what no function has
# reserved, from the quota moto's own PutFunctionConcurrency enforces (MOTO_LAMBDA_CONCURRENCY_QUOTA;
# AWS's default of 1000 without it).
import os  # noqa: E402

from moto.awslambda import urls as _lambda_urls  # noqa: E402
from moto.awslambda.responses import LambdaResponse as _Lambda  # noqa: E402


def get_account_settings(self):
    quota = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", 1000))
    functions = self.backend.list_functions()
    reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
    return 200, {}, json.dumps({
        "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800,
                         "ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": quota - reserved},
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(functions)}})


_Lambda.get_account_settings = get_account_settings
_lambda_urls.url_paths.setdefault(r"{0}/(?P<api_version>[^/]+)/account-settings/?$", _Lambda.dispatch)
