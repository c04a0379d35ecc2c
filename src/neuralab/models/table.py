"""Columns of text for the terminal and for log files: the zoo's table and every model summary.

Apart from the summaries, and free of torch, so that `neuralab zoo` prints without importing it.
"""

from __future__ import annotations

import io
import os
import shutil
import sys


def live_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal that redraws (colours, a bar, a screen cleared): not a file
    or a pipe, nor a dumb terminal (Emacs's shell, some IDE consoles), which shows escapes as text."""
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") not in ("dumb", "unknown")


def render_table(title: str, header, rows, right=(), footer=(), rich: bool | None = None, file=None) -> str:
    """Columns of text as a rich table when ``file`` (default stdout) is a terminal or ``rich`` is
    True, else plain aligned columns for log files and reports. ``right``: right-aligned columns;
    the last column is never padded."""
    stream = file if file is not None else sys.stdout
    if rich is None:
        rich = live_terminal(stream)
    if rich:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for i, h in enumerate(header):
            table.add_column(h, justify="right" if i in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*row)
        buf = io.StringIO()
        console = Console(file=buf, force_terminal=True, width=max(100, shutil.get_terminal_size((120, 24)).columns))
        console.print(table)
        for line in footer:
            console.print(line, highlight=False, markup=False)
        return buf.getvalue()
    last = len(header) - 1
    widths = [max(len(str(x[i])) for x in (header, *rows)) for i in range(last)]

    def fmt(row):
        cells = [f"{row[i]:>{w}}" if i in right else f"{row[i]:<{w}}" for i, w in enumerate(widths)]
        return "  ".join([*cells, str(row[last])]).rstrip()

    lines = [fmt(header), *map(fmt, rows)]
    rule = "=" * max(map(len, lines))
    return "\n".join([title, rule, lines[0], rule, *lines[1:], rule, *footer]) + "\n"
