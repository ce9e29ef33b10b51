"""Writers of one SQLite file queue on the process's lock of that file (``store.db``),
not in SQLite's busy handler: with SQLite's busy timeout at 0 a second writer would fail
at once ("database is locked"); here it waits for the first to commit, then runs. The
lock is given back however the transaction ends, and commits are on disk (FULL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from fairbill.services.idempotency import wall_now
from fairbill.store.db import (
    SERIALIZED,
    create_schema,
    make_engine,
    reader_engine,
    session_factory,
    writer_lock,
)
from fairbill.store.tables import IdempotencyKeyRow


def engine_without_busy_wait(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
    return engine


def test_a_second_writer_waits_for_the_first_instead_of_failing(tmp_path: Path) -> None:
    first, second = (engine_without_busy_wait(tmp_path / "w.db") for _ in range(2))
    began, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            began.wait(5)
            with second.begin() as conn:  # waits on the lock, not in SQLite
                conn.execute(text("INSERT INTO t VALUES (2)"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    with first.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        began.set()
        assert not done.wait(0.2)  # the second writer is still waiting
    thread.join(5)
    assert errors == []
    with first.connect() as conn:
        assert conn.execute(text("SELECT n FROM t ORDER BY rowid")).scalars().all() == [1, 2]
    first.dispose()
    second.dispose()


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_lock_is_given_back_however_the_transaction_ends(tmp_path: Path, end: str) -> None:
    engine = engine_without_busy_wait(tmp_path / "e.db")
    lock = writer_lock(str(tmp_path / "e.db"))
    conn = engine.connect()
    conn.execute(text("INSERT INTO t VALUES (1)"))
    assert not lock._lock.acquire(blocking=False)  # held by the open transaction
    if end == "commit":
        conn.commit()
    elif end == "rollback":
        conn.rollback()
    conn.close()
    assert lock._lock.acquire(blocking=False)
    lock._lock.release()
    engine.dispose()


def test_a_thread_that_holds_the_lock_does_not_wait_for_itself(tmp_path: Path) -> None:
    """A second write transaction of the same thread meets SQLite's lock, as before the
    in-process lock (with the busy timeout at 0: at once), instead of a deadlock."""
    engine = engine_without_busy_wait(tmp_path / "r.db")
    with engine.begin() as outer:
        outer.execute(text("INSERT INTO t VALUES (1)"))
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"), engine.begin() as inner:
            inner.execute(text("INSERT INTO t VALUES (2)"))
        assert time.monotonic() - started < 2
    with engine.begin() as conn:  # both locks were given back
        conn.execute(text("INSERT INTO t VALUES (3)"))
    engine.dispose()


def test_commits_are_synced_to_disk(tmp_path: Path) -> None:
    engine = engine_without_busy_wait(tmp_path / "s.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_a_write_transaction_begun_before_any_read_is_marked_serialized(tmp_path: Path) -> None:
    """``SERIALIZED``: nothing such a session read can be stale (``Ctx.lock_customer``
    skips its re-reads); after a commit it holds rows read earlier, so not any more."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    create_schema(engine)
    sessions, reads = session_factory(engine), session_factory(reader_engine(engine))
    with sessions() as session:
        row = IdempotencyKeyRow(
            merchant_id=1, key="k", operation="x", fingerprint="f", created_at=wall_now()
        )
        session.add(row)
        session.flush()
        assert session.info[SERIALIZED] is True
        session.commit()
        assert session.scalar(select(IdempotencyKeyRow)) is not None  # a new transaction
        assert session.info[SERIALIZED] is False  # it began holding the row read before
    with reads() as session:
        session.scalar(select(IdempotencyKeyRow))
        assert session.info[SERIALIZED] is False  # reads are not write transactions
    memory = make_engine("sqlite://")
    create_schema(memory)
    with session_factory(memory)() as session:
        session.scalar(select(IdempotencyKeyRow))
        assert session.info[SERIALIZED] is False  # in memory: the old re-reads
    engine.dispose()
    memory.dispose()
