"""The deploy plan's types: what one step does, as data.

A plan is an ordered list of `Step`s; each step is exactly one mutating AWS
API call (`Call`), as in Chalice's deployer. What surrounds a call is named,
not hidden: the waiter that must pass before or after it, the retry policy for
errors AWS is known to answer while it settles (a new IAM role, an update in
progress, an authorizer still referenced), and the error codes that mean the
resource is already gone (destroy runs twice). Values that exist only once an
earlier step has run are placeholders (`Ref`, `Fmt`) that apply resolves; the
signing key is a placeholder too, made at apply time so that no plan holds it.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ADOPT = "adopt"
    DEPLOY = "deploy"


class Kind(StrEnum):
    """What a step acts on (a plan's rows, status's resources, what destroy left): one name each."""
    API = "WebSocket API"
    ROLE = "IAM role"
    POLICY = "IAM policy"
    TABLE = "DynamoDB table"
    TTL = "DynamoDB TTL"
    LOG_GROUP = "log group"
    PARAMETER = "SSM parameter"
    FUNCTION = "Lambda function"
    CODE = "Lambda code"
    CONCURRENCY = "Lambda concurrency"
    CONFIGURATION = "Lambda configuration"
    PERMISSION = "Lambda permission"
    ROUTE = "route"
    INTEGRATION = "integration"
    AUTHORIZER = "authorizer"
    STAGE = "stage"
    DEPLOYMENT = "deployment"
    ROUTE_RESPONSE = "route response"


class Retry(StrEnum):
    """Errors AWS answers while a change settles, which apply waits out (see apply.RETRIES)."""
    ROLE_PROPAGATION = "role-propagation"  # a new role "cannot be assumed by Lambda" for a while
    LAMBDA_IN_PROGRESS = "lambda-in-progress"  # another update of the function is still running
    REFERENCED = "referenced"  # an authorizer "is referenced" until the detach settles (409)


@dataclass(frozen=True)
class Ref:
    """A value an earlier step produces (an id), looked up in the apply context."""
    name: str


@dataclass(frozen=True)
class Fmt:
    """A string built from the apply context with str.format."""
    template: str


@dataclass(frozen=True)
class NewKeyset:
    """A fresh signing key set, generated at apply time (never part of a printed plan)."""


@dataclass(frozen=True)
class RotatedKeyset:
    """The parameter's key set with a new current key (read with decryption at apply time)."""
    parameter: str


def resolve(value, context: dict):
    if isinstance(value, Ref):
        return context[value.name]
    if isinstance(value, Fmt):
        return value.template.format(**context)
    if isinstance(value, dict):
        return {k: resolve(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, context) for v in value]
    return value


def known(value, context: dict) -> bool:
    """Can `value` be resolved with what is known before apply?"""
    try:
        resolve(value, context)
        return True
    except KeyError:
        return False


@dataclass(frozen=True)
class Call:
    """One AWS API call: boto3's `service` client, `method`, and its parameters."""
    service: str  # boto3 client name: apigatewayv2, lambda, iam, dynamodb, logs, ssm
    method: str  # boto3 method name: create_api
    params: dict = field(default_factory=dict, hash=False)
    outputs: tuple = ()  # (context name, dotted path in the answer): ("api_id", "ApiId")
    wait_before: str | None = None  # a boto3 waiter on the same resource (function_updated_v2)
    wait_after: str | None = None  # (table_exists, function_active_v2, table_not_exists)
    retry: tuple = ()  # Retry policies, tried in order
    missing_ok: tuple = ()  # error codes that mean "already gone": fine for a delete

    @property
    def operation(self) -> str:
        """The API's own operation name (CreateApi), as IAM and botocore's events name it."""
        return "".join(part.title() for part in self.method.split("_"))


@dataclass(frozen=True)
class Step:
    resource: "Kind"  # what kind of thing
    name: str  # which one
    action: Action
    detail: str
    call: Call = field(repr=False)

    @property
    def op(self) -> str:
        return self.call.method


@dataclass
class Plan:
    steps: list
    context: dict  # ids and coordinates known before apply; apply adds the new ones
    warnings: list = field(default_factory=list)  # what the plan leaves undone, and why (one line each)
    present: list = field(default_factory=list)  # (kind, name) of the stack's resources that exist already
    stages: list = field(default_factory=list)  # the stages the stack's API has (destroy removes them all)

    @property
    def empty(self) -> bool:
        return not self.steps
