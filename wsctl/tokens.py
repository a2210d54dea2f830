"""Connection tokens for a target's users (`wsctl token`, `wsctl connect --user`): signed with
the target's key set for its audience (lambda_src.jwts mints and checks them), for a
lifetime people write as 90s, 15m, 1h or 1d."""

import re

from .errors import UsageError

DEFAULT_LIFETIME = "1h"
_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(text: str) -> int:
    """Seconds from '90', '90s', '15m', '1h' or '1d'."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError("duration %r: use seconds or a number with s, m, h or d (e.g. 90s, 15m, 1h)" % text)
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def mint(target, user: str, seconds: int | None = None) -> str:
    """A token for `user` on `target`, valid `seconds` (default DEFAULT_LIFETIME, at most 24 h)."""
    from lambda_src import jwts  # PyJWT: imported when a token is minted, not for `wsctl --help`

    if seconds is None:
        seconds = parse_duration(DEFAULT_LIFETIME)
    try:
        return jwts.mint(target.keyset(), target.audience_stack, user, seconds)
    except ValueError as error:
        raise UsageError(str(error)) from None


__all__ = ["DEFAULT_LIFETIME", "parse_duration", "mint"]
