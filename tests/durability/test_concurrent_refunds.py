"""Fifty refund requests at ONE payment at once never refund more than was paid.

PostgreSQL: 50 threads, each with its own session (and connection) from one engine,
released together by a barrier; ``request_refund`` locks the payment row
(``SELECT ... FOR UPDATE``), so they queue there and each sees what the others refunded.
SQLite file: 50 processes, each with its own engine on the file; ``BEGIN IMMEDIATE`` makes
writers queue for the database lock. A transaction that still fails with "database is
locked" after the busy timeout counts as refused and must leave nothing behind: the VoIP
variant runs with a busy timeout of half a second so that some are.

The processes come from a ``forkserver``: a server started afresh (as ``spawn`` starts a
child: nothing inherited from pytest, no open connection) imports fairbill once and forks
each worker from that clean state. Plain ``spawn`` children each import fairbill and
SQLAlchemy themselves, about 1.2 s of CPU each: 50 of them are 30 s or more on two cores.

Every worker's gateway is the database sandbox (see ``world``), but a refund is reserved on
its payment in the worker's own transaction before any gateway is asked: what stops a
second refund is the database.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fairbill.api.app import create_app
from fairbill.api.settings import Runtime
from fairbill.ids import Prefix
from fairbill.services.clock import TestClock
from fairbill.store.db import make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import PaymentRow, SandboxOperationRow

from .conftest import sqlite_file_url
from .world import (
    Attempt,
    Ids,
    Outcome,
    accept_review,
    attempt_refund,
    build_world,
    cancel_now,
    charge_twice_more,
    outcome,
    refund_process,
    trace,
    wallet,
)

WORKERS = 50
# What the fork server imports once for all workers. Python 3.11's fork server does not
# take the parent's sys.path, so only installed modules can be preloaded; ``__main__``
# (pytest's script) is preloaded too, or every worker would import it again; and the
# holiday calendars, which the first business-day deadline would import (0.13 s).
PRELOAD = [
    "__main__",
    "holidays.countries",
    "fairbill.services.merchants",
    "fairbill.services.refunds",
    "fairbill.services.scheduler",
    "fairbill.services.subscriptions",
    "fairbill.simulator.result",
    "fairbill.store.db",
]


@dataclass(frozen=True)
class Case:
    policy: str
    price: str
    start: str
    at: str
    kind: str
    decision: str  # of the one request that is paid
    refund_minor: int


# kalenner: "money_back" within the 14-day guarantee is the full payment, paid at once.
MONEY_BACK = Case(
    "kalenner", "29.00", "2026-05-04T10:00+02:00", "2026-05-07T10:00+02:00",
    "money_back", "approved", 2900,
)  # fmt: skip
# voip: the unused days, Apr 11..30 = 20 of 30 days of 50.00 = 33.33; the refund ends the
# service, so every later request finds nothing left (and 50 partial refunds of 33.33 would
# be 1,666.50 on a payment of 50.00 if they did not queue).
UNUSED_PERIOD = Case(
    "voip", "50.00", "2026-04-01T00:00-04:00", "2026-04-11T09:00-04:00",
    "unused_period", "partially_approved", 3333,
)  # fmt: skip


def world(url: str, case: Case) -> Ids:
    upgrade(url)
    return build_world(url, case.policy, price=case.price, start=datetime.fromisoformat(case.start))


def check(result: Outcome, attempts: list[Attempt], case: Case) -> None:
    refunded = sum(amount for amount, _ in result.refund_rows)
    assert refunded <= result.paid_minor
    assert refunded == result.refunded_minor == case.refund_minor
    stored = [a for a in attempts if a.status != "refused"]
    assert not [a for a in attempts if a.status.startswith("error")]
    # What the workers were told is what was stored: one request paid, every other one
    # declined with nothing paid, and no trace of the refused ones.
    assert Counter((a.status, a.decision, a.amount_minor) for a in stored) == Counter(
        result.requests
    )
    assert [r for r in result.requests if r[0] == "paid"] == [
        ("paid", case.decision, case.refund_minor)
    ]
    assert all(r == ("decided", "declined", 0) for r in result.requests if r[0] != "paid")
    assert len(result.requests) == len(stored)
    assert result.request_decisions == len(stored)
    assert len(result.refund_rows) == 1 and result.refund_rows[0][1] is not None
    assert result.refund_transactions == 1
    assert result.ledger_balanced
    assert result.subscription_status == "canceled"


def report(label: str, attempts: list[Attempt]) -> None:
    statuses = Counter(a.status for a in attempts)
    slowest = max(a.seconds for a in attempts)
    cpu = sum(a.cpu for a in attempts)
    cpu_before = sum(a.cpu_before for a in attempts)
    used = f"; workers' CPU {cpu:.2f} s ({cpu_before:.2f} s before the start line)" if cpu else ""
    print(f"{label}: {dict(statuses)}; slowest worker {slowest:.2f} s in its transaction{used}")


@pytest.mark.parametrize("case", [MONEY_BACK, UNUSED_PERIOD], ids=lambda c: c.kind)
def test_fifty_threads_on_postgresql(postgres_url: str, case: Case) -> None:
    ids = world(postgres_url, case)
    engine = make_engine(postgres_url, pool_size=WORKERS, max_overflow=0, pool_timeout=30)
    try:
        # Open every connection first, so that the start line is not a connection storm.
        connections = [engine.connect() for _ in range(WORKERS)]
        for connection in connections:
            connection.close()
        sessions = session_factory(engine)
        barrier = threading.Barrier(WORKERS, timeout=30)
        attempts: list[Attempt] = []
        failures: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait()
                attempts.append(attempt_refund(sessions, ids, case.at, case.kind))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        assert len(attempts) == WORKERS
        report(f"postgresql {case.kind}", attempts)
        # The row lock queues them all: nobody on PostgreSQL is turned away.
        assert all(a.status != "refused" for a in attempts)
        check(outcome(engine, ids), attempts, case)
    finally:
        engine.dispose()


def run_processes(
    url: str, ids: Ids, case: Case, count: int, busy_timeout: float | None
) -> list[Attempt]:
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    barrier = mp.Barrier(count, timeout=120)
    results = mp.Queue()
    processes = [
        mp.Process(
            target=refund_process,
            args=(url, ids, case.policy, case.at, case.kind, barrier, results, busy_timeout),
        )
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    attempts: list[Attempt] = []
    try:
        for _ in range(count):
            attempts.append(results.get(timeout=180))
    except queue.Empty:
        pytest.fail(f"only {len(attempts)} of {count} workers answered")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # pragma: no cover - a hung worker of this test
                process.kill()
    assert [p.exitcode for p in processes] == [0] * count
    return attempts


@pytest.mark.parametrize(
    ("case", "count", "busy_timeout"),
    [(MONEY_BACK, WORKERS, None), (UNUSED_PERIOD, 20, 0.5)],
    ids=["money_back", "unused_period-short-busy-timeout"],
)
def test_processes_on_a_sqlite_file(
    tmp_path: Path, case: Case, count: int, busy_timeout: float | None
) -> None:
    url = sqlite_file_url(tmp_path)
    ids = world(url, case)
    engine = make_engine(url)
    try:
        with engine.connect():
            pass  # the file is in WAL mode before the workers open it
        attempts = run_processes(url, ids, case, count, busy_timeout)
        report(f"sqlite file {case.kind} (busy timeout {busy_timeout or 'default'})", attempts)
        check(outcome(engine, ids), attempts, case)
    finally:
        engine.dispose()


# -- concurrent immediate cancellations ----------------------------------------------------
# voip, 50.00 paid on Mar 1; cancelled at once on Mar 21 09:00: the unused 11 of 31 days,
# 17.74, refunded to the card. Two such refunds (35.48) would still fit in the charge.
CANCEL = Case(
    "voip", "50.00", "2026-03-01T00:00-05:00", "2026-03-21T09:00-04:00",
    "cancel", "approved", 1774,
)  # fmt: skip
CANCELLERS = 10
CANCEL_RACE = (
    "engine bug: subscriptions.cancel locks nothing and billing.pay_refund caps the refund "
    "with the payment as this session last read it, so on PostgreSQL concurrent immediate "
    "cancellations that read the subscription before the first commits each refund the "
    "unused days (and the payment's refunded_minor loses all but one update)"
)


def check_one_cancellation(engine: Engine, ids: Ids, outcomes: list[str]) -> None:
    after = trace(engine, ids)
    assert after.refunds == [CANCEL.refund_minor]
    assert after.refunded_minor == CANCEL.refund_minor
    assert after.journal_transactions == 1 and after.journal_entries == 2
    assert after.subscription_status == "canceled"
    assert after.ledger_balanced
    assert sorted(after.cancel_decisions) == [("cancel", 0)] * (len(outcomes) - 1) + [
        ("cancel", CANCEL.refund_minor)
    ]
    assert sorted(outcomes) == ["approved"] + ["declined"] * (len(outcomes) - 1)


@pytest.mark.parametrize(
    "database",
    [
        "sqlite-file",
        pytest.param("postgresql"),
    ],
)
def test_concurrent_immediate_cancellations_refund_once(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    """Ten threads cancel the same subscription at once; one refund, nine refusals.
    On PostgreSQL each reads the subscription first (as the API's handler does) so that
    every one of them starts from the state before the first cancellation."""
    url = (
        sqlite_file_url(tmp_path)
        if database == "sqlite-file"
        else request.getfixturevalue("postgres_url")
    )
    ids = world(url, CANCEL)
    engine = make_engine(url, pool_size=CANCELLERS, max_overflow=0)
    try:
        sessions = session_factory(engine)
        barrier = threading.Barrier(CANCELLERS, timeout=30)
        # SQLite: a read takes the write lock (BEGIN IMMEDIATE), so nobody reads early.
        early = database == "postgresql"
        with ThreadPoolExecutor(CANCELLERS) as pool:
            futures = [
                pool.submit(cancel_now, sessions, ids, CANCEL.at, barrier, early)
                for _ in range(CANCELLERS)
            ]
            outcomes = [f.result(timeout=60) for f in futures]
        check_one_cancellation(engine, ids, outcomes)
    finally:
        engine.dispose()


def test_concurrent_cancel_requests_through_the_api_refund_once(postgres_url: str) -> None:
    """POST /v1/subscriptions/{id}/cancel ten times at once on PostgreSQL, with a sandbox
    gateway that knows the charge and what it refunded (shared, as the API's is)."""
    ids = world(postgres_url, CANCEL)
    engine = make_engine(postgres_url, pool_size=CANCELLERS + 5)
    try:
        with session_factory(engine)() as session:
            payment_ref = session.get_one(PaymentRow, ids.payment_id).gateway_ref
        clock = TestClock(datetime.fromisoformat(CANCEL.at))
        runtime = Runtime(engine, clock=clock, admin_token="adm_durability")
        barrier = threading.Barrier(CANCELLERS, timeout=30)
        headers = {"Authorization": f"Bearer {ids.admin_key}"}
        path = f"/v1/subscriptions/{ids.public(Prefix.SUBSCRIPTION, ids.subscription_id)}/cancel"
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:

            def post() -> tuple[int, str | None]:
                barrier.wait()
                response = client.post(path, json={"immediately": True}, headers=headers)
                body = response.json()
                return response.status_code, (body.get("decision") or {}).get("outcome")

            with ThreadPoolExecutor(CANCELLERS) as pool:
                answers = list(pool.map(lambda _: post(), range(CANCELLERS)))
        after = trace(engine, ids)
        print(
            f"API cancellations: {Counter(answers)}; refunds {after.refunds}, gateway "
            f"references {Counter(after.refund_references)}; gateway refunded "
            f"{sandbox_refunded(engine, payment_ref)}"
        )
        assert all(status == 200 for status, _ in answers), answers
        check_one_cancellation(engine, ids, [outcome for _, outcome in answers if outcome])
    finally:
        engine.dispose()


# -- two refunds into one wallet at once -----------------------------------------------------
WALLET_RACE = (
    "engine bug: billing.pay_refund adds to customers.wallet_minor in Python on the customer "
    "row as the session read it; review locks only its own payment, so on PostgreSQL two "
    "reviews of different payments of one customer lose one wallet credit"
)


@pytest.mark.parametrize(
    "database",
    [
        "sqlite-file",
        pytest.param("postgresql"),
    ],
)
def test_two_wallet_refunds_at_once_both_reach_the_wallet(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    """qomon: payment 1 (100.00) was charged twice more by mistake; a reviewer accepts the
    two duplicate-charge requests at the same moment, each to the wallet: 200.00 in all."""
    url = (
        sqlite_file_url(tmp_path)
        if database == "sqlite-file"
        else request.getfixturevalue("postgres_url")
    )
    ids = world(url, Case("qomon", "100.00", "2026-03-01T00:00+01:00", "", "", "", 0))
    charge_twice_more(url, ids, "100.00", "2026-03-01T00:05+01:00", "2026-03-03T09:00+01:00")
    engine = make_engine(url, pool_size=2, max_overflow=0)
    try:
        sessions = session_factory(engine)
        barrier = threading.Barrier(2, timeout=30)
        early = database == "postgresql"
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(
                    accept_review, sessions, ids, "2026-03-04T09:00+01:00", n, barrier, early
                )
                for n in (1, 2)
            ]
            outcomes = [f.result(timeout=60) for f in futures]
        assert outcomes == ["approved", "approved"]
        balance, entries, paid = wallet(engine, ids)
        assert paid == [(10000, "wallet"), (10000, "wallet")]
        assert entries == [10000, 10000]
        assert balance == 20000
    finally:
        engine.dispose()


def sandbox_refunded(engine: Engine, reference: str) -> int:
    """What the sandbox gateway's own books say it refunded of the charge ``reference``."""
    with session_factory(engine)() as session:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(SandboxOperationRow.amount_minor), 0)).where(
                    SandboxOperationRow.kind == "refund",
                    SandboxOperationRow.ok.is_(True),
                    SandboxOperationRow.charge_reference == reference,
                )
            )
            or 0
        )
