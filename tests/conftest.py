"""Shared fixtures.

``postgres_url``: a fresh, uniquely named PostgreSQL database for one test, dropped after
it. The server is the one at ``FAIRBILL_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, trust auth); that URL's database is
only used to create and drop the test databases. If the server cannot be reached the test
is skipped, with the reason printed, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

POSTGRES_ADMIN_URL = os.environ.get(
    "FAIRBILL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin_engine() -> Engine:
    """An AUTOCOMMIT engine on the admin database (CREATE/DROP DATABASE need it)."""
    try:
        engine = create_engine(
            POSTGRES_ADMIN_URL,
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"connect_timeout": 5},
        )
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except (ImportError, DBAPIError) as exc:
        shown = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        first_line = str(exc).strip().splitlines()[0]
        reason = f"PostgreSQL not reachable at {shown}: {first_line}"
        print(reason)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: a missing server is a failure)", pytrace=False)
        pytest.skip(reason)
    return engine


@pytest.fixture
def postgres_url() -> Iterator[str]:
    admin = _postgres_admin_engine()
    name = f"fairbill_test_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(POSTGRES_ADMIN_URL).set(database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                # FORCE (PostgreSQL 13+) ends sessions a failed test may have left open.
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
