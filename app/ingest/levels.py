"""Map the many ways programs name a severity onto Logdash's five levels."""

from app.numbers import whole_number

_WORDS = {
    "debug": "debug",
    "trace": "debug",
    "verbose": "debug",
    "fine": "debug",
    "finer": "debug",
    "finest": "debug",
    "v": "debug",
    "d": "debug",
    "t": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "config": "info",
    "i": "info",
    "n": "info",
    "warning": "warning",
    "warn": "warning",
    "w": "warning",
    "error": "error",
    "err": "error",
    "severe": "error",
    "e": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "alert": "critical",
    "emerg": "critical",
    "emergency": "critical",
    "panic": "critical",
    "f": "critical",
    "c": "critical",
}

# OpenTelemetry severity numbers come in bands of four: TRACE 1-4 ... FATAL 21-24.
_OTEL_BANDS = ("debug", "debug", "info", "warning", "error", "critical")


def normalize_level(value) -> str | None:
    """Return the Logdash level for a level name or OTel severity number, or None if unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _WORDS:
            return _WORDS[word]
        value = whole_number(word)
        if value is None:
            return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 1 <= value <= 24:
        return _OTEL_BANDS[(value - 1) // 4]
    return None
