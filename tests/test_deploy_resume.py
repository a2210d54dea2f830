"""A deploy that dies half-way converges on the next run, and destroy still cleans up.

The failure is injected at the AWS boundary (a botocore hook that makes one
API call fail, as a network cut or a throttle would), never inside wsctl.
"""

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from wsctl.apispec import default_spec
from wsctl.deploy import DeployOptions, plan_deploy, plan_destroy, run_plan
from wsctl.targets.stack import StackTarget as Target

REGION = "us-east-1"


def _target(session=None) -> Target:
    return Target(stack="resume", stage="dev", region=REGION, boto_session=session)


def _failing_session(operation: str) -> boto3.Session:
    """A session whose first `operation` call fails as if the network dropped."""
    session = boto3.Session(region_name=REGION)
    state = {"failed": False}

    def cut(**_):
        if not state["failed"]:
            state["failed"] = True
            raise EndpointConnectionError(endpoint_url="https://lambda.%s.amazonaws.com" % REGION)

    session.events.register("before-call.*.%s" % operation, cut)
    return session


@pytest.mark.parametrize("operation", ["CreateFunction", "CreateDeployment"])
def test_an_interrupted_deploy_converges_and_destroys(aws, operation):
    target = _target(_failing_session(operation))
    _, plan = plan_deploy(target, DeployOptions(spec=default_spec()))
    total = len(plan.steps)
    with pytest.raises(EndpointConnectionError):
        run_plan(target, plan)

    # the next deploy plans only what is missing, and converges
    _, resumed = plan_deploy(_target(), DeployOptions(spec=default_spec()))
    assert 0 < len(resumed.steps) < total
    run_plan(_target(), resumed)
    _, again = plan_deploy(_target(), DeployOptions(spec=default_spec()))
    assert again.steps == []

    run_plan(_target(), plan_destroy(_target()))
    assert plan_destroy(_target()).steps == []
    tagging = boto3.client("resourcegroupstaggingapi", region_name=REGION)
    tagged = [r["ResourceARN"] for r in tagging.get_resources(
        TagFilters=[{"Key": "wsctl:stack", "Values": ["resume"]}])["ResourceTagMappingList"]]
    assert tagged == []


def test_destroy_cleans_up_after_an_interrupted_first_deploy(aws):
    target = _target(_failing_session("CreateIntegration"))
    _, plan = plan_deploy(target, DeployOptions(spec=default_spec()))
    with pytest.raises(EndpointConnectionError):
        run_plan(target, plan)
    destroy = plan_destroy(_target())
    assert {step.resource for step in destroy.steps} >= {"WebSocket API", "Lambda function", "DynamoDB table",
                                                         "IAM role"}
    run_plan(_target(), destroy)
    assert plan_destroy(_target()).steps == []
