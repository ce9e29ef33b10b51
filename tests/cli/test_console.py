"""Tables printed whole, piped or on a narrow terminal; a reader that goes away early
(``| head``) ends the command quietly with status 141."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from fairbill.cli.console import BROKEN_PIPE_STATUS, print_table
from fairbill.cli.main import app

LONG = ("VoIP provider (Fulfillment Policy)", "2026-11-01", "Africa/Johannesburg")


def _table() -> Table:
    table = Table("id", "name", "effective", "timezone", "country", "clauses")
    for n in range(3):
        table.add_row(f"policy{n}", LONG[0], LONG[1], LONG[2], "ZA", "24")
    return table


def test_a_piped_table_has_its_natural_width_one_line_per_row() -> None:
    out = io.StringIO()
    print_table(Console(file=out, width=80), _table())
    text = out.getvalue()
    assert "…" not in text
    rows = [line for line in text.splitlines() if "policy" in line]
    assert len(rows) == 3 and all(all(v in row for v in LONG) for row in rows)
    assert max(len(line) for line in text.splitlines()) > 80


def test_a_narrow_terminal_wraps_long_cells_and_cuts_none() -> None:
    out = io.StringIO()
    console = Console(file=out, width=40, force_terminal=True, color_system=None)
    print_table(console, _table())
    text = out.getvalue()
    assert "…" not in text
    for word in ("effective", "2026-11-01", "Africa/Johannesburg", "(Fulfillment", "clauses"):
        assert word in text
    assert console.width == 40  # widened for the table only


def test_policy_list_is_whole_without_a_terminal() -> None:
    result = CliRunner().invoke(app, ["policy", "list"], env={"COLUMNS": None})
    assert result.exit_code == 0
    assert "…" not in result.output
    assert "effective" in result.output and "Africa/Johannesburg" in result.output
    assert "VoIP provider (Fulfillment Policy)" in result.output


def test_a_reader_gone_early_ends_the_command_quietly_with_141() -> None:
    """The pipe is closed before the command writes (importing fairbill takes longer than
    this test takes to close it): every write fails."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fairbill.cli.main", "policy", "explain", "qomon"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == BROKEN_PIPE_STATUS
    assert stderr == b""
