"""The operator's terminal: several emulators at once, help and output that read well.

- Several `wsctl local up` in one WSCTL_HOME, each with its own state by name: `local ls`,
  `--local` with one or several running, `--name`, a name in use, stale state, `local down`.
- Help: placeholders in words, choices, whole summaries, global options in every command's
  help, shell completion, `-o` meaning --output everywhere.
- Output: connections show/list times, durations, unknown ids, `-q`, the banner's faults,
  no framework banner in the emulator's HTTP answers, and the README's tour as written.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import ROOT, _clean_env, unique
from support.live_support import wsctl
from wsctl.targets.emulator import find_state, state_path


def run(home, *args: str, cwd=ROOT, columns: int = 100, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(_clean_env(home), COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "wsctl", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class Up:
    """`wsctl local up` started in a project folder (its default name is the folder's)."""

    def __init__(self, home: Path, folder: Path, *args: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "emulator.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "wsctl", "local", "up", "--port", "0", *args],
                                        cwd=folder, env=_clean_env(home), stdout=self.log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while (state := find_state(self.process.pid, home)) is None:
            assert self.process.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.05)
        self.state = state

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two emulators in one WSCTL_HOME, from two project folders: `alpha` (quiet, JWT) and
    `beta` (anonymous, with injected faults)."""
    base = tmp_path_factory.mktemp("several")
    home = base / "home"
    started = []
    try:
        started.append(Up(home, base / "Alpha", "-q"))
        started.append(Up(home, base / "beta", "--auth", "none", "--fault", "mgmt-429=0.05", "--fault-seed", "7"))
        yield home, {"alpha": started[0], "beta": started[1]}
    finally:
        for up in started:
            up.stop()


# -- several emulators ---------------------------------------------------------------------------------
def test_each_emulator_has_its_own_state_by_name(two):
    home, ups = two
    assert ups["alpha"].state.name == "alpha" and ups["beta"].state.name == "beta"  # the folders' names
    for name, up in ups.items():
        assert state_path(name, home).exists()
        assert Path(up.state.ca_bundle).parent.parent == state_path(name, home).parent  # its own CA bundle
        assert up.state.project.endswith(name.capitalize() if name == "alpha" else name)
    assert ups["alpha"].state.ca_bundle != ups["beta"].state.ca_bundle


def test_local_ls_lists_name_url_project_uptime(two):
    home, ups = two
    result = run(home, "local", "ls", columns=200)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 local emulator(s)") and "--name" in lines[0]
    assert lines[1].split() == ["name", "URL", "project", "uptime", "pid"]
    for name, up in ups.items():
        line = next(line for line in lines[2:] if line.split()[0] == name)
        row = line.split()
        assert row[1] == up.state.ws_url and row[2].endswith(Path(up.state.project).name)
        assert re.search(r"\s(\d+ s|\d+ m( \d+ s)?)\s+%d$" % up.process.pid, line), line
    document = json.loads(run(home, "local", "ls", "-o", "json").stdout)
    by_name = {e["name"]: e for e in document["emulators"]}
    assert set(by_name) == {"alpha", "beta"}
    assert by_name["beta"]["tlsUrl"].startswith("wss://") and os.path.exists(by_name["beta"]["caBundle"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", by_name["alpha"]["started"])
    assert by_name["alpha"]["uptimeSeconds"] >= 0


def test_local_with_several_running_asks_for_a_name_in_one_line(two):
    home, ups = two
    result = run(home, "--local", "status")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "2 local emulators are running" in lines[0] and "--name" in lines[0]
    assert "alpha at ws://" in lines[0] and "beta at ws://" in lines[0]
    result = run(home, "--name", "gamma", "status")
    assert result.returncode == 1 and "no local emulator named 'gamma'" in result.stderr
    assert "alpha, beta" in result.stderr


def test_name_picks_one_and_status_gives_its_wss_url_and_ca_bundle(two):
    home, ups = two
    for name, up in ups.items():
        document = json.loads(run(home, "--name", name, "status", "-o", "json").stdout)  # --name implies --local
        assert document["url"] == up.state.ws_url and document["tlsUrl"] == up.state.wss_url
        assert document["caBundle"] == up.state.ca_bundle and os.path.exists(document["caBundle"])
    # and a wss:// client that trusts that bundle connects (beta runs without auth)
    result = run(home, "connect", ups["beta"].state.wss_url, "--name", "beta", "--send", "hello", "--count", "1",
                 "-o", "jsonl")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["open", "sent", "received",
                                                                                 "closed"]


def test_a_name_in_use_is_refused_and_the_default_gets_the_port(two, tmp_path):
    home, ups = two
    result = run(home, "local", "up", "--port", "0", "--name", "alpha")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "an emulator named 'alpha' is already running" in result.stderr
    assert "wsctl local down --name alpha" in result.stderr
    result = run(home, "local", "up", "--name", "Not Valid")
    assert result.returncode == 2 and "--name 'Not Valid'" in result.stderr
    # another emulator in alpha's folder: the folder's name is taken, so NAME-PORT
    third = Up(home, Path(ups["alpha"].state.project), "--auth", "none", "-q")
    try:
        port = third.state.ws_url.rsplit(":", 1)[1].split("/")[0]
        assert third.state.name == "alpha-%s" % port
        result = run(home, "local", "down", "--name", third.state.name)
        assert result.returncode == 0 and "stopped the local emulator alpha-%s" % port in result.stdout
        assert third.process.wait(5) == 0
    finally:
        third.stop()
    assert [e["name"] for e in json.loads(run(home, "local", "ls", "-o", "json").stdout)["emulators"]] == \
        ["alpha", "beta"]


def test_a_stale_state_file_is_noticed_and_cleared(tmp_path):
    home = tmp_path / "home"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = state_path("ghost", home).parent
    folder.mkdir(parents=True)
    state_path("ghost", home).write_text(json.dumps({"name": "ghost", "pid": dead.pid, "ws_url": "ws://x/dev"}))
    result = run(home, "--local", "status")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no local emulator is running" in result.stderr and "cleared the stale state of ghost" in result.stderr
    assert not state_path("ghost", home).exists()
    state_path("ghost", home).write_text(json.dumps({"name": "ghost", "pid": dead.pid, "ws_url": "ws://x/dev"}))
    result = run(home, "local", "ls")
    assert result.returncode == 0 and "cleared the stale state of ghost" in result.stderr
    assert "No local emulator is running" in result.stdout and not state_path("ghost", home).exists()


def test_quiet_prints_nothing_per_event_and_the_banner_shows_the_faults(two):
    home, ups = two
    alpha = ups["alpha"]
    token = run(home, "--name", "alpha", "token", "--user", "quiet").stdout.strip()
    before = alpha.output()
    for _ in range(3):
        with connect("%s?token=%s" % (alpha.state.ws_url, token)) as ws:
            ws.send('{"action": "whoami"}')
            ws.recv(timeout=5)
            ws.send('{"action": "nope"}')
            ws.recv(timeout=5)
    time.sleep(0.5)
    assert alpha.output() == before  # not one line for 3 connects, 6 messages, 3 disconnects
    banner = ups["beta"].output()
    assert re.search(r"faults\s+injected: mgmt-429=0\.05 \(seed 7\)", banner), banner
    assert re.search(r"name\s+beta ", banner)


def test_the_emulator_answers_without_a_framework_banner(emulator):
    port = emulator.port
    answers = []
    for url in ("http://127.0.0.1:%d/dev/@connections/abc" % port, "http://127.0.0.1:%d/nope" % port,
                "http://127.0.0.1:%d/dev" % port):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answers.append(response.headers)
        except urllib.error.HTTPError as error:
            answers.append(error.headers)
    with connect(emulator.url_for(unique("srv"))) as ws:  # the 101 upgrade
        answers.append(ws.response.headers)
    assert len(answers) == 4
    for headers in answers:
        assert "Server" not in headers, dict(headers)
        assert "aiohttp" not in str(dict(headers)) and "Python" not in str(dict(headers))


# -- connections show / list / disconnect, as people read them --------------------------------------------
def test_connections_show_and_list_print_times_people_read(emulator):
    user = unique("tim")
    with connect(emulator.url_for(user)) as ws:
        ws.send('{"action": "whoami"}')
        cid = json.loads(ws.recv(timeout=5))["connectionId"]
        result = wsctl(emulator, "connections", "show", "--", cid)
        assert result.exit_code == 0, result.stderr
        shown = dict((re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2] for line in result.stdout.splitlines())
        moment = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( \S+)? \(%s\)"
        assert re.fullmatch(moment % r"(\d+ s|\d+ m( \d+ s)?) ago", shown["connected"]), shown
        assert re.fullmatch(moment % r"in 2 h \d+ m", shown["expires (ttl)"]), shown  # the registry's 7500 s ttl
        assert re.fullmatch(moment % r"\d+ s ago", shown["last active"]), shown
        assert "{" not in shown["identity"] and "sourceIp 127.0.0.1" in shown["identity"], shown
        document = json.loads(wsctl(emulator, "connections", "show", "-o", "json", "--", cid).stdout)
        iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
        assert re.fullmatch(iso, document["registry"]["connectedAt"]), document
        assert re.fullmatch(iso, document["registry"]["expiresAt"]) and "ttl" not in document["registry"]
        assert re.fullmatch(iso, document["apiGateway"]["lastActiveAt"])
        rows = wsctl(emulator, "connections", "list", "--user", user).stdout.splitlines()
        row = next(line for line in rows if cid in line)
        assert re.search(r"\d+ s ago\s+in 2 h \d+ m", row), row


# -- help -----------------------------------------------------------------------------------------------------
COMMANDS = [[], ["deploy"], ["status"], ["destroy"], ["bundle"], ["token"], ["send"], ["broadcast"], ["prune"],
            ["disconnect"], ["invoke"], ["demo"], ["connect"], ["local"], ["local", "up"], ["local", "down"],
            ["local", "ls"], ["connections"], ["connections", "list"], ["connections", "show"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "wsctl")
def test_help_reads_as_words_with_the_global_options(tmp_path, command):
    from wsctl.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100", "WSCTL_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    text = result.output
    assert not re.search(r"<(str|int|float|bool|list|path)[^>]*>|list\[|int range", text), text
    if "Commands:" in text:  # summaries whole, never cut with "..."
        assert "..." not in text.split("Commands:", 1)[1].split("Global options")[0], text
    if command:
        section = text.split("Global options (anywhere on the line):", 1)
        assert len(section) == 2, text
        for option in ("--local", "--name NAME", "--profile PROFILE", "--region REGION", "--endpoint-url URL",
                       "--stack NAME", "--stage NAME", "-o, --output text|json|jsonl", "--debug"):
            assert option in section[1], option
    else:
        assert "--install-completion" in text and "--show-completion" in text and "WSCTL_HOME" in text
    if command in (["local", "up"], ["deploy"]):
        assert "--auth jwt|none" in text
    if command == ["bundle"]:
        own = text.split("Options:", 1)[1].split("Global options")[0]
        assert "--out FILE" in own and not re.search(r"(^|\s)-o[, ]", own), own


def test_command_summaries_are_whole_at_100_columns(tmp_path):
    result = run(tmp_path, "--help", columns=100)
    from wsctl.cli import ops

    flat = " ".join(result.stdout.split())
    assert "interactive on a terminal, scriptable with --send/--wait/--count." in flat
    assert ops.prune.__doc__.split("\n")[0] in flat, result.stdout


def test_minus_o_is_output_everywhere(tmp_path):
    result = run(tmp_path, "bundle", "-o", str(tmp_path / "x.zip"))
    assert result.returncode == 2 and "--output" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.zip").exists()
    result = run(tmp_path, "bundle", "--out", str(tmp_path / "x.zip"), "-o", "json")
    assert result.returncode == 0 and (tmp_path / "x.zip").exists(), result.stderr


def test_shell_completion(tmp_path):
    result = run(tmp_path, "--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    # The script `--show-completion` prints for bash (asked for by name: which shell runs the tests
    # is not this test's business; --show-completion alone detects it from the parent processes).
    env = dict(_clean_env(tmp_path), _WSCTL_COMPLETE="source_bash")
    script = subprocess.run([sys.executable, "-m", "wsctl"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert script.returncode == 0 and "_WSCTL_COMPLETE" in script.stdout and "complete " in script.stdout
    env = dict(_clean_env(tmp_path), _WSCTL_COMPLETE="complete_bash", COMP_WORDS="wsctl conn", COMP_CWORD="1")
    done = subprocess.run([sys.executable, "-m", "wsctl"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert set(done.stdout.split()) == {"connect", "connections"}, (done.stdout, done.stderr)
    env.update(COMP_WORDS="wsctl local up --au", COMP_CWORD="3")
    done = subprocess.run([sys.executable, "-m", "wsctl"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.split() == ["--auth", "--authorizer"], done.stdout


# -- the README's tour, as written ---------------------------------------------------------------------------
def test_the_readme_tour_runs_as_written(emulator, tmp_path):
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A tour", 1)[1].split("```bash", 2)[2].split("```", 1)[0]
    lines = [line.strip() for line in tour.strip().splitlines()]  # run by bash: `# ...` is a comment
    assert any("notice.json" in line for line in lines)
    env = dict(emulator.env, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with connect(emulator.url_for("alice")), connect(emulator.url_for("bob")) as bob:
        bob.send('{"action": "whoami"}')
        bob_id = json.loads(bob.recv(timeout=5))["connectionId"]
        for line in lines:
            command = line.replace("<connection-id>", shlex.quote(bob_id))
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if "status -o json" in command:
                document = json.loads(done.stdout)
                assert document["tlsUrl"].startswith("wss://") and os.path.exists(document["caBundle"])
