"""API test fixtures: the real app on an in-memory SQLite engine with a test clock.

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

from .helpers import ADMIN_TOKEN, START, Api


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    try:
        yield Runtime(engine, clock=TestClock(START), admin_token=ADMIN_TOKEN)
    finally:
        engine.dispose()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield Api(client, runtime)
