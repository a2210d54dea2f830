"""boto3 sessions and clients (imported lazily), and AWS errors in words a person can act on."""

from urllib.parse import urlsplit

from .errors import WsctlError

# Control-plane calls are throttled readily (apigatewayv2 especially); botocore's
# standard retry mode backs off with jitter, so we do not hand-write retries.
CONTROL_RETRIES = {"mode": "standard", "max_attempts": 8}


def session(profile: str | None = None, region: str | None = None):
    import boto3
    import botocore.exceptions

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        raise WsctlError("AWS profile %r not found: check ~/.aws/config or drop --profile" % profile) from None


def client(sess, service: str, endpoint_url: str | None = None, **config):
    from botocore.config import Config

    config.setdefault("retries", CONTROL_RETRIES)
    made = sess.client(service, endpoint_url=endpoint_url, config=Config(**config))
    if endpoint_url:
        # Before botocore's retry handler: an endpoint that lacks the operation answers at once.
        made.meta.events.register_first("needs-retry", _refuse_unimplemented)
    return made


class NotImplementedByEndpoint(WsctlError):
    """The endpoint (an emulator) does not implement an operation wsctl calls."""

    def __init__(self, service: str, operation: str, endpoint: str, answer: str):
        super().__init__("%s %s is not implemented by %s (it answered %s): this endpoint cannot run that command"
                         % (service, operation, endpoint, answer))
        self.service, self.operation, self.endpoint = service, operation, endpoint


_NOT_IMPLEMENTED = ("not yet implemented", "has not been implemented", "is not implemented",
                    "not yet been emulated", "not included in your license")


def unimplemented_answer(status: int, body: bytes) -> str | None:
    """How an emulator says it lacks an operation, or None for an answer in AWS's shape. AWS itself
    never answers with an HTML page, nor with 501."""
    text = (body or b"")[:2000].decode("utf-8", "replace")
    lowered = text.lower()
    html = lowered.lstrip().startswith(("<!doctype html", "<html"))
    if status == 501:
        return "501 Not Implemented"
    if html and status in (400, 404, 405, 500):
        return "%d with an HTML page, not an AWS answer" % status
    if status >= 400 and any(phrase in lowered for phrase in _NOT_IMPLEMENTED):
        return "%d: %s" % (status, " ".join(text.split())[:160])
    return None


def _refuse_unimplemented(response=None, operation=None, request_dict=None, **_):
    if not response or response[0] is None or operation is None:
        return None
    http = response[0]
    if http.status_code < 400:
        return None  # reading .content would consume a streaming body (Lambda Invoke's Payload)
    answer = unimplemented_answer(http.status_code, getattr(http, "content", b""))
    if answer is None:
        return None
    url = urlsplit((request_dict or {}).get("url", ""))
    service = operation.service_model.service_name if getattr(operation, "service_model", None) else "?"
    raise NotImplementedByEndpoint(service, operation.name, "%s://%s" % (url.scheme, url.netloc), answer)


def error_code(error: Exception) -> str:
    return (getattr(error, "response", None) or {}).get("Error", {}).get("Code", "")


def status_code(error: Exception) -> int | None:
    return (getattr(error, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


_FIXES = {
    "UnrecognizedClientException": "the AWS access key is not valid: check your credentials",
    "InvalidClientTokenId": "the AWS access key is not valid: check your credentials",
    "ExpiredToken": "the AWS session token has expired: refresh your credentials (aws sso login?)",
    "ExpiredTokenException": "the AWS session token has expired: refresh your credentials (aws sso login?)",
    "RequestExpired": "the request expired: check this machine's clock",
    "SignatureDoesNotMatch": "the AWS secret key does not match: check your credentials",
}


_TABLE_OPERATIONS = {"Query", "Scan", "GetItem", "PutItem", "DeleteItem", "BatchWriteItem", "BatchGetItem",
                     "DescribeTable"}


def describe(error: BaseException) -> str | None:
    """One line naming the problem and the fix, for the errors people hit; None if unknown."""
    try:
        import botocore.exceptions as bex
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(error, bex.NoCredentialsError):
        return ("no AWS credentials found: run `aws configure`, set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --local for the emulator")
    if isinstance(error, bex.NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION (or use --local for the emulator)"
    if isinstance(error, bex.ProfileNotFound):
        return "AWS profile not found: %s" % error
    if isinstance(error, bex.EndpointConnectionError):
        return "cannot reach %s: check --endpoint-url, the network, or that the service is running" % (
            getattr(error, "kwargs", {}).get("endpoint_url") or "the endpoint")
    if isinstance(error, (bex.ConnectTimeoutError, bex.ReadTimeoutError)):
        return "the AWS endpoint did not answer in time: %s" % error
    if isinstance(error, bex.ClientError):
        code = error_code(error)
        operation = getattr(error, "operation_name", "") or "the call"
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        if code in _FIXES:
            return _FIXES[code]
        if code == "ResourceNotFoundException" and operation in _TABLE_OPERATIONS:
            return ("the registry table does not exist (%s): is the stack deployed? check --stack and --region, "
                    "or run `wsctl status`" % message)
        if code.startswith("AccessDenied") or code in ("UnauthorizedOperation", "AuthorizationError") or (
                status_code(error) == 403):
            return "access denied for %s: %s (grant that permission to your AWS identity)" % (
                operation, message)
        return "%s failed: %s: %s" % (operation, code or status_code(error), message)
    return None
