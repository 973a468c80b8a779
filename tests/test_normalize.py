"""Level words, event times and line normalisation, without a database."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.ingest.levels import normalize_level
from app.ingest.records import InvalidLine, Limits, clean_text, normalize, truncate_bytes
from app.ingest.timestamps import parse_timestamp

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_message_bytes=1024, oldest=NOW - timedelta(days=365),
                newest=NOW + timedelta(hours=24))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("debug", "debug"), ("TRACE", "debug"), ("V", "debug"), ("d", "debug"),
        ("info", "info"), ("Notice", "info"), ("I", "info"), ("informational", "info"),
        ("warn", "warning"), ("WARNING", "warning"), ("W", "warning"),
        ("err", "error"), ("Error", "error"), ("E", "error"),
        ("fatal", "critical"), ("crit", "critical"), ("emerg", "critical"), ("F", "critical"),
        ("alert", "critical"), (" error ", "error"),
        (1, "debug"), (5, "debug"), (9, "info"), (13, "warning"), (17, "error"),
        (21, "critical"), (24, "critical"), ("17", "error"), (17.0, "error"),
        # pino and bunyan's numbers (over OpenTelemetry's 10 and 20)
        (10, "debug"), (20, "debug"), (30, "info"), ("40", "warning"), (50, "error"),
        (60, "critical"),
    ],
)
def test_known_levels_map_to_the_five_words(given, expected):
    """Level names, syslog words, single letters and OTel numbers all normalise."""
    assert normalize_level(given) == expected


@pytest.mark.parametrize("given", ["verbose-ish", "", "loud", 0, 25, 70, -3, 3.5, True, None,
                                   [1]])
def test_unknown_levels_are_refused(given):
    """Anything else is not a level."""
    assert normalize_level(given) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-27T05:00:00Z", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        # RFC 3339 lets both letters be lower case.
        ("2026-11-27t05:00z", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        ("2026-11-27T07:00:00+02:00", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        ("2026-11-27 05:00:00", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        ("2026-11-27T05:00:00.250", datetime(2026, 11, 27, 5, 0, 0, 250000, tzinfo=UTC)),
        (1764219600, datetime(2025, 11, 27, 5, tzinfo=UTC)),
        (1764219600.5, datetime(2025, 11, 27, 5, 0, 0, 500000, tzinfo=UTC)),
        (1764219600250, datetime(2025, 11, 27, 5, 0, 0, 250000, tzinfo=UTC)),
        (1764219600250001, datetime(2025, 11, 27, 5, 0, 0, 250001, tzinfo=UTC)),
        (1764219600250001999, datetime(2025, 11, 27, 5, 0, 0, 250001, tzinfo=UTC)),
        ("1764219600250", datetime(2025, 11, 27, 5, 0, 0, 250000, tzinfo=UTC)),
        ("1764219600.5", datetime(2025, 11, 27, 5, 0, 0, 500000, tzinfo=UTC)),
        # Eight digits written as text: a compact date, not a second of 1970.
        ("20261127", datetime(2026, 11, 27, tzinfo=UTC)),
        (20261127, datetime(1970, 8, 23, 12, 5, 27, tzinfo=UTC)),
        ("99999999", datetime(1973, 3, 3, 9, 46, 39, tzinfo=UTC)),  # no such date: epoch
        # RFC 2822, as `date -R` writes it; -0000 (zone unknown) is UTC.
        ("Fri, 27 Nov 2026 07:00:00 +0200", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        ("27 Nov 2026 05:00:00 GMT", datetime(2026, 11, 27, 5, tzinfo=UTC)),
        ("Fri, 27 Nov 2026 05:00:00 -0000", datetime(2026, 11, 27, 5, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_accepted_form(given, expected):
    """ISO 8601 with or without zone (naive is UTC) and epoch s/ms/us/ns."""
    assert parse_timestamp(given) == expected


@pytest.mark.parametrize("given", [
    "yesterday", "", "NaN", -5, float("inf"), 10**25, True, {},
    pytest.param(10**400, id="10**400"), pytest.param("1" + "0" * 400, id="'1e400' in digits"),
    "1e400",  # too large for a float
    "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00",  # off the calendar in UTC
    "Fri, 31 Nov 2026 05:00:00 +0000", "Nov 27",  # no such day; no year or time
])
def test_bad_timestamps_raise(given):
    """Unreadable times raise ValueError."""
    with pytest.raises(ValueError):
        parse_timestamp(given)


@pytest.mark.parametrize(("given", "reason"), [
    ("1e400", "finite"),  # a float that is infinity
    ("1" + "0" * 30, "too large for epoch time"),  # digits beyond a whole number's reading
    ("-5", "positive"),
])
def test_bad_epoch_text_says_what_is_wrong(given, reason):
    """Epoch time written as text is refused for what is wrong with the number, not as an
    unreadable time."""
    with pytest.raises(ValueError, match=reason):
        parse_timestamp(given)


def deeply_nested(levels: int) -> list:
    """An array holding an array, `levels` deep."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("field", ["message", "host", "logger", "trace_id"])
