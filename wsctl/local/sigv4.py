"""How far the emulator checks a management API request's SigV4 signature (pure).

A local emulator cannot know the caller's secret key, so any credentials are
accepted (as with every local AWS emulator); what is checked is what AWS
refuses before it looks at the key: no signature at all, a signature scoped to
another service than execute-api, a malformed Authorization header, and a
request time more than 15 minutes off. Each refusal is a 403 whose
`x-amzn-ErrorType` names the reason, as API Gateway answers.
"""

import re
import time
from datetime import datetime, timezone
from functools import lru_cache

MAX_SKEW_SECONDS = 15 * 60
_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$")


class Rejected(Exception):
    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


@lru_cache(maxsize=512)
def _parse_time(value: str) -> int:
    """X-Amz-Date (yyyyMMddTHHmmssZ) as epoch seconds. Sliced rather than strptime'd and
    cached: this runs for every management request (strptime was half the cost of the
    check) and X-Amz-Date repeats within a second."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not (value[:8] + value[9:15]).isdigit():
        raise ValueError(value)
    moment = datetime(int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                      int(value[13:15]), tzinfo=timezone.utc)  # raises ValueError for a 13th month
    return int(moment.timestamp())


def check(headers, query, now: datetime | None = None) -> str:
    """Return the caller's access key id, or raise Rejected. `headers` is case-insensitive."""
    now_epoch = now.timestamp() if now is not None else time.time()
    authorization = headers.get("Authorization")
    if authorization is None and query.get("X-Amz-Algorithm"):  # a presigned URL
        credential, amz_date = query.get("X-Amz-Credential", ""), query.get("X-Amz-Date", "")
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or not re.fullmatch(
                r"[0-9a-f]{64}", query.get("X-Amz-Signature", "")):
            raise Rejected("IncompleteSignatureException", "Malformed presigned request")
    elif authorization is None:
        raise Rejected("MissingAuthenticationTokenException", "Missing Authentication Token")
    else:
        match = _HEADER.match(authorization.strip())
        if not match:
            raise Rejected("IncompleteSignatureException",
                           "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                           "parameters of an AWS4-HMAC-SHA256 signature")
        credential = match.group("credential")
        if "host" not in match.group("signed").split(";"):
            raise Rejected("IncompleteSignatureException", "The host header must be signed")
        amz_date = headers.get("X-Amz-Date", "")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise Rejected("IncompleteSignatureException", "Credential must have the form "
                       "<access key>/<date>/<region>/<service>/aws4_request")
    if parts[3] != "execute-api":
        raise Rejected("InvalidSignatureException",
                       "Credential should be scoped to correct service: 'execute-api'.")
    try:
        signed_at = _parse_time(amz_date)
    except ValueError:
        raise Rejected("IncompleteSignatureException", "X-Amz-Date is missing or not yyyyMMddTHHmmssZ") from None
    if amz_date[:8] != parts[1]:  # its shape was checked just above
        raise Rejected("InvalidSignatureException", "Credential date does not match X-Amz-Date")
    if abs(now_epoch - signed_at) > MAX_SKEW_SECONDS:
        now_text = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_epoch))
        raise Rejected("InvalidSignatureException", "Signature expired: %s is now earlier than %s "
                       "(or later than the request time plus 15 min)" % (amz_date, now_text))
    return parts[0]
