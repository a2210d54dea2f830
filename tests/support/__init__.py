"""Shared test support: helpers the test modules import (not tests themselves).

- raw_client: a minimal RFC 6455 client over raw sockets, for frames no library would send
  (also used by bench/fuzz_emulator.py).
"""
