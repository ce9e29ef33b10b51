"""The ``fairbill`` command. Adapters only: parse, call services, render.

Exit status: 0 success, 1 a check that failed (``fairbill test``), 2 a usage or input error;
141 when the reader of the output went away first (``| head``), as for a command ended by
SIGPIPE.
"""

from __future__ import annotations

import typer

from fairbill.cli import audit as audit_cli
from fairbill.cli import db as db_cli
from fairbill.cli import policy as policy_cli
from fairbill.cli import serve as serve_cli
from fairbill.cli import simulate as simulate_cli
from fairbill.cli import whatif as whatif_cli
from fairbill.cli import worker as worker_cli
from fairbill.cli.console import QuietPipeGroup

app = typer.Typer(
    name="fairbill",
    help="Subscription billing that runs the merchant's published refund policy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=QuietPipeGroup,
)
app.add_typer(policy_cli.app, name="policy")
app.add_typer(db_cli.app, name="db")
simulate_cli.register(app)
serve_cli.register(app)
worker_cli.register(app)
audit_cli.register(app)
whatif_cli.register(app, policy_cli.app)


if __name__ == "__main__":  # pragma: no cover
    app()
