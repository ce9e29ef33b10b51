"""Is this deployment able to serve, and what is waiting: ``/readyz`` and the gauges of
``/metrics``.

The checks are pure (``database``, ``migrations``, ``worker``: facts in, a ``Check``
out); ``readiness`` and ``backlog`` are the shell that gathers the facts with a few cheap
queries. Each check has a stable ``code``: ``ok`` when it passes, else what failed.

Readiness means: the database answers, its schema is the one this code expects (not
behind: ``fairbill db upgrade`` was not run; not ahead: a newer release migrated it), and
(when ``expect_worker`` is set) a worker beat within ``worker_stale_seconds``. Without
``expect_worker`` the worker check passes with ``worker_not_expected``: a deployment
whose ``fairbill serve`` runs due work itself needs no other process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.lifecycle import RequestStatus
from fairbill.services import heartbeat
from fairbill.store.migrate import alembic_config
from fairbill.store.tables import NotificationRow, RequestRow


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # database | migrations | worker
    ok: bool
    code: str  # stable: "ok", or why not
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- the checks (pure) ---------------------------------------------------------------------
def database(error: str | None) -> Check:
    if error is None:
        return Check("database", True, "ok", "reachable")
    return Check("database", False, "database_unreachable", error)


def migrations(current: str | None, head: str, known: frozenset[str]) -> Check:
    """``known``: every revision this release has (one ahead of it is not among them)."""
    if current == head:
        return Check("migrations", True, "ok", f"at {head}")
    if current is None:
        return Check("migrations", False, "migrations_missing", "run: fairbill db upgrade")
    if current in known:
        detail = f"at {current}, this release needs {head}: run fairbill db upgrade"
        return Check("migrations", False, "migrations_behind", detail)
    detail = f"at {current}, unknown to this release (head {head}): a newer release migrated it"
    return Check("migrations", False, "migrations_ahead", detail)


def worker(
    last_beat: datetime | None, now: datetime, expect: bool, stale_after: timedelta
) -> Check:
    if not expect:
        return Check("worker", True, "worker_not_expected", "no worker configured")
    if last_beat is None:
        return Check("worker", False, "worker_missing", "no worker has ever beat")
    age = now - last_beat
    seconds = int(age.total_seconds())
    if age > stale_after:
        limit = int(stale_after.total_seconds())
        return Check(
            "worker", False, "worker_stale", f"last beat {seconds} s ago (limit {limit} s)"
        )
    return Check("worker", True, "ok", f"last beat {seconds} s ago")


# -- the shell -----------------------------------------------------------------------------
@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This release's head and every revision it has (read once: the files do not change)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None  # there is always a first migration
    return head, frozenset(s.revision for s in scripts.walk_revisions())


def readiness(engine: Engine, expect_worker: bool, stale_after: timedelta) -> Readiness:
    """The three checks, on one connection. Without a database the others are not asked,
    nor the worker's without the schema this release expects."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            return _with_database(connection, expect_worker, stale_after)
    except SQLAlchemyError as exc:
        return Readiness((database(_first_line(exc)),))


def _with_database(connection: Connection, expect: bool, stale_after: timedelta) -> Readiness:
    head, known = _revisions()
    schema = migrations(_current_revision(connection), head, known)
    if not schema.ok:  # a schema of another release: its heartbeats are not ours to read
        return Readiness((database(None), schema))
    with Session(bind=connection) as session:
        last = heartbeat.latest(session)
    return Readiness(
        (database(None), schema, worker(last, heartbeat.wall_now(), expect, stale_after))
    )


def _current_revision(connection: Connection) -> str | None:
    """The database's Alembic revision, read directly (Alembic's own context logs two
    lines at INFO each time: a probe every few seconds would fill the log)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found: str | None = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return found


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- what is waiting ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Backlog:
    outbox_pending: int  # messages to send (not sent, not parked)
    outbox_parked: int  # messages given up on: an operator looks at them
    review_in_review: int  # refund requests waiting for a reviewer, every merchant
    review_overdue: int  # of which past their review deadline
    last_heartbeat: datetime | None


def backlog(sessions: sessionmaker[Session], now: Callable[[], datetime]) -> Backlog:
    """Three aggregate queries over every merchant; ``now`` is billing time (review
    deadlines are in it)."""
    n = NotificationRow
    r = RequestRow
    with sessions() as session:
        pending, parked = session.execute(
            select(
                func.count().filter(n.failed_at.is_(None)),
                func.count().filter(n.failed_at.is_not(None)),
            ).where(n.sent_at.is_(None))
        ).one()
        in_review, overdue = session.execute(
            select(func.count(), func.count().filter(r.review_due < now())).where(
                r.status == RequestStatus.IN_REVIEW
            )
        ).one()
        return Backlog(pending, parked, in_review, overdue, heartbeat.latest(session))
