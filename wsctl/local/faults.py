"""Test faults (`local up --fault KIND=SHARE`): parsed, drawn and described here only. The gateway
draws them; the rules (wsctl.local.rules) turn a draw into the outcome API Gateway would meet. Pure,
and cheap to import: the CLI's help lists the kinds."""

from dataclasses import dataclass, field

DROPPED = 1006  # RFC 6455's abnormal closure: the socket ended without a close frame


FAULT_KINDS = ("mgmt-410", "mgmt-429", "mgmt-500", "handler-error", "handler-timeout", "disconnect-loss")


@dataclass
class Faults:
    """Test option (`local up --fault KIND=SHARE`): answer a share of management requests with an
    error status, and make a share of handler invocations fail or time out, or of dropped
    connections lose their $disconnect, to exercise retries and pruning. Parsed, drawn and
    described here only."""
    management: dict = field(default_factory=dict)  # HTTP status -> share of @connections requests
    handler_error: float = 0.0
    handler_timeout: float = 0.0
    disconnect_loss: float = 0.0  # share of dropped (1006) connections whose $disconnect is lost
    seed: int | None = None

    def __post_init__(self):
        import random  # here, not at import: the CLI imports this module for its help text

        self.rng = random.Random(self.seed)

    @classmethod
    def parse(cls, values: list[str], seed: int | None = None) -> "Faults":
        """KIND=SHARE options; a ValueError says what is wrong in one line."""
        faults = cls(seed=seed)
        for value in values:
            kind, sep, share_text = value.partition("=")
            try:
                share = float(share_text)
            except ValueError:
                share = -1.0
            if not sep or kind not in FAULT_KINDS or not 0 <= share <= 1:
                raise ValueError("--fault %r: use KIND=SHARE with SHARE in 0..1 and KIND one of %s"
                                 % (value, ", ".join(FAULT_KINDS)))
            if kind.startswith("mgmt-"):
                faults.management[int(kind[5:])] = share
            else:
                setattr(faults, kind.replace("-", "_"), share)
        if sum(faults.management.values()) > 1:
            raise ValueError("--fault: the management API shares add up to more than 1")
        return faults

    def describe(self) -> str:
        """The faults in force, as given: `mgmt-410=0.1, disconnect-loss=1 (seed 7)`."""
        given = ["mgmt-%d=%g" % (status, share) for status, share in sorted(self.management.items()) if share]
        for kind in ("handler_error", "handler_timeout", "disconnect_loss"):
            if getattr(self, kind):
                given.append("%s=%g" % (kind.replace("_", "-"), getattr(self, kind)))
        if given and self.seed is not None:
            return "%s (seed %d)" % (", ".join(given), self.seed)
        return ", ".join(given)

    def management_status(self) -> int | None:
        roll = self.rng.random()
        for status, share in self.management.items():
            if roll < share:
                return status
            roll -= share
        return None

    def hit(self, share: float) -> bool:
        return share > 0 and self.rng.random() < share

    def handler(self) -> str | None:
        """"error" or "timeout" instead of this invocation (wsctl.local.rules.injected), or None to run it."""
        if self.hit(self.handler_error):
            return "error"
        if self.hit(self.handler_timeout):
            return "timeout"
        return None

    def loses_disconnect(self, code: int) -> bool:
        """A dropped connection (1006: no close frame) whose $disconnect is lost, as AWS may lose it."""
        return code == DROPPED and self.hit(self.disconnect_loss)


__all__ = ["Faults", "FAULT_KINDS"]
