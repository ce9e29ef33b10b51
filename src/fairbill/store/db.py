"""Engines and sessions. SQLite by default; PostgreSQL through the same URL setting.

On a SQLite file every transaction starts with ``BEGIN IMMEDIATE``: writers queue for the
database lock up front instead of failing when a read turns into a write, so two requests
refunding the same payment run one after the other. Within a process they queue on a
lock of the file's own (``writer_lock``) before asking SQLite: a waiting writer then
sleeps until the one before it commits, instead of in SQLite's busy handler, which polls
with growing sleeps (up to 100 ms each) and made writers wait seconds under load. Other
processes on the same file still meet SQLite's lock and its busy handler. Reads that
never write go through ``reader_engine``: a second pool on the same file whose
connections are ``query_only`` and begin deferred, so under WAL they neither wait for the
writers nor hold them up. On PostgreSQL the services lock the rows they change
(``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import LRUCache

from fairbill.store.tables import Base

DEFAULT_URL = "sqlite:///fairbill.db"
SQLITE_BUSY_TIMEOUT_SECONDS = 30
_MEMORY_COMPILED_CACHE: LRUCache[Any, Any] = LRUCache(2000)


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if memory:
        # One shared connection, or each session would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        # The simulator makes an engine per scenario; sharing compiled SQL across them
        # saves recompiling every statement each time (the cache is per engine otherwise).
        kwargs.setdefault("execution_options", {"compiled_cache": _MEMORY_COMPILED_CACHE})
    elif url.startswith("sqlite"):
        kwargs.setdefault(
            "connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
        )
        # Connections that give the file's writer lock back when their transaction ends.
        kwargs["connect_args"] = {"factory": _WriterConnection} | kwargs["connect_args"]
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect if not memory else _sqlite_memory)
        # Transactions (and savepoints within them) are ours to begin: pysqlite's own
        # handling would let the release of a first savepoint commit the transaction.
        begin = _sqlite_begin_immediate if not memory else _sqlite_begin_deferred
        event.listen(engine, "begin", begin)
    return engine


def reader_engine(engine: Engine) -> Engine:
    """An engine for transactions that only read: on a SQLite file, its own pool of
    connections that refuse writes (``PRAGMA query_only``) and take no lock up front;
    anywhere else (PostgreSQL, an in-memory database) ``engine`` itself."""
    url = engine.url
    if engine.dialect.name != "sqlite" or url.database in (None, "", ":memory:"):
        return engine
    reader = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(reader, "connect", _sqlite_reader_connect)
    event.listen(reader, "begin", _sqlite_begin_deferred)
    return reader


def _sqlite_reader_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_connect(dbapi_connection, record)
    _pragmas(dbapi_connection, "PRAGMA query_only=ON")


def _sqlite_begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def _pragmas(dbapi_connection: Any, *statements: str) -> None:
    cursor = dbapi_connection.cursor()
    for statement in statements:
        cursor.execute(statement)
    cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    _pragmas(dbapi_connection, "PRAGMA foreign_keys=ON")


def _sqlite_memory(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None  # transaction control is ours (see make_engine)
    _sqlite_pragmas(dbapi_connection, record)


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # Take transaction control from pysqlite so that BEGIN IMMEDIATE is ours to emit.
    dbapi_connection.isolation_level = None
    # WAL with synchronous=FULL: every commit is on disk (the WAL fsynced) before it
    # returns. Gateway operations are sent after the commit that records them: under
    # NORMAL a power cut could lose a commit whose charge or refund the gateway then made
    # (money moved with no trace here, nothing left for the reconciler). It costs one
    # fsync per commit (0.2 ms on the bench's machine), paid inside the writer lock.
    _pragmas(
        dbapi_connection,
        "PRAGMA foreign_keys=ON",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
    )


def _sqlite_begin_immediate(connection: Any) -> None:
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, _WriterConnection):
        dbapi.take_writer_lock(connection.engine.url.database)
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(dbapi, _WriterConnection):
            dbapi.give_writer_lock_back()
        raise


class WriterLock:
    """The write transactions of one SQLite file in this process, one at a time (a waiting
    writer sleeps on the lock until it is given back, it does not poll).

    Invariant: held from just before ``BEGIN IMMEDIATE`` until that transaction's commit or
    rollback has returned, by the connection that began it. A thread that already holds
    it and begins a second write transaction on another connection does not wait for
    itself: that transaction meets SQLite's lock as before (and its busy timeout)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def acquire(self) -> bool:
        """Take the lock (True); False without waiting if this thread holds it already,
        or after SQLite's busy timeout (then SQLite's own lock decides)."""
        me = threading.get_ident()
        if self._owner == me:
            return False
        if not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            return False
        self._owner = me
        return True

    def release(self) -> None:
        self._owner = None
        self._lock.release()


_WRITER_LOCKS: dict[str, WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _after_fork() -> None:
    """A forked child is another process: the parent's writers are not its to wait for."""
    global _WRITER_LOCKS_GUARD
    _WRITER_LOCKS.clear()
    _WRITER_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def writer_lock(database: str) -> WriterLock:
    """The process's writer lock of the SQLite file ``database`` (one per file, shared by
    every engine on it: the API's, the sandbox gateway's, the due-work loop's)."""
    path = os.path.realpath(database)
    with _WRITER_LOCKS_GUARD:
        found = _WRITER_LOCKS.get(path)
        if found is None:
            found = _WRITER_LOCKS[path] = WriterLock()
        return found


class _WriterConnection(sqlite3.Connection):
    """A connection that holds its file's ``WriterLock`` for the length of a write
    transaction and gives it back once the transaction's end has returned (a commit's
    fsync included), whoever ends it: SQLAlchemy, the pool's reset, or a close."""

    _held: WriterLock | None = None

    def take_writer_lock(self, database: str | None) -> None:
        lock = writer_lock(database or "")
        if lock.acquire():
            self._held = lock

    def give_writer_lock_back(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def commit(self) -> None:
        try:
            super().commit()
        except BaseException:
            if not self.in_transaction:  # else the rollback that follows gives it back
                self.give_writer_lock_back()
            raise
        self.give_writer_lock_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_writer_lock_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_writer_lock_back()


def create_schema(engine: Engine) -> None:
    """Create every table (the in-memory simulator); files go through Alembic migrations."""
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "after_begin", _mark_serialized)
    return factory


# ``session.info`` key: True while the session's transaction is a SQLite write transaction
# (``BEGIN IMMEDIATE``, the file's writer lock held) that began before the session held
# any row. Then nothing the session read can be stale: it was read inside a transaction
# no other writer can commit during. ``Ctx.lock_customer`` skips its re-reads then.
SERIALIZED = "fairbill.serialized"


def _mark_serialized(session: Session, _transaction: Any, connection: Any) -> None:
    dbapi = connection.connection.dbapi_connection
    session.info[SERIALIZED] = (
        isinstance(dbapi, _WriterConnection) and dbapi.in_transaction and not session.identity_map
    )
