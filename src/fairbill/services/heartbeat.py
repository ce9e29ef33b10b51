"""Worker heartbeats: how ``/readyz`` knows that due work is being run.

The contract, for any process that runs due work (``fairbill worker``, the loop inside
``fairbill serve``):

- at start, ``name = process_name("worker")`` (``worker@host:pid``: one row per process);
- a daemon thread runs ``beat_forever(sessions, name, stop)``: a first beat at once, then
  one every ``EVERY`` seconds until ``stop`` is set, each its own transaction. A failed
  beat is logged and the next one tried: a database that is away is ``/readyz``'s
  database check, not a reason to stop the worker.

A beat proves the process is alive and reaches the database; it is its own thread, not a
step of the tick, because one tick of the daily cycle may take longer than any sensible
staleness limit. Heartbeats run on the wall clock (as idempotency leases do): a test clock
that moves billing time must not make a worker look dead or alive.

Invariant: a process's row only moves forward (``beat_at`` is the newest beat); rows of
processes gone for ``FORGET`` are deleted by the beats of the others.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.store.tables import WorkerHeartbeatRow

log = logging.getLogger("fairbill.heartbeat")

EVERY = 15.0  # float-ok: seconds between beats; /readyz's default limit is 120 s
FORGET = timedelta(days=7)  # a process gone this long has its row deleted
NAME_LENGTH = 128  # the column's


def wall_now() -> datetime:
    return datetime.now(UTC)


def process_name(kind: str) -> str:
    """``kind@host:pid``: this process's row (kind is ``worker`` or ``serve``)."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"[:NAME_LENGTH]


def beat(session: Session, name: str, now: datetime) -> None:
    """Record that ``name`` is alive at ``now`` (in the caller's transaction), and forget
    the processes silent since ``now - FORGET``."""
    row = session.get(WorkerHeartbeatRow, name)
    if row is None:
        session.add(WorkerHeartbeatRow(name=name, started_at=now, beat_at=now))
    else:
        row.beat_at = max(row.beat_at, now)
    session.execute(delete(WorkerHeartbeatRow).where(WorkerHeartbeatRow.beat_at < now - FORGET))


def latest(session: Session) -> datetime | None:
    """The newest beat of any process; None if no process ever beat."""
    return session.scalar(select(func.max(WorkerHeartbeatRow.beat_at)))


def beat_once(sessions: sessionmaker[Session], name: str) -> bool:
    """One beat in its own transaction; False (logged) if the database failed."""
    try:
        with sessions() as session:
            beat(session, name, wall_now())
            session.commit()
    except SQLAlchemyError:
        log.exception("heartbeat of %s failed", name)
        return False
    return True


def beat_forever(
    sessions: sessionmaker[Session],
    name: str,
    stop: threading.Event,
    every_seconds: float = EVERY,  # float-ok: seconds
) -> None:
    """Beat now, then every ``every_seconds`` until ``stop`` is set (a thread's target)."""
    beat_once(sessions, name)
    while not stop.wait(every_seconds):
        beat_once(sessions, name)


def start(sessions: sessionmaker[Session], kind: str, stop: threading.Event) -> threading.Thread:
    """The beating thread of this process, started (a daemon: it dies with the process)."""
    thread = threading.Thread(
        target=beat_forever,
        args=(sessions, process_name(kind), stop),
        daemon=True,
        name="fairbill-heartbeat",
    )
    thread.start()
    return thread
