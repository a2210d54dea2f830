"""Every exit code wsctl uses is an ExitStatus member meaning one thing; `wsctl --help` and the
README's "Exit codes" table list exactly those members, values and meanings, so they cannot drift."""

import re
from pathlib import Path

from typer.testing import CliRunner

from wsctl.exitstatus import ExitStatus

ROOT = Path(__file__).resolve().parent.parent


def enum_rows() -> list[tuple[int, str, str]]:
    return [(status.value, status.name, status.meaning) for status in ExitStatus]


def test_each_code_means_one_thing():
    assert len(ExitStatus.__members__) == len(list(ExitStatus)), "an alias: two names for one code"
    assert len({status.meaning for status in ExitStatus}) == len(list(ExitStatus))
    # the codes click and the shells give: usage errors, and 128 + the signal that ended the process
    assert (ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE) == (0, 1, 2)
    assert (ExitStatus.HANGUP, ExitStatus.INTERRUPTED, ExitStatus.BROKEN_PIPE, ExitStatus.TERMINATED) == \
        (128 + 1, 128 + 2, 128 + 13, 128 + 15)


def test_the_readme_table_lists_exactly_the_members():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \| (.+) \|$", section, re.MULTILINE)
    assert [(int(value), name, meaning) for value, name, meaning in rows] == enum_rows()


def test_the_root_help_lists_exactly_the_members():
    from wsctl.cli import app

    result = CliRunner().invoke(app, ["--help"], prog_name="wsctl")
    assert result.exit_code == 0, result.output
    table = result.output.split("Exit codes (each means one thing):", 1)[1]
    rows = []
    for line in table.splitlines():
        head = re.match(r"^\s*(\d+)  ([A-Z_]+) +(.*)$", line)
        if head:
            rows.append([int(head.group(1)), head.group(2), head.group(3).strip()])
        elif line.strip() and rows:
            rows[-1][2] += " " + line.strip()  # a meaning wrapped under itself
    assert [tuple(row) for row in rows] == enum_rows()


def test_no_bare_exit_code_in_wsctl():
    """Every `typer.Exit(n)`, `sys.exit(n)` and WsctlError status names a member, never a number.
    (wsctl/local/functions is left out: its bootstraps exit as Lambda runtimes do, not as wsctl.)"""
    bare = re.compile(r"(typer\.Exit|sys\.exit|SystemExit|Terminated)\(\s*\d|WsctlError\(.*,\s*(exit_code=)?\d+\)")
    found = [(str(path.relative_to(ROOT)), number, line.strip())
             for path in sorted((ROOT / "wsctl").rglob("*.py")) if "functions" not in path.parts
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if bare.search(line) and not line.lstrip().startswith("#")]
    assert found == []
