"""Message templates: mask the variable parts of a log message and fingerprint what is left."""

import functools
import hashlib
import re

MASK = "<*>"
# Only the start of the first line counts: it names the event, and the rest (a traceback, a
# dumped payload) is detail. The cap also bounds the cost per message whatever its size.
MAX_CHARS = 500

_UNIT = (
    r"(?:[KMGTPkmgtp]i?[Bb](?:ytes)?|[Bb](?:ytes?)?|[KMG]?bps|[mµun]?s|secs?|seconds?"
    r"|mins?|minutes?|h|hrs?|hours?|days?|[KMG]?Hz|%)"
)
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:day|sday|nesday|rsday|urday)?"
_MONTH = (
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"(?:uary|ruary|ch|il|e|y|ust|t|tember|ober|ember)?"
)
_TOK = r"[\w\-/@+]"  # a token character; single dots join a token's segments
_LEAD = r"[A-Za-z_\-/@+]"  # a token character that is not a digit
_PATH = r"[\w.\-$~@+%]"

# The value of key=value, up to a space or separator, with one level of brackets taken as a
# unit so that "ws=WorkSource{10113}" loses the whole value, not "WorkSource{10113". It has a
# pass of its own because a pattern that starts with a literal "=" is searched for quickly.
_VALUE = re.compile(
    r"=(?![=\s])(?:\"[^\"]*\"|'[^']*'"
    r"|(?:[^\s,;(){}\[\]<>\"']|\([^()\s]*\)|\{[^{}\s]*\}|\[[^\[\]\s]*\])+)",
    re.ASCII,
)

# Every other rule is a branch of one pattern, so the message is scanned once more. The regex
# engine tries the pattern at every position. The two lookbehinds admit only the start of a
# token, in one step: that keeps the middle of a word cheap, and keeps the work linear, since
# no branch rescans a long token from each of its hyphens or dots. A branch that starts with
# a character class is skipped in one step when the character does not fit. Where rules
# overlap, the first branch that matches wins.
_VARIABLE = re.compile(
    rf"(?<!{_TOK})(?<!{_TOK}\.)(?:"
    r"\"[^\"]*\"(?!\s*:)"  # double-quoted value; a quoted key (followed by ":") is kept
    r"|'[^']*'(?!\w|\s*:)"  # single-quoted value, not an apostrophe
    r"|[~.]\.?/" + _PATH + r"+(?:/" + _PATH + r"*)*(?:\?[^\s\"'<>]*)?"  # ./relative path
    r"|/" + _PATH + r"+(?:/" + _PATH + r"*)*(?:\?[^\s\"'<>]*)?"  # /absolute path?query
    # A token with a digit: numbers, ids, hex, UUIDs, IPv4, versions, hosts like web-42,
    # dates and times, blk_-123, 0x7f3a, core.2275. A token is segments joined by single
    # dots, so a dot leader ("depth.......0") is not taken with it. A unit after a number
    # goes with the number.
    rf"|{_LEAD}*+(?:\.{_LEAD}++)*+\.?\d{_TOK}*+(?:\.{_TOK}++)*+(?:\s?{_UNIT}(?!\w))?={{0,2}}"
    r"|[\w+-]++(?:\.[\w+-]++)*+(?:://[^\s\"'<>]+|@[\w-]+(?:\.[\w-]+)*)"  # URL; e-mail
    r"|[0-9A-Fa-f:](?<!:.)[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,}+(?![\w:])"  # IPv6, MAC, EUI
    r"|[A-Za-z]:\\[^\s\"'<>|]*"  # C:\Windows path
    r"|(?=[ADFJMNOSTW])(?:" + _DAY + r",?(?=\s+(?:" + _MONTH + r"|\d))"  # Thu Aug 4 2005
    r"|" + _MONTH + r"\.?(?=\s+\d))"
    r")",
    # ASCII: \w and \d are quicker to test, and a run of CJK text with a number in it is not
    # one token to be masked whole.
    re.ASCII,
)
# Masks apart only by punctuation or spaces are one variable part: "10.0.0.5:8080",
# "12:30:00,123", a list of ids of any length.
_ADJACENT = re.compile(r"<\*>(?:[\s\-:.,/_|#;+@]*<\*>)+")


def first_line(message: str) -> str:
    """Return the first non-blank line of message, cut to at most MAX_CHARS characters."""
    head = message[: MAX_CHARS + 1].strip()
    line = head.splitlines()[0] if head else ""
    if len(line) > MAX_CHARS:
        # Drop the word the cut went through, so that the template does not end in a fragment.
        line = line[:MAX_CHARS].rpartition(" ")[0] or line[:MAX_CHARS]
    return line


@functools.lru_cache(maxsize=4096)
def mask_line(line: str) -> str:
    """Mask the variable parts of one line and normalise its whitespace."""
    if "=" in line:  # the check is far cheaper than a pass that finds nothing
        line = _VALUE.sub("=" + MASK, line)
    masked = _VARIABLE.sub(MASK, line)
    if masked.count(MASK) > 1:
        masked = _ADJACENT.sub(MASK, masked)
    return " ".join(masked.split())


def template_of(message: str) -> str:
    """Return message with its variable parts masked as <*>: the template of its event."""
    return mask_line(first_line(message))


@functools.lru_cache(maxsize=4096)  # templates repeat far more than messages do
def fingerprint(template: str) -> str:
    """Return a stable 16-hex-digit digest of a template, the same in every process."""
    data = template.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()
