"""Rich output that never cuts a value, and a pipe closed early ended quietly.

Rich fits a table into the console's width and cuts the cells that still do not fit
("effecti…"); when it cannot ask a terminal (output piped or redirected) it assumes 80
columns. ``print_table`` prints a table whole instead. ``QuietPipeGroup`` ends a command
whose reader went away without a traceback or a message.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from typer.core import TyperGroup

_UNBOUNDED = 1_000_000  # a width no table reaches: its measurement is then its natural one

# The exit status of a command whose reader closed the pipe: as if SIGPIPE had ended it
# (128 + 13), what a shell reports for ``cat`` or ``grep`` in the same place.
BROKEN_PIPE_STATUS = 141


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell whole. Into a pipe or a file: at the table's natural
    width, one line per row (for grep, cut and less -S). On a terminal: the terminal's
    width, long cells wrapped, but never narrower than the table's narrowest whole form
    (its longest words); below that the terminal folds the lines instead of Rich cutting
    the cells."""
    unbounded = console.options.update_width(_UNBOUNDED)
    for column in table.columns:
        # Rich narrows columns by size, not by content: a word longer than its share
        # would be cut. No column is narrower than its longest word (a no_wrap column
        # than its longest cell).
        cells = [column.header, *column.cells]
        sizes = [Measurement.get(console, unbounded, cell) for cell in cells]
        whole = max((m.maximum if column.no_wrap else m.minimum) for m in sizes)
        column.min_width = max(column.min_width or 0, whole)
    measure = Measurement.get(console, unbounded, table)
    if console.is_terminal:
        width = max(min(console.width, measure.maximum), measure.minimum)
    else:
        width = measure.maximum
    # ``print(width=...)`` cannot go past the console's own width: widen it for this table.
    before = console.width
    console.width = width
    try:
        console.print(table, crop=False)
    finally:
        console.width = before


class QuietPipeGroup(TyperGroup):
    """The ``fairbill`` command group: a command whose reader closed the pipe early
    (``fairbill policy explain ID | head``) ends at once with ``BROKEN_PIPE_STATUS`` and
    no message. (Click would exit 1, which here means "a check failed".)"""

    def invoke(self, ctx: Any) -> Any:  # Typer's own (vendored) click.Context
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # what is still buffered fails here, not at exit
        except BrokenPipeError:
            # The interpreter flushes stdout once more at exit, which would fail again
            # and print an error: point stdout at /dev/null first (as Python's docs advise).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(BROKEN_PIPE_STATUS) from None
        except SystemExit as exc:
            # Rich handles a broken pipe itself (``Console.on_broken_pipe``: stdout to
            # /dev/null, then exit 1), raised while handling the BrokenPipeError.
            if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
                raise SystemExit(BROKEN_PIPE_STATUS) from None
            raise
        return result
