"""`wsctl local up`: the whole API on this machine (emulator.py composes it).

The package's modules load on demand: the rules (rules.py), routing and events are pure and
cheap to import; the emulator's services (aiohttp, moto, the Lambda service) load only when an
emulator starts.
"""


def __getattr__(name):  # `from wsctl.local import run` without importing the emulator up front
    if name in ("LocalOptions", "Emulator", "run", "stop_running"):
        from . import emulator

        return getattr(emulator, name)
    raise AttributeError(name)
