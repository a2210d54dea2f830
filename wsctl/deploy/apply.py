"""Execute a plan's steps with boto3, in order, resolving placeholders as ids appear.

Each step is one API call. What AWS needs time for is handled here, by name:
the waiters a step names (a table becoming ACTIVE, Lambda's Pending and
InProgress states) and the retry policies it names (`Retry`): IAM's
propagation delay, an update already in progress, an authorizer still
referenced. Waits report what they wait for through `notify`, and their clock
is injectable so tests never really wait.
"""

import json
import random
import re
import time
from dataclasses import dataclass, field

from lambda_src import jwts

from .. import aws
from ..errors import WsctlError
from .model import Call, NewKeyset, Plan, Retry, RotatedKeyset, Step, resolve

# As long as Chalice waits for a new role (30 attempts, 5 s apart).
ROLE_PROPAGATION_SECONDS = 150
ROLE_PROPAGATION_DELAY = 5
REFERENCED_SECONDS = 60
IN_PROGRESS_ATTEMPTS = 30
# Lambda's answers while a new role is not yet usable by it (Chalice's list).
_ROLE_NOT_READY = (re.compile(r"role.*cannot be assumed", re.I), re.compile(r"role.*does not have permissions", re.I),
                   re.compile(r"InvalidArnException.*valid principal", re.I))


class Clock:
    """Real time; tests hand apply a fake one."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


CLOCK = Clock()


@dataclass
class Outcome:
    """What a best-effort run (destroy) did: the steps done and those that failed, with why."""
    context: dict
    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # (step, one-line reason)


def apply(plan: Plan, clients, progress=None, notify=None, clock=None) -> dict:
    """Run every step in order, stopping at the first failure; returns the final context
    (the ids of everything created). `progress(step)` before each step, `notify(text)` while waiting."""
    ctx = dict(plan.context)
    for step in plan.steps:
        if progress:
            progress(step)
        execute(step, clients, ctx, notify or (lambda text: None), clock or CLOCK)
    return ctx


def apply_all(plan: Plan, clients, progress=None, notify=None, clock=None) -> Outcome:
    """Run every step even when some fail (destroy: remove what can be removed)."""
    outcome = Outcome(context=dict(plan.context))
    for step in plan.steps:
        if progress:
            progress(step)
        try:
            execute(step, clients, outcome.context, notify or (lambda text: None), clock or CLOCK)
            outcome.done.append(step)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - named in the outcome
            outcome.failed.append((step, str(error) if isinstance(error, WsctlError)
                                   else aws.describe(error) or "%s: %s" % (type(error).__name__, error)))
    return outcome


def execute(step: Step, clients, ctx: dict, notify, clock) -> None:
    call = step.call
    client = clients(call.service)
    params = _materialise(resolve(call.params, ctx), call, clients)
    params = _serialise(call, params)
    if call.wait_before:
        _wait(client, call.wait_before, params)
    try:
        answer = _with_retries(step, lambda: getattr(client, call.method)(**params), client, params, notify, clock)
    except Exception as error:
        code = aws.error_code(error)
        if code and code in call.missing_ok:
            return  # already gone: a delete that has nothing left to do
        explained = _explain(call, params, error)
        if explained:
            raise WsctlError(explained) from None
        raise
    for name, path in call.outputs:
        value = answer
        for key in path.split("."):
            value = value[key]
        ctx[name] = value
    if call.wait_after:
        _wait(client, call.wait_after, params)


def _materialise(value, call: Call, clients):
    """The signing key placeholders, made only now (never part of a plan or its printout)."""
    if isinstance(value, NewKeyset):
        return jwts.new_keyset()
    if isinstance(value, RotatedKeyset):
        current = clients("ssm").get_parameter(Name=value.parameter, WithDecryption=True)["Parameter"]["Value"]
        return jwts.rotate(current)
    if isinstance(value, dict):
        return {k: _materialise(v, call, clients) for k, v in value.items()}
    return value


def _serialise(call: Call, params: dict) -> dict:
    if call.method == "put_role_policy" and not isinstance(params.get("PolicyDocument"), str):
        return dict(params, PolicyDocument=json.dumps(params["PolicyDocument"]))
    return params


_WAITER_CONFIG = {"table_exists": {"Delay": 2, "MaxAttempts": 90},
                  "table_not_exists": {"Delay": 2, "MaxAttempts": 90}}


def _wait(client, waiter: str, params: dict) -> None:
    args = {key: params[key] for key in ("FunctionName", "TableName") if key in params}
    config = _WAITER_CONFIG.get(waiter)
    client.get_waiter(waiter).wait(**args, **({"WaiterConfig": config} if config else {}))


def _explain(call: Call, params: dict, error: Exception) -> str | None:
    """One line for the refusals a person must act on, instead of AWS's own text."""
    if call.method == "update_time_to_live" and aws.error_code(error) == "ValidationException":
        return ("table %s: AWS would not turn TTL on for attribute %r now (it allows one TTL change per table at a "
                "time, and none for up to an hour after TTL was disabled); the rest of the stack is deployed: run "
                "`wsctl deploy` again later" % (params["TableName"],
                                                params["TimeToLiveSpecification"]["AttributeName"]))
    if call.method == "put_function_concurrency" and aws.error_code(error) in ("InvalidParameterValueException",
                                                                             "LimitExceededException"):
        return ("function %s: Lambda would not reserve %d concurrent executions: it keeps at least 100 of the "
                "account's concurrency in the region unreserved; reserve fewer, or ask AWS for a higher quota"
                % (params["FunctionName"], params["ReservedConcurrentExecutions"]))
    return None


