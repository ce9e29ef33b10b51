"""``fairbill serve``: the API on SQLite (default ``./fairbill.db``) or PostgreSQL."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from fairbill import logs
from fairbill.api.app import create_app, reconcile_at_start, release_abandoned_keys
from fairbill.api.settings import Runtime
from fairbill.cli import serve_workers
from fairbill.cli.configure import ConfigFile, settings_or_exit
from fairbill.cli.listen import DEFAULT_PORT, HOST_ENV, PORT_ENV, check_free
from fairbill.errors import InputError
from fairbill.notify.outbox import deliver_forever
from fairbill.services import heartbeat
from fairbill.services.background import run_forever
from fairbill.services.clock import Clock, SystemClock, TestClock
from fairbill.services.credential_cache import SERVE_TTL, CredentialCache
from fairbill.services.redaction import RedactingFilter
from fairbill.store.db import DEFAULT_URL, make_engine

console = Console(highlight=False)
ADMIN_TOKEN_ENV = "FAIRBILL_ADMIN_TOKEN"
DATABASE_URL_ENV = "FAIRBILL_DATABASE_URL"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db "
            f"[env {DATABASE_URL_ENV}; default: {DEFAULT_URL}]",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help=f"[env {HOST_ENV}; default: 127.0.0.1]", show_default=False)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help=f"[env {PORT_ENV}; default: {DEFAULT_PORT}]", show_default=False
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="Seed five demo merchants if the database is empty and print their keys."
        ),
    ] = False,
    tick_seconds: Annotated[
        float | None,
        typer.Option(help="How often due work runs [env FAIRBILL_TICK_SECONDS; default: 30]."),
    ] = None,
    test_clock: Annotated[
        str | None,
        typer.Option(
            help="Run on a test clock that starts at this ISO 8601 time (with an offset) and "
            "moves only through POST /v1/test_clock/advance. For tests and demos.",
        ),
    ] = None,
    due_work: Annotated[
        bool | None,
        typer.Option(
            help="Run due work (renewals, retries, the outbox) in this process. Default: "
            "yes, unless a worker is expected (FAIRBILL_EXPECT_WORKER): `fairbill worker`.",
            show_default=False,
        ),
    ] = None,
    config: ConfigFile = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes serving the API (uvicorn's); the due work still runs in "
            "one process, this one.",
        ),
    ] = 1,
) -> None:
    """Create and migrate the schema, then serve the API (docs at /docs)."""
    import uvicorn

    from fairbill.store.migrate import upgrade

    settings = settings_or_exit(
        config, database_url=database_url, host=host, port=port, tick_seconds=tick_seconds
    )
    database_url, host, port = settings.database_url, settings.host, settings.port
    try:
        check_free(host, port)  # first: nothing migrated or printed for a busy port
    except InputError as exc:
        for location, message in exc.problems:
            console.print(f"{location.field}: {message}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    clock: Clock = SystemClock()
    if test_clock is not None and workers > 1:
        console.print("--test-clock needs one worker: each process would keep its own clock")
        raise typer.Exit(2)
    if test_clock is not None:
        try:
            start = datetime.fromisoformat(test_clock)
            clock = TestClock(start)
        except ValueError as exc:
            console.print(f"--test-clock: {exc} (e.g. 2026-03-01T09:00:00+00:00)", markup=False)
            raise typer.Exit(2) from exc

    logs.configure(settings.log_format, settings.log_level)
    try:
        upgrade(database_url)
    except Exception as exc:  # a bad URL or an unreachable server is an input error
        console.print(f"cannot open the database {database_url!r}: {exc}", markup=False)
        raise typer.Exit(2) from exc
    given = settings.admin_token.get_secret_value() if settings.admin_token else None
    admin = given or f"adm_{secrets.token_urlsafe(18)}"
    runtime = Runtime(
        make_engine(database_url),
        clock=clock,
        admin_token=admin,
        settings=settings,
        credentials=CredentialCache(SERVE_TTL),
    )
    if demo:
        _seed_demo(runtime, f"http://{host}:{port}")
    console.print(admin_token_line(given, admin), markup=False)
    console.print(f"API docs: http://{host}:{port}/docs  (OpenAPI: /openapi.json)", markup=False)
    console.print("operations: /healthz, /readyz, /metrics (docs/deployment.md)", markup=False)
    stop = threading.Event()
    smtp = settings.smtp()
    if runs_due_work(due_work, settings.expect_worker):
        threading.Thread(
            target=run_forever,
            args=(runtime.sessions, runtime.clock, runtime.gateway, stop, settings.tick_seconds),
            daemon=True,
            name="fairbill-due-work",
        ).start()
        heartbeat.start(runtime.sessions, "serve", stop)  # this loop runs due work: /readyz
    else:
        console.print("due work: run by `fairbill worker` (the outbox too), not here")
        smtp = None
    if smtp is not None:
        # The outbox: messages committed with the state change go out from here.
        threading.Thread(
            target=deliver_forever,
            args=(runtime.sessions, smtp, runtime.clock.now, stop, 10.0),
            daemon=True,
            name="fairbill-outbox",
        ).start()
        console.print(f"email: sending through {smtp.host}:{smtp.port}", markup=False)
    else:
        console.print("email: FAIRBILL_SMTP_HOST is not set; notifications wait in the outbox")
    try:
        # The access log has every URL; a portal link's carries its token.
        logging.getLogger("uvicorn.access").addFilter(RedactingFilter())
        served: Any = create_app(runtime)
        if workers > 1 and runtime.engine.dialect.name == "sqlite":
            console.print(
                "--workers on SQLite: the processes' writers meet in SQLite's busy handler "
                "(one process queues them itself); PostgreSQL is the database for workers"
            )
        if workers > 1:  # each worker builds its app from the settings handed down
            release_abandoned_keys(runtime)  # the start-up work, once for all workers
            reconcile_at_start(runtime)
            os.environ[serve_workers.CHILD_ENV] = serve_workers.hand_down(settings, admin)
            served = serve_workers.APP
        uvicorn.run(
            served,
            factory=workers > 1,
            workers=workers,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's records go through ``logs`` like every other
            access_log=False,  # ``api.observe`` logs each request (by route, with its id)
        )
    finally:
        stop.set()
        runtime.close()


def runs_due_work(given: bool | None, expect_worker: bool) -> bool:
    """Whether ``fairbill serve`` runs the due work itself: as ``--due-work`` /
    ``--no-due-work`` say, else unless a worker is expected to (``expect_worker``)."""
    return given if given is not None else not expect_worker


def admin_token_line(given: str | None, admin: str) -> str:
    """What start-up says about the platform admin token: a token made here is shown
    (once: the operator has no other way to learn it); one the operator set in the
    environment is never echoed, so that it stays out of terminals and log files."""
    if given:
        return f"platform admin token: the one in {ADMIN_TOKEN_ENV} (not shown)"
    return f"platform admin token: {admin}  # set {ADMIN_TOKEN_ENV} to choose it"


def _seed_demo(runtime: Runtime, base_url: str = "http://127.0.0.1:8000") -> None:
    from sqlalchemy import func, select

    from fairbill.services.demo import seed
    from fairbill.store.tables import MerchantRow

    with runtime.sessions() as session:
        if session.scalar(select(func.count()).select_from(MerchantRow)):
            console.print("demo: the database already has merchants; not seeding again")
            return
        made = seed(session, runtime.clock, runtime.gateway)
    console.print("Demo merchants (paste these lines into a shell to use the curl examples):")
    for m in made:
        name = m.policy.upper()
        console.print(f"export {name}_KEY={m.keys['admin']}", markup=False, soft_wrap=True)
        for role in ("finance", "support"):
            console.print(
                f"export {name}_{role.upper()}_KEY={m.keys[role]}", markup=False, soft_wrap=True
            )
        console.print(
            f"export {name}_PORTAL_TOKEN={m.portal_token}  # customer {m.policy}-active",
            markup=False,
            soft_wrap=True,
        )
        # The customer's portal: the link trades the token for a cookie and drops it.
        console.print(
            f"# {m.policy}-active's portal: {base_url}/portal/enter?token={m.portal_token}",
            markup=False,
            soft_wrap=True,
        )
    # One back office for every merchant: the key signed in with says whose, and its role.
    console.print(
        f"# back office: {base_url}/app/sign-in  (sign in with any key above)",
        markup=False,
        soft_wrap=True,
    )
