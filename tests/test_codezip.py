"""Zipped function code (a CDK zip asset, a Serverless package.artifact), unpacked as Lambda does."""

import os
import stat
import zipfile

import pytest

from wsctl.apispec.codezip import unpacked
from wsctl.errors import UsageError


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, text)
    return path


def test_a_zip_is_unpacked_once_into_a_folder_named_for_its_content(tmp_path):
    archive = _zip(tmp_path / "code.zip", [("app.py", "x = 1\n", 0o644), ("bin/bootstrap", "#!/bin/sh\n", 0o755)])
    folder = unpacked(archive, tmp_path / "cache", "Fn.Code")
    assert (folder / "app.py").read_text() == "x = 1\n"
    assert os.stat(folder / "bin" / "bootstrap").st_mode & stat.S_IXUSR  # executables stay executable
    assert unpacked(archive, tmp_path / "cache", "Fn.Code") == folder
    changed = _zip(tmp_path / "code.zip", [("app.py", "x = 2\n", 0o644)])
    assert unpacked(changed, tmp_path / "cache", "Fn.Code") != folder  # a rebuilt zip gets its own folder
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # no staging left


@pytest.mark.parametrize("entries, words", [
    ([("../escape.py", "", 0o644)], "would land outside its folder"),
    (None, "is not a zip file"),
])
def test_a_zip_it_cannot_unpack_is_one_line(tmp_path, entries, words):
    archive = tmp_path / "code.zip"
    if entries is None:
        archive.write_text("not a zip")
    else:
        _zip(archive, entries)
    with pytest.raises(UsageError) as raised:
        unpacked(archive, tmp_path / "cache", "template.yaml: Fn.Code")
    assert words in str(raised.value) and str(raised.value).startswith("template.yaml: Fn.Code: ")
    assert not (tmp_path / "escape.py").exists()
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-unpacked, hidden staging included
