"""Delivering the outbox: ``NotificationRow`` rows with ``sent_at IS NULL``, each once.

Services plan a notification row with the state change it announces
(``plans.billing.plan_notice``), and the applier writes both in one transaction, so a
committed change always has its message waiting here.
``deliver_pending`` takes the waiting rows oldest first, one transaction per row:

1. claim the row: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
   workers never hold the same row (on SQLite, where there are no row locks, run one
   delivering process per database file);
2. render it in the row's language and hand it to the SMTP server;
3. only once the server accepted it, set ``sent_at`` and commit at once.

Never lost: a row stays unsent (``sent_at`` NULL) until a server accepted its message;
a render error, a rejection (4xx or 5xx), an unreachable server or a crash before the
commit leaves it for the next run. Never sent twice, with one window: a crash (or a
database failure) after the server accepted the message and before ``sent_at`` was
committed sends it again on the next run. That window is one commit wide, and the resend
carries the same Message-ID (``<fairbill.notification.ID@…>``), so it is recognisable.

Retries: a row that failed for a reason that may pass (a 4xx reply) waits before its
next attempt, 1 minute after the first failure, then 4, 16, 64 … up to 6 hours between
attempts (``retry_delay``); after ``MAX_ATTEMPTS`` failures, or at once for a failure that
cannot pass (no address on file, an unusable address, a 5xx reply, a template that does
not render), it is *parked*: ``failed_at`` and ``last_error`` say when and why, and no
run tries it again until ``requeue`` puts it back. An unreachable server is not the
row's fault: it costs no attempt. Rows are never deleted, so nothing is lost.

Recipients: a row names a customer (``plan_notice``) and goes to the customer's address,
or names a merchant instead (``merchant_id`` set, ``customer_id`` NULL:
``services.alerts.notify_finance``) and goes to the merchant's ``finance_email``, from
fairbill rather than from the merchant. Without an address on file either is parked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fairbill.notify.render import RenderError, render
from fairbill.notify.smtp import (
    BadAddress,
    Rejected,
    SmtpConnection,
    SmtpSettings,
    Unreachable,
    build_email,
    message_id_for,
)
from fairbill.policy.load import resolve_policy
from fairbill.store.tables import CustomerRow, MerchantRow, NotificationRow

log = logging.getLogger("fairbill.notify")

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class Failure:
    notification_id: int
    error: str
    permanent: bool  # retrying will not help (render error, bad address, 5xx)
    parked: bool = False  # no run tries it again until ``requeue``


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)  # notification ids, in the order sent
    failed: list[Failure] = field(default_factory=list)  # left unsent: retried later or parked
    stopped: str | None = None  # why the run ended early (server unreachable, db error)

    @property
    def attempted(self) -> int:
        return len(self.sent) + len(self.failed)


# The sender's display name on alerts to a merchant's finance people.
PLATFORM_NAME = "fairbill"


@dataclass(frozen=True, slots=True)
class _Merchant:
    name: str
    currency: str
    timezone: str
    policy_ref: str
    finance_email: str | None


class NoAddress(BadAddress):
    """The customer (or, for an alert, the merchant) has no email address on file."""


def recipient(customer: CustomerRow, payload: dict[str, Any]) -> str:
    """``payload["email"]`` when the message names its own address (the data deletion
    notice, sent after the customer's address was erased), else the customer's."""
    for email in (payload.get("email"), customer.email):
        if isinstance(email, str) and email.strip():
            return email.strip()
    raise NoAddress(f"customer {customer.code} has no email address on file")


def finance_recipient(merchant_name: str, finance_email: str | None) -> str:
    """The merchant's finance address, for an alert addressed to the merchant."""
    if finance_email and finance_email.strip():
        return finance_email.strip()
    raise NoAddress(f"merchant {merchant_name} has no finance email address on file")


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: ×4 each time from 1 minute, at most 6 h."""
    steps = min(max(attempts - 1, 0), 10)  # 4**10 minutes is far past the cap already
    return min(FIRST_RETRY * (1 << 2 * steps), LONGEST_RETRY)


def requeue(session: Session, notification_ids: list[int]) -> int:
    """Put parked rows back in the queue (after the address or the template was fixed):
    their attempts start again. Returns how many rows were parked."""
    rows = session.scalars(
        select(NotificationRow).where(
            NotificationRow.id.in_(notification_ids),
            NotificationRow.sent_at.is_(None),
            NotificationRow.failed_at.is_not(None),
        )
    ).all()
    for row in rows:
        row.failed_at, row.next_attempt_at, row.attempts = None, None, 0
    return len(rows)


def deliver_pending(
    session_factory: Callable[[], Session],
    settings: SmtpSettings,
    now: datetime,
    batch: int = 100,
) -> DeliveryReport:
    """Send up to ``batch`` unsent notifications, oldest first; mark each sent on its own."""
    if now.tzinfo is None:
        raise ValueError("deliver_pending needs an aware 'now'")
    report = DeliveryReport()
    merchants: dict[int, _Merchant] = {}
    quotes: dict[str, dict[str, str]] = {}
    last_id = 0
    with SmtpConnection(settings) as connection:
        while report.attempted < batch:
            sent_id: int | None = None
            try:
                with session_factory() as session, session.begin():
                    row = _claim_next(session, last_id, now)
                    if row is None:
                        break
                    last_id = row.id
                    try:
                        email = _compose(session, row, settings, now, merchants, quotes)
                    except (RenderError, BadAddress) as exc:
                        _fail(report, row, now, str(exc), permanent=True)
                        continue
                    except SQLAlchemyError:
                        raise
                    except Exception as exc:  # one bad row must not block the outbox
                        log.exception("outbox: cannot compose notification %s", row.id)
                        _fail(report, row, now, f"{type(exc).__name__}: {exc}", permanent=True)
                        continue
                    try:
                        connection.send(email)
                    except Rejected as exc:
                        _fail(report, row, now, str(exc), permanent=exc.permanent)
                        continue
                    except Unreachable as exc:
                        report.stopped = str(exc)
                        log.warning("outbox: stopping, SMTP unreachable: %s", exc)
                        break
                    row.sent_at = now
                    sent_id = row.id
                # committed: the message is recorded as sent
            except SQLAlchemyError as exc:
                if sent_id is not None:
                    log.error(
                        "outbox: notification %s was sent but could not be marked sent; "
                        "it will be sent again (same Message-ID): %s",
                        sent_id,
                        exc,
                    )
                report.stopped = f"database error: {exc}"
                break
            if sent_id is not None:
                report.sent.append(sent_id)
    if report.attempted:
        log.info(
            "outbox: %d sent, %d failed%s",
            len(report.sent),
            len(report.failed),
            f", stopped: {report.stopped}" if report.stopped else "",
        )
    return report


def deliver_forever(
    session_factory: Callable[[], Session],
    settings: SmtpSettings,
    now: Callable[[], datetime],
    stop: threading.Event,
    every_seconds: float = 10.0,  # float-ok: seconds between runs
    batch: int = 100,
) -> None:
    """The background loop for ``fairbill serve``: deliver, then wait ``every_seconds``
    (at once again while full batches keep going out), until ``stop`` is set."""
    wait = every_seconds
    while not stop.wait(wait):
        wait = every_seconds
        try:
            report = deliver_pending(session_factory, settings, now(), batch)
        except Exception:  # keep the loop alive; unsent rows are retried next time
            log.exception("outbox delivery failed")
            continue
        if report.stopped is None and len(report.sent) == batch:
            wait = 0


# -- the steps ---------------------------------------------------------------------------------
def _claim_next(session: Session, after_id: int, now: datetime) -> NotificationRow | None:
    query = (
        select(NotificationRow)
        .where(
            NotificationRow.sent_at.is_(None),
            NotificationRow.failed_at.is_(None),
            or_(NotificationRow.next_attempt_at.is_(None), NotificationRow.next_attempt_at <= now),
            NotificationRow.id > after_id,
        )
        .order_by(NotificationRow.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Another worker's row stays locked until its sent_at is committed: skip it. A row
        # it has just committed is re-checked by PostgreSQL and no longer matches.
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def _compose(
    session: Session,
    row: NotificationRow,
    settings: SmtpSettings,
    now: datetime,
    merchants: dict[int, _Merchant],
    quotes: dict[str, dict[str, str]],
) -> EmailMessage:
    customer = None if row.customer_id is None else session.get_one(CustomerRow, row.customer_id)
    merchant_id = row.merchant_id if customer is None else customer.merchant_id
    if merchant_id is None:
        raise NoAddress(f"notification {row.id} names neither a customer nor a merchant")
    merchant = _merchant(session, merchant_id, merchants)
    payload = dict(row.payload or {})
    context: dict[str, Any] = {
        **payload,
        "merchant_name": merchant.name,
        "currency": payload.get("currency") or merchant.currency,
        "timezone": merchant.timezone,
    }
    if customer is not None:
        context["customer_code"] = customer.code
    if payload.get("clauses"):
        context["clauses"] = _with_quotes(payload["clauses"], merchant, quotes)
    message = render(row.template, row.language, context)
    if customer is None:
        to = finance_recipient(merchant.name, merchant.finance_email)
    else:
        to = recipient(customer, payload)
    return build_email(
        settings,
        to,
        message,
        message_id=message_id_for(row.id, settings),
        from_name=PLATFORM_NAME if customer is None else merchant.name,
        date=now,
        notification_id=row.id,
    )


def _merchant(session: Session, merchant_id: int, cache: dict[int, _Merchant]) -> _Merchant:
    merchant = cache.get(merchant_id)
    if merchant is None:
        m = session.get_one(MerchantRow, merchant_id)
        merchant = _Merchant(m.name, m.currency, m.timezone, m.policy_ref, m.finance_email)
        cache[merchant_id] = merchant
    return merchant


def _with_quotes(
    raw: Any, merchant: _Merchant, cache: dict[str, dict[str, str]]
) -> list[dict[str, str | None]]:
    """Clause ids → the policy's published words for them (verbatim, in the policy's
    language), so the customer reads the rule that was applied."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    known = cache.get(merchant.policy_ref)
    if known is None:
        known = {}
        try:
            policy = resolve_policy(merchant.policy_ref)
            known = {c.id: " ".join(c.source) for c in policy.clauses}
        except Exception as exc:  # the email still goes out, with clause ids only
            log.warning("outbox: no clause quotes from policy %s: %s", merchant.policy_ref, exc)
        cache[merchant.policy_ref] = known
    out: list[dict[str, str | None]] = []
    for item in items:
        if isinstance(item, dict):
            clause_id = str(item.get("id"))
            out.append({"id": clause_id, "quote": item.get("quote") or known.get(clause_id)})
        else:
            out.append({"id": str(item), "quote": known.get(str(item))})
    return out


def _fail(
    report: DeliveryReport, row: NotificationRow, now: datetime, error: str, *, permanent: bool
) -> None:
    """Count the attempt on the row (committed with the run's transaction for the row)."""
    row.attempts += 1
    row.last_error = error[:500]
    parked = permanent or row.attempts >= MAX_ATTEMPTS
    retry_at = now + retry_delay(row.attempts)
    if parked:
        row.failed_at = now
    else:
        row.next_attempt_at = retry_at
    report.failed.append(Failure(row.id, error, permanent, parked))
    kind = "parked" if parked else f"retry at {retry_at.isoformat()}"
    log.warning("outbox: notification %s not sent (%s): %s", row.id, kind, error)
