"""Whole numbers from outside text, parsed in one place: query and path parameters, form fields,
headers, operators' command arguments, members' answers.

``str.isdigit()`` is true for "²", "١٢" and "１２": ``int()`` refuses the first and reads the
others, and refuses any string over 4,300 digits (``sys.int_info.str_digits_check_threshold``).
Here only ASCII digits are digits, their count is bounded before ``int()`` sees them, and the
value must lie in the caller's range: the caller gets a number it can use, or None and says
what it wanted.
"""
from __future__ import annotations

# An id the database can hold: autoincrement ids are 32-bit on PostgreSQL.
MAX_ID = 2**31 - 1
# Far more than any range here needs, far fewer than int() refuses.
MAX_DIGITS = 30


def is_digits(text: str) -> bool:
    """Only ASCII digits, at least one."""
    return text.isascii() and text.isdigit()


def parse_int(text: str, low: int, high: int, *, signed: bool = False) -> int | None:
    """The whole number ``text`` spells in ASCII digits (after one ``+`` or ``-`` when ``signed``),
    if it lies in ``low``..``high``; else None. No spaces, underscores or other digits."""
    digits = text[1:] if signed and text[:1] in ("+", "-") else text
    if len(digits) > MAX_DIGITS or not is_digits(digits):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(text: str) -> int | None:
    """A row id (1 to ``MAX_ID``) from ``text``; None if it cannot be one."""
    return parse_int(text, 1, MAX_ID)


# Members type on Chinese input methods, which give full-width digits: answers accept them.
FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
