"""The API model: one description of a WebSocket API that deploy and the emulator consume.

It is read from wsctl's own lambda_src (`bundled.py`), from a route file
(`routefile.py`), from a SAM/CloudFormation template (`template.py`), from a CDK
cloud assembly (`cdk.py`) or from a Serverless Framework service (`serverless.py`);
each reader is a translation into these values.
"""

from dataclasses import dataclass, field
from pathlib import Path

from .. import limits

AUTH_MODES = ("jwt", "none")
SPECIAL_ROUTES = ("$connect", "$disconnect", "$default")


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: what it runs and in what environment."""
    name: str
    runtime: str  # python3.12, nodejs20.x, provided.al2023, ...
    code_dir: Path  # the function's code folder (Lambda's /var/task)
    handler: str  # module.function (Python), file.export (Node), anything (provided)
    environment: dict = field(default_factory=dict, hash=False)  # the function's own variables
    timeout_s: float = limits.DEFAULT_TIMEOUT_S
    memory_mb: int = limits.DEFAULT_MEMORY_MB
    max_environments: int = limits.DEFAULT_MAX_ENVIRONMENTS  # concurrent execution environments
    watch_dir: Path | None = None  # where code changes are looked for (default: code_dir)

    @property
    def language(self) -> str:
        if self.runtime.startswith("python"):
            return "python"
        if self.runtime.startswith("nodejs"):
            return "node"
        if self.runtime.startswith("provided"):
            return "provided"
        return "unknown"


@dataclass(frozen=True)
class Route:
    key: str
    two_way: bool = False  # API Gateway sends the integration's `body` back only on two-way routes
    function: str | None = None  # the FunctionSpec.name this route invokes (None: no integration)
    # A declared integration the emulator does not run (a non-proxy AWS integration, HTTP, MOCK):
    # what it is, for the log. API Gateway's answer to its failure stands in for it.
    unserved: str | None = None


@dataclass(frozen=True)
class Authorizer:
    """A REQUEST authorizer on $connect."""
    function: str
    identity_sources: tuple[str, ...] = limits.HOST_IDENTITY_SOURCES
    name: str = "authorizer"


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table the API needs: CreateTable's arguments and the TTL attribute, if any."""
    name: str
    create_args: dict = field(hash=False)
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class ApiSpec:
    routes: tuple[Route, ...]
    route_selection_expression: str = "$request.body.action"
    auth: str = "jwt"  # the bundled app: "jwt" (its authorizer on $connect) or "none" (anonymous)
    integration_timeout_ms: int = limits.INTEGRATION_TIMEOUT_MS
    functions: tuple[FunctionSpec, ...] = ()
    authorizer: Authorizer | None = None
    tables: tuple[TableSpec, ...] = ()
    stage: str | None = None  # a template's StageName; None: the CLI's --stage
    not_emulated: tuple[str, ...] = ()  # "LogicalId (AWS::S3::Bucket)": listed once at start
    origin: str = "wsctl's bundled handler"  # where this description came from, for the banner
    outputs: tuple[tuple[str, str], ...] = ()  # a template's Outputs (name, value), as resolved here
    bundled: bool = False  # wsctl's own API: the emulator provisions its signing key

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(r.key for r in self.routes)

    def function(self, name: str) -> FunctionSpec:
        for function in self.functions:
            if function.name == name:
                return function
        raise KeyError(name)