def test_text_fields_nested_too_deep_are_refused_by_name(field):
    """An object or array in a text field is kept as JSON, unless nested so deep that the
    encoder would fail on it (990 levels did): then the line is refused, naming the field."""
    line = {"service": "api", "message": "hi", field: deeply_nested(990)}
    with pytest.raises(InvalidLine, match=f"{field} is nested deeper than 64 levels"):
        normalize(line, None, LIMITS, NOW)
    line[field] = deeply_nested(64)
    assert normalize(line, None, LIMITS, NOW).service == "api"


def test_normalize_picks_columns_and_keeps_the_rest_as_attributes():
    """Known keys fill columns; aliases work; everything else lands in attributes."""
    record = normalize(
        {"service": "api", "msg": "hi", "severity": "warn", "ts": "2026-11-27T11:00:00Z",
         "hostname": "web-1", "logger": "api.views", "trace_id": "abc", "user": 7,
         "attributes": {"region": "eu"}},
        None, LIMITS, NOW,
    )
    assert record.service == "api"
    assert record.message == "hi"
    assert record.level == "warning"
    assert record.timestamp == datetime(2026, 11, 27, 11, tzinfo=UTC)
    assert (record.host, record.logger, record.trace_id) == ("web-1", "api.views", "abc")
    assert json.loads(record.attributes) == {"region": "eu", "user": 7}


def test_normalize_defaults_level_time_and_service():
    """No level means info, no time means the receive time, service may come from the URL."""
    record = normalize({"log": "plain"}, "from-url", LIMITS, NOW)
    assert (record.service, record.level, record.timestamp) == ("from-url", "info", NOW)
    assert record.attributes == "{}"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ({"message": "x"}, "service is required"),
        ({"service": "  ", "message": "x"}, "service is empty"),
        ({"service": 5, "message": "x"}, "service must be a string"),
        ({"service": "a\nb", "message": "x"}, "control characters"),
        ({"service": "..", "message": "x"}, "service cannot be '..'"),
        ({"service": "s" * 101, "message": "x"}, "longer than 100"),
        ({"service": "a"}, "message is required"),
        ({"service": "a", "message": "   "}, "message is empty"),
        ({"service": "a", "message": "x", "level": "loud"}, "unknown level 'loud'"),
        ({"service": "a", "message": "x", "time": "soon"}, "not ISO 8601"),
        ({"service": "a", "message": "x", "time": "2024-01-01T00:00:00Z"}, "older than"),
        ({"service": "a", "message": "x", "time": "2026-12-01T00:00:00Z"}, "future"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_invalid_lines_name_their_problem(line, error):
    """Each invalid line raises InvalidLine saying what is wrong."""
    with pytest.raises(InvalidLine, match=error):
        normalize(line, None, LIMITS, NOW)


def test_structured_message_is_kept_as_json():
    """A message that is an object is stored as its JSON text."""
    record = normalize({"service": "a", "message": {"event": "login", "ok": True}}, None,
                       LIMITS, NOW)
    assert record.message == '{"event": "login", "ok": true}'


def test_clean_text_replaces_nul_and_lone_surrogates():
    """PostgreSQL text can hold neither NUL nor unpaired surrogates."""
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("x\ud800y") == "x\ufffdy"
    assert clean_text("ok ✓") == "ok ✓"


def test_truncate_bytes_marks_what_was_cut():
    """Long messages are cut to the byte limit with a marker; short ones are untouched."""
    assert truncate_bytes("short", 100) == "short"
    cut = truncate_bytes("é" * 100, 60)
    assert len(cut.encode()) <= 60
    kept, marker = cut.split("…")
    assert kept == "é" * len(kept) and kept
    assert marker == f" [truncated {200 - len(kept.encode())} bytes]"
    # Near a limit the number's own width matters: still within it, still exact.
    for limit in range(26, 50):
        cut = truncate_bytes("x" * 1000, limit)
        kept, marker = cut.split("…")
        assert len(cut.encode()) <= limit
        assert marker == f" [truncated {1000 - len(kept)} bytes]"


def test_attributes_with_escaped_nul_become_storable():
    """An escaped NUL inside attributes is replaced; an escaped backslash before u0000 is not."""
    record = normalize({"service": "a", "message": "m", "k": "x\x00y", "lit": "\\u0000"}, None,
                       LIMITS, NOW)
    assert "\\u0000" not in record.attributes.replace("\\\\u0000", "")
    assert '"x\\ufffdy"' in record.attributes
    assert '"\\\\u0000"' in record.attributes


def test_attribute_count_and_depth_are_bounded():
    """Lines with too many or too deeply nested attributes are refused, naming the limit."""
    many = {"service": "a", "message": "m", **{f"k{i}": i for i in range(101)}}
    with pytest.raises(InvalidLine, match="line has 101 attributes; at most 100"):
        normalize(many, None, LIMITS, NOW)
    deep = {"service": "a", "message": "m", "d": [[[[[[[[["bottom"]]]]]]]]]}
    with pytest.raises(InvalidLine, match="nested deeper than 8 levels"):
        normalize(deep, None, LIMITS, NOW)
    ok = {"service": "a", "message": "m", "d": [[[[[[["fine"]]]]]]],
          **{f"k{i}": i for i in range(99)}}
    assert '"fine"' in normalize(ok, None, LIMITS, NOW).attributes
