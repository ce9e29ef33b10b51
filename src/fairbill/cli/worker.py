"""``fairbill worker``: run due work (renewals, retries, trials, cancellations, the
gateway janitor, the outbox) as a process of its own, beside ``fairbill serve``.

Several may run side by side on one PostgreSQL database (``services.worker``). The
database must be migrated already (``fairbill db upgrade``, or ``fairbill serve`` did
it): workers never migrate, so that they never race each other or the server to it.
SIGTERM or Ctrl-C stops the worker after the chunk in hand (each is committed on its
own). ``--once`` runs one pass and exits (cron, tests); ``--at`` runs at a fixed instant
instead of the system clock (tests and benchmarks).
"""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from fairbill import logs
from fairbill.cli.configure import ConfigFile, settings_or_exit
from fairbill.gateway.sandbox_db import DatabaseSandbox
from fairbill.notify.outbox import deliver_forever
from fairbill.services import heartbeat, metrics
from fairbill.services import worker as worker_service
from fairbill.services.clock import Clock, SystemClock, TestClock
from fairbill.store.db import make_engine, session_factory
from fairbill.store.migrate import current_revision, head_revision

console = Console(highlight=False, stderr=True)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db "
            "(env FAIRBILL_DATABASE_URL)",
            show_default=False,
        ),
    ] = None,
    tick_seconds: Annotated[
        float | None,
        typer.Option(help="Seconds between passes (env FAIRBILL_TICK_SECONDS; default: 30)."),
    ] = None,
    once: Annotated[bool, typer.Option(help="Run one pass, then exit.")] = False,
    at: Annotated[
        str | None,
        typer.Option(
            help="Run at this fixed ISO 8601 instant (with an offset) instead of the system "
            "clock. For tests and benchmarks.",
        ),
    ] = None,
    config: ConfigFile = None,
) -> None:
    """Run due work as a process of its own; several side by side on PostgreSQL."""
    settings = settings_or_exit(config, database_url=database_url, tick_seconds=tick_seconds)
    clock = _clock(at)
    _require_schema(settings.database_url)
    logs.configure(settings.log_format, settings.log_level)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    stop = threading.Event()
    _stop_on_signals(stop)
    heartbeat.start(sessions, "worker", stop)  # /readyz: due work is being run
    if settings.worker_metrics_port is not None:
        metrics.serve_worker_metrics(settings.worker_metrics_port, settings.host)
    smtp = settings.smtp()
    if smtp is not None and not once:
        threading.Thread(
            target=deliver_forever,
            args=(sessions, smtp, clock.now, stop, 10.0),
            daemon=True,
            name="fairbill-outbox",
        ).start()
    try:
        worker_service.run(
            sessions,
            clock,
            DatabaseSandbox(sessions),  # the gateway ``fairbill serve`` uses
            stop,
            settings.tick_seconds,
            once=once,
            smtp=smtp if once else None,
        )
    finally:
        stop.set()
        engine.dispose()


def _clock(at: str | None) -> Clock:
    if at is None:
        return SystemClock()
    try:
        instant = datetime.fromisoformat(at)
        return TestClock(instant)
    except ValueError as exc:
        console.print(f"--at: {exc} (e.g. 2026-03-01T09:00:00+00:00)", markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc


def _require_schema(url: str) -> None:
    """Exit with status 2 unless the database is at the newest migration."""
    try:
        found = current_revision(url)
    except Exception as exc:  # a bad URL or an unreachable server is an input error
        shown = make_url(url).render_as_string(hide_password=True)
        console.print(f"cannot open the database {shown}: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    newest = head_revision()
    if found != newest:
        console.print(
            f"the database is at revision {found or 'none'}, not {newest} (the newest): run "
            "`fairbill db upgrade` (or start `fairbill serve`) first",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT end the worker after the chunk in hand."""

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
