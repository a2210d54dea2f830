"""One stack serves one stage: what deploy, status and destroy say about a stack's stages.

A stack's table, function, role and signing key belong to its stage; a second stage would share
them (a broadcast on one would post to the other's connections) and take over the first one's
Lambda permission and @connections grant. wsctl never makes a second stage, but a stack may have
one (an earlier wsctl made it, or the console). Such a stack can still be seen (`status` lists
every stage), removed (`destroy` removes the stack with every stage once the user confirms, or
`--only-stage` removes one), and brought back to one stage (deploy says how). Pure: stage names
in, decisions and messages out.
"""

from .. import names
from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus


def listed(stages) -> str:
    """dev; dev and prod; dev, prod and test"""
    stages = list(stages)
    return stages[0] if len(stages) == 1 else "%s and %s" % (", ".join(stages[:-1]), stages[-1])


def own_stack(stack: str, stage: str) -> str:
    """The command that deploys `stage` as a stack of its own, with a name that fits the limit."""
    return "`wsctl deploy --stack %s --stage %s`" % (names.stack_for_stage(stack, stage), stage)


def remove_one(stage: str) -> str:
    return "`wsctl destroy --stage %s --only-stage`" % stage


def check_deploy(stack: str, stage: str, stages: list) -> None:
    others = sorted(s for s in stages if s != stage)
    if not others:
        return
    if stage in stages:
        raise WsctlError("stack %s has stages %s, and one stack serves one stage (they would share its registry, "
                         "function and role): remove the other%s with %s, then deploy again"
                         % (stack, listed(sorted(stages)), "s" if len(others) > 1 else "",
                            " and ".join(remove_one(s) for s in others)))
    raise WsctlError("stack %s already serves stage %s, and one stack serves one stage: deploy stage %s as another "
                     "stack, with %s" % (stack, listed(others), stage, own_stack(stack, stage)))


def check_destroy(stack: str, stage: str, stages: list, only_stage: bool) -> None:
    """Refuse what would remove something else than the user named; a stack with several stages,
    one of them the one named, is removed whole (the CLI names every stage and asks first)."""
    others = sorted(s for s in stages if s != stage)
    if only_stage:
        if stage not in stages:
            raise WsctlError("stage %s does not exist (%s)" % (stage, "the stack serves %s" % listed(others) if others
                                                                else "stack %s has no stage" % stack),
                             ExitStatus.NOT_FOUND)
        if not others:
            raise UsageError("stage %s is the only stage of stack %s: `wsctl destroy --stage %s` (without "
                             "--only-stage) removes the stack" % (stage, stack, stage))
        return
    if others and stage not in stages:
        raise WsctlError("stack %s serves stage%s %s, not %s: `wsctl destroy --stage %s` removes it%s"
                         % (stack, "s" if len(others) > 1 else "", listed(others), stage, others[0],
                            " with every stage" if len(others) > 1 else ""))


def status_notes(stack: str, stage: str, stages: list) -> list[str]:
    """What status says of a stack whose stages are not just `stage`."""
    others = sorted(s for s in stages if s != stage)
    if not others:
        return []
    if stage not in stages:
        return ["stack %s serves stage%s %s, not %s: `wsctl status --stage %s`; to deploy %s as a stack of its own: %s"
                % (stack, "s" if len(others) > 1 else "", listed(others), stage, others[0], stage,
                   own_stack(stack, stage))]
    return ["stack %s has stages %s, and one stack serves one stage: deploy refuses until the other%s removed (%s); "
            "`wsctl destroy` removes the stack with every stage"
            % (stack, listed(sorted(stages)), "s are" if len(others) > 1 else " is",
               " and ".join(remove_one(s) for s in others))]
