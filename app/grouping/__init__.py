"""Message templates: mask the variable parts of a log message and fingerprint what is left."""

import bisect
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
# Keys that conventionally hold the message itself, in logfmt (`msg="payment failed"
# order=12`) or JSON text (`{"msg": "user not found"}`). Their value is the event's own
# words, not a variable: masked whole, it would leave only the keys, and make one event of
# every line with the same keys. Its variable parts are masked like any other text's.
MESSAGE_KEYS = ("msg", "message", "error", "err", "reason", "event", "exception",
                "description", "detail", "log")
_QUOTED = r"\"(?P<quoted>(?:[^\"\\]|\\.)*)\""
# logfmt: found from its "=", which is searched for quickly; the key is checked behind it,
# and must start the line or follow a space or a separator (not "?error=" in a URL, nor
# "user_msg=").
_LOGFMT_MESSAGE = re.compile(
    "=(?:" + "|".join(rf"(?<=(?<![^\s\[({{,;|]){key}=)" for key in MESSAGE_KEYS) + ")"
    rf"(?:{_QUOTED}|(?P<bare>[^\s\"',;]+))",
    re.ASCII | re.IGNORECASE,
)
_JSON_MEMBER = re.compile(rf"\"(?P<key>\w+)\"\s*:\s*{_QUOTED}", re.ASCII)
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


def _mask_text(text: str) -> str:
    """Mask the variable parts of a stretch of text."""
    if "=" in text:  # the check is far cheaper than a pass that finds nothing
        text = _VALUE.sub("=" + MASK, text)
    masked = _VARIABLE.sub(MASK, text)
    if masked.count(MASK) > 1:
        masked = _ADJACENT.sub(MASK, masked)
    return masked


# A backslash and the character it escapes, or a double quote.
_ESCAPE_OR_QUOTE = re.compile(r'\\.|"', re.S)


def _quote_positions(line: str) -> list[int]:
    """Where the double quotes of line are that open or close a string (a quote escaped
    with a backslash is not one; one after an escaped backslash, "C:\\\\", is)."""
    return [found.start() for found in _ESCAPE_OR_QUOTE.finditer(line) if found[0] == '"']


def _message_values(line: str) -> list[tuple[int, int, str]]:
    """Where the values of message keys lie in line: (start, end, the quote around it).
    A key inside another value ("a=\"x msg=y\"", a JSON string holding msg=) is text."""
    found_keys = []
    if "=" in line:  # the checks are far cheaper than passes that find nothing
        for found in _LOGFMT_MESSAGE.finditer(line):
            quoted = found["quoted"] is not None
            found_keys.append((found.start(), *found.span("quoted" if quoted else "bare"),
                               '"' if quoted else ""))
    if '"' in line:
        for found in _JSON_MEMBER.finditer(line):
            # A member starts an object or follows a comma.
            before = line[:found.start()].rstrip()
            if found["key"].lower() in MESSAGE_KEYS and before[-1:] in ("", "{", ","):
                found_keys.append((found.start(), *found.span("quoted"), '"'))
    if not found_keys:
        return []
    quotes = _quote_positions(line)
    # An odd number of quotes before a key puts it inside a string.
    spans = [(start, end, quote) for key, start, end, quote in found_keys
             if bisect.bisect_left(quotes, key) % 2 == 0]
    spans.sort()
    return spans


@functools.lru_cache(maxsize=4096)
def mask_line(line: str) -> str:
    """Mask the variable parts of one line and normalise its whitespace; the values of
    message keys keep their words."""
    values = _message_values(line)
    if not values:
        return " ".join(_mask_text(line).split())
    pieces, done = [], 0
    for start, end, quote in values:
        if start - len(quote) < done:  # inside a value already kept (JSON in a logfmt one)
            continue
        # The quotes stay out of the text masked on either side, where one could
        # otherwise pair with the next value's.
        pieces += [_mask_text(line[done:start - len(quote)]), quote,
                   _mask_text(line[start:end]), quote]
        done = end + len(quote)
    pieces.append(_mask_text(line[done:]))
    return " ".join("".join(pieces).split())


def template_of(message: str) -> str:
    """Return message with its variable parts masked as <*>: the template of its event."""
    return mask_line(first_line(message))


@functools.lru_cache(maxsize=4096)  # templates repeat far more than messages do
def fingerprint(template: str) -> str:
    """Return a stable 16-hex-digit digest of a template, the same in every process."""
    data = template.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()
