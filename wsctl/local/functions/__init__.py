"""The emulator's Lambda service: functions, their execution environments (worker
processes on the Runtime API), and the Invoke API (see service.py)."""

from .errors import FunctionError  # noqa: F401
from .service import FunctionInvoker, LambdaService  # noqa: F401
