"""Times as the registry and API Gateway hold them, made readable (wsctl.render): pure."""

from decimal import Decimal

import pytest

from wsctl import render

AT = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("value, seconds", [
    (AT, AT),  # ttl: seconds
    (Decimal(AT * 1000 + 250), AT + 0.25),  # connectedAt: milliseconds, as DynamoDB returns numbers
    ("2026-01-01T00:00:00.250Z", AT + 0.25),  # GetConnection: ISO 8601
    (None, None), ("", None), ("yesterday", None),
])
def test_epoch_reads_seconds_milliseconds_and_iso(value, seconds):
    assert render.epoch(value) == seconds


def test_relative_times_and_what_is_not_a_time():
    assert render.relative(AT * 1000, AT + 192) == "3 m 12 s ago"
    assert render.relative(AT + 7199, AT) == "in 1 h 59 m"
    assert render.relative("later", AT) == "later" and render.relative(None, AT) == "-"


def test_json_times_are_iso_and_ttl_becomes_expires_at():
    row = {"connectionId": "c1", "connectedAt": Decimal(AT * 1000), "lastActiveAt": None, "ttl": AT + 3600}
    assert render.json_times(row) == {"connectionId": "c1", "connectedAt": "2026-01-01T00:00:00.000Z",
                                      "lastActiveAt": None, "expiresAt": "2026-01-01T01:00:00.000Z"}
    assert render.json_times({"ttl": None}) == {"expiresAt": None} and render.json_times(None) is None
    assert row["ttl"] == AT + 3600  # the row itself is left as it was
