"""Names of the resources one stack owns, derived from the stack name alone.

Deterministic names plus a `wsctl:stack` tag on every resource let any machine
with credentials find a stack without a local state file; the tag also tells
a resource the stack owns from one that merely has the same name.
"""

import hashlib
import re
from functools import lru_cache

from .errors import UsageError

TAG_KEY = "wsctl:stack"
DEFAULT_STACK = "app"
DEFAULT_STAGE = "dev"
MAX_STACK = 31  # the longest name keeps every resource name within its service's limit
_STACK_RE = re.compile(r"^[a-z][a-z0-9-]{0,%d}$" % (MAX_STACK - 1))
_STAGE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_stack(stack: str) -> str:
    if not _STACK_RE.match(stack or ""):
        raise UsageError("stack name %r: use 1-%d lowercase letters, digits or '-', starting "
                         "with a letter" % (stack, MAX_STACK))
    return stack


def stack_for_stage(stack: str, stage: str) -> str:
    """A stack name for deploying `stage` as a stack of its own: {stack}-{stage}, the stage in the
    characters a stack name takes, the stack part cut so that the whole fits the 31-character limit."""
    suffix = re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")[:15].strip("-") or "stage"
    cut = MAX_STACK - 1 - len(suffix)
    if stack[:cut].rstrip("-") + "-" + suffix == stack:  # a long stack named after the stage already
        cut -= 1
    return check_stack("%s-%s" % (stack[:cut].rstrip("-"), suffix))


def check_stage(stage: str) -> str:
    if not _STAGE_RE.match(stage or ""):
        raise UsageError("stage name %r: use 1-64 letters, digits, '-' or '_'" % stage)
    return stage


def function_name(stack: str) -> str:
    return "wsctl-%s" % stack


def api_name(stack: str) -> str:
    return "wsctl-%s" % stack


def table_name(stack: str) -> str:
    return "wsctl-%s-connections" % stack


def role_name(stack: str, region: str) -> str:
    # IAM is global: the region keeps one stack name usable in several regions.
    return "wsctl-%s-%s" % (stack, region)


def log_group(stack: str) -> str:
    return "/aws/lambda/%s" % function_name(stack)


def local_api_id(stack: str) -> str:
    """The emulator's API id for a stack: a stable 10-character lowercase id, like a real one.
    The emulator serves under it and the template readers resolve `!Ref Api` to it."""
    digest = hashlib.sha256(("wsctl-local:" + stack).encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:10])


def signing_key_param(stack: str) -> str:
    return "/wsctl/%s/signing-key" % stack


def stack_arns(partition: str, region: str, account: str, stack: str) -> dict:
    """The ARNs of the stack's own resources (the role: the one wsctl makes)."""
    at = {"partition": partition, "region": region, "account": account}
    return {"role_arn": "arn:{partition}:iam::{account}:role/".format(**at) + role_name(stack, region),
            "function_arn": "arn:{partition}:lambda:{region}:{account}:function:".format(**at) + function_name(stack),
            "table_arn": "arn:{partition}:dynamodb:{region}:{account}:table/".format(**at) + table_name(stack),
            "log_group_arn": "arn:{partition}:logs:{region}:{account}:log-group:".format(**at) + log_group(stack),
            "parameter_arn": "arn:{partition}:ssm:{region}:{account}:parameter".format(**at) + signing_key_param(stack)}


def tags(stack: str) -> dict:
    return {TAG_KEY: stack}


def tag_list(tags: dict) -> list:
    """Tags as IAM and DynamoDB take them: [{"Key": ..., "Value": ...}]."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@lru_cache(maxsize=None)
def partition(region: str) -> str:
    """aws, aws-cn, aws-us-gov, ... for a region, from botocore's endpoint data (for messages; the
    deployer takes ARNs' partition from STS)."""
    # botocore here, not at the top: every command imports this module, few need a region's data.
    from botocore.exceptions import UnknownRegionError
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    try:
        return EndpointResolver(create_loader().load_data("endpoints")).get_partition_for_region(region)
    except UnknownRegionError:
        return "aws"


def dns_suffix(region: str) -> str:
    """The region's DNS suffix from botocore's endpoint data: amazonaws.com, amazonaws.com.cn
    in the China regions, and whatever a new partition uses."""
    from botocore.exceptions import UnknownRegionError
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    try:
        return resolver.get_partition_dns_suffix(resolver.get_partition_for_region(region))
    except UnknownRegionError:
        return "amazonaws.com"


def execute_api_host(api_id: str, region: str) -> str:
    return "%s.execute-api.%s.%s" % (api_id, region, dns_suffix(region))


def ws_url(api_id: str, region: str, stage: str) -> str:
    return "wss://%s/%s" % (execute_api_host(api_id, region), stage)


def management_url(api_id: str, region: str, stage: str) -> str:
    return "https://%s/%s" % (execute_api_host(api_id, region), stage)


def handler_environment(stack: str, auth: str, ttl_seconds: int, allow_client_broadcast: bool) -> dict:
    """The handler's environment: the same for the deployed function and the local emulator.
    `auth` "switching" is deploy's while a stage changes mode (lambda_src/auth.py): it needs the key."""
    env = {"TABLE_NAME": table_name(stack), "STACK_NAME": stack,
           "AUTH_MODE": auth, "CONNECTION_TTL_SECONDS": str(ttl_seconds)}
    if auth in ("jwt", "switching"):
        env["SIGNING_KEY_PARAM"] = signing_key_param(stack)  # the name, never the key
    if allow_client_broadcast:
        env["ALLOW_CLIENT_BROADCAST"] = "1"
    return env
