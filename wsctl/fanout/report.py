"""What a send or a broadcast did: one shape for client-side and server-side fan-out alike, with one
exit rule (`exit_status`) and the one error line a failed delivery ends with (`problem`). The CLI
renders it (wsctl/cli/ops.py) and exits with its status.

The engine's own report (wsctl.fanout.Report: a result per connection) and the server-side segments'
reports (wsctl.fanout.serverside.ServerReport) are both summed into it.
"""

from dataclasses import dataclass, field

from lambda_src.delivery import DELIVERED, FAILED, FORBIDDEN, GONE, THROTTLED

from ..exitstatus import ExitStatus
from . import OUTCOMES, SKIPPED


def forbidden_line(where: str, said: str | None) -> str:
    """What a 403 from the management API means, in one line."""
    return "forbidden: your AWS identity needs execute-api:ManageConnections on %s (AWS said: %s)" % (
        where or "the stage", said or "403")


@dataclass
class Delivery:
    target: str  # where, in words
    counts: dict  # outcome -> connections, every outcome of OUTCOMES present
    seconds: float
    recipients: int  # connections found to send to
    pruned: int = 0  # gone entries removed from the registry
    gone_kept: bool = False  # gone entries left in a registry wsctl did not make (no --prune)
    retries: int = 0
    throttles: int = 0  # 429 answers, each retried
    interrupted: bool = False  # Ctrl-C: what was done so far
    stopped: str | None = None  # a 403 stopped the run: AWS's words
    forbidden_where: str = ""  # the resource a 403 is about, for the error line
    not_delivered: list = field(default_factory=list)  # ids of live connections that did not get it
    connection: str | None = None  # send --connection: a gone one is NOT_FOUND
    room: str | None = None  # a server-side room send: a room with no live member is NOT_FOUND
    # server-side only
    function: str | None = None
    segments: list = field(default_factory=list)  # wsctl.fanout.serverside.Segment
    failed_segments: list = field(default_factory=list)  # their numbers
    engine: object = field(default=None, repr=False)  # client-side: the engine's result per connection

    @property
    def server_side(self) -> bool:
        return self.function is not None

    @property
    def complete(self) -> bool:
        """Every connection that is still live got the message."""
        counts = self.counts
        return not (counts[THROTTLED] or counts[FAILED] or counts[FORBIDDEN] or counts[SKIPPED]
                    or self.failed_segments or self.interrupted)

    def exit_status(self) -> ExitStatus:
        """One rule for both kinds: an interruption (the user's Ctrl-C) first, then nobody to reach,
        then a refusal, then whatever did not arrive."""
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if (self.connection is not None and self.counts[GONE]) or self._empty_room():
            return ExitStatus.NOT_FOUND
        if self.counts[FORBIDDEN] or self.stopped:
            return ExitStatus.FORBIDDEN
        if not self.complete:
            return ExitStatus.INCOMPLETE
        return ExitStatus.OK

    def _empty_room(self) -> bool:
        return self.room is not None and not self.recipients and not self.failed_segments

    def problem(self) -> str | None:
        """The one error line a delivery that did not succeed ends with (None when it did)."""
        status = self.exit_status()
        if status == ExitStatus.OK:
            return None
        if status == ExitStatus.INTERRUPTED:
            if self.server_side:
                return ("interrupted: %d of the segments had finished; the others go on running in the function"
                        % len(self.segments))
            return "interrupted: sent to %d of %d recipient(s) found so far" % (
                self.recipients - self.counts[SKIPPED], self.recipients)
        if status == ExitStatus.NOT_FOUND:
            if self._empty_room():
                return "room %r has no live member in the registry" % self.room
            return "connection %s is gone%s" % (self.connection, " (its registry entry was removed)"
                                                if self.pruned else "")
        if status == ExitStatus.FORBIDDEN:
            return forbidden_line(self.forbidden_where, self.stopped)
        if self.failed_segments:
            return ("segment(s) %s did not finish: their connections may not all have the message"
                    % ", ".join(str(n) for n in self.failed_segments))
        return "%d live connection(s) did not get the message" % len(self.not_delivered)

    def document(self) -> dict:
        """The -o json document."""
        document = {"target": self.target, "recipients": self.recipients, "counts": self.counts,
                    "pruned": self.pruned, "retries": self.retries, "throttles": self.throttles,
                    "interrupted": self.interrupted, "seconds": round(self.seconds, 3),
                    "notDelivered": self.not_delivered, "stopped": self.stopped}
        if self.server_side:
            document.update(serverSide=True, function=self.function,
                            segments=[{"segment": s.number, "error": s.error, "seconds": round(s.seconds, 3),
                                       **(s.report or {})} for s in self.segments])
        return document


def from_engine(report, target: str, pruned: int = 0, gone_kept: bool = False, forbidden_where: str = "",
                connection: str | None = None) -> Delivery:
    """The engine's per-connection results, summed."""
    return Delivery(target=target, counts=report.counts(), seconds=report.seconds,
                    recipients=len(report.results), pruned=pruned, gone_kept=gone_kept, retries=report.retries,
                    throttles=report.throttles, interrupted=report.interrupted, stopped=report.stopped,
                    forbidden_where=forbidden_where, connection=connection, engine=report,
                    not_delivered=[r.connection_id for r in report.results if r.outcome not in (DELIVERED, GONE)])


def from_segments(report, target: str, forbidden_where: str = "", room: str | None = None) -> Delivery:
    """The server-side segments' reports, summed (a failed segment may have none)."""
    counts = {outcome: 0 for outcome in OUTCOMES}

    def total(key: str) -> int:
        return sum((s.report or {}).get(key, 0) for s in report.segments)

    for segment in report.segments:
        for outcome, count in ((segment.report or {}).get("counts") or {}).items():
            counts[outcome] = counts.get(outcome, 0) + count
    failed = [s.number for s in report.segments if s.error or not (s.report or {}).get("complete", False)]
    return Delivery(target=target, counts=counts, seconds=report.seconds, recipients=total("recipients"),
                    pruned=total("pruned"),
                    retries=total("retried"), throttles=total("throttles"), interrupted=report.interrupted,
                    stopped="a segment was refused" if counts[FORBIDDEN] else None, forbidden_where=forbidden_where,
                    room=room, function=report.function, segments=list(report.segments), failed_segments=failed)


__all__ = ["Delivery", "from_engine", "from_segments", "forbidden_line", "OUTCOMES", "SKIPPED"]
