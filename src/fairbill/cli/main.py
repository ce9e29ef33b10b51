"""The ``fairbill`` command. Adapters only: parse, call services, render.

Exit status: 0 success, 1 a check that failed (``fairbill test``), 2 a usage or input error.
"""

from __future__ import annotations

import typer

from fairbill.cli import db as db_cli
from fairbill.cli import policy as policy_cli
from fairbill.cli import serve as serve_cli
from fairbill.cli import simulate as simulate_cli

app = typer.Typer(
    name="fairbill",
    help="Subscription billing that runs the merchant's published refund policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(policy_cli.app, name="policy")
app.add_typer(db_cli.app, name="db")
simulate_cli.register(app)
serve_cli.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