# -- retry policies -------------------------------------------------------------------
def _role_not_ready(error) -> bool:
    if aws.error_code(error) != "InvalidParameterValueException":
        return False
    message = (getattr(error, "response", None) or {}).get("Error", {}).get("Message", "") or str(error)
    return any(pattern.search(message) for pattern in _ROLE_NOT_READY)


def _with_retries(step: Step, attempt, client, params: dict, notify, clock):
    policies = step.call.retry
    if not policies:
        return attempt()
    started = clock.monotonic()
    in_progress = 0
    referenced_delay = 1.0
    while True:
        try:
            return attempt()
        except Exception as error:
            waited = clock.monotonic() - started
            code = aws.error_code(error)
            if Retry.ROLE_PROPAGATION in policies and _role_not_ready(error):
                if waited + ROLE_PROPAGATION_DELAY > ROLE_PROPAGATION_SECONDS:
                    raise WsctlError("Lambda still cannot assume role %s after %d s (IAM propagation usually "
                                     "takes seconds, at most a few minutes): run `wsctl deploy` again to resume"
                                     % (params.get("Role", "?").rsplit("/", 1)[-1], round(waited))) from None
                notify("waiting for IAM: Lambda cannot assume the new role %s yet (a new role takes up to a few "
                       "minutes to propagate); retrying every %d s for up to %d s (%d s so far)" % (
                           params.get("Role", "?").rsplit("/", 1)[-1], ROLE_PROPAGATION_DELAY,
                           ROLE_PROPAGATION_SECONDS, round(waited)))
                clock.sleep(ROLE_PROPAGATION_DELAY)
                continue
            if Retry.LAMBDA_IN_PROGRESS in policies and code == "ResourceConflictException" \
                    and in_progress < IN_PROGRESS_ATTEMPTS:
                in_progress += 1
                notify("waiting for Lambda: another update of %s is in progress" % params.get("FunctionName"))
                _wait(client, "function_updated_v2", params)
                clock.sleep(1)
                continue
            if Retry.REFERENCED in policies and code == "ConflictException" and waited < REFERENCED_SECONDS:
                # botocore does not retry a 409; a detached authorizer is still "referenced" for a moment.
                delay = referenced_delay * random.uniform(0.5, 1.0)
                notify("waiting for API Gateway: %s %s is still referenced; retrying in %.1f s (%d s so far)"
                       % (step.resource, step.name, delay, round(waited)))
                clock.sleep(delay)
                referenced_delay = min(referenced_delay * 2, 10)
                continue
            raise
