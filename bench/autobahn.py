"""Autobahn|Testsuite (wstest fuzzingclient, cases 1 to 7) against the local emulator with an echo.

    python bench/autobahn.py                    # both echoes, cases 1.* to 7.*
    python bench/autobahn.py --echo route       # the route-response echo only
    python bench/autobahn.py --cases '1.1.*,2.*'  # CI size

Two echoes, each a trivial handler under bench/trivial/ run by `wsctl local up --auth none`:

- route: every frame goes to $default, a two-way route (`autobahn-route.json`), and
  `echo_route.handler` returns the frame as its body, which the emulator sends back;
- management: every frame goes to the route `echo` (a static route selection expression,
  `autobahn-management.json`), and `handler.handler` posts it back through @connections.

The suite (PyPI `autobahntestsuite` 25.10.1) is Python 2.7 only: its dependencies are pinned
for 2.7 (Twisted 19.10, autobahn 0.10.9) and its code has Python 2 syntax. Debian 12 has no
python2 or pypy (2.7) package; this script uses a CPython 2.7 found on the machine (pyenv's
2.7.18 here; AUTOBAHN_PYTHON2 names another) and installs the suite, on first run, into a
virtualenv in bench/.scratch/autobahn (git-ignored). The sdist declares no dependencies (its
setup.py reads a requirements.txt that the sdist lacks), so they are installed from the
pinned list below (the sdist's own egg-info/requires.txt).

API Gateway refuses some of what the suite sends, and the emulator does as API Gateway
does: binary messages close with 1003 (cases 1.2.*) and frames over 32 KB with 1009 (cases
1.1.6 to 1.1.8). Those cases fail by design; the summary names every failed case.
"""

import argparse
import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from backends import SCRATCH, Emulator, banner, exit_on_sigterm  # noqa: E402

SUITE = "autobahntestsuite==25.10.1"
# autobahntestsuite-25.10.1's egg-info/requires.txt (setup.py cannot find it at install time)
PINNED = ["setuptools==44.0.0", "txaio==2.1.0", "incremental==16.10.1", "pyOpenSSL==19.1.0", "cryptography==3.3.2",
          "Twisted==19.10.0", "zope.interface==4.6.0", "jinja2==2.11.3", "markupsafe==1.1.1", "Werkzeug==1.0.1",
          "klein==17.10.0", "service_identity==18.1.0", "unittest2==1.1.0", "six==1.16.0",
          "autobahn[accelerate,twisted]==0.10.9"]
HOME = SCRATCH / "autobahn"
VENV = HOME / "py27"
ECHOES = {
    "route": ("echo_route.handler", "autobahn-route.json"),
    "management": ("handler.handler", "autobahn-management.json"),
}
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
BY_DESIGN = {  # what API Gateway refuses: the emulator closes as it does
    "1.1.6": "a 65535-byte frame: over the 32 KB frame limit, 1009",
    "1.1.7": "a 65536-byte frame: over the 32 KB frame limit, 1009",
    "1.1.8": "a 65536-byte frame (sent in chops): over the 32 KB frame limit, 1009",
    **{"1.2.%d" % n: "a binary message: API Gateway refuses binary frames, 1003" for n in range(1, 9)},
}


