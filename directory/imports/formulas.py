"""Spreadsheet formulas in cells: export quotes a value a spreadsheet would run, import takes the quote off again."""

from __future__ import annotations

import re

# Quotes, then a character that makes spreadsheets evaluate a cell. Export adds one quote to any such value and
# import removes one, so values that already start with quotes survive the round trip too.
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")


def unescape_formula(cell: str) -> str:
    """Remove the quote that export put before a cell that a spreadsheet would run as a formula."""
    return cell[1:] if cell[:1] == "'" and _FORMULA.match(cell) else cell


def escape_formula(value: str) -> str:
    """A value as an exported cell: quoted against formulas, so that unescape_formula gives the value back."""
    return "'" + value if _FORMULA.match(value) else value
