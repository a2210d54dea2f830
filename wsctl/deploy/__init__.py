"""Deploying a stack: build (bundle), plan (pure), apply (boto3); and destroy, status.

`target.client(service)` supplies every boto3 client, so tests can hand in a
session whose event hooks count the calls.
"""

from dataclasses import dataclass, field

from .. import aws, limits, names
from ..apispec import ApiSpec
from ..aws import NotImplementedByEndpoint
from ..errors import WsctlError
from ..exitstatus import ExitStatus
from . import bundle, remote, stages
from .model import Action, Call, Kind, Plan, Step
from .plan import TOP_LEVEL, StackConfig, make_plan, present_resources, top_level_names


@dataclass
class DeployOptions:
    spec: ApiSpec
    allow_client_broadcast: bool = False
    ttl_seconds: int = limits.DEFAULT_TTL_SECONDS
    log_retention_days: int = limits.DEFAULT_LOG_RETENTION_DAYS
    rotate_key: bool = False
    role_arn: str | None = None
    permissions_boundary: str | None = None
    throttle: tuple = limits.STAGE_THROTTLE
    reserved_concurrency: int | None = None


def stack_config(target, options: DeployOptions, code: bytes | None = None) -> StackConfig:
    return StackConfig(stack=target.stack, stage=target.stage, region=target.region_name, spec=options.spec,
                       code=code if code is not None else bundle.build(),
                       allow_client_broadcast=options.allow_client_broadcast,
                       ttl_seconds=options.ttl_seconds, log_retention_days=options.log_retention_days,
                       rotate_key=options.rotate_key, role_arn=options.role_arn,
                       permissions_boundary=options.permissions_boundary, throttle=options.throttle,
                       reserved_concurrency=options.reserved_concurrency)


def read_state(target, tolerant: bool = False) -> remote.RemoteState:
    return remote.read(target.client, target.stack, target.stage, target.region_name, tolerant=tolerant)


def plan_deploy(target, options: DeployOptions) -> tuple[StackConfig, Plan]:
    config = stack_config(target, options)
    try:
        state = read_state(target)
    except NotImplementedByEndpoint as error:
        present = present_resources(target.stack, target.region_name, read_state(target, tolerant=True))
        if not present:
            raise
        raise WsctlError("%s; stack %s exists in part: `wsctl destroy` deletes %s"
                         % (error, target.stack, describe_resources(present))) from None
    return config, make_plan(config, state)


def run_plan(target, plan: Plan, progress=None, notify=None, clock=None) -> dict:
    from .apply import apply  # apply brings PyJWT (for signing keys): planning, status and dry runs do without

    return apply(plan, target.client, progress, notify, clock)


def outputs(target, context: dict) -> dict:
    api_id = context["api_id"]
    region = target.region_name
    return {"stack": target.stack, "stage": target.stage, "region": region, "apiId": api_id,
            "url": names.ws_url(api_id, region, target.stage),
            "managementEndpoint": names.management_url(api_id, region, target.stage),
            "table": names.table_name(target.stack), "function": names.function_name(target.stack)}


def describe_resources(present: list) -> str:
    """'the WebSocket API wsctl-app (with its routes, ...), the Lambda function wsctl-app, ...'"""
    parts = []
    for kind, name in present:
        parts.append("the %s %s%s" % (kind, name, " (with its routes, integration, authorizer and stage)"
                                      if kind == Kind.API else ""))
    return ", ".join(parts) or "nothing"


def partial_summary(target, plan: Plan, done: list) -> str:
    """What a deploy that stopped after `done` steps leaves, and what destroy would remove."""
    created = {(s.resource, s.name) for s in done if s.action == Action.CREATE}
    present = [(kind, name) for kind, name in top_level_names(target.stack, target.region_name).items()
               if (kind, name) in set(plan.present) | created]
    return ("the stack is partial (%d of %d steps done): `wsctl deploy` again resumes it; `wsctl destroy` "
            "deletes %s" % (len(done), len(plan.steps), describe_resources(present)))


