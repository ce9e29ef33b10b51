"""``fairbill worker``: the due work as a process of its own.

A pass is ``background.tick`` (the gateway janitor and the idempotency keys' upkeep, then
every merchant's due work: renewals claimed chunk by chunk, the rest under the merchant's
advisory lock), then, when an SMTP server is configured and the outbox has no thread of
its own (``--once``), the outbox delivered until it is empty or the server fails.
Passes follow each other every ``every_seconds`` until ``stop`` is set; a pass that
fails is logged and the next one does the same idempotent work again.

Several workers share a PostgreSQL database: each renewal is claimed by one of them
(``SKIP LOCKED``), each merchant's other work is run by one at a time, so they divide
the work instead of repeating it (``services.background``). On SQLite, whose writers take
turns, a second worker is harmless and adds nothing. ``fairbill serve`` runs the same
loop in a thread unless a worker is expected (``FAIRBILL_EXPECT_WORKER``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from fairbill.gateway.port import PaymentGateway
from fairbill.notify.outbox import deliver_pending
from fairbill.notify.smtp import SmtpSettings
from fairbill.services import background
from fairbill.services.clock import Clock

log = logging.getLogger("fairbill.worker")

OUTBOX_BATCH = 100


def run(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    stop: threading.Event,
    every_seconds: float,  # float-ok: seconds between passes
    *,
    once: bool = False,
    smtp: SmtpSettings | None = None,
    after_pass: Callable[[], None] | None = None,
) -> int:
    """Run passes until ``stop`` is set, or one (``once``); returns how many ran.
    ``smtp``: deliver the outbox after each pass (when no outbox thread runs).
    ``after_pass`` is called after each pass (a hook for the caller: tests, metrics)."""
    passes = 0
    while True:
        one_pass(sessions, clock, gateway, stop, smtp)
        passes += 1
        if after_pass is not None:
            after_pass()
        if once or stop.wait(every_seconds):
            return passes


def one_pass(
    sessions: sessionmaker[Session],
    clock: Clock,
    gateway: PaymentGateway,
    stop: threading.Event,
    smtp: SmtpSettings | None = None,
) -> None:
    """The due work once (``background.tick``), then the outbox if ``smtp`` is given."""
    try:
        background.tick(sessions, clock, gateway, stop)
    except Exception:  # the next pass does the same idempotent work again
        log.exception("worker: the pass failed")
    if smtp is not None and not stop.is_set():
        drain_outbox(sessions, smtp, clock)


def drain_outbox(sessions: sessionmaker[Session], smtp: SmtpSettings, clock: Clock) -> int:
    """Deliver waiting notifications, batch after batch, until a batch is not full (or
    the server or the database failed: the next pass tries again); returns how many
    were sent."""
    sent = 0
    while True:
        try:
            report = deliver_pending(sessions, smtp, clock.now(), OUTBOX_BATCH)
        except Exception:  # unsent rows stay in the outbox for the next pass
            log.exception("worker: outbox delivery failed")
            return sent
        sent += len(report.sent)
        if report.stopped is not None or report.attempted < OUTBOX_BATCH:
            return sent
