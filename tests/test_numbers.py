"""Whole numbers read from requests: digits int() refuses are a 400, never a 500."""

import pytest

from app.numbers import whole_number
from tests.helpers import post_logs

SUPERSCRIPT = "\u00b2"
TOO_LONG = "9" * 5000


def test_whole_number_reads_decimal_digits_only():
    """Plain digits are read; other 'digits', signs, blanks and huge strings are not."""
    assert whole_number(" 42 ") == 42
    assert whole_number("0") == 0
    for text in (SUPERSCRIPT, "4" + SUPERSCRIPT, "-1", "1.5", "", " ", TOO_LONG, "1e3"):
        assert whole_number(text) is None, text


@pytest.mark.parametrize("bad", [SUPERSCRIPT, TOO_LONG])
@pytest.mark.parametrize("path", [
    "/api/logs/dashboard/top-errors?limit={}",
    "/api/logs/alerts/silences?limit={}",
    "/api/logs/alerts/deliveries?violation_id={}",
    "/api/logs/alerts/config/api/backtest?for_minutes={}",
    "/api/logs/alerts/config/api/backtest?error_threshold_per_min={}",
])
def test_query_numbers_that_int_refuses_are_a_400(client, path, bad):
    """Each is refused with a message saying what is expected."""
    post_logs(client, [{"service": "api", "level": "error", "message": "boom"}])
    response = client.get(path.format(bad))
    assert response.status_code == 400, response.json
    # In the error itself, or in the per-field reasons next to it.
    assert "whole number" in response.get_data(as_text=True)


@pytest.mark.parametrize("bad", [SUPERSCRIPT, TOO_LONG])
def test_body_numbers_that_int_refuses_are_a_400(client, bad):
    """Config thresholds and silence durations given as strings are checked the same way."""
    config = client.post("/api/logs/alerts/config",
                         json={"service": "api", "error_threshold_per_min": bad})
    assert config.status_code == 400
    assert "whole number" in config.json["fields"]["error_threshold_per_min"]
    silence = client.post("/api/logs/alerts/silences", json={"duration_minutes": bad})
    assert silence.status_code == 400
    assert "whole number" in silence.json["fields"]["duration_minutes"]
