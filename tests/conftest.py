"""Shared fixtures: a sealed AWS environment and moto.

Only moto/AWS fixtures live here; other fixture modules are registered in
`pytest_plugins` below.
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/ is not a package: helpers are support.*

from support import moto_shim  # noqa: E402,F401  (must patch moto before any mock starts)

pytest_plugins = ["support.emulator_fixtures", "support.iam_check"]


def _children_get_default_signals() -> None:
    """Run in the background (`cmd &` ignores SIGINT) or under nohup (SIGHUP), the suite would
    hand those ignored dispositions to every process it starts, and the tests that Ctrl-C or
    hang up a wsctl would see it carry on. A do-nothing handler instead: this process still
    survives them, and its children start with the default action (exec resets handlers)."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, lambda *_: None)


_children_get_default_signals()

REGION = "us-east-1"
MOTO_CONFIG = {"lambda": {"use_docker": False}}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """Dummy credentials and region, and nothing from the machine's own AWS setup.

    Every test gets this, so no test can reach a real account by accident.
    """
    for name in list(os.environ):
        if name.startswith(("AWS_", "WSCTL_")):
            monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("WSCTL_HOME", str(tmp_path / "wsctl-home"))
    from support.emulator_fixtures import SDK_CACHE  # (a plugin: imported here, after pytest registered it)

    monkeypatch.setenv("WSCTL_SDK_CACHE", SDK_CACHE)  # a Lambda service in a test installs no SDK of its own


@pytest.fixture
def aws(aws_env):
    """moto in decorator mode for the test's duration (Lambda never runs code)."""
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG):
        yield
