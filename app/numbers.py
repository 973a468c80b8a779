"""Reading whole numbers from text that anyone may send."""

# Enough for any count, id or limit here and for epoch nanoseconds (19 digits); int() of a
# very long string is slow and, past 4300 digits, an error.
MAX_DIGITS = 30


def whole_number(text: str) -> int | None:
    """The non-negative whole number `text` spells in decimal digits, or None.

    str.isdigit() is not enough: it accepts digits such as '²' that int() refuses.
    """
    text = text.strip()
    if not text.isdecimal() or len(text) > MAX_DIGITS:
        return None
    return int(text)
