"""The Lambda bundle is the same bytes on every machine for the same wsctl.

Built in processes of their own, from copies of the sources that differ in everything a machine
changes (modification times, permissions, umask, time zone, the order files were written), the
bytes are the same. The PyJWT it vendors is the pinned release, checked file by file: another
version or an edited copy is refused in one line, and nothing is written.
"""

import io
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from wsctl.deploy import bundle

ROOT = Path(__file__).resolve().parents[1]


def copy_package(name: str, into: Path, mode: int, mtime: float, reverse: bool) -> Path:
    """A copy of an installed package, written file by file in the given order, with these modes and times."""
    source = Path(bundle.package_dir(name))
    files = sorted((p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts), reverse=reverse)
    for path in files:
        target = into / name / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        os.chmod(target, mode)
        os.utime(target, (mtime, mtime))
    return into / name


def build_elsewhere(folder: Path, out: Path, umask: str, tz: str) -> subprocess.CompletedProcess:
    """`wsctl bundle` in a process whose lambda_src and jwt come first from `folder`."""
    env = dict(os.environ, PYTHONPATH=str(folder), TZ=tz, PYTHONHASHSEED="random")
    script = "import os, sys; os.umask(%s); from wsctl.cli import main; sys.argv = %r; main()" % (
        umask, ["wsctl", "bundle", "--out", str(out)])
    return subprocess.run([sys.executable, "-c", script], env=env, cwd=folder, capture_output=True, text=True,
                          timeout=120)


def test_two_machines_build_the_same_bytes(tmp_path):
    here = bundle.build()
    builds = []
    for i, (mode, mtime, reverse, umask, tz) in enumerate([(0o600, 1.7e9, False, "0o077", "UTC"),
                                                          (0o755, 9.5e8, True, "0o002", "Asia/Kolkata")]):
        folder = tmp_path / ("machine%d" % i)
        for package in ("lambda_src", "jwt"):
            copy_package(package, folder, mode, mtime, reverse)
        out = tmp_path / ("bundle%d.zip" % i)
        done = build_elsewhere(folder, out, umask, tz)
        assert done.returncode == 0, done.stderr
        builds.append(out.read_bytes())
    assert builds[0] == builds[1] == here
    entries = zipfile.ZipFile(io.BytesIO(here)).infolist()
    assert {(e.create_system, e.external_attr >> 16, e.compress_type, e.date_time) for e in entries} == {
        (bundle.UNIX, 0o644, zipfile.ZIP_STORED, bundle.FIXED_DATE)}


def test_the_vendored_pyjwt_is_the_pinned_release():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "PyJWT==%s" % bundle.PYJWT_VERSION in dependencies
    names = [name for name, _ in bundle.vendored_pyjwt()]
    assert "jwt/__init__.py" in names and "jwt/LICENSE" in names
    code = zipfile.ZipFile(io.BytesIO(bundle.build()))
    vendored = [(name, code.read(name)) for name in code.namelist() if name.startswith("jwt/")]
    assert bundle.entries_digest(vendored) == bundle.PYJWT_DIGEST


def one_line_refusal(done: subprocess.CompletedProcess, out: Path, *texts: str) -> None:
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    for text in texts:
        assert text in line, line
    assert not out.exists()


def test_an_edited_pyjwt_is_refused_and_nothing_is_written(tmp_path):
    copy_package("lambda_src", tmp_path, 0o644, 1.7e9, False)
    jwt = copy_package("jwt", tmp_path, 0o644, 1.7e9, False)
    with open(jwt / "api_jwt.py", "a") as handle:
        handle.write("\n# a local patch\n")
    out = tmp_path / "bundle.zip"
    one_line_refusal(build_elsewhere(tmp_path, out, "0o022", "UTC"), out,
                     "PyJWT %s installed here is not that release" % bundle.PYJWT_VERSION,
                     "pip install --force-reinstall PyJWT==%s" % bundle.PYJWT_VERSION)


def test_another_pyjwt_version_is_refused_and_nothing_is_written(tmp_path):
    copy_package("lambda_src", tmp_path, 0o644, 1.7e9, False)
    copy_package("jwt", tmp_path, 0o644, 1.7e9, False)
    installed = Path(bundle.distribution("PyJWT")._path)
    other = tmp_path / "pyjwt-2.9.0.dist-info"
    shutil.copytree(installed, other)
    metadata = other / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: %s" % bundle.PYJWT_VERSION, "Version: 2.9.0", 1))
    out = tmp_path / "bundle.zip"
    one_line_refusal(build_elsewhere(tmp_path, out, "0o022", "UTC"), out,
                     "the bundle vendors PyJWT %s and this environment has 2.9.0" % bundle.PYJWT_VERSION)


def test_the_digest_tells_names_from_contents():
    digests = {bundle.entries_digest(e) for e in ([("a", b"bc")], [("ab", b"c")], [("a", b"b"), ("c", b"")],
                                                  [("c", b""), ("a", b"b")])}
    assert len(digests) == 3  # the last two are the same entries in another order
