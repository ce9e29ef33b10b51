"""kill -9 at random moments under load, on a SQLite file and on PostgreSQL: no invoice
charged twice, no refund paid twice or lost, the ledger balanced, nothing left half done,
every write answered once its server came back (see ``harness``).

``make test`` runs a short version (``KILLS`` kills per database, about half a minute
each); ``make crash`` the long one (``FAIRBILL_CRASH_KILLS=100``). A failure names its
seed: ``FAIRBILL_CRASH_SEED=<seed>`` plays the same plan again (thread timing aside).
``FAIRBILL_CRASH_EXEC=1`` starts each server in a fresh interpreter instead of forking it
from the warm zygote (slower: 3.5-4 s a start).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairbill.store.migrate import upgrade

from .conftest import DATABASES, sqlite_file_url
from .harness import Harness, Launcher, read_books

KILLS = int(os.environ.get("FAIRBILL_CRASH_KILLS") or 20)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """One zygote for both databases: it imports fairbill once (3.5-4 s)."""
    fresh = os.environ.get("FAIRBILL_CRASH_EXEC") == "1"
    launcher = Launcher(tmp_path_factory.mktemp("zygote"), fresh=fresh)
    try:
        yield launcher
    finally:
        launcher.close()


def crash_seed() -> int:
    given = os.environ.get("FAIRBILL_CRASH_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


@pytest.mark.parametrize("database", DATABASES)
def test_kill_9_under_load_loses_nothing_and_moves_no_money_twice(
    request: pytest.FixtureRequest, tmp_path: Path, launcher: Launcher, database: str
) -> None:
    """``KILLS`` SIGKILLs of a loaded server, then: each invoice charged once at the
    gateway and each charge paid in once; each refund paid once and none lost; the ledger
    balanced, its cash what moved at the gateway; no claim or operation left open; every
    write answered, and stored answers replayed as they were."""
    url = (
        sqlite_file_url(tmp_path)
        if database == "sqlite-file"
        else request.getfixturevalue("postgres_url")
    )
    upgrade(url)
    seed = crash_seed()
    print(f"{database}: FAIRBILL_CRASH_SEED={seed}")  # shown with any failure, even a crash
    with Harness(url, tmp_path, launcher, seed) as harness:
        harness.run(KILLS)
        books = read_books(harness.engine)
        summary = f"{harness.summary()}; {books.figures()}"
        violations = harness.violations + books.violations()
    print(f"{database}: {summary}")
    assert harness.stats.kills == KILLS, summary
    assert not violations, "\n".join([f"{database}, {summary}", *violations])
