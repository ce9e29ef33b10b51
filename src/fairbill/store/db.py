"""Engines and sessions. SQLite by default; PostgreSQL through the same URL setting.

On a SQLite file every transaction starts with ``BEGIN IMMEDIATE``: writers queue for the
database lock up front instead of failing when a read turns into a write, so two requests
refunding the same payment run one after the other. Reads that never write go through
``reader_engine``: a second pool on the same file whose connections are ``query_only``
and begin deferred, so under WAL they neither wait for the writers nor hold them up. On
PostgreSQL the services lock the rows they change (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

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
    _pragmas(dbapi_connection, "PRAGMA foreign_keys=ON", "PRAGMA journal_mode=WAL")


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    """Create every table (the in-memory simulator); files go through Alembic migrations."""
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
