"""The API model and its readers (see model.py)."""

from .model import (AUTH_MODES, SPECIAL_ROUTES, ApiSpec, Authorizer, FunctionSpec, Route,  # noqa: F401
                    TableSpec)
from .routefile import check_auth, load_spec  # noqa: F401
from .bundled import default_spec  # noqa: F401
