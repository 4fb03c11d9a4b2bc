"""Tables for listings: rich on a terminal, plain aligned columns when piped (ids whole, nothing wrapped, and no
wider than the terminal's width, or ``COLUMNS``, or 100: long cells keep their end, where a path names its file)."""

from __future__ import annotations

import shutil
import sys
from typing import List, Optional, Sequence

MIN_CELL = 12  # a shortened cell keeps at least this many characters


def plain_width() -> int:
    """The width a piped table fits: ``COLUMNS``, else the terminal's, else 100."""
    return shutil.get_terminal_size((100, 24)).columns


def _fit(widths: List[int], width: Optional[int], shrink: Sequence[int]) -> List[int]:
    fitted = list(widths)
    if width is None:
        return fitted
    while sum(fitted) + 2 * (len(fitted) - 1) > width:
        candidates = [i for i in shrink if fitted[i] > MIN_CELL]
        if not candidates:
            break
        fitted[max(candidates, key=lambda i: fitted[i])] -= 1
    return fitted


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[len(text) - width + 3:]


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: Optional[int] = None,
                shrink: Sequence[int] = ()) -> str:
    """Aligned columns; with ``width``, the columns named by index in ``shrink`` are shortened (their start cut) until
    the table fits, and the others are kept whole."""
    widths = _fit([max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))], width, shrink)
    return "\n".join("  ".join(_cell(str(c), w).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [headers, *rows])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: Optional[str] = None) -> None:
    """Print ``rows``; the first column (the id a user copies into the next command) is never cut or wrapped."""
    isatty = getattr(sys.stdout, "isatty", None)
    if not (isatty and isatty()):
        print(plain_table([h.upper() for h in headers], rows, plain_width(), range(1, len(headers))))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for i, name in enumerate(headers):
        if i == 0:
            table.add_column(name, no_wrap=True, min_width=max([len(name), *(len(str(r[0])) for r in rows)]))
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    Console().print(table)
