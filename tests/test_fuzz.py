"""The hostile-input fuzzer (bench/fuzz_emulator.py) at CI size: a few hundred hypothesis
examples over every category (frames, handshakes, management requests), against an
emulator of its own. Any oracle violation fails the test and is listed. It imports the bench
suite on purpose, to run it small (as tests/test_reliability.py does); no other test imports
from bench/ (tests/test_no_orphans.py runs bench/backends.py in a process of its own).

`FUZZ_EXAMPLES` and `FUZZ_SEED` change the size and the seed (not WSCTL_*: the test
environment drops those). The full run is `python bench/fuzz_emulator.py`.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import fuzz_emulator as fz  # noqa: E402


def test_the_emulator_answers_hostile_input_as_api_gateway_would(start_emulator, capsys):
    emulator = start_emulator()  # no --allow-client-broadcast: broadcastAll is a forbidden error frame
    examples = int(os.environ.get("FUZZ_EXAMPLES", "300"))
    seed = int(os.environ.get("FUZZ_SEED", "0"))
    figures = fz.fuzz(fz.Target.of(emulator), examples=examples, seed=seed, batch=50)
    fz.report(figures)
    assert figures["alive"]
    assert figures["examples"] >= examples * 0.9
    assert set(figures["per_category"]) == {c.name for c in fz.Fuzzer.categories()}
    assert not figures["violations"], capsys.readouterr().out
