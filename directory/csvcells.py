"""Text cells in CSV files that people open in spreadsheets: the audit log's export and the
listing exports both write them, and imports read them back.

A cell that starts with = + - @ (or a tab or carriage return) is run as a formula by
spreadsheet programs, so such a cell is written with a leading apostrophe, which they show as
text. A cell that already starts with an apostrophe gets one too, so that reading a file back
(`csv_unsafe`) drops exactly one and every value survives the trip unchanged.
"""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def csv_safe(value: str) -> str:
    return _QUOTE + value if value.startswith((*_FORMULA_STARTS, _QUOTE)) else value


def csv_unsafe(cell: str) -> str:
    """The value a `csv_safe` cell was written from."""
    return cell[1:] if cell.startswith(_QUOTE) else cell
