"""KEY=VALUE files and pairs: --env-file and --env for functions, a Serverless service's .env."""

from pathlib import Path

from .errors import UsageError


def parse_env_file(path, option: str = "--env-file") -> dict:
    """KEY=VALUE lines; blank lines and # comments skipped; optional quotes removed. `option`
    (what named the file) starts any error."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise UsageError("cannot read %s %s: %s" % (option, path, error.strerror)) from None
    env = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise UsageError("%s %s line %d is not KEY=VALUE" % (option, path, number))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def parse_env_pairs(pairs: list[str]) -> dict:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError("--env %r is not KEY=VALUE" % pair)
        env[key] = value
    return env
