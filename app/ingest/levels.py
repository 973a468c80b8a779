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
# The numbers pino and bunyan (Node.js) write as "level": trace 10 ... fatal 60. They win
# over OpenTelemetry's 10 (INFO2) and 20 (ERROR4), which senders hardly use: read as
# OpenTelemetry, every pino debug line would count as an error.
_NODE_LEVELS = {10: "debug", 20: "debug", 30: "info", 40: "warning", 50: "error",
                60: "critical"}


def otel_level(severity_number: int) -> str:
    """The level of an OpenTelemetry severity number from 1 to 24."""
    return _OTEL_BANDS[(severity_number - 1) // 4]


def normalize_level(value) -> str | None:
    """Return the Logdash level for a level name, a pino/bunyan level number or an OTel
    severity number, or None if unknown."""
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
    if isinstance(value, int) and value in _NODE_LEVELS:
        return _NODE_LEVELS[value]
    if isinstance(value, int) and 1 <= value <= 24:
        return otel_level(value)
    return None
