"""``fairbill policy ...`` (written by the policy work)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Read, check and explain policies.", no_args_is_help=True)
