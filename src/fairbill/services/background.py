"""The loop of due work (``fairbill worker``, or inside ``fairbill serve``): for every
merchant, its plain renewals a chunk per transaction, then the rest in one transaction.

A merchant whose run fails is one failing item of the loop (``jobs.JobRunner``, job
``merchant_run``): rolled back, recorded, retried with backoff, reported to the merchant,
and never in the way of the next merchant. Items within a run are isolated the same way
by ``scheduler.run_due``.

Several processes may run the loop on one PostgreSQL database at once: the renewals'
chunks are claimed with ``SKIP LOCKED`` (``billing_cycle.renew_chunk``), so each worker
renews its own and every renewal happens once; the rest of a merchant's run (trials,
cancellations, retries, usage checks …) is taken by one worker at a time under the
merchant's advisory lock (``store.locks``), the others move on. The janitors may run in
several at once: an operation's outcome is applied once (``operations.record``) and the
gateway sees its one key.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.port import PaymentGateway
from fairbill.services import billing_cycle, idempotency, operations, scheduler
from fairbill.services import merchants as merchant_service
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx
from fairbill.services.jobs import Job, JobRunner, Outcome
from fairbill.store import locks
from fairbill.store.tables import MerchantRow

log = logging.getLogger("fairbill.background")


def tick(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    stop: threading.Event | None = None,
) -> int:
    """Run the janitors (gateway operations left open, idempotency keys to release or
    expire), then what is due for every merchant, each in a transaction of its own. Once
    ``stop`` is set no further merchant or chunk is begun (what is due is the next
    tick's). Returns how many renewals this process's chunks made."""
    janitors(sessions, clock, gateway)
    with sessions() as session:
        merchant_ids = list(session.scalars(select(MerchantRow.id).order_by(MerchantRow.id)))
    renewed = 0
    for merchant_id in merchant_ids:
        if stop is not None and stop.is_set():
            break
        try:
            renewed += run_merchant(sessions, clock, gateway, merchant_id, stop)
        except Exception:  # not even recorded (the database failed): the next tick retries
            log.exception("background: the run of merchant %s failed", merchant_id)
    return renewed


def janitors(sessions: sessionmaker[Session], clock: Clock, gateway: PaymentGateway) -> None:
    """Kill Bill's janitor for the gateway (``operations.reconcile_all``: operations no
    one settled, asked again under their own keys) and the idempotency keys' upkeep (a
    claim whose process died is released; a finished key expires after 24 hours, as
    Stripe's do; both on the wall clock, see ``services.idempotency``). Each failure is
    logged and left for the next tick."""
    try:
        operations.reconcile_all(sessions, clock, gateway)
    except Exception:  # the next tick asks again
        log.exception("background: reconciling gateway operations failed")
    try:
        with sessions() as session:
            now = idempotency.wall_now()
            idempotency.release_abandoned(session, now)
            idempotency.prune_keys(session, now)
            session.commit()
    except Exception:  # the next tick tries again
        log.exception("background: idempotency key upkeep failed")


def run_merchant(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    merchant_id: int,
    stop: threading.Event | None = None,
) -> int:
    """One merchant's due work: its plain renewals (``renew_in_chunks``), then the rest,
    committed, and the gateway operations it requested sent and settled; a failure of the
    run as a whole (its policy no longer loads, a query of the scheduler's own fails) is
    recorded and committed instead. The rest is skipped while another worker runs it
    (the merchant's advisory lock): that worker does it. Returns how many renewals this
    process's chunks made."""
    renewed = renew_in_chunks(sessions, clock, gateway, merchant_id, stop)
    if renewed:
        log.info("renewed %d subscriptions of merchant %s", renewed, merchant_id)
    if stop is not None and stop.is_set():
        return renewed
    with sessions() as session:
        if not locks.try_lock(session, locks.Namespace.MERCHANT_RUN, merchant_id):
            return renewed
        merchant = session.get_one(MerchantRow, merchant_id)
        runner = JobRunner.load(session, merchant, clock.now())
        made: list[Ctx] = []

        def work() -> None:
            made.append(merchant_service.context(session, clock, gateway, merchant))
            scheduler.run_due(made[0])

        runner.run(Job.MERCHANT_RUN, f"merchant:{merchant_id}", work)
        if made:
            operations.commit_and_settle(made[0])
        else:
            session.commit()
    return renewed


def renew_in_chunks(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    merchant_id: int,
    stop: threading.Event | None = None,
) -> int:
    """The merchant's plain renewals, a chunk per transaction, until none is left that
    another worker does not hold: each chunk claimed and written
    (``billing_cycle.renew_chunk``), committed, then its charges sent and their outcomes
    recorded (``operations.commit_and_settle``), so a worker holds one chunk at a time.
    Returns how many were renewed. A chunk that fails is recorded as the bulk renewals'
    failure (``Job.RENEWAL_BULK``, as in ``scheduler.run_due``): until its next attempt
    the merchant's run renews those subscriptions one by one."""
    renewed = 0
    while (claimed := _renew_one_chunk(sessions, clock, gateway, merchant_id)) is not None:
        renewed += claimed
        if claimed < billing_cycle.CHUNK or (stop is not None and stop.is_set()):
            break
    return renewed


def _renew_one_chunk(
    sessions: sessionmaker[Session], clock: Clock, gateway: PaymentGateway, merchant_id: int
) -> int | None:
    """One chunk in its own transaction: how many were claimed, None if it did not run
    (it failed, or waits after a failure)."""
    with sessions() as session:
        merchant = session.get_one(MerchantRow, merchant_id)
        runner = JobRunner.load(session, merchant, clock.now())
        try:
            ctx = merchant_service.context(session, clock, gateway, merchant)
        except Exception:  # the merchant's run meets it too, and records it (merchant_run)
            return None
        claimed: list[int] = []
        outcome = runner.run(
            Job.RENEWAL_BULK,
            f"merchant:{merchant_id}",
            lambda: claimed.append(billing_cycle.renew_chunk(ctx)),
        )
        operations.commit_and_settle(ctx)
    return claimed[0] if outcome is Outcome.RAN else None


def run_forever(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    stop: threading.Event,
    every_seconds: float,  # float-ok: seconds between runs
) -> None:
    while not stop.wait(every_seconds):
        try:
            tick(sessions, clock, gateway, stop)
        except Exception:  # keep serving; the next tick retries the same idempotent work
            log.exception("background tick failed")
