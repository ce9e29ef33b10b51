"""``fairbill audit``: take every stored decision again, from the facts it recorded,
under the policy version that took it; any difference is reported.

Exit status: 0 every decision came back identical, 1 some differ (a defect: a decider
that is not pure, or code that changed what a stored version decides), 2 input errors.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, DBAPIError

from fairbill.services import audit
from fairbill.store.db import DEFAULT_URL, make_engine, session_factory
from fairbill.store.tables import MerchantRow


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)


def audit_command(
    database_url: Annotated[
        str, typer.Option("--database-url", metavar="URL", help="The database to audit.")
    ] = DEFAULT_URL,
    merchant_id: Annotated[
        int | None, typer.Option("--merchant", metavar="ID", help="Only this merchant.")
    ] = None,
    show: Annotated[int, typer.Option(help="Differences to print in full.")] = 10,
) -> None:
    """Re-decide every stored decision under its own version: nothing may differ."""
    try:
        engine = make_engine(database_url)
    except ArgumentError as exc:
        typer.echo(f"{database_url}: not a database URL", err=True)
        raise typer.Exit(2) from exc
    checked = differing = 0
    try:
        with session_factory(engine)() as session:
            query = select(MerchantRow).order_by(MerchantRow.id)
            if merchant_id is not None:
                query = query.where(MerchantRow.id == merchant_id)
            merchants = list(session.scalars(query))
            if merchant_id is not None and not merchants:
                typer.echo(f"no merchant {merchant_id}", err=True)
                raise typer.Exit(2)
            for merchant in merchants:
                for row in audit.redecide(session, merchant):
                    checked += 1
                    if row.same:
                        continue
                    differing += 1
                    if differing <= show:
                        typer.echo(f"decision {row.decision_id} ({row.action}, {row.at}):")
                        typer.echo(f"  stored: {row.stored}")
                        typer.echo(f"  again:  {row.again}")
    except DBAPIError as exc:
        typer.echo(f"{database_url}: cannot read the database: {exc.orig}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    typer.echo(
        f"{checked} decisions taken again: {checked - differing} identical, {differing} differ"
    )
    raise typer.Exit(1 if differing else 0)