def apply_plan(target, plan: Plan, progress=None, notify=None) -> dict:
    """Run a deploy plan and return the stack's outputs. Stopped part-way (an error, Ctrl-C), it
    raises a WsctlError saying where it stopped, how far it got, that `wsctl deploy` resumes and
    what `wsctl destroy` would delete; an error before any step was done is raised as it is."""
    started = []

    def step_started(step) -> None:
        started.append(step)
        if progress is not None:
            progress(step)

    try:
        context = run_plan(target, plan, step_started, notify)
    except KeyboardInterrupt:
        raise WsctlError("interrupted during step %d (%s %s %s): %s" % (
            len(started), started[-1].action, started[-1].resource, started[-1].name,
            partial_summary(target, plan, started[:-1])) if started else "interrupted",
            ExitStatus.INTERRUPTED) from None
    except Exception as error:
        done = started[:-1]
        if not done:
            raise
        reason = str(error) if isinstance(error, WsctlError) else (
            aws.describe(error) or "%s: %s" % (type(error).__name__, error))
        raise WsctlError("%s; %s" % (reason.rstrip("."), partial_summary(target, plan, done))) from None
    return outputs(target, context)


# -- destroy ---------------------------------------------------------------------
def plan_destroy(target, state: remote.RemoteState | None = None, only_stage: bool = False) -> Plan:
    """Everything the stack owns, newest first, with every stage of its API; resources not tagged
    with the stack are left alone. Reads tolerantly: what could not be read is in `warnings`, and
    the rest is planned. `only_stage`: the target's stage alone, the stack and its other stages kept."""
    state = state if state is not None else read_state(target, tolerant=True)
    stages.check_destroy(target.stack, target.stage, state.stages, only_stage)
    warnings = ["could not read %s: %s" % (kind, why) for kind, why in state.unread]
    if only_stage:
        return Plan(steps=[Step(Kind.STAGE, target.stage, Action.DELETE, "this stage alone: the stack and its stages %s "
                                "stay" % stages.listed(sorted(s for s in state.stages if s != target.stage)), Call(
                                    "apigatewayv2", "delete_stage", {"ApiId": state.api["ApiId"],
                                                                     "StageName": target.stage},
                                    missing_ok=("NotFoundException",)))],
                    context={}, warnings=warnings, present=[(Kind.STAGE, target.stage)], stages=state.stages)
    present = present_resources(target.stack, target.region_name, state)
    steps = []
    for kind, name in present:
        if kind == Kind.API:
            steps.append(Step(kind, name, Action.DELETE, "with its routes, integration, authorizer and stages",
                              Call("apigatewayv2", "delete_api", {"ApiId": state.api["ApiId"]},
                                   missing_ok=("NotFoundException",))))
        elif kind == Kind.FUNCTION:
            steps.append(Step(kind, name, Action.DELETE, "with its permissions", Call(
                "lambda", "delete_function", {"FunctionName": name}, missing_ok=("ResourceNotFoundException",))))
        elif kind == Kind.LOG_GROUP:
            steps.append(Step(kind, name, Action.DELETE, "", Call(
                "logs", "delete_log_group", {"logGroupName": name}, missing_ok=("ResourceNotFoundException",))))
        elif kind == Kind.PARAMETER:
            steps.append(Step(kind, name, Action.DELETE, "the signing keys", Call(
                "ssm", "delete_parameter", {"Name": name}, missing_ok=("ParameterNotFound",))))
        elif kind == Kind.TABLE:
            steps.append(Step(kind, name, Action.DELETE, "the registry", Call(
                "dynamodb", "delete_table", {"TableName": name}, missing_ok=("ResourceNotFoundException",),
                wait_after="table_not_exists")))
        elif kind == Kind.ROLE:
            for policy in state.role_policy_names:
                steps.append(Step(Kind.POLICY, policy, Action.DELETE, "the role's inline policy", Call(
                    "iam", "delete_role_policy", {"RoleName": name, "PolicyName": policy},
                    missing_ok=("NoSuchEntity",))))
            steps.append(Step(kind, name, Action.DELETE, "", Call(
                "iam", "delete_role", {"RoleName": name}, missing_ok=("NoSuchEntity",))))
    return Plan(steps=steps, context={}, warnings=warnings, present=present, stages=state.stages)


