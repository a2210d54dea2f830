"""The deterministic Lambda bundle: lambda_src plus PyJWT, same wsctl -> same bytes everywhere.

The zip's sha256 is what `deploy` compares with Lambda's CodeSha256 to decide
whether code changed, so nothing of the machine may reach it: entries sorted,
fixed timestamps, permissions and creator system, no __pycache__, and stored
uncompressed (deflate's output differs between zlib builds: zlib-ng, which
some distributions ship as zlib, compresses the same input to other bytes).
PyJWT is the one file set that does not come with wsctl itself: the version it
vendors is pinned (pyproject.toml) and its files are checked against the
digest of that release, so another PyJWT, or an edited one, is refused instead
of deployed. boto3 is not bundled (Lambda's Python runtime has it).
"""

import base64
import hashlib
import importlib.util
import io
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from ..errors import WsctlError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
UNIX = 3  # ZipInfo.create_system: zipfile writes 0 on Windows, which would change the bytes
# What the handler imports that Lambda's Python runtime lacks, bundled beside it (and linked into the
# emulator's code folder for it: wsctl/local/bundled.py): PyJWT, the release it vendors pinned, with
# the digest of its files as that release installs them (`entries_digest` of `jwt/...` and its
# LICENSE). A new pin changes both, here and in pyproject.toml.
DEPENDENCIES = ("jwt",)
PYJWT_VERSION = "2.15.1"
PYJWT_DIGEST = "469b8a3c290f8516212561e9e98cef4027f2fb642a980a47de5705bb7fc963d4"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package %s is not importable" % name)
    return Path(list(spec.submodule_search_locations)[0])


def _files(package: str) -> list[tuple[str, bytes]]:
    root = package_dir(package)
    found = []
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            found.append(("%s/%s" % (package, path.relative_to(root).as_posix()), path.read_bytes()))
    return found


def _pyjwt_license(dist) -> list[tuple[str, bytes]]:
    for entry in dist.files or ():
        if Path(str(entry)).name.upper().startswith("LICENSE"):
            return [("jwt/LICENSE", Path(dist.locate_file(entry)).read_bytes())]
    return []


def entries_digest(entries: list[tuple[str, bytes]]) -> str:
    """sha256 over names and contents, in name order."""
    digest = hashlib.sha256()
    for name, data in sorted(entries):
        digest.update(b"%d:%s\0%d:" % (len(name), name.encode(), len(data)))
        digest.update(data)
    return digest.hexdigest()


def vendored_pyjwt() -> list[tuple[str, bytes]]:
    """PyJWT's files for the bundle, once they are shown to be the pinned release's."""
    fix = "`pip install --force-reinstall PyJWT==%s` (the version this wsctl vendors)" % PYJWT_VERSION
    try:
        dist = distribution("PyJWT")
    except PackageNotFoundError:
        raise WsctlError("PyJWT is not installed, and the bundle vendors it: %s" % fix) from None
    if dist.version != PYJWT_VERSION:
        raise WsctlError("the bundle vendors PyJWT %s and this environment has %s: the same wsctl would deploy "
                         "other code from here; %s" % (PYJWT_VERSION, dist.version, fix))
    entries = _files("jwt") + _pyjwt_license(dist)
    if entries_digest(entries) != PYJWT_DIGEST:
        raise WsctlError("the PyJWT %s installed here is not that release as published (a file was edited, added "
                         "or removed under %s): %s" % (PYJWT_VERSION, package_dir("jwt"), fix))
    return entries


def build(source_package: str = "lambda_src") -> bytes:
    entries = sorted(_files(source_package) + vendored_pyjwt())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.create_system = UNIX
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


def sha256_b64(data: bytes) -> str:
    """Lambda's CodeSha256 form."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