def find_python2() -> str | None:
    candidates = [os.environ.get("AUTOBAHN_PYTHON2"), shutil.which("python2.7"), shutil.which("python2"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python")), reverse=True),
                  *sorted(glob.glob("/root/.pyenv/versions/2.7*/bin/python"), reverse=True)]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                                 text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "(2, 7)":
            return candidate
    return None


def pip_args() -> list[str]:
    # --isolated: this machine's pip configuration (constraints, local indexes) is for Python 3
    args = ["--isolated", "--disable-pip-version-check"]
    for bundle in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if bundle and os.path.exists(bundle):
            return args + ["--cert", bundle]
    return args


def wstest() -> Path:
    """The wstest command, installing the suite first if needed."""
    command = VENV / "bin" / "wstest"
    if command.exists():
        return command
    python2 = find_python2()
    if python2 is None:
        raise SystemExit("Autobahn|Testsuite needs CPython 2.7 (it is Python 2 only), and none was found: "
                         "Debian 12 packages no python2 or pypy 2.7; set AUTOBAHN_PYTHON2 to a python2.7")
    HOME.mkdir(parents=True, exist_ok=True)
    tool = HOME / "virtualenv-py27"
    print("installing virtualenv for %s into %s" % (python2, tool), flush=True)
    _quietly([python2, "-m", "pip", "install", *pip_args(), "--target", str(tool), "virtualenv<20.16"])
    _quietly([python2, "-m", "virtualenv", str(VENV)], env={**os.environ, "PYTHONPATH": str(tool)})
    print("installing %s and its pinned dependencies into %s" % (SUITE, VENV), flush=True)
    _quietly([str(VENV / "bin" / "pip"), "install", *pip_args(), SUITE, *PINNED])
    return command


def _quietly(command: list[str], **kwargs) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit("%s failed (%d):\n%s%s" % (" ".join(command), done.returncode, done.stdout[-3000:],
                                                   done.stderr[-3000:]))


def run_suite(echo: str, cases: list[str], command: Path) -> dict:
    handler, routes = ECHOES[echo]
    emulator = Emulator("--auth", "none", "--source", str(BENCH / "trivial"), "--handler", handler,
                        "--routes", str(BENCH / "trivial" / routes), stack="autobahn-" + echo)
    emulator.start()
    outdir = HOME / ("reports-" + echo)
    shutil.rmtree(outdir, ignore_errors=True)
    agent = "wsctl-emulator-%s-echo" % echo
    spec = HOME / ("fuzzingclient-%s.json" % echo)
    spec.write_text(json.dumps({"outdir": str(outdir), "servers": [{"agent": agent, "url": emulator.url}],
                                "cases": cases, "exclude-cases": [], "exclude-agent-cases": {}}, indent=1))
    started = time.monotonic()
    try:
        with open(HOME / ("wstest-%s.log" % echo), "wb") as log:
            subprocess.run([str(command), "-m", "fuzzingclient", "-s", str(spec)], cwd=HOME, stdout=log,
                           stderr=subprocess.STDOUT, timeout=1800, check=True)
    finally:
        status = emulator.stop()
    seconds = time.monotonic() - started
    results = json.loads((outdir / "index.json").read_text())[agent]
    return {"echo": echo, "results": results, "seconds": seconds, "outdir": outdir, "emulator_exit": status}


def _key(case: str) -> list[int]:
    return [int(part) for part in case.split(".")]


def summarize(run: dict) -> bool:
    results = run["results"]
    behaviors = collections.Counter(r["behavior"] for r in results.values())
    closes = collections.Counter(r["behaviorClose"] for r in results.values())
    passed = sum(behaviors[b] for b in PASSING)
    print("\n%s echo: %d cases in %.1f s; passed %d of %d (%s); close behaviour %s; emulator exit %s" % (
        run["echo"], len(results), run["seconds"], passed, len(results),
        ", ".join("%s %d" % kv for kv in sorted(behaviors.items())),
        ", ".join("%s %d" % kv for kv in sorted(closes.items())), run["emulator_exit"]))
    unexpected = []
    for case in sorted(results, key=_key):
        result = results[case]
        if result["behavior"] in PASSING and result["behaviorClose"] in ("OK", "INFORMATIONAL"):
            continue
        detail = json.loads((run["outdir"] / result["reportfile"].replace(".html", ".json")).read_text())
        why = BY_DESIGN.get(case)
        if why is None or result["behavior"] in PASSING:
            unexpected.append(case)
        print("  %-7s %-11s close %-11s emulator closed with %s: %s" % (
            case, result["behavior"], result["behaviorClose"], detail.get("remoteCloseCode"),
            why or detail.get("description", "").replace("<b>", "").replace("</b>", "")[:90]))
    lenient = [case for case in sorted(results, key=_key) if results[case]["behavior"] in ("NON-STRICT", "INFORMATIONAL")]
    print("  passed, non-strict or informational: %s" % " ".join(
        "%s(%s)" % (case, results[case]["behavior"][:4]) for case in lenient))
    print("  reports: %s/index.html" % run["outdir"])
    return not unexpected


def main(argv=None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo", choices=["route", "management", "both"], default="both")
    parser.add_argument("--cases", default="1.*,2.*,3.*,4.*,5.*,6.*,7.*",
                        help="comma-separated case patterns, as wstest takes them")
    args = parser.parse_args(argv)
    banner("autobahn: wstest fuzzingclient, cases %s, %s echo" % (args.cases, args.echo))
    command = wstest()
    version = subprocess.run([str(command), "--autobahnversion"], capture_output=True, text=True)
    print((version.stdout or version.stderr).strip())
    ok = True
    for echo in (["route", "management"] if args.echo == "both" else [args.echo]):
        ok = summarize(run_suite(echo, [c.strip() for c in args.cases.split(",") if c.strip()], command)) and ok
    print("\nevery failed case is one API Gateway refuses by design" if ok else "\nUNEXPECTED failures above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
