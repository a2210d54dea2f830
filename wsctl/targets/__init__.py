"""Where a command acts: one target, chosen once per command from the global options.

- a stack `wsctl deploy` made (--stack, --stage): wsctl.targets.stack
- any WebSocket API (--api ID|NAME|URL, or --target NAME saved by `wsctl target add`), with the
  registry the user describes or discovery finds: wsctl.targets.api
- a running local emulator (--local, --name), read from its typed state: wsctl.targets.local

Every kind answers the same questions (wsctl.targets.base.Target); commands never branch on the kind.
"""

from dataclasses import dataclass

from ..errors import UsageError
from .base import TRANSPORTS, NoRegistry, Target  # noqa: F401


@dataclass(frozen=True)
class Choice:
    """The global options that choose a target, as given."""
    local: bool = False
    name: str | None = None
    api: str | None = None
    saved: str | None = None  # --target NAME
    stack: str | None = None  # None: the default stack
    stack_given: bool = False  # --stack on the command line (it then competes with --api and --target)
    stage: str | None = None  # None: not given
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    management_url: str | None = None
    transport: str = "lean"
    registry: object = None  # discovery.RegistryOptions


def resolve(choice: Choice, boto_session=None) -> Target:
    from .. import names

    chosen = [label for label, given in (("--local", choice.local), ("--api", choice.api),
                                         ("--target", choice.saved)) if given]
    if choice.stack_given and (choice.api or choice.saved):
        chosen.insert(0, "--stack")
    if len(chosen) > 1:
        raise UsageError("%s and %s both say where to act: give one" % (chosen[0], chosen[1]))
    common = dict(transport=choice.transport, boto_session=boto_session, registry_given=choice.registry)
    if choice.management_url and not (choice.api or choice.saved):
        raise UsageError("--management-url goes with --api (a custom domain's management endpoint)")
    if choice.local:
        if choice.endpoint_url or choice.profile or choice.region:
            raise UsageError("--local acts on the emulator: --endpoint-url, --profile and --region are for AWS")
        from .local import LocalTarget

        return LocalTarget(name=choice.name, **common)
    aws = dict(profile=choice.profile, region=choice.region, endpoint_url=choice.endpoint_url)
    if choice.api:
        from .api import ApiTarget

        return ApiTarget(ref=choice.api, requested_stage=choice.stage and names.check_stage(choice.stage),
                         management_url=choice.management_url, **aws, **common)
    if choice.saved:
        return from_saved(choice, common)
    from .stack import StackTarget

    return StackTarget(stack=names.check_stack(choice.stack or names.DEFAULT_STACK),
                       stage=names.check_stage(choice.stage or names.DEFAULT_STAGE), **aws, **common)


def from_saved(choice: Choice, common: dict) -> Target:
    """The saved target; options given on the command line win over the saved ones."""
    from ..registry.layout import Layout
    from . import saved
    from .api import ApiTarget

    entry = saved.load(choice.saved)
    return ApiTarget(ref=entry.api, requested_stage=choice.stage or entry.stage, saved_name=entry.name,
                     management_url=choice.management_url or entry.management_url,
                     profile=choice.profile or entry.profile, region=choice.region or entry.region,
                     endpoint_url=choice.endpoint_url or entry.endpoint_url,
                     saved_layout=Layout.from_dict(entry.registry) if entry.registry else None, **common)


__all__ = ["Choice", "resolve", "Target", "NoRegistry", "TRANSPORTS"]
