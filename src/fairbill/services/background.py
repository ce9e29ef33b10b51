"""The server's background loop: run due work for every merchant, one transaction each."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.port import PaymentGateway
from fairbill.services import merchants as merchant_service
from fairbill.services import scheduler
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx
from fairbill.store.tables import MerchantRow

log = logging.getLogger("fairbill.background")


def tick(sessions: sessionmaker[Session], clock: Clock, gateway: PaymentGateway) -> None:
    with sessions() as session:
        merchant_ids = list(session.scalars(select(MerchantRow.id)))
    for merchant_id in merchant_ids:
        with sessions() as session:
            merchant = session.get_one(MerchantRow, merchant_id)
            ctx = Ctx(session, clock, gateway, merchant, merchant_service.merchant_policy(merchant))
            scheduler.run_due(ctx)
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
