"""Read event times in the forms log shippers send: ISO 8601 / RFC 3339, epoch numbers, or
RFC 2822 as `date -R` and e-mail write it."""

import contextlib
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from app.numbers import whole_number

# Epoch numbers are told apart by size: 1e11 seconds is the year 5138, so anything larger
# is milliseconds, then microseconds, then nanoseconds.
_EPOCH_DIVISORS = ((1e11, 1), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


def parse_timestamp(value) -> datetime:
    """Return an aware UTC datetime, or raise ValueError saying what was wrong."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be a string or a number")
    if isinstance(value, int | float):
        return _from_epoch(value)
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string or a number")
    text = value.strip()
    if not text:
        raise ValueError("timestamp is empty")
    if len(text) == 8 and text.isascii() and text.isdigit():
        # A compact ISO date ("20240101"): read as epoch seconds it would be a day in 1970.
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
    if (seconds := whole_number(text)) is not None:
        return _from_epoch(seconds)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:  # then _from_epoch's refusal names what is wrong with it
        return _from_epoch(number)
    if text[-1] == "z":  # RFC 3339 allows a lower-case zone letter; fromisoformat does not
        text = text[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _rfc2822(text)
    if parsed is None:
        raise ValueError(f"timestamp {value[:40]!r} is not ISO 8601, RFC 2822 or epoch"
                         " time")
    if parsed.tzinfo is None:
        # A time without a zone is taken as UTC, never as the server's local time.
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
        raise ValueError(f"timestamp {value[:40]!r} is outside the years 1 to 9999") from None


def _rfc2822(text: str) -> datetime | None:
    """`Sat, 28 Nov 2026 06:45:08 +0100`, or None when text is not such a time. A zone
    of -0000 ("unknown") is read as UTC, as a time without a zone is."""
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _from_epoch(number: float) -> datetime:
    """Convert epoch seconds, milliseconds, microseconds or nanoseconds to a UTC datetime."""
    # An int is never converted to float before its size is known: a huge one would overflow.
    if (isinstance(number, float) and not math.isfinite(number)) or number < 0:
        raise ValueError("timestamp must be a positive finite epoch time")
    for limit, divisor in _EPOCH_DIVISORS:
        if number < limit:
            if isinstance(number, int) and divisor != 1:
                # Integer division keeps nanosecond inputs exact to the microsecond.
                seconds, rest = divmod(number, int(divisor))
                return datetime.fromtimestamp(seconds, UTC).replace(
                    microsecond=int(rest * 1_000_000 // divisor)
                )
            return datetime.fromtimestamp(number / divisor, UTC)
    raise ValueError("timestamp is too large for epoch time")
