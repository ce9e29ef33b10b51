"""API test fixtures: the real app with a test clock, on in-memory SQLite and on PostgreSQL.

``runtime`` is parametrised over ``DATABASES``: ``sqlite`` (the default: an in-memory
engine, schema from the models) and ``postgresql`` (a fresh database per test from the
shared ``postgres_url`` fixture, brought to the newest migration with
``fairbill.store.migrate.upgrade``; skipped with the reason printed when no server is
reachable, and failed under ``CI=true``). Run one of them with ``-k sqlite`` or
``-k postgresql``.

``api`` (``helpers.Api``) creates merchants through ``POST /v1/merchants`` with the
platform admin token (``api.merchant("kalenner")`` returns a ``Merchant`` whose calls
carry that merchant's API keys, one per role) and moves the test clock through
``POST /v1/test_clock/advance`` (``api.advance(to)``), running what becomes due.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.services.clock import TestClock
from fairbill.store.db import create_schema, make_engine
from fairbill.store.migrate import upgrade

from .helpers import ADMIN_TOKEN, START, Api

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str:
    """``sqlite://`` (schema created from the models by ``runtime``), or a fresh, migrated
    PostgreSQL database of its own for this test."""
    if request.param == "sqlite":
        return "sqlite://"
    url: str = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    engine = make_engine(database_url)
    if engine.dialect.name == "sqlite":
        create_schema(engine)
    try:
        yield Runtime(engine, clock=TestClock(START), admin_token=ADMIN_TOKEN)
    finally:
        engine.dispose()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield Api(client, runtime)
