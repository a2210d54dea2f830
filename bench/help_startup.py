#!/usr/bin/env python3
"""Time `wsctl --help` against `aws --version` (run by hand, not a test).

wsctl is the console script next to this interpreter (the same venv); aws is
the AWS CLI on PATH. Runs are interleaved so both see the same machine load.
The budget applies to wsctl's median.

    python bench/help_startup.py [--runs 15]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET_MS = 150.0


def wsctl_path() -> Path:
    path = Path(sys.executable).parent / "wsctl"
    if not path.exists():
        sys.exit("no wsctl console script next to %s: install the package (pip install -e .)" % sys.executable)
    return path


def run_ms(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        sys.exit("%s exited %d" % (" ".join(command), done.returncode))
    return elapsed


def summary(name: str, samples: list[float]) -> str:
    return "%-14s median %7.1f ms   min %7.1f ms   max %7.1f ms   (n=%d)" % (
        name, statistics.median(samples), min(samples), max(samples), len(samples))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    commands = {"wsctl --help": [str(wsctl_path()), "--help"]}
    aws = shutil.which("aws")
    if aws:
        commands["aws --version"] = [aws, "--version"]
    for command in commands.values():  # warm the page cache; not counted
        run_ms(command)

    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            samples[name].append(run_ms(command))

    for name, values in samples.items():
        print(summary(name, values))
    wsctl_median = statistics.median(samples["wsctl --help"])
    if aws:
        print("ratio wsctl/aws  %.2f" % (wsctl_median / statistics.median(samples["aws --version"])))
    else:
        print("aws --version   skipped: no `aws` on PATH")
    verdict = "PASS" if wsctl_median <= BUDGET_MS else "FAIL"
    print("%s: wsctl --help median %.1f ms (budget %.0f ms)" % (verdict, wsctl_median, BUDGET_MS))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
