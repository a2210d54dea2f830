"""A model of broadcast time from 10^4 to 10^7 connections: wsctl's CLI from an operator's machine
(client-side) and the deployed function's server-side fan-out (N segments), from measured inputs.

Inputs come from bench/broadcast_rtt.py's JSON (--from, default bench/.scratch/broadcast_rtt.json) or
from the options (each option overrides the JSON). The model is checked first against the points
measured at the largest size of that run (same machine, same inputs); then it projects to AWS.

Client-side (one process: one event loop, C requests in flight, 4 parallel scan segments streamed
into the fan-out; wsctl/ops.py broadcast):
    T = fixed + 2 RTT (new connections, last answer) + max(
            N x RTT / C                     round trips: C in flight
            N x cpu_per_post                the sender's CPU (one Python process; the marginal CPU
                                            per post measured at 0 ms between two sizes)
            N x bytes_per_post / uplink     the operator's upload bandwidth
            (N - burst) / (rate x pacing)   API Gateway's account quota (10,000/s, burst 5,000),
                                            held at `pacing` of it by the AIMD pacer once throttled
            N / (4 x page / (RTT + page_time))  the registry scan from afar (overlapped)
        )
Server-side (lambda_src/fanout.py: each copy scans its segment and posts 500-id batches with 16 boto3
threads; memory 256 MB gives 256/1769 of a vCPU; the function stops 3 s before its 29 s timeout):
    per-segment post rate = min(16 / (RTT_region + cpu_post / vcpu), vcpu / cpu_post)
    per-segment time      = N/S x (1 / post rate + 1 / scan rate in region)
    T = invoke (2 RTT + cold start) + max(per-segment time, (N - burst) / rate)
and the smallest S that keeps a segment inside the timeout, which must also fit wsctl's --segments
cap (100), the account's Lambda concurrency (1,000) and the API Gateway quota (which no S escapes).

    python bench/broadcast_model.py                       # from bench/.scratch/broadcast_rtt.json
    python bench/broadcast_model.py --from run.json --rtts 20,80 --uplink-mbps 20
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from wsctl import limits  # noqa: E402

# Defaults, each overridable; the sources are in --help and printed with the figures.
DEFAULTS = {
    "concurrency": limits.DEFAULT_CONCURRENCY,
    "quadratic_s": 0.0,  # the CLI's extra CPU k x N^2 / 2 (fanout._detail, 45e-9 before d0b1655; --from reads the engine check)
    "cli_fixed_s": 0.45,  # process start + imports + first scan page (on a quiet machine)
    "cli_cpu_per_post_s": 110e-6,  # the CLI's marginal CPU per post (broadcast.py: ~1.1 CPU-s per 10,000)
    "bytes_per_post_up": 900,  # a signed PostToConnection with a small payload
    "uplink_mbps": 50.0,  # the operator's upload bandwidth
    "apigw_rate": 10000.0,  # account-level requests/s per region (docs/apigw-websocket.md#management-api)
    "apigw_burst": 5000.0,
    "pacing": 0.9,  # share of the quota the pacer holds once throttled (broadcast_rtt's throttled run)
    "scan_page_items": 4000,  # 1 MB page / ~250 B connection item
    "scan_page_s": 0.05,  # DynamoDB's time to serve one page, in region
    "scan_segments_cli": 4,  # wsctl/registry.py PARALLEL_SCAN_SEGMENTS
    "function_cpu_per_post_s": 0.7e-3,  # boto3 post_to_connection in the handler (measured: room sends)
    "handler_threads": 16,  # lambda_src/delivery.py
    "lambda_memory_mb": limits.HANDLER_MEMORY_MB,
    "vcpu_per_mb": 1.0 / 1769,  # Lambda: 1,769 MB = one vCPU
    "region_rtt_ms": 10.0,  # a PostToConnection's round trip from Lambda in the same region
    "function_timeout_s": float(limits.HANDLER_TIMEOUT_S),
    "reserve_s": 3.0,  # lambda_src/fanout.py RESERVE_MS
    "cold_start_s": 0.6,  # Init of the bundled handler (python, boto3)
    "lambda_concurrency": 1000,  # the account's default
    "max_segments": 100,  # wsctl/fanout/serverside.py MAX_SEGMENTS
}


def read_inputs(path: str | None) -> tuple[dict, dict]:
    """(inputs from the JSON, the whole JSON) — empty when there is no file."""
    if not path or not os.path.exists(path):
        return {}, {}
    data = json.loads(Path(path).read_text())
    mi = data.get("model_inputs") or {}
    out = {}
    engine = mi.get("engine") or {}
    if engine.get("quadratic_s") is not None:
        out["quadratic_s"] = engine["quadratic_s"]
    # The sender's own CPU per post: the CLI's marginal CPU between two sizes, less the N^2 term the engine
    # check measured (none since d0b1655).
    for kind in ("cli",):
        entry = mi.get(kind) or {}
        if entry.get("marginal_cpu_per_post_s"):
            value = entry["marginal_cpu_per_post_s"]
            if kind == "cli" and out.get("quadratic_s"):
                value -= out["quadratic_s"] * (entry["n"] + entry["low"]["n"]) / 2
            if value > 0:
                out["cli_cpu_per_post_s"] = value
                out["cli_cpu_from"] = kind
                break
    for kind in ("cli",):  # this machine's whole pipeline at 0 ms (sender, gateway, proxy, clients)
        entry = mi.get(kind) or {}
        if entry.get("marginal_seconds_per_post"):
            out["local_seconds_per_post"] = entry["marginal_seconds_per_post"]
            out["local_fixed_s"] = entry["seconds_0ms"] - entry["n"] * entry["marginal_seconds_per_post"]
            out["local_from"] = kind
            break
    if mi.get("bytes_per_post_up"):
        out["bytes_per_post_up"] = mi["bytes_per_post_up"]
    server = mi.get("server") or {}
    if server.get("function_cpu_per_post_s"):
        out["function_cpu_per_post_s"] = server["function_cpu_per_post_s"]
        out["local_segment_rate"] = server.get("segment_rate_per_s")
        out["local_server_fixed_s"] = server.get("to_first_s")
        out["local_server_rate_from"] = server.get("segment_rate_from")
    goals = (data.get("summary") or {}).get("goals") or {}
    for kind in ("throttled",):
        throttle = goals.get(kind) or {}
        runs = [r for r in throttle.get("runs") or () if r.get("seen429") and r["steady"] == r["steady"]]
        if runs:  # the median throttled run's p10-p90 rate over the bucket's rate
            rate = float(str(data.get("throttle", "2000:500")).split(":")[0])
            steady = sorted(r["steady"] for r in runs)[len(runs) // 2]
            out["pacing"] = min(1.0, steady / rate)
            out["pacing_from"] = "%s (%s)" % (kind, data.get("throttle"))
            break
    out["segments_measured"] = mi.get("segments", 4)
    out["concurrency"] = mi.get("concurrency", DEFAULTS["concurrency"])
    return out, data


# -- the model -------------------------------------------------------------------------------------------
def client_side(n: float, rtt: float, p: dict, shipped: bool = False) -> dict:
    """`shipped`: with the engine's O(N^2) progress detail (wsctl/fanout/__init__.py _detail) as in the CLI today."""
    scan_rate = p["scan_segments_cli"] * p["scan_page_items"] / (rtt + p["scan_page_s"])
    cpu = n * p["cli_cpu_per_post_s"] + (p["quadratic_s"] * n * n / 2 if shipped else 0.0)
    parts = {
        "round trips (N x RTT / C)": n * rtt / p["concurrency"],
        "sender CPU": cpu,
        "uplink (N x bytes / bandwidth)": n * p["bytes_per_post_up"] * 8 / (p["uplink_mbps"] * 1e6),
        "API Gateway quota": max(0.0, n - p["apigw_burst"]) / (p["apigw_rate"] * p["pacing"]),
        "registry scan from afar": n / scan_rate,
    }
    binding = max(parts, key=parts.get)
    total = p["cli_fixed_s"] + 2 * rtt + parts[binding]
    return {"total": total, "parts": parts, "binding": binding}


