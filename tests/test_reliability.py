"""Reliability at CI size: connection churn, delivery under injected faults, a DynamoDB outage.

The suites are bench/soak_churn.py and bench/faults.py, run by hand at full size (figures in
bench/README.md); these tests import them and run them small, with every check they make:

- churn: lifetimes ending in all four ways (clean close, drop without a close frame, kick,
  idle timeout) with a share of lost $disconnects; the stale entries before prune are exactly
  the lost ones, and after `wsctl prune` the registry is exactly the connections kept open;
- faults: 410/429/500 on the management API and failing or timing-out handler invocations;
  every live recipient gets each broadcast/sendMessage/sendRoom at least once, or the sender's
  report names it as not delivered; nothing is silently lost;
- outage: the registry's DynamoDB (a moto server, so no Java) stops answering (SIGSTOP), then is
  killed and restarted on its port; $connect fails closed with a 500 in bounded time, the CLI
  prints one error line, and everything works again without restarting the emulator.
"""

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import faults  # noqa: E402
import soak_churn  # noqa: E402

pytestmark = pytest.mark.slow


def test_churn_leaves_the_registry_exactly_the_live_connections(tmp_path):
    figures = soak_churn.run_churn(soak_churn.ChurnOptions(
        lifetimes=300, clients=30, warmup=30, keep_open=5, idle_timeout=2.0, disconnect_loss=0.4, seed=3,
        quiet_for=1.0, progress=False), home=tmp_path / "home")
    assert figures["failures"] == [], figures
    assert all(figures["endings"][ending] > 0 for ending in soak_churn.ENDINGS), figures["endings"]
    before, after = figures["before_prune"], figures["after_prune"]
    assert before["drift"] > 0 and set(before["stale_by_ending"]) == {"drop"}  # the lost $disconnects, only
    assert before["drift"] == figures["disconnect_lost"] == figures["prune"]["gone"]
    assert after == {"registry": 5, "live": 5, "drift": 0, "missing_live": 0, "orphan_items": 0,
                     "item_ids": 5}
    assert figures["after_close"] == {"registry": 0, "item_ids": 0}
    assert figures["handler_errors"]["tracebacks"] == figures["handler_errors"]["exceptions"] == 0


def test_faults_deliver_at_least_once_and_lose_nothing_silently(tmp_path):
    figures = faults.run_faults(faults.FaultOptions(
        users=8, per_user=3, rooms=3, rounds=3, drops=2, user_sends=3, seed=11, progress=False,
        shares={"mgmt-410": 0.03, "mgmt-429": 0.1, "mgmt-500": 0.05, "handler-error": 0.05,
                "handler-timeout": 0.03}), home=tmp_path / "home")
    assert figures["failures"] == [], figures
    ledger = figures["ledger"]
    assert ledger["messages"] == 3 * (1 + 3 + 3)
    assert ledger["silently_lost"] == 0 and ledger["gone_mismatch"] == 0
    # every missing delivery is accounted for: reported by the sender, or the entry an injected 410 removed
    assert ledger["missing"] <= ledger["reported_not_delivered"] + ledger["live_pruned_by_410"]
    assert ledger["received"] > 0.9 * ledger["expected"] > 0
    assert ledger["stale_pruned"] > 0  # senders pruned the dropped sockets' entries
    assert figures["after_close"]["item_ids"] == 0
    assert figures["handler_errors"]["tracebacks"] == figures["handler_errors"]["exceptions"] == 0


def test_dynamodb_outage_fails_closed_and_recovers_without_a_restart(tmp_path):
    figures = faults.run_outage(faults.OutageOptions(
        backend="moto", modes=("freeze", "kill"), cli_modes=("kill",), progress=False), home=tmp_path / "home")
    assert figures["failures"] == [], figures
    freeze, kill = figures["modes"]
    for mode in (freeze, kill):
        assert mode["connect_down"]["status"] == 500  # the handler refuses; not a 504 from the gateway
        assert mode["connect_down"]["seconds"] < 12
        assert mode["first_connect_after"]["status"] == 101
        assert mode["relay_after"]["received"] == 1
        assert mode["prune_after"]["exact"]
    assert kill["cli_down"]["exit"] != 0 and kill["cli_down"]["line"].startswith("error:")
    assert kill["cli_down"]["stderr_lines"] == 1 and not kill["cli_down"]["traceback"]
    assert freeze["registry_survived"] and not kill["registry_survived"]  # moto's tables die with it
