"""The log lines Lambda writes around each invocation, as CloudWatch shows them (pure).

START / END / REPORT with tab-separated REPORT fields and a trailing tab;
Billed Duration is the duration rounded up to the next millisecond (the
configured timeout when the invocation timed out); Init Duration only on a
cold start.
"""

import math
import time


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return "START RequestId: %s Version: %s" % (request_id, version)


def end_line(request_id: str) -> str:
    return "END RequestId: %s" % request_id


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int,
                init_ms: float | None = None, timeout_ms: int | None = None, status: str | None = None) -> str:
    billed = timeout_ms if timeout_ms is not None else max(1, math.ceil(duration_ms))
    fields = ["REPORT RequestId: %s" % request_id, "Duration: %.2f ms" % duration_ms,
              "Billed Duration: %d ms" % billed, "Memory Size: %d MB" % memory_mb,
              "Max Memory Used: %d MB" % max_memory_mb]
    if init_ms is not None:
        fields.append("Init Duration: %.2f ms" % init_ms)
    if status:
        fields.append("Status: %s" % status)
    return "\t".join(fields) + "\t"


def timeout_line(request_id: str, seconds: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%03dZ" % (time.time() % 1 * 1000)
    return "%s %s Task timed out after %.2f seconds" % (stamp, request_id, seconds)


def stream_name(version: str, env_id: str) -> str:
    """One log stream per execution environment: YYYY/MM/DD/[$LATEST]<32 hex>."""
    return time.strftime("%Y/%m/%d/", time.gmtime()) + "[%s]%s" % (version, env_id)