@dataclass
class DestroyReport:
    deleted: list = field(default_factory=list)  # steps done
    failed: list = field(default_factory=list)  # (step, why)
    left: list = field(default_factory=list)  # (kind, name, why) of what is (or may be) left
    stages: list = field(default_factory=list)  # the stages the API has after the run

    @property
    def complete(self) -> bool:
        return not self.left


def destroy(target, plan: Plan, progress=None, notify=None, clock=None, only_stage: bool = False) -> DestroyReport:
    """Delete what can be deleted (a failed step does not stop the others), then read again
    and name what is left: a resource still there, or one that could not be checked."""
    from .apply import apply_all

    outcome = apply_all(plan, target.client, progress, notify, clock)
    after = read_state(target, tolerant=True)
    why_failed = {(step.resource, step.name): why for step, why in outcome.failed}
    if only_stage:
        left = [(Kind.STAGE, target.stage, why_failed.get((Kind.STAGE, target.stage), "still there"))] \
            if target.stage in after.stages else []
        left += [(Kind.STAGE, target.stage, "could not be checked: " + why) for kind, why in after.unread
                 if kind in (Kind.API, "stages")]
        return DestroyReport(deleted=outcome.done, failed=outcome.failed, left=left, stages=after.stages)
    left = [(kind, name, why_failed.get((kind, name), "still there"))
            for kind, name in present_resources(target.stack, target.region_name, after)]
    names_by_kind = top_level_names(target.stack, target.region_name)
    left += [(kind, names_by_kind[kind], "could not be checked: " + why) for kind, why in after.unread
             if kind in TOP_LEVEL]
    return DestroyReport(deleted=outcome.done, failed=outcome.failed, left=left, stages=after.stages)


def check_found(target, plan: Plan) -> None:
    """An empty destroy plan is an error when not everything could be read (plan.warnings say what)."""
    if plan.empty and plan.warnings:
        raise WsctlError("stack %s: nothing to delete was found, but not everything could be checked (see above)"
                         % target.stack)


def check_destroyed(target, report: DestroyReport, only_stage: bool = False) -> None:
    """A destroy that left something (or could not check it) is an error naming each."""
    if report.left:
        raise WsctlError("%s: left %s" % (
            "stage %s of stack %s is not removed" % (target.stage, target.stack) if only_stage else
            "stack %s is not fully destroyed" % target.stack,
            "; ".join("%s %s (%s)" % (kind, name, why) for kind, name, why in report.left)))


