"""The deterministic Lambda bundle: lambda_src plus PyJWT, same source -> same bytes.

Fixed timestamps, permissions and order, no __pycache__: the zip's sha256 is
what `deploy` compares with Lambda's CodeSha256 to decide whether code changed.
boto3 is not bundled (Lambda's Python runtime has it).
"""

import base64
import hashlib
import importlib.util
import io
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# What the handler imports that Lambda's Python runtime lacks: bundled beside it (PyJWT).
DEPENDENCIES = ("jwt",)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package %s is not importable" % name)
    return Path(list(spec.submodule_search_locations)[0])


def _files(package: str) -> list[tuple[str, Path]]:
    root = package_dir(package)
    found = []
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            found.append(("%s/%s" % (package, path.relative_to(root).as_posix()), path))
    return found


def _pyjwt_license() -> list[tuple[str, Path]]:
    try:
        dist = distribution("PyJWT")
    except PackageNotFoundError:
        return []
    for entry in dist.files or ():
        if Path(str(entry)).name.upper().startswith("LICENSE"):
            return [("jwt/LICENSE", Path(dist.locate_file(entry)))]
    return []


def build(source_package: str = "lambda_src") -> bytes:
    entries = sorted(_files(source_package) + [entry for name in DEPENDENCIES for entry in _files(name)]
                     + _pyjwt_license())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def sha256_b64(data: bytes) -> str:
    """Lambda's CodeSha256 form."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
