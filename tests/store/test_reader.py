"""Reads on a SQLite file: their own pool, query-only, not queued behind writers.

Every write transaction on a file begins ``BEGIN IMMEDIATE`` and holds the database's
write lock until it commits. A read that did the same would wait out the busy timeout
(30 s) behind every writer and then fail; the reader engine's transactions begin
deferred, so under WAL they read the last committed state while a writer works.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.services.clock import TestClock
from fairbill.store.db import make_engine, reader_engine
from fairbill.store.migrate import upgrade

ADMIN = "adm_reader_test"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'fairbill.db'}"
    upgrade(url)
    rt = Runtime(
        make_engine(url), clock=TestClock(datetime(2026, 5, 1, tzinfo=UTC)), admin_token=ADMIN
    )
    yield rt
    rt.close()


def hold_write_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))  # the writer's BEGIN IMMEDIATE took the lock
        yield
        conn.rollback()


def test_reads_do_not_wait_for_a_writer_and_see_the_last_commit(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as client:
        made = client.post(
            "/v1/merchants",
            json={"name": "reader", "policy": "qomon"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert made.status_code == 201, made.text
        key = made.json()["api_keys"]["readonly"]
        writer = hold_write_lock(runtime.engine)
        next(writer)
        try:
            # Authentication and the read itself both run while the lock is held.
            response = client.get("/v1/merchant", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            assert response.json()["policy"]["id"] == "qomon"
        finally:
            next(writer, None)


def test_the_reader_refuses_to_write(runtime: Runtime) -> None:
    reader = runtime.reads.kw["bind"]
    assert reader is not runtime.engine
    with reader.connect() as conn, pytest.raises(OperationalError, match="readonly"):
        conn.execute(text("DELETE FROM merchants"))


def test_memory_and_server_databases_read_through_their_own_engine() -> None:
    memory = make_engine("sqlite://")
    assert reader_engine(memory) is memory  # one shared connection: nothing to queue on
    memory.dispose()
