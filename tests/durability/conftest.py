"""Durability fixtures: a migrated database as a SQLite file or a PostgreSQL database.

``migrated_url`` is parametrised over both (``sqlite-file``, ``postgresql``); the
PostgreSQL one comes from the shared ``postgres_url`` fixture, so it is skipped with the
reason printed when no server is reachable, and fails under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from fairbill.store.db import make_engine
from fairbill.store.migrate import upgrade

DATABASES = ["sqlite-file", "postgresql"]


def sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fairbill.db'}"


@pytest.fixture(params=DATABASES)
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        url = sqlite_file_url(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        engine.dispose()
