"""Fan-out inside AWS: N copies of the deployed function each post to one segment of the
registry (see lambda_src/fanout.py), and their reports are summed here.

The operator's machine sends N Invoke calls instead of N x thousands of posts:
what bounds the broadcast is then the function's in-region posting and the
account's quotas, not the operator's round trip to the region.
"""

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from lambda_src.delivery import DELIVERED, GONE
from lambda_src.fanout import KIND, VERSION

from ..errors import UsageError, WsctlError
from ..exitstatus import ExitStatus

MAX_SEGMENTS = 100


@dataclass
class Segment:
    number: int
    report: dict | None = None  # the function's report
    error: str | None = None  # why the segment failed (function error, timeout, ...)
    seconds: float = 0.0


@dataclass
class ServerReport:
    """The segments as they ended (wsctl.fanout.report.from_segments sums them)."""
    function: str
    segments: list = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False


def check_segments(segments: int) -> int:
    if not 1 <= segments <= MAX_SEGMENTS:
        raise UsageError("--segments must be between 1 and %d" % MAX_SEGMENTS)
    return segments


def check_capacity(target, client, function: str, segments: int) -> None:
    """Refuse a fan-out whose segments the function cannot all run at once: Lambda would throttle
    the rest (429), while $connect, messages and the authorizer run in the same function. What it
    can run at once is its reserved concurrency, or else the account's unreserved concurrency in
    the region. The local emulator queues invocations instead (nothing to foresee), and an
    endpoint that cannot say or a missing permission leaves the run to go ahead."""
    if target.kind != "aws":
        return
    try:
        reserved = (client.get_function(FunctionName=function).get("Concurrency") or {}).get(
            "ReservedConcurrentExecutions")
        if reserved is not None:
            limit, what = reserved, "its reserved concurrency is %d" % reserved
        else:
            limit = client.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
            what = "the account's unreserved concurrency in this region is %d" % limit
    except Exception:  # noqa: BLE001 - advisory: no answer means no refusal
        return
    if segments <= limit:
        return
    fix = "use --segments %d or fewer, or " % limit if limit else ""
    fix += "deploy with a larger --reserved-concurrency" if reserved is not None else \
        "ask AWS for a higher concurrency quota"
    raise UsageError("%d segment(s) are more than function %s can run at once (%s, shared with $connect and "
                     "messages): %s" % (segments, function, what, fix))


def events(payload: bytes, endpoint: str, segments: int, prune: bool, room: str | None = None) -> list[dict]:
    """The Invoke payloads, one per segment (a room is one query: one copy)."""
    base = {"wsctl": KIND, "version": VERSION, "data": base64.b64encode(payload).decode(), "endpoint": endpoint,
            "prune": prune}
    if room is not None:
        return [{**base, "room": room, "segment": 0, "totalSegments": 1}]
    return [{**base, "segment": i, "totalSegments": segments} for i in range(segments)]


def _outcome(answer: dict) -> tuple[dict | None, str | None]:
    """(report, error) from one Invoke answer."""
    body = answer["Payload"].read()
    try:
        document = json.loads(body or b"null")
    except ValueError:
        document = None
    if answer.get("FunctionError"):
        kind = (document or {}).get("errorType", "") if isinstance(document, dict) else ""
        message = (document or {}).get("errorMessage", "") if isinstance(document, dict) else body[:200]
        if kind == "KeyError" and "requestContext" in str(message):
            return None, "outdated"
        if kind == "Sandbox.Timedout":
            return None, "timed out (%s)" % message
        return None, "%s: %s" % (kind or "function error", message)
    if not isinstance(document, dict) or document.get("wsctlFanout") is None:
        return None, "outdated"
    return document, document.get("error") if not document.get("complete", True) else None


def run(invoke, function: str, payloads: list[dict], progress=None) -> ServerReport:
    """Invoke the function once per payload, all at once; `invoke(payload) -> boto3 answer`.
    `progress(segment)` is called as each segment ends. Ctrl-C returns what has finished."""
    report = ServerReport(function)
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=len(payloads))
    futures = {pool.submit(_timed, invoke, payload): payload["segment"] for payload in payloads}
    try:
        for future in as_completed(futures):
            segment = Segment(futures[future])
            try:
                answer, segment.seconds = future.result()
                segment.report, segment.error = _outcome(answer)
            except WsctlError:
                raise
            except Exception as error:  # noqa: BLE001 - a failed Invoke is this segment's outcome
                segment.error = _invoke_error(error, function)
            if segment.error == "outdated":
                raise WsctlError("the deployed function predates server-side fan-out: run `wsctl deploy` to update "
                                 "it (or broadcast without --server-side)")
            report.segments.append(segment)
            if progress:
                progress(segment)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        pool.shutdown(wait=not report.interrupted, cancel_futures=True)
    report.segments.sort(key=lambda s: s.number)
    report.seconds = time.monotonic() - started
    return report


def _timed(invoke, payload):
    started = time.monotonic()
    answer = invoke(payload)
    return answer, time.monotonic() - started


def _invoke_error(error: Exception, function: str) -> str:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code", "")
    if code in ("AccessDeniedException", "AccessDenied"):
        raise WsctlError("not allowed to invoke %s: your AWS identity needs lambda:InvokeFunction on that function"
                         % function, ExitStatus.FORBIDDEN) from None
    if code == "ResourceNotFoundException":
        raise WsctlError("function %s does not exist: run `wsctl deploy` first" % function,
                         ExitStatus.NOT_FOUND) from None
    return "%s: %s" % (code or type(error).__name__, response.get("Error", {}).get("Message") or error)


__all__ = ["run", "events", "check_segments", "check_capacity", "ServerReport", "Segment", "DELIVERED", "GONE"]
