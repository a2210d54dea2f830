"""Shared test support: the helpers test modules import (none of them holds tests).

tests/conftest.py puts tests/ on sys.path, so a test module imports them as `support.NAME`:

- emulator_fixtures: the real emulator (`wsctl local up`) in a subprocess, as pytest fixtures
  (registered by conftest's `pytest_plugins`); `ROOT` is the repository's root.
- emulator_kit: the recording handler and the `websockets` client wrappers of the emulator
  conformance tests (tests/test_emulator_*.py); several emulators started at once.
- raw_client: a minimal RFC 6455 client over raw sockets, for frames no library would send
  (bench/fuzz_emulator.py uses it too).
- apigw_events: API Gateway's WebSocket events as Lambda receives them, including the
  documented example events (docs/apigw-websocket.md#example-events), for handler unit tests.
- live_support, live_terminal: the operating commands run in-process against an emulator, and
  a real pty rendered as a screen for `wsctl connect`.
- moto_shim: what moto's API Gateway v2 double lacks, patched in before any mock starts.
- proc_watch: every process a command starts, watched from /proc.
"""
