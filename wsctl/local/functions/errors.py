"""How an invocation fails, as a value: Lambda's errorType and errorMessage, and the
payload the caller receives (the runtime's own error document, passed through)."""

import json
import signal


class FunctionError(Exception):
    """The function answered with an error (X-Amz-Function-Error: Unhandled)."""

    def __init__(self, error_type: str, message: str, payload: bytes | None = None):
        super().__init__("%s: %s" % (error_type, message))
        self.error_type = error_type
        self.error_message = message
        self.payload = payload if payload is not None else json.dumps(
            {"errorType": error_type, "errorMessage": message}).encode()

    @property
    def timed_out(self) -> bool:
        return self.error_type == "Sandbox.Timedout"

    @classmethod
    def from_payload(cls, payload: bytes, header_type: str | None = None) -> "FunctionError":
        """A runtime's /error body: Python's errorMessage/errorType/stackTrace, Node's trace, Go's, ..."""
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
        if isinstance(document, dict):
            error_type = str(document.get("errorType") or header_type or "Function.Unknown")
            return cls(error_type, str(document.get("errorMessage", "")), payload)
        error_type = header_type or "Function.Unknown"
        return cls(error_type, payload.decode("utf-8", "replace"),
                   json.dumps({"errorType": error_type, "errorMessage": payload.decode("utf-8", "replace")}).encode())


def timed_out(request_id: str, seconds: float) -> FunctionError:
    return FunctionError("Sandbox.Timedout", "RequestId: %s Error: Task timed out after %.2f seconds"
                         % (request_id, seconds))


def shutting_down() -> FunctionError:
    """An invocation the emulator did not run because it is stopping (it waited for an environment)."""
    return FunctionError("ServiceException", "the emulator is shutting down: the invocation was not run")


def exited(request_id: str, returncode: int | None) -> FunctionError:
    """Runtime.ExitError as RAPID words it: exit status N, signal: killed, or no reason at all."""
    if returncode == 0:
        reason = "Runtime exited without providing a reason"
    elif returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name[3:].lower()
        except ValueError:
            name = str(-returncode)
        reason = "Runtime exited with error: signal: %s" % {"kill": "killed", "term": "terminated",
                                                            "segv": "segmentation fault", "abrt": "aborted"}.get(name, name)
    else:
        reason = "Runtime exited with error: exit status %s" % returncode
    return FunctionError("Runtime.ExitError", "RequestId: %s Error: %s" % (request_id, reason))