def segment_rates(p: dict) -> dict:
    vcpu = min(1.0, p["lambda_memory_mb"] * p["vcpu_per_mb"])
    cpu = p["function_cpu_per_post_s"]
    by_threads = p["handler_threads"] / (p["region_rtt_ms"] / 1000.0 + cpu / vcpu)
    by_cpu = vcpu / cpu
    post = min(by_threads, by_cpu)
    scan = p["scan_page_items"] / p["scan_page_s"]
    return {"vcpu": vcpu, "post": post, "post_limit": "CPU (vCPU share / CPU per post)" if by_cpu <= by_threads
            else "threads x round trip", "scan": scan, "per_item": 1.0 / post + 1.0 / scan}


def server_side(n: float, segments: int, rtt: float, p: dict) -> dict:
    rates = segment_rates(p)
    available = p["function_timeout_s"] - p["reserve_s"]
    segment_time = n / segments * rates["per_item"]
    quota_time = max(0.0, n - p["apigw_burst"]) / p["apigw_rate"]
    parts = {"per segment (scan + posts)": segment_time, "API Gateway quota": quota_time}
    binding = max(parts, key=parts.get)
    total = 2 * rtt + p["cold_start_s"] + parts[binding]
    return {"total": total, "parts": parts, "binding": binding, "fits": parts[binding] <= available,
            "rate": segments * rates["post"]}


