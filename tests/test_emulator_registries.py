"""The operating commands on a project the emulator runs from its own template, with its own registry:
AWS's canonical chat sample in Node (a table keyed `connectionId`, no index) and its Python twin.
The registry is discovered as on AWS (the table the functions' environment names, DescribeTable,
a sample proved with GetConnection); real clients, real functions, a stale row planted as a lost
$disconnect leaves one.
"""

import json
import shutil
import time

import pytest
from websockets.sync.client import connect

from support.emulator_fixtures import ROOT, Emulator
from support.live_support import drain, one_error_line, wsctl
from wsctl.exitstatus import ExitStatus

PROJECTS = ROOT / "tests" / "fixtures" / "projects"

STALE = "StaleRow0000C09="  # an id of API Gateway's shape that no socket holds


@pytest.fixture(scope="module", params=["python-chat", "simple-chat-node"])
def project(request, tmp_path_factory):
    if request.param == "simple-chat-node" and shutil.which("node") is None:
        pytest.fail("Node.js is required for these tests (CI installs it)")
    table = "registry_%s" % request.param.replace("-", "_")
    parameter = "TableName=%s" % table
    instance = Emulator(tmp_path_factory.mktemp(request.param), [
        "--template", str(PROJECTS / request.param / "template.yaml"), "--parameter-overrides", parameter])
    instance.table = next(t for t in instance.state.tables)
    yield instance
    instance.stop()


def ids_in(emu) -> set:
    return {item["connectionId"]["S"] for item in emu.dynamodb().scan(TableName=emu.table)["Items"]}


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def test_a_projects_own_registry_is_listed_broadcast_to_and_pruned_with_care(project):
    with connect(project.url, open_timeout=30) as first, connect(project.url, open_timeout=30) as second:
        deadline = time.monotonic() + 30
        while len(ids_in(project)) < 2 and time.monotonic() < deadline:  # the project's $connect wrote them
            time.sleep(0.1)
        live = ids_in(project)
        assert len(live) == 2
        project.dynamodb().put_item(TableName=project.table, Item={"connectionId": {"S": STALE}})

        status = json.loads(ok(wsctl(project, "status", "-o", "json")).stdout)
        assert status["registry"] == "table %s, key connectionId={id}, no ttl" % project.table
        rows = json.loads(ok(wsctl(project, "connections", "list", "--live", "-o", "json")).stdout)
        assert {row["connectionId"]: row["state"] for row in rows} == {**{cid: "live" for cid in live},
                                                                        STALE: "gone"}

        report = json.loads(ok(wsctl(project, "broadcast", '{"note": "to all"}', "-o", "json")).stdout)
        assert report["counts"]["delivered"] == 2 and report["counts"]["gone"] == 1 and report["pruned"] == 0
        for ws in (first, second):
            assert ws.recv(timeout=10) == '{"note": "to all"}'
            assert drain(ws, settle=0.3) == []  # exactly once
        assert STALE in ids_in(project)  # reported, not deleted: the table is the project's

        line = one_error_line(wsctl(project, "prune"))
        assert "which wsctl did not make" in line and "--yes" in line
        dry = json.loads(ok(wsctl(project, "prune", "--dry-run", "-o", "json")).stdout)
        assert dry["keys"] == [{"connectionId": STALE}] and dry["removed"] == 0 and STALE in ids_in(project)
        done = json.loads(ok(wsctl(project, "prune", "--yes", "-o", "json")).stdout)
        assert done["removed"] == 1 and ids_in(project) == live

        target = sorted(live)[0]
        ok(wsctl(project, "send", "--connection", target, "just you"))
        got = [ws for ws in (first, second) if drain(ws, settle=0.5) == [b"just you"]]
        assert len(got) == 1
        line = one_error_line(wsctl(project, "send", "--user", "alice", "hi"))
        assert "--user needs the registry to find a user's connections" in line
    deadline = time.monotonic() + 30
    while ids_in(project) and time.monotonic() < deadline:  # the project's $disconnect removed them
        time.sleep(0.1)
    assert ids_in(project) == set()


def test_a_gone_connection_named_to_disconnect_leaves_the_projects_row_unless_asked(project):
    project.dynamodb().put_item(TableName=project.table, Item={"connectionId": {"S": STALE}})
    result = wsctl(project, "disconnect", STALE)
    assert result.exit_code == ExitStatus.NOT_FOUND and "its registry entry stays" in one_error_line(result)
    assert STALE in ids_in(project)
    result = wsctl(project, "disconnect", STALE, "--prune")
    assert "already gone (its registry entry was removed)" in one_error_line(result)
    assert STALE not in ids_in(project)
