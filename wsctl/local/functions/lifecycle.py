"""An execution environment's life, as Lambda's Runtime API sees it (pure: no process, no socket).

    STARTING --/next--> WAITING --event handed out--> BUSY --/response or /error--> ANSWERED --/next--> WAITING
        any phase --exit, crash, timeout, retirement--> DEAD

The Runtime API (runtime_api.py) asks for each transition and translates the answer to HTTP; a call
out of turn is refused with RAPID's answer as a value: an unknown or stale request id is 400
InvalidRequestID, a call in the wrong phase 403 InvalidStateTransition, any call to a dead
environment 500. docs/lambda-runtime.md#runtime-api has the rules and their sources.
"""

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    STARTING = "starting"  # spawned, initialising: no /next yet
    WAITING = "waiting"  # the runtime waits on /next: warm and idle
    BUSY = "busy"  # an event is in the runtime's hands
    ANSWERED = "answered"  # it answered; not yet back on /next (it may still exit, as Node can)
    DEAD = "dead"  # exited, crashed, timed out or retired


@dataclass(frozen=True)
class Refusal:
    """The Runtime API's answer to a call it does not accept."""
    status: int
    error_type: str
    message: str


GONE = Refusal(500, "InternalServerError", "Internal Server Error")
INVALID_ID = Refusal(400, "InvalidRequestID", "Invalid request ID")


def out_of_turn(from_state: str, to_state: str) -> Refusal:
    return Refusal(403, "InvalidStateTransition", "State transition from %s to %s failed for runtime. Error: "
                   "invalid state transition" % (from_state, to_state))


class Lifecycle:
    def __init__(self):
        self.phase = Phase.STARTING
        self.request_id: str | None = None  # the event in hand (BUSY) or just answered (ANSWERED)
        self.initialised = False  # the runtime has asked for its first event
        self.init_failed = False  # it reported an init error

    @property
    def dead(self) -> bool:
        return self.phase is Phase.DEAD

    # -- the runtime's side (the Runtime API's endpoints) ---------------------------------------------
    def next(self) -> Refusal | None:
        """GET /invocation/next: the runtime waits for an event (its first ends initialisation)."""
        if self.phase is Phase.DEAD:
            return GONE
        if self.phase in (Phase.WAITING, Phase.BUSY):  # asking twice, or with an event still unanswered
            return out_of_turn("INVOKE_NEXT", "INVOKE_NEXT")
        self.phase, self.request_id, self.initialised = Phase.WAITING, None, True
        return None

    def answer(self, request_id: str, to_state: str) -> Refusal | None:
        """POST /invocation/{id}/response or /error (to_state INVOKE_RESPONSE or INVOKE_ERROR)."""
        if self.phase is Phase.DEAD:
            return INVALID_ID if self.request_id is not None else GONE
        if self.phase is not Phase.BUSY:
            if self.phase is Phase.ANSWERED and request_id == self.request_id:
                return INVALID_ID  # answered already
            return out_of_turn("READY", to_state) if self.request_id is None else INVALID_ID
        if request_id != self.request_id:
            return INVALID_ID
        self.phase = Phase.ANSWERED
        return None

    def init_error(self) -> Refusal | None:
        """POST /init/error: only while initialising (the runtime exits right after it)."""
        if self.initialised:
            return out_of_turn("READY", "INIT_ERROR")
        self.init_failed = True
        return None

    # -- the caller's side -------------------------------------------------------------------------------
    def hand_out(self, request_id: str) -> None:
        """The event for `request_id` leaves /next for the runtime."""
        if self.phase is Phase.WAITING:
            self.phase, self.request_id = Phase.BUSY, request_id

    def left_next(self) -> None:
        """The runtime's /next connection dropped: it is between events until it asks again."""
        if self.phase is Phase.WAITING:
            self.phase = Phase.ANSWERED

    def die(self) -> None:
        self.phase = Phase.DEAD

    @property
    def at_next(self) -> bool:
        """Ready for an event: an invocation ends for Lambda when its runtime is back on /next."""
        return self.phase is Phase.WAITING


__all__ = ["Phase", "Refusal", "Lifecycle", "GONE", "INVALID_ID", "out_of_turn"]