def smallest_segments(n: float, p: dict) -> dict:
    """The smallest S that keeps each segment inside the function's timeout, and what stops it."""
    rates = segment_rates(p)
    available = p["function_timeout_s"] - p["reserve_s"]
    s = math.ceil(n * rates["per_item"] / available)
    quota_ok = max(0.0, n - p["apigw_burst"]) / p["apigw_rate"] <= available
    notes = ["at most %d segments stay under the quota without 429s" % int(p["apigw_rate"] // rates["post"])]
    if not quota_ok:
        notes.append("no S fits: the quota alone needs %.0f s > %.0f s (needs %.0f rps or chained invocations)"
                     % ((n - p["apigw_burst"]) / p["apigw_rate"], available, (n - p["apigw_burst"]) / available))
    if s * rates["post"] > p["apigw_rate"]:
        notes.append("S x per-segment rate %.0f/s > quota %.0f/s: posts get 429s" % (s * rates["post"], p["apigw_rate"]))
        quota_ok = False
    if s > p["max_segments"]:
        notes.append("S > wsctl's --segments cap %d" % p["max_segments"])
    if s > p["lambda_concurrency"]:
        notes.append("S > the account's Lambda concurrency %d" % p["lambda_concurrency"])
    return {"segments": s, "ok": quota_ok and s <= p["max_segments"] and s <= p["lambda_concurrency"],
            "notes": notes}


def limits(p: dict) -> dict:
    """The N at which each server-side limit binds first (one wave of invocations)."""
    rates = segment_rates(p)
    available = p["function_timeout_s"] - p["reserve_s"]
    return {"API Gateway quota (rate x usable time + burst)": p["apigw_rate"] * available + p["apigw_burst"],
            "wsctl --segments cap (100 segments)": p["max_segments"] * available / rates["per_item"],
            "Lambda concurrency (1,000 copies)": p["lambda_concurrency"] * available / rates["per_item"]}


def fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return "%.1f h" % (seconds / 3600)
    if seconds >= 120:
        return "%.1f min" % (seconds / 60)
    return "%.2f s" % seconds


# -- the check against the run ------------------------------------------------------------------------------
def check(data: dict, inputs: dict, p: dict) -> None:
    measured = (data.get("model_inputs") or {}).get("measured") or []
    if not measured or "local_seconds_per_post" not in inputs:
        print("(no measured run to check against: run bench/broadcast_rtt.py first)")
        return
    big = max(m["size"] for m in measured if not m["kind"].startswith(("throttled", "profiled")))
    f, m_post, k = inputs["local_fixed_s"], inputs["local_seconds_per_post"], inputs.get("quadratic_s", 0.0)
    print("\n== check: the model with this machine's inputs against the run's points at %d connections ==" % big)
    print("this machine, 0 ms: fixed %.3f s + N x %.0f us (the %s's marginal time per post between two sizes: "
          "every local process on 2 cores) [+ k N^2/2 = %.1f ns x N^2/2 for the CLI as shipped];\nat RTT r: "
          "fixed + 2r + max(N r / %d, that)" % (f, 1e6 * m_post, {"fixed": "patched CLI", "cli": "CLI"}[
              inputs["local_from"]], 1e9 * k, p["concurrency"]))
    print("%-34s %7s %10s %10s %7s" % ("", "RTT ms", "measured", "model", "error"))
    grouped = {}
    for m in measured:  # the median run per sender and RTT
        grouped.setdefault((m["kind"], m["size"], m["rtt"]), []).append(m)
    medians = [sorted(runs, key=lambda m: m["total"])[len(runs) // 2] for runs in grouped.values()]
    for kind in ("cli", "fixed", "seq", "server"):
        for m in sorted((m for m in medians if m["kind"] == kind and m["size"] == big), key=lambda m: m["rtt"]):
            rtt = m["rtt"] / 1000.0
            n = m["n"] or big
            if kind in ("cli", "fixed"):
                quad = k * n * n / 2 if (kind == "cli" and inputs["local_from"] == "fixed") else 0.0
                model = f + 2 * rtt + max(n * rtt / p["concurrency"], n * m_post + quad)
            elif kind == "seq":
                zero = [x for x in measured if x["kind"] == "seq" and x["size"] == big and x["rtt"] == 0]
                per = zero[0]["total"] / n if zero else 0.0
                model = n * (rtt + per)
            else:
                if not inputs.get("local_segment_rate"):
                    continue
                segs = inputs.get("segments_measured", 4)
                model = (inputs.get("local_server_fixed_s") or 0) + 2 * rtt + n / segs / inputs["local_segment_rate"]
            label = {"cli": "wsctl CLI (as shipped)", "fixed": "CLI, _detail patched", "seq": "seed sequential",
                     "server": "server-side x%d" % inputs.get("segments_measured", 4)}[kind]
            label += " (extrapolated)" if m.get("extrapolated") else ""
            print("%-34s %7g %9.2fs %9.2fs %+6.0f%%" % (label, m["rtt"], m["total"], model,
                                                      100 * (model - m["total"]) / m["total"]))
    print("(seed: N x (RTT + its own time per post at 0 ms); server-side: time to its first receipt at 0 ms + "
          "2 RTT + N / segments / the measured rate per segment (%s))" % inputs.get("local_server_rate_from", "-"))


# -- main ----------------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", default=str(BENCH / ".scratch" / "broadcast_rtt.json"),
                        help="broadcast_rtt.py's JSON (its measured inputs); missing: the defaults")
    parser.add_argument("--sizes", default="1e4,1e5,1e6,1e7")
    parser.add_argument("--rtts", default="20,80", help="the operator's RTT to the region, ms")
    parser.add_argument("--segments", default="4,16,100", help="server-side segment counts to tabulate")
    for key, value in DEFAULTS.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=None,
                            help="default %s (or the JSON's measured figure)" % value)
    args = parser.parse_args()
    inputs, data = read_inputs(args.source)
    p = dict(DEFAULTS)
    measured_keys = []
    for key in DEFAULTS:
        if key in inputs:
            p[key] = inputs[key]
            measured_keys.append(key)
        given = getattr(args, key)
        if given is not None:
            p[key] = given
            if key in measured_keys:
                measured_keys.remove(key)
    sizes = [int(float(x)) for x in args.sizes.split(",")]
    rtts = [float(x) / 1000.0 for x in args.rtts.split(",")]
    seg_counts = [int(x) for x in args.segments.split(",")]

    print("=" * 78)
    print("broadcast time model: %s" % " ".join(["python", *sys.argv]))
    print("inputs from %s: %s" % (args.source if data else "(none: defaults)",
                                  ", ".join("%s=%.4g" % (k, p[k]) for k in measured_keys) or "-"))
    if inputs:
        print("  (sender CPU per post from the %s run; pacing from %s)" % (
            inputs.get("cli_cpu_from", "-"), inputs.get("pacing_from", "the default: no 429 was measured")))
    if data:
        print("  (run of %s, %s; other processes used %.0f%% of a core during its measured windows)" % (
            data.get("date"), data.get("command"), 100 * (data.get("others_share") or 0)))
    print("assumed: %s" % ", ".join("%s=%.4g" % (k, v) for k, v in p.items() if k not in measured_keys
                                    and k in DEFAULTS))
    print("=" * 78)

    if data:
        check(data, inputs, p)

    print("\n== client-side: wsctl broadcast from the operator's machine (C = %d in flight, sender CPU %.0f us/post"
          " + as shipped %.1f ns x N^2/2) ==" % (p["concurrency"], 1e6 * p["cli_cpu_per_post_s"], 1e9 * p["quadratic_s"]))
    print("%-10s %6s %11s %11s   %s" % ("N", "RTT", "as shipped", "_detail fix",
                                       "where the time goes with the fix (the largest binds)"))
    for n in sizes:
        for rtt in rtts:
            shipped, r = client_side(n, rtt, p, shipped=True), client_side(n, rtt, p)
            parts = ", ".join("%s %s" % (k.split(" (")[0], fmt_s(v)) for k, v in
                              sorted(r["parts"].items(), key=lambda kv: -kv[1]))
            print("%-10s %4.0fms %11s %11s   binds: %s | %s" % (
                "{:,}".format(n), rtt * 1000, fmt_s(shipped["total"]), fmt_s(r["total"]), r["binding"], parts))
    pacer = ((data.get("model_inputs") or {}).get("pacer") or []) if data else []
    slow = [row for row in pacer if row.get("rate_after_429", 1e9) <= 10]
    if slow:
        print("pacer (broadcast_rtt.py's pacer check): when the first answer comes %.1f s or more after the start "
              "(from 80 ms: handshakes + scan + first post are ~6 RTT = 0.5 s), the first 429 cuts the rate to %.0f/s "
              "and the %d workers' slots are spread %.1f s ahead (the rate itself recovers in %.1f s): add about that "
              "to any broadcast the quota throttles" % (
                  min(r["first_answer_s"] for r in slow), slow[0]["rate_after_429"], p["concurrency"],
                  (p["concurrency"] - 1) / slow[0]["rate_after_429"], slow[0]["recovered_s"] or float("nan")))
    sequential = {rtt: fmt_s(sizes[0] * (rtt + 0.001)) for rtt in rtts}
    print("(the seed's sequential loop at %s: %s; N x (RTT + ~1 ms))" % ("{:,}".format(sizes[0]), ", ".join(
        "%.0f ms %s" % (r * 1000, t) for r, t in sequential.items())))

    rates = segment_rates(p)
    available = p["function_timeout_s"] - p["reserve_s"]
    print("\n== server-side: the deployed function fans out (--server-side --segments S) ==")
    print("per segment: %.3f vCPU (%d MB), posts %.0f/s (bound by %s; %d threads, region RTT %.0f ms, CPU/post %.2f "
          "ms), scan %.0f items/s; %.0f s usable per invocation (timeout %.0f s - %.0f s reserve)" % (
              rates["vcpu"], p["lambda_memory_mb"], rates["post"], rates["post_limit"], p["handler_threads"],
              p["region_rtt_ms"], 1000 * p["function_cpu_per_post_s"], rates["scan"], available,
              p["function_timeout_s"], p["reserve_s"]))
    rtt = rtts[0]
    print("%-10s %5s %10s %9s   %s" % ("N", "S", "time", "in time?", "where the time goes (RTT %.0f ms for the Invoke)"
                                       % (rtt * 1000)))
    for n in sizes:
        for s in seg_counts:
            r = server_side(n, s, rtt, p)
            parts = ", ".join("%s %s" % (k, fmt_s(v)) for k, v in r["parts"].items())
            print("%-10s %5d %10s %9s   binds: %s | %s; total post rate %.0f/s%s" % (
                "{:,}".format(n), s, fmt_s(r["total"]), "yes" if r["fits"] else "NO", r["binding"], parts, r["rate"],
                "  > quota: 429s; each segment posts them again for up to 5 rounds (pauses 0.25-4 s), then reports them throttled"
                if r["rate"] > p["apigw_rate"] else ""))
    print("\nsmallest S that keeps each segment inside the function's %.0f s (usable %.0f s):" % (
        p["function_timeout_s"], available))
    for n in sizes:
        best = smallest_segments(n, p)
        print("  %-10s S >= %-6d %s%s" % ("{:,}".format(n), best["segments"], "ok" if best["ok"] else "NOT POSSIBLE",
                                          ("  (" + "; ".join(best["notes"]) + ")") if best["notes"] else ""))
    print("\nwhich limit binds first, server-side in one wave (N beyond which it binds):")
    for name, value in sorted(limits(p).items(), key=lambda kv: kv[1]):
        print("  %-50s N > %s" % (name, "{:,}".format(int(value))))
    print("client-side has no timeout: it binds on %s at these sizes (see above); the account quota is shared "
          "by every API in the region, so a broadcast at the quota throttles the rest of the account's traffic." %
          client_side(sizes[-1], rtts[-1], p)["binding"])
    print("as shipped, the CLI's O(N^2) progress detail binds from about N = %s (where k N^2/2 passes N x CPU/post)"
          % "{:,}".format(int(2 * p["cli_cpu_per_post_s"] / p["quadratic_s"])) if p["quadratic_s"] else "")


if __name__ == "__main__":
    main()
