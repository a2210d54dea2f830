"""A REQUEST authorizer's answer -> the handshake outcome, as API Gateway decides it (pure).

docs/apigw-websocket.md#authorizer-output: the function raising `Unauthorized` is 401; a Deny, or no
Allow that matches the method ARN, is 403; any other error or a malformed
answer (no principalId, no policy, context values that are not strings,
numbers or booleans, more than 8 KB) is 500.
"""

import fnmatch
import json

RESULT_LIMIT = 8 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns, value: str) -> bool:
    # IAM wildcards: * any run of characters, ? one character (no other glob syntax).
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p.replace("[", "[[]")) for p in patterns)


def _action_ok(statement: dict) -> bool:
    return _matches(_listed(statement.get("Action", [])), "execute-api:Invoke")


def decide(result, method_arn: str) -> dict:
    """The `requestContext.authorizer` map for an allowed connection, or raise Refused."""
    if not isinstance(result, dict) or not isinstance(result.get("principalId"), str) or not result["principalId"]:
        raise Refused(500, "the authorizer's answer has no principalId")
    try:
        size = len(json.dumps(result))
    except (TypeError, ValueError):
        raise Refused(500, "the authorizer's answer is not JSON") from None
    if size > RESULT_LIMIT:
        raise Refused(500, "the authorizer's answer is over 8 KB")
    policy = result.get("policyDocument")
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if not isinstance(statements, (list, dict)):
        raise Refused(500, "the authorizer's answer has no policyDocument.Statement")
    allowed = False
    for statement in _listed(statements):
        if not isinstance(statement, dict) or not _action_ok(statement):
            continue
        if not _matches(_listed(statement.get("Resource", [])), method_arn):
            continue
        if statement.get("Effect") == "Deny":
            raise Refused(403, "the policy denies %s" % method_arn)
        if statement.get("Effect") == "Allow":
            allowed = True
    if not allowed:
        raise Refused(403, "no statement allows %s" % method_arn)
    context = result.get("context") or {}
    if not isinstance(context, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in context.values()):
        raise Refused(500, "authorizer context values must be strings, numbers or booleans")
    # API Gateway hands every context value on as a string: true -> "true", 42 -> "42".
    return {"principalId": result["principalId"], **{k: _string(v) for k, v in context.items()}}


def _string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
