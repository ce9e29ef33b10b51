"""``fairbill db ...``: the database schema.

``fairbill db upgrade [--database-url URL] [--config FILE]`` migrates the database to the
newest schema (creating the SQLite file if needed). Without ``--database-url`` the URL is
the settings' (``FAIRBILL_DATABASE_URL``, or the config file's ``database_url``). A
malformed URL, an unknown database kind or a database that cannot be opened is an input
error: a message on stderr and exit status 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from fairbill.cli.configure import ConfigFile, settings_or_exit
from fairbill.store.db import DEFAULT_URL
from fairbill.store.migrate import current_revision, upgrade

SUPPORTED = ("sqlite", "postgresql")

app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


@app.command("upgrade")
def upgrade_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB "
            f"[env FAIRBILL_DATABASE_URL; default: {DEFAULT_URL}].",
            show_default=False,
        ),
    ] = None,
    config: ConfigFile = None,
) -> None:
    """Migrate the database to the newest schema (running it again changes nothing)."""
    if database_url is None:
        database_url = settings_or_exit(config).database_url
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise _fail(
            f"{database_url}: not a database URL (expected e.g. sqlite:///fairbill.db or "
            "postgresql+psycopg://user@host:5432/db)"
        ) from exc
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() not in SUPPORTED:
        raise _fail(f"{shown}: unsupported database kind {url.drivername!r} (sqlite or postgresql)")
    try:
        before = current_revision(database_url)
        upgrade(database_url)
        after = current_revision(database_url)
    except NoSuchModuleError as exc:
        raise _fail(f"{shown}: unknown database kind {url.drivername!r}") from exc
    except ImportError as exc:  # the dialect is known but its driver is not installed
        raise _fail(f"{shown}: the database driver is not installed ({exc.name})") from exc
    except DBAPIError as exc:  # unreachable server, unknown database, unwritable file...
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise _fail(f"{shown}: cannot open the database: {detail}") from exc
    if before == after:
        typer.echo(f"{shown}: already at revision {after} (newest)")
    else:
        typer.echo(f"{shown}: upgraded from {before or 'empty'} to revision {after} (newest)")
