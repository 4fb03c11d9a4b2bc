"""Tables for listings: rich on a terminal, plain aligned columns when piped (ids whole, nothing wrapped)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [headers, *rows])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: Optional[str] = None) -> None:
    """Print ``rows``; the first column (the id a user copies into the next command) is never cut or wrapped."""
    isatty = getattr(sys.stdout, "isatty", None)
    if not (isatty and isatty()):
        print(plain_table([h.upper() for h in headers], rows))
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
