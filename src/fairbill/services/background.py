"""The server's background loop: run due work for every merchant, one transaction each.

A merchant whose run fails is one failing item of the loop (``jobs.JobRunner``, job
``merchant_run``): rolled back, recorded, retried with backoff, reported to the merchant,
and never in the way of the next merchant. Items within a run are isolated the same way
by ``scheduler.run_due``.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.port import PaymentGateway
from fairbill.services import idempotency, operations, scheduler
from fairbill.services import merchants as merchant_service
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx
from fairbill.services.jobs import Job, JobRunner
from fairbill.store.tables import MerchantRow

log = logging.getLogger("fairbill.background")


def tick(sessions: sessionmaker[Session], clock: Clock, gateway: PaymentGateway) -> None:
    """Run the janitors (gateway operations left open, idempotency keys to release or
    expire), then what is due for every merchant, each in a transaction of its own."""
    janitors(sessions, clock, gateway)
    with sessions() as session:
        merchant_ids = list(session.scalars(select(MerchantRow.id).order_by(MerchantRow.id)))
    for merchant_id in merchant_ids:
        try:
            run_merchant(sessions, clock, gateway, merchant_id)
        except Exception:  # not even recorded (the database failed): the next tick retries
            log.exception("background: the run of merchant %s failed", merchant_id)


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
    sessions: sessionmaker[Session], clock: Clock, gateway: PaymentGateway, merchant_id: int
) -> None:
    """One merchant's due work, committed, then the gateway operations it requested sent
    and settled; a failure of the run as a whole (its policy no longer loads, a query of
    the scheduler's own fails) is recorded and committed instead."""
    with sessions() as session:
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


def run_forever(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    stop: threading.Event,
    every_seconds: float,  # float-ok: seconds between runs
) -> None:
    while not stop.wait(every_seconds):
        try:
            tick(sessions, clock, gateway)
        except Exception:  # keep serving; the next tick retries the same idempotent work
            log.exception("background tick failed")
