"""Workers side by side: every renewal exactly once.

The fleet test runs real ``fairbill worker --once`` processes on one PostgreSQL database
and counts afterwards (``tests/services/fleet.py``): an invoice per subscription and
period, a charge at the processor (``sandbox_operations``) per invoice. ``make test``
runs it over ``FLEET_SUBSCRIPTIONS`` (20,000); ``make fleet`` over 50,000
(``FAIRBILL_FLEET_SUBSCRIPTIONS``). The other tests pin down the two mechanisms it rests
on: two open claims never take the same rows (``SKIP LOCKED``), and a merchant's other
due work is taken by one transaction at a time (its advisory lock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.sandbox import SandboxGateway
from fairbill.services import background, billing_cycle, merchants, policies, worker
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.store import locks
from fairbill.store.db import make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import InvoiceRow, MerchantRow, SubscriptionRow

from . import fleet

FLEET_SUBSCRIPTIONS = int(os.environ.get("FAIRBILL_FLEET_SUBSCRIPTIONS", "20000"))
FLEET_WORKERS = 3
AT = datetime.fromisoformat(fleet.AT)


def _workers(url: str, count: int) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "FAIRBILL_LOG_FORMAT": "json", "FAIRBILL_LOG_LEVEL": "INFO"}
    env.pop("FAIRBILL_CONFIG", None)
    command = [sys.executable, "-m", "fairbill.cli.main", "worker", "--once", "--at", fleet.AT]
    return [
        subprocess.Popen(
            [*command, "--database-url", url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def _renewed_by(log: str) -> int:
    """The renewals a worker's chunks made, from its JSON log lines."""
    total = 0
    for line in log.splitlines():
        event = json.loads(line).get("event", "") if line.startswith("{") else ""
        if event.startswith("renewed "):
            total += int(event.split()[1])
    return total


def test_three_workers_renew_every_subscription_exactly_once(postgres_url: str) -> None:
    upgrade(postgres_url)
    expected = fleet.seed(postgres_url, FLEET_SUBSCRIPTIONS)
    started = time.perf_counter()
    procs = _workers(postgres_url, FLEET_WORKERS)
    logs = [proc.communicate(timeout=600)[1] for proc in procs]
    seconds = time.perf_counter() - started
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-2000:]
    counts = fleet.tally(postgres_url)
    shares = [_renewed_by(log) for log in logs]
    print(
        f"{FLEET_SUBSCRIPTIONS:,} subscriptions, {FLEET_WORKERS} workers: {seconds:.1f} s, {shares}"
    )
    assert counts == {
        "invoices": expected.renewals,
        "invoiced_twice": 0,
        "charges": expected.renewals,
        "charged_twice": 0,
        "invoices_charged": expected.renewals,
        "operations_open": 0,
        "payments": expected.renewals - expected.declines,
        "failed": expected.declines,
        "canceled": expected.cancels,
        "still_due": 0,
    }
    assert sum(shares) == expected.renewals  # every plain renewal by a chunk, once


def test_worker_once_on_sqlite_runs_one_pass_and_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    upgrade(url)
    expected = fleet.seed(url, 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRBILL_")}
    command = [sys.executable, "-m", "fairbill.cli.main", "worker", "--once", "--at", fleet.AT]
    done = subprocess.run(
        [*command, "--database-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    counts = fleet.tally(url)
    assert (counts["invoices"], counts["charges"]) == (expected.renewals, expected.renewals)
    assert (counts["operations_open"], counts["still_due"]) == (0, 0)


# -- the mechanisms ------------------------------------------------------------------------------
@pytest.fixture
def seeded(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(postgres_url)
    fleet.seed(postgres_url, 12)
    engine = make_engine(postgres_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _ctx(session: Session) -> Ctx:
    merchant = session.scalars(select(MerchantRow)).one()
    return merchants.context(session, TestClock(AT), SandboxGateway(), merchant)


def test_two_open_claims_never_take_the_same_renewals(seeded: sessionmaker[Session]) -> None:
    with seeded() as first, seeded() as second:
        assert billing_cycle.renew_chunk(_ctx(first), chunk_size=5) == 5
        # The first transaction holds its five rows (and their customers): the second
        # skips them instead of waiting, and takes the rest.
        assert billing_cycle.renew_chunk(_ctx(second), chunk_size=50) == 6
        first.commit()
        second.commit()
    with seeded() as session:
        per_subscription = session.execute(
            select(InvoiceRow.subscription_id, func.count()).group_by(InvoiceRow.subscription_id)
        ).all()
        assert len(per_subscription) == 11  # 12, one canceled at its period end
        assert {n for _, n in per_subscription} == {1}
        # Committed, they are no longer due: a third claim finds none.
        assert billing_cycle.renew_chunk(_ctx(session), chunk_size=50) == 0


def test_a_merchants_run_is_taken_by_one_transaction_at_a_time(
    seeded: sessionmaker[Session],
) -> None:
    merchant_run = locks.Namespace.MERCHANT_RUN
    with seeded() as first, seeded() as second:
        assert locks.try_lock(first, merchant_run, 1)
        assert not locks.try_lock(second, merchant_run, 1)
        assert locks.try_lock(second, merchant_run, 2)  # another merchant's is free
        first.rollback()  # the lock ends with the transaction, whatever its end
        assert locks.try_lock(second, merchant_run, 1)


def test_workers_on_a_sqlite_file_take_turns(tmp_path: Path) -> None:
    """SQLite has one writer at a time: two workers side by side repeat nothing."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    upgrade(url)
    expected = fleet.seed(url, 300)
    engine = make_engine(url)
    sessions = session_factory(engine)
    stop = threading.Event()

    def one() -> None:
        worker.run(sessions, TestClock(AT), SandboxGateway(), stop, 1.0, once=True)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    counts = fleet.tally(url)
    assert (counts["invoices"], counts["invoiced_twice"]) == (expected.renewals, 0)
    assert (counts["canceled"], counts["still_due"]) == (expected.cancels, 0)


def test_a_stopped_worker_begins_no_further_chunk(seeded: sessionmaker[Session]) -> None:
    stop = threading.Event()
    stop.set()
    assert background.tick(seeded, TestClock(AT), SandboxGateway(), stop) == 0
    with seeded() as session:
        due = session.scalar(
            select(func.count())
            .select_from(SubscriptionRow)
            .where(SubscriptionRow.current_period_end <= AT)
        )
        assert due == 12


def test_terms_read_in_one_query_are_those_read_one_by_one(
    seeded: sessionmaker[Session],
) -> None:
    """The bulk declines read every customer's accepted version at once
    (``policies.accepted_many``): the same as ``policies.accepted`` for each."""
    with seeded() as session:
        version_id = _ctx(session).version_id
        session.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.customer_id.in_([2, 3]))
            .values(policy_version_id=version_id)
        )
        ids = [1, 2, 3, 999]
        assert policies.accepted_many(session, ids) == {
            customer: policies.accepted(session, customer) for customer in ids
        }
        assert policies.accepted_many(session, ids)[2] == version_id