# -- status ----------------------------------------------------------------------
def status(target) -> dict:
    """The stack's resources and their state, its URLs, and how many live registry entries it has.
    What could not be read is shown as such, and the rest is still shown."""
    state = read_state(target, tolerant=True)
    connect_route = next((r for r in state.routes if r.get("RouteKey") == "$connect"), None)
    auth = None
    if connect_route is not None:
        auth = "jwt" if connect_route.get("AuthorizationType") == "CUSTOM" else connect_route.get(
            "AuthorizationType", "NONE").lower()
    notes = stages.status_notes(target.stack, target.stage, state.stages)
    if ((state.function or {}).get("Environment") or {}).get("Variables", {}).get("AUTH_MODE") == "switching":
        auth = "switching"
        notes.append("a switch of auth mode stopped part-way: the function admits connections with a token and "
                     "without one; `wsctl deploy` with the --auth you chose finishes it")

    def shown(kind: str, value: str) -> str:
        return "unknown (could not be read: see below)" if state.unreadable(kind) else value

    other_stages = [s for s in state.stages if s != target.stage]
    function_role = (state.function or {}).get("Role")
    given_role = function_role if function_role and function_role.rsplit("/", 1)[-1] != names.role_name(
        target.stack, target.region_name) else None
    stage_state = ("deployed" if state.deployment or (state.stage or {}).get("DeploymentId") else "no deployment") \
        if state.stage else "missing" + (" (the stack serves %s)" % stages.listed(other_stages) if other_stages else "")
    api_present = state.api is not None
    resources = [
        (Kind.API, names.api_name(target.stack), shown(Kind.API, "present" if api_present else "missing")),
        (Kind.STAGE, target.stage, shown("stages", stage_state) if api_present else "missing"),
        *[("other stage", name, _other_stage(target.stack, state.stage_details.get(name) or {}))
          for name in other_stages],
        ("routes", "%d" % len(state.routes), shown("routes", ", ".join(sorted(r["RouteKey"] for r in state.routes))
                                                   or "none") if api_present else "none"),
        (Kind.FUNCTION, names.function_name(target.stack), shown(Kind.FUNCTION,
         "%s/%s" % (state.function.get("State", "?"), state.function.get("LastUpdateStatus", "?"))
         if state.function else "missing")),
        (Kind.TABLE, names.table_name(target.stack), shown(Kind.TABLE,
         state.table.get("TableStatus", "?") if state.table else "missing")),
        (Kind.ROLE, names.role_name(target.stack, target.region_name), shown(Kind.ROLE, (
            "present" if state.role else "missing") if given_role is None else (
            "present, unused (the function runs with the role below)" if state.role else "not made"))),
        *[(Kind.ROLE, given_role, "the function's, given with --role-arn (wsctl does not manage it)")
          for _ in [given_role] if given_role],
        (Kind.LOG_GROUP, names.log_group(target.stack), shown(Kind.LOG_GROUP, "present" if state.log_group else "missing")),
        (Kind.PARAMETER, names.signing_key_param(target.stack), shown(Kind.PARAMETER,
         "present (SecureString)" if state.parameter else "missing")),
    ]
    if api_present and state.unreadable("authorizers"):
        resources.insert(3, ("authorizers", "?", shown("authorizers", "")))
    if api_present and state.unreadable("integrations"):
        resources.insert(3, ("integrations", "?", shown("integrations", "")))
    present = present_resources(target.stack, target.region_name, state)
    # A stack that serves another stage is complete for that one: not partial, but not this stage's.
    complete = ((state.stage is not None or bool(other_stages)) and state.function is not None
                and state.table is not None and (state.role is not None or given_role is not None))
    serves = api_present and not (state.stage is None and other_stages)  # False: it serves another stage
    result = {"target": target.kind, "stack": target.stack, "stage": target.stage, "region": target.region_name,
              "deployed": api_present,
              "partial": bool(present) and not complete,
              "servesStage": serves,
              "stages": state.stages,
              "notes": notes,
              "auth": auth, "unsafe": auth is not None and auth != "jwt" and auth != "aws_iam",
              "throttle": _throttle(state.stage), "reservedConcurrency": state.reserved_concurrency,
              "resources": [{"resource": r, "name": n, "state": s} for r, n, s in resources],
              "unread": ["%s: %s" % (kind, why) for kind, why in state.unread],
              "foreign": ["%s %s" % f for f in state.foreign]}
    if serves:
        result.update(outputs(target, {"api_id": state.api["ApiId"]}))
    if state.table:
        try:
            result["liveConnections"] = target.reader().count_live()
        except Exception as error:  # noqa: BLE001 - status shows what it can
            result["unread"].append("live connections: %s" % (aws.describe(error) or error))
    return result


def _throttle(stage: dict | None) -> dict | None:
    """The stage's default route throttling, or None (then only the account's rate applies)."""
    settings = (stage or {}).get("DefaultRouteSettings") or {}
    if settings.get("ThrottlingRateLimit") is None:
        return None
    return {"rate": settings["ThrottlingRateLimit"], "burst": settings.get("ThrottlingBurstLimit")}


def _other_stage(stack: str, detail: dict) -> str:
    made = "made by wsctl" if (detail.get("Tags") or {}).get(names.TAG_KEY) == stack else "not tagged as the stack's"
    return "%s, %s" % ("deployed" if detail.get("DeploymentId") else "no deployment", made)


def status_exit(document: dict) -> ExitStatus:
    """`status` of a stack that is not deployed, only in part, or not for this stage exits NOT_DEPLOYED."""
    return ExitStatus.NOT_DEPLOYED if not (document["deployed"] and document["servesStage"]) or document["partial"] \
        else ExitStatus.OK


__all__ = ["DeployOptions", "StackConfig", "Plan", "Step", "make_plan", "plan_deploy", "run_plan", "plan_destroy",
           "destroy", "status", "outputs", "stack_config", "remote", "bundle", "WsctlError"]
