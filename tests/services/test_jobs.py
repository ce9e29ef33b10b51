"""A failing job never stops the others (``services.jobs``, ``scheduler.run_due``,
``background.tick``).

The failing item fails for a real cause where there is one: a Kalenner subscription left
by the closure bug (the account closed after a cancel-and-resubscribe downgrade, its
``successor_plan`` still set, as rows written before the fix are), whose period end
starts a subscription the closed account must refuse (``Conflict``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.sandbox import SandboxGateway
from fairbill.policy.load import bundled_policy
from fairbill.services import background, billing_cycle, jobs, policies, scheduler, subscriptions
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.services.jobs import Job, JobRunner, Outcome, retry_delay
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.migrate import upgrade
from fairbill.store.tables import (
    CreditPackRow,
    CustomerRow,
    InvoiceRow,
    JobFailureRow,
    MerchantRow,
    NotificationRow,
    PaymentMethodRow,
    PlanRow,
    SubscriptionRow,
)

PARIS = ZoneInfo("Europe/Paris")
PERIOD_START = datetime(2026, 3, 1, tzinfo=PARIS)
PERIOD_END = datetime(2026, 4, 1, tzinfo=PARIS)
RUN = PERIOD_END + timedelta(hours=1)  # the scheduler's run after the period end
BOUNDARY = str(Job.SUBSCRIPTION_BOUNDARY)


# -- a world of due renewals -----------------------------------------------------------------
def add_merchant(session: Session, name: str = "Kalenner") -> MerchantRow:
    merchant = MerchantRow(
        name=name,
        policy_ref="kalenner",
        policy_id="kalenner",
        policy_version="2025-05-26",
        currency="EUR",
        timezone="Europe/Paris",
        country="FR",
        language="fr",
        finance_email=f"finance@{name.lower()}.test",
    )
    session.add(merchant)
    session.flush()
    policies.store_published(session, merchant, bundled_policy("kalenner"), at=RUN, by="test")
    session.add(PlanRow(merchant_id=merchant.id, code="solo", interval_months=1, price_minor=2900))
    return merchant


def add_renewals(session: Session, merchant: MerchantRow, count: int, one_by_one: int) -> None:
    """``count`` monthly subscriptions whose period ended at ``PERIOD_END``; ``one_by_one``
    of them (every other one) with a pending plan change, which the bulk path leaves to
    ``subscriptions.advance``."""
    customers = [
        CustomerRow(merchant_id=merchant.id, code=f"{merchant.name}-{i}", language="fr")
        for i in range(count)
    ]
    session.add_all(customers)
    session.flush()
    session.add_all(
        PaymentMethodRow(customer_id=c.id, code="card", currency="EUR", token=f"tok_{c.id}")
        for c in customers
    )
    session.add_all(
        SubscriptionRow(
            customer_id=c.id,
            plan_code="solo",
            status="active",
            anchor=PERIOD_START,
            started_at=PERIOD_START,
            current_period_start=PERIOD_START,
            current_period_end=PERIOD_END,
            payment_method="card",
            price_minor=2900,
            is_first=False,
            pending_plan="solo" if i % 2 and i < 2 * one_by_one else None,
        )
        for i, c in enumerate(customers)
    )
    session.flush()


def break_one(session: Session, merchant: MerchantRow, index: int) -> SubscriptionRow:
    """The closure bug's leftover: closed after a downgrade that resubscribes at the period
    end, with ``successor_plan`` still set."""
    customer = session.scalars(
        select(CustomerRow).where(CustomerRow.code == f"{merchant.name}-{index}")
    ).one()
    customer.status = "closed"
    sub = session.scalars(
        select(SubscriptionRow).where(SubscriptionRow.customer_id == customer.id)
    ).one()
    sub.pending_plan, sub.successor_plan, sub.cancel_at = None, "solo", PERIOD_END
    session.flush()
    return sub


@pytest.fixture
def sqlite_memory() -> Iterator[sessionmaker[Session]]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    yield session_factory(engine)
    engine.dispose()


def context(session: Session, clock: TestClock, merchant_id: int) -> Ctx:
    merchant = session.get_one(MerchantRow, merchant_id)
    return Ctx(session, clock, SandboxGateway(), merchant, bundled_policy("kalenner"))


def failures(session: Session) -> list[JobFailureRow]:
    return list(session.scalars(select(JobFailureRow).order_by(JobFailureRow.id)))


def alerts(session: Session) -> list[NotificationRow]:
    return list(
        session.scalars(select(NotificationRow).where(NotificationRow.merchant_id.is_not(None)))
    )


def invoices_of(session: Session, sub_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(InvoiceRow).where(InvoiceRow.subscription_id == sub_id)
        )
        or 0
    )


# -- the scheduler: one failing item among 2,000 due renewals ------------------------------------
def test_one_failing_renewal_among_two_thousand(sqlite_memory: sessionmaker[Session]) -> None:
    clock = TestClock(PERIOD_START)
    with sqlite_memory() as session:
        merchant = add_merchant(session)
        add_renewals(session, merchant, 2000, one_by_one=200)
        broken = break_one(session, merchant, 201)  # mid-way through the one-by-one ones
        customer = session.get_one(CustomerRow, broken.customer_id + 2)
        pack = CreditPackRow(  # due at the same run, after the subscription boundaries
            customer_id=customer.id,
            kind="sms",
            quantity=10,
            remaining=10,
            purchased_at=PERIOD_START,
            expires_at=PERIOD_END,
            status="active",
        )
        session.add(pack)
        session.commit()
        merchant_id, broken_id, pack_id = merchant.id, broken.id, pack.id
    target = f"subscription:{broken_id}"

    # The run: everything but the broken subscription renews; its failure is recorded.
    clock.advance_to(RUN)
    with sqlite_memory() as session:
        report = scheduler.run_due(context(session, clock, merchant_id))
        session.commit()
    assert report.failed == [(BOUNDARY, target)]
    assert report.waiting == []
    with sqlite_memory() as session:
        subs = list(session.scalars(select(SubscriptionRow).order_by(SubscriptionRow.id)))
        assert len(subs) == 2000
        renewed = [s for s in subs if s.current_period_end > RUN]
        assert len(renewed) == 1999 and broken_id not in {s.id for s in renewed}
        assert all(s.pending_plan is None for s in renewed)  # the one-by-one ones too
        invoiced = session.scalar(select(func.count(func.distinct(InvoiceRow.subscription_id))))
        assert invoiced == 1999
        left = session.get_one(SubscriptionRow, broken_id)
        assert (left.status, left.successor_plan, invoices_of(session, broken_id)) == (
            "active",
            "solo",
            0,
        )
        assert session.get_one(CreditPackRow, pack_id).status == "expired"
        [failure] = failures(session)
        assert (failure.merchant_id, failure.job, failure.target) == (
            merchant_id,
            BOUNDARY,
            target,
        )
        assert failure.error.startswith("Conflict: customer Kalenner-201 is closed")
        assert failure.attempts == 1
        assert failure.first_failed_at == failure.last_failed_at == RUN
        assert failure.next_attempt_at == RUN + timedelta(minutes=1)
        assert failure.resolved_at is None
        [alert] = alerts(session)
        assert (alert.customer_id, alert.merchant_id, alert.template) == (
            None,
            merchant_id,
            "job_failed",
        )
        assert alert.language == "fr"
        assert alert.payload["target"] == target and alert.payload["job"] == BOUNDARY
        assert alert.payload["next_attempt_at"] == (RUN + timedelta(minutes=1)).isoformat()

    # Before its next attempt it waits, and the clock is told so.
    clock.advance_to(RUN + timedelta(seconds=30))
    with sqlite_memory() as session:
        ctx = context(session, clock, merchant_id)
        assert scheduler.next_due(ctx) == RUN + timedelta(minutes=1)
        report = scheduler.run_due(ctx)
        session.commit()
        assert report.waiting == [(BOUNDARY, target)] and report.failed == []
        assert failures(session)[0].attempts == 1

    # At it, it is tried again, fails again, waits 4 minutes; no second alert.
    clock.advance_to(RUN + timedelta(minutes=1))
    with sqlite_memory() as session:
        report = scheduler.run_due(context(session, clock, merchant_id))
        session.commit()
        assert report.failed == [(BOUNDARY, target)]
        [failure] = failures(session)
        assert failure.attempts == 2
        assert failure.first_failed_at == RUN
        assert failure.last_failed_at == RUN + timedelta(minutes=1)
        assert failure.next_attempt_at == RUN + timedelta(minutes=5)
        assert len(alerts(session)) == 1

    # Fixed (what closing does now): the next attempt runs it, and resolves the failure.
    with sqlite_memory() as session:
        session.get_one(SubscriptionRow, broken_id).successor_plan = None
        session.commit()
    clock.advance_to(RUN + timedelta(minutes=5))
    with sqlite_memory() as session:
        report = scheduler.run_due(context(session, clock, merchant_id))
        session.commit()
        assert report.failed == [] and report.waiting == []
        assert session.get_one(SubscriptionRow, broken_id).status == "canceled"
        [failure] = failures(session)
        assert failure.resolved_at == RUN + timedelta(minutes=5)
        assert failure.next_attempt_at is None
        assert len(alerts(session)) == 1
        assert scheduler.next_due(context(session, clock, merchant_id)) != RUN + timedelta(
            minutes=5
        )


def test_retry_delay_grows_fourfold_up_to_six_hours() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [
        timedelta(minutes=1),
        timedelta(minutes=4),
        timedelta(minutes=16),
        timedelta(minutes=64),
        timedelta(minutes=256),
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(hours=6),
    ]


def test_a_failing_bulk_path_falls_back_to_one_by_one(
    sqlite_memory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = TestClock(RUN)
    with sqlite_memory() as session:
        merchant = add_merchant(session)
        add_renewals(session, merchant, 20, one_by_one=0)
        session.commit()
        merchant_id = merchant.id
    renew_due = billing_cycle.renew_due

    def half_then_fail(ctx: Ctx, chunk_size: int = billing_cycle.CHUNK) -> Any:
        renew_due(ctx, chunk_size=5)  # chunks written, then rolled back with the savepoint
        raise RuntimeError("chunk writer broke")

    monkeypatch.setattr(billing_cycle, "renew_due", half_then_fail)
    with sqlite_memory() as session:
        report = scheduler.run_due(context(session, clock, merchant_id))
        session.commit()
    assert report.failed == [(str(Job.RENEWAL_BULK), f"merchant:{merchant_id}")]
    assert report.ran == 1 + 20  # the retries' bulk path, then each subscription
    with sqlite_memory() as session:
        subs = list(session.scalars(select(SubscriptionRow)))
        assert all(s.current_period_end > RUN for s in subs)
        assert all(invoices_of(session, s.id) == 1 for s in subs)  # renewed once, not twice
        [failure] = failures(session)
        assert failure.error == "RuntimeError: chunk writer broke"


# -- isolation on every database: a database error in one item ------------------------------------
@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        upgrade(url)
        engine = make_engine(url)
    else:
        url = "sqlite://" if request.param == "sqlite-memory" else f"sqlite:///{tmp_path}/f.db"
        engine = make_engine(url)
        create_schema(engine)
    yield session_factory(engine)
    engine.dispose()


def test_a_database_error_rolls_back_its_item_only(sessions: sessionmaker[Session]) -> None:
    """On PostgreSQL an error aborts the transaction: the savepoint is what lets the run go
    on. The failed item's writes are gone, the others' are kept, all in one commit."""
    with sessions() as session:
        merchant = add_merchant(session)
        session.commit()
    with sessions() as session:
        merchant = session.get_one(MerchantRow, merchant.id)
        runner = JobRunner.load(session, merchant, RUN)

        def plan(code: str) -> None:
            session.add(PlanRow(merchant_id=merchant.id, code=code, interval_months=1))
            session.flush()

        outcomes = [
            runner.run("catalog", "plan:a", lambda: plan("a")),
            runner.run("catalog", "plan:dup", lambda: (plan("b"), plan("solo"))),  # exists
            runner.run("catalog", "plan:c", lambda: plan("c")),
        ]
        session.commit()
    assert outcomes == [Outcome.RAN, Outcome.FAILED, Outcome.RAN]
    with sessions() as session:
        codes = set(session.scalars(select(PlanRow.code)))
        assert codes == {"solo", "a", "c"}  # not "b": its item was rolled back
        [failure] = failures(session)
        assert failure.target == "plan:dup"
        assert failure.error.startswith(IntegrityError.__name__)


def test_a_failure_after_it_was_resolved_reopens_the_same_row(
    sqlite_memory: sessionmaker[Session],
) -> None:
    def boom() -> None:
        raise ValueError("boom")

    with sqlite_memory() as session:
        merchant = add_merchant(session)
        at = RUN
        for work, expected in ((boom, Outcome.FAILED), (lambda: None, Outcome.RAN)):
            at += timedelta(hours=1)
            assert JobRunner.load(session, merchant, at).run("x", "t:1", work) == expected
        at += timedelta(hours=1)
        assert JobRunner.load(session, merchant, at).run("x", "t:1", boom) == Outcome.FAILED
        session.commit()
        [failure] = failures(session)
        assert (failure.attempts, failure.first_failed_at, failure.resolved_at) == (1, at, None)
        assert len(alerts(session)) == 2  # one per episode
        with pytest.raises(ValueError, match="do not fit"):
            JobRunner.load(session, merchant, at).run("x", "t:" + "1" * 64, boom)


# -- the background loop: a failing merchant does not stop the next ------------------------------
def test_a_failing_merchant_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'tick.db'}")
    create_schema(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        first, second = add_merchant(session, "Broken"), add_merchant(session, "Fine")
        for merchant in (first, second):
            add_renewals(session, merchant, 3, one_by_one=1)
        session.commit()
        broken_id, fine_id = first.id, second.id
    run_due = scheduler.run_due
    calls: list[int] = []

    def failing_for_the_first(ctx: Ctx) -> Any:
        calls.append(ctx.merchant_row.id)
        if ctx.merchant_row.id == broken_id:
            run_due(ctx)  # its work is done, then lost with the merchant's savepoint
            raise RuntimeError("scheduler query failed")
        return run_due(ctx)

    monkeypatch.setattr(scheduler, "run_due", failing_for_the_first)
    clock = TestClock(RUN)
    gateway = SandboxGateway()

    def renewed(merchant_id: int) -> int:
        with sessions() as session:
            query = (
                select(func.count())
                .select_from(SubscriptionRow)
                .join(CustomerRow, CustomerRow.id == SubscriptionRow.customer_id)
                .where(
                    CustomerRow.merchant_id == merchant_id, SubscriptionRow.current_period_end > RUN
                )
            )
            return session.scalar(query) or 0

    background.tick(sessions, clock, gateway)
    assert calls == [broken_id, fine_id]
    # The plain renewals were claimed and committed chunk by chunk before the merchant's
    # run (``background.renew_in_chunks``): only the run's own work (the renewal with a
    # plan change, one by one) is lost with its savepoint.
    assert (renewed(broken_id), renewed(fine_id)) == (2, 3)
    with sessions() as session:
        [failure] = failures(session)
        assert (failure.merchant_id, failure.job, failure.target) == (
            broken_id,
            str(Job.MERCHANT_RUN),
            f"merchant:{broken_id}",
        )
        assert failure.error == "RuntimeError: scheduler query failed"
        [alert] = alerts(session)
        assert alert.merchant_id == broken_id

    # Waiting for its next attempt, the broken merchant is not run at all.
    clock.advance_to(RUN + timedelta(seconds=59))
    background.tick(sessions, clock, gateway)
    assert calls == [broken_id, fine_id, fine_id]

    # Repaired, it runs at its next attempt and the failure is resolved.
    monkeypatch.setattr(scheduler, "run_due", run_due)
    clock.advance_to(RUN + timedelta(minutes=1))
    background.tick(sessions, clock, gateway)
    assert renewed(broken_id) == 3
    with sessions() as session:
        [failure] = failures(session)
        assert failure.resolved_at == RUN + timedelta(minutes=1)
    engine.dispose()


def test_an_unrecordable_failure_is_logged_and_the_loop_goes_on(
    sqlite_memory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sqlite_memory() as session:
        ids = [add_merchant(session, name).id for name in ("A", "B")]
        session.commit()
    ran: list[int] = []

    def run_merchant(
        sessions: Any, clock: Any, gateway: Any, merchant_id: int, stop: Any = None
    ) -> int:
        if merchant_id == ids[0]:
            raise OSError("database unreachable")
        ran.append(merchant_id)
        return 0

    monkeypatch.setattr(background, "run_merchant", run_merchant)
    background.tick(sqlite_memory, TestClock(RUN), SandboxGateway())
    assert ran == [ids[1]]
    assert f"the run of merchant {ids[0]} failed" in caplog.text


def test_waiting_failures_hold_back_only_their_own_job(
    sqlite_memory: sessionmaker[Session],
) -> None:
    with sqlite_memory() as session:
        merchant = add_merchant(session)
        add_renewals(session, merchant, 2, one_by_one=0)
        sub_ids = list(session.scalars(select(SubscriptionRow.id).order_by(SubscriptionRow.id)))
        session.add(
            JobFailureRow(
                merchant_id=merchant.id,
                job=str(Job.SUBSCRIPTION_BOUNDARY),
                target=f"subscription:{sub_ids[0]}",
                error="x",
                attempts=3,
                first_failed_at=RUN,
                last_failed_at=RUN,
                next_attempt_at=RUN + timedelta(hours=2),
            )
        )
        session.commit()
        ctx = context(session, TestClock(RUN), merchant.id)
        assert [row.target for row in jobs.waiting(session, merchant.id, RUN)] == [
            f"subscription:{sub_ids[0]}"
        ]
        # The other subscription's period end is still due.
        assert scheduler.next_due(ctx) == PERIOD_END
        other = session.get_one(SubscriptionRow, sub_ids[1])
        subscriptions.advance(ctx, session.get_one(CustomerRow, other.customer_id), other)
        assert scheduler.next_due(ctx) == RUN + timedelta(hours=2)


def test_a_failure_whose_item_is_no_longer_due_is_resolved(
    sqlite_memory: sessionmaker[Session],
) -> None:
    with sqlite_memory() as session:
        merchant = add_merchant(session)
        add_renewals(session, merchant, 2, one_by_one=0)
        gone, waiting = session.scalars(select(SubscriptionRow).order_by(SubscriptionRow.id))
        for sub in (gone, waiting):
            session.add(
                JobFailureRow(
                    merchant_id=merchant.id,
                    job=str(Job.SUBSCRIPTION_BOUNDARY),
                    target=scheduler.target(sub),
                    error="x",
                    first_failed_at=RUN,
                    last_failed_at=RUN,
                    next_attempt_at=RUN + timedelta(hours=1),
                )
            )
        gone.status, gone.ended_at = "canceled", RUN  # ended meanwhile: nothing left to do
        waiting.pending_plan = "solo"  # one by one (the bulk path would renew it)
        session.commit()
        report = scheduler.run_due(context(session, TestClock(RUN), merchant.id))
        session.commit()
        assert report.waiting == [(BOUNDARY, scheduler.target(waiting))]
        resolved = {f.target: f.resolved_at for f in failures(session)}
        assert resolved == {scheduler.target(gone): RUN, scheduler.target(waiting): None}
