"""What the back office reads (``web.backoffice``): the API key a session stands on, the
review queue with its deadlines in business days, a request with the facts it was
decided on and the bounds of a reviewer's override, customers and one customer's
timeline, outages with what each customer got, and the audit log. The dashboard's
figures are ``services.dashboard``.

Invariants:
- every query is scoped to the merchant of the ``Ctx``: a record of another merchant is
  ``NotFound``, exactly as one that does not exist;
- read-only: the back office changes state through ``refunds.review``,
  ``accounts.declare_outage`` and ``merchants.issue_key``/``revoke_key`` only;
- times come back in the merchant's timezone (``Ctx.local``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fairbill.calendar.windows import is_business_day
from fairbill.decisions.codec import decode_call
from fairbill.decisions.facts import RequestFacts
from fairbill.decisions.review import bound_destination
from fairbill.errors import NotFound
from fairbill.ids import Prefix
from fairbill.lifecycle import RequestStatus
from fairbill.money import Money
from fairbill.policy.model import Fees, Policy, RequestKind
from fairbill.services import policies
from fairbill.services.context import Ctx
from fairbill.store.tables import (
    ApiKeyRow,
    AuditLogRow,
    CreditNoteRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceRow,
    NotificationRow,
    OutageRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    WalletEntryRow,
)

DUE_SOON = 2  # business days: a request due within this many is "due soon"


# -- the session's key -------------------------------------------------------------------
def live_key(session: Session, prefix: str) -> ApiKeyRow | None:
    """The API key a back-office session was opened with, while it is not revoked: a
    revoked key ends the sessions opened with it at their next page."""
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    return row if row is not None and row.revoked_at is None else None


# -- ids ---------------------------------------------------------------------------------
Row = TypeVar("Row", RequestRow, OutageRow)


def _by_id(ctx: Ctx, model: type[Row], prefix: Prefix, text: str) -> Row:
    """The row a public id names (``fairbill.ids``); a foreign or unknown id is
    ``NotFound``."""
    row = ctx.named(model, prefix, text)
    if row is None:
        raise NotFound(f"no {prefix} {text!r}")
    return row


def _merchant_customer(ctx: Ctx, customer_id: int, what: str) -> CustomerRow:
    customer = ctx.session.get_one(CustomerRow, customer_id)
    if customer.merchant_id != ctx.merchant_row.id:
        raise NotFound(f"no {what}")
    return customer


# -- deadlines in business days ------------------------------------------------------------
def business_days_left(today: date, due: date, country: str) -> int:
    """The business days from ``today`` to the ``due`` day: positive, that many business
    days after today up to and including the due day; 0, due today (or nothing but
    holidays in between); negative, the business days after the due day up to today."""
    if due >= today:
        days = (today + timedelta(n) for n in range(1, (due - today).days + 1))
        return sum(is_business_day(d, country) for d in days)
    days = (due + timedelta(n) for n in range(1, (today - due).days + 1))
    return -sum(is_business_day(d, country) for d in days)


@dataclass(frozen=True, slots=True)
class Deadline:
    due: datetime  # the instant the deadline runs out, local
    days_left: int  # ``business_days_left`` from today
    overdue: bool  # the instant has passed

    @property
    def soon(self) -> bool:
        return not self.overdue and self.days_left <= DUE_SOON


def deadline(ctx: Ctx, due: datetime | None) -> Deadline | None:
    if due is None:
        return None
    local, now = ctx.local(due), ctx.now
    left = business_days_left(now.date(), local.date(), ctx.merchant.country)
    return Deadline(local, left, now > local)


# -- the review queue ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QueueItem:
    request: RequestRow
    customer: str  # its code
    deadline: Deadline | None  # None: no deadline (the policy sets none, or an appeal)


def queue(ctx: Ctx) -> list[QueueItem]:
    """The requests in review, the soonest deadline first (those without one last)."""
    rows = ctx.session.execute(
        select(RequestRow, CustomerRow.code)
        .join(CustomerRow, CustomerRow.id == RequestRow.customer_id)
        .where(
            CustomerRow.merchant_id == ctx.merchant_row.id,
            RequestRow.status == RequestStatus.IN_REVIEW,
        )
        .order_by(RequestRow.review_due.is_(None), RequestRow.review_due, RequestRow.id)
    )
    return [QueueItem(r, code, deadline(ctx, r.review_due)) for r, code in rows]


# -- one request -------------------------------------------------------------------------------
def request_of(ctx: Ctx, text: str) -> tuple[CustomerRow, RequestRow]:
    """The merchant's request ``req_N``, with its customer."""
    row = _by_id(ctx, RequestRow, Prefix.REQUEST, text)
    return _merchant_customer(ctx, row.customer_id, f"req {text!r}"), row


def filed_facts(ctx: Ctx, row: RequestRow) -> RequestFacts | None:
    """The facts the request was decided on when it was filed (its decision's stored call);
    None for a decision stored without them (older rows)."""
    decided = ctx.session.scalars(
        select(DecisionRow)
        .where(
            DecisionRow.customer_id == row.customer_id,
            DecisionRow.action == "refund_request",
            DecisionRow.at == row.at,
            DecisionRow.facts.is_not(None),
        )
        .order_by(DecisionRow.id)
    )
    for decision in decided:
        assert decision.facts is not None
        facts = decode_call(decision.facts).args[0]
        if isinstance(facts, RequestFacts) and facts.kind == RequestKind(row.kind):
            return facts
    return None


def decided_under(ctx: Ctx, customer: CustomerRow, row: RequestRow) -> Policy:
    """The policy version the request was decided under (its clauses are quoted from it):
    the version of its filing decision, else the one the customer accepted."""
    version_id = ctx.session.scalar(
        select(DecisionRow.policy_version_id)
        .where(
            DecisionRow.customer_id == row.customer_id,
            DecisionRow.action == "refund_request",
            DecisionRow.at == row.at,
        )
        .order_by(DecisionRow.id)
        .limit(1)
    )
    if version_id is not None:
        return policies.policy_of(ctx.session, version_id)
    return ctx.terms(customer.id)[1].policy


def history(ctx: Ctx, row: RequestRow) -> list[DecisionRow]:
    """The decisions on the request since it was filed (filing, appeals, reviews), in order."""
    return list(
        ctx.session.scalars(
            select(DecisionRow)
            .where(
                DecisionRow.customer_id == row.customer_id,
                DecisionRow.action.in_(("refund_request", "appeal", "review")),
                DecisionRow.at >= row.at,
            )
            .order_by(DecisionRow.id)
        )
    )


@dataclass(frozen=True, slots=True)
class Bounds:
    """What a reviewer's override may give (``decisions.review`` enforces it; the page
    says it before the reviewer asks)."""

    refundable: Money  # what is still refundable of the payment, in the merchant currency
    fee_max_percent: Decimal | None  # None: the policy allows no fee
    method_only: str | None  # the clause that keeps the refund on the method that paid


def review_bounds(ctx: Ctx, customer: CustomerRow, row: RequestRow) -> Bounds:
    payment = ctx.session.get(PaymentRow, row.payment_id) if row.payment_id else None
    left = payment.settled_minor - payment.settled_refunded_minor if payment else 0
    policy = ctx.terms(customer.id)[1].policy
    fees = policy.first(Fees)
    fixed = bound_destination(policy, ctx.facts.customer(customer))
    return Bounds(
        ctx.money(left),
        fees.flat_fee_max_percent if fees else None,
        fixed.id if fixed else None,
    )


def decision_of(ctx: Ctx, customer: CustomerRow, text: str) -> DecisionRow | None:
    """The customer's decision ``text`` names, or None (a stale or foreign id shows
    nothing)."""
    row = ctx.named(DecisionRow, Prefix.DECISION, text)
    return row if row is not None and row.customer_id == customer.id else None


# -- customers -------------------------------------------------------------------------------
MAX_FOUND = 50


def find_customers(ctx: Ctx, text: str) -> list[CustomerRow]:
    """The merchant's customers whose code or email contains ``text`` (any case), by
    code; the first ``MAX_FOUND``."""
    query = select(CustomerRow).where(CustomerRow.merchant_id == ctx.merchant_row.id)
    wanted = text.strip().lower()
    if wanted:
        pattern = "%" + wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                func.lower(CustomerRow.code).like(pattern, escape="\\"),
                func.lower(CustomerRow.email).like(pattern, escape="\\"),
            )
        )
    return list(ctx.session.scalars(query.order_by(CustomerRow.code).limit(MAX_FOUND)))


def customer_of(ctx: Ctx, code: str) -> CustomerRow:
    row = ctx.session.scalar(
        select(CustomerRow).where(
            CustomerRow.merchant_id == ctx.merchant_row.id, CustomerRow.code == code
        )
    )
    if row is None:
        raise NotFound(f"no customer {code!r}")
    return row


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to a customer: when, what (``KINDS``), the page that shows
    it (its public id) if any, and what the timeline says of it."""

    at: datetime
    kind: str
    ref: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


# Within one instant, events read in the order things happen.
KINDS = (
    "subscription_started",
    "invoice",
    "payment",
    "failed_payment",
    "request",
    "decision",
    "refund",
    "credit_note",
    "wallet",
    "outage",
    "subscription_ended",
    "email",
)


def timeline(ctx: Ctx, customer: CustomerRow) -> list[Event]:
    """Everything that happened to the customer, in time order: subscriptions started
    and ended, invoices, payments and failed ones, requests, decisions, refunds, credit
    notes, wallet entries, outages, and every email (sent, waiting or failed)."""
    s, cid, money = ctx.session, customer.id, ctx.money
    events: list[Event] = []
    for sub in s.scalars(select(SubscriptionRow).where(SubscriptionRow.customer_id == cid)):
        events.append(Event(sub.started_at, "subscription_started", None, {"plan": sub.plan_code}))
        if sub.ended_at is not None:
            ended = {"plan": sub.plan_code, "status": sub.status}
            events.append(Event(sub.ended_at, "subscription_ended", None, ended))
    for inv in s.scalars(select(InvoiceRow).where(InvoiceRow.customer_id == cid)):
        total = Money.from_minor(inv.total_minor, inv.currency).text()
        values = {"number": inv.number, "amount": total, "currency": inv.currency}
        events.append(Event(inv.issued_at, "invoice", None, values | {"status": inv.status}))
    for pay in s.scalars(select(PaymentRow).where(PaymentRow.customer_id == cid)):
        amount = Money.from_minor(pay.amount_minor, pay.currency).text()
        values = {"number": pay.number, "amount": amount, "currency": pay.currency}
        events.append(Event(pay.at, "payment", None, values | {"method": pay.method}))
    for failed in s.scalars(select(FailedPaymentRow).where(FailedPaymentRow.customer_id == cid)):
        values = {"amount": money(failed.amount_minor).text(), "attempt": failed.attempt}
        events.append(Event(failed.at, "failed_payment", None, values))
    for req in s.scalars(select(RequestRow).where(RequestRow.customer_id == cid)):
        values = {"number": req.number, "kind": req.kind, "status": req.status}
        events.append(Event(req.at, "request", ctx.ids.public(Prefix.REQUEST, req.id), values))
    for dec in s.scalars(select(DecisionRow).where(DecisionRow.customer_id == cid)):
        values = {
            "action": dec.action,
            "outcome": dec.outcome,
            "amount": money(dec.amount_minor).text(),
            "explanation": dec.explanation,
        }
        events.append(Event(dec.at, "decision", ctx.ids.public(Prefix.DECISION, dec.id), values))
    events += _money_events(ctx, customer)
    for out in s.scalars(select(OutageRow).where(OutageRow.customer_id == cid)):
        values = {"end": ctx.local(out.end), "cause": out.cause}
        events.append(Event(out.start, "outage", ctx.ids.public(Prefix.OUTAGE, out.id), values))
    for note in s.scalars(select(NotificationRow).where(NotificationRow.customer_id == cid)):
        events.append(Event(note.at, "email", None, _email(note)))
    ordered = sorted(events, key=lambda e: (e.at, _rank(e)))
    return [Event(ctx.local(e.at), e.kind, e.ref, e.values) for e in ordered]


# An email follows what it tells of, within one instant.
_ABOUT = {
    "welcome": "subscription_started",
    "receipt": "payment",
    "payment_failed": "failed_payment",
    "request_received": "request",
    "request_needs_information": "decision",
    "refund_decided": "decision",
    "refund_paid": "refund",
    "refund_failed": "refund",
    "reactivated": "payment",
}


def _rank(event: Event) -> tuple[int, int]:
    if event.kind == "email":
        about = _ABOUT.get(event.values["template"])
        if about is not None:
            return KINDS.index(about), 1
    return KINDS.index(event.kind), 0


def _money_events(ctx: Ctx, customer: CustomerRow) -> list[Event]:
    s, cid = ctx.session, customer.id
    events = []
    for ref in s.scalars(select(RefundRow).where(RefundRow.customer_id == cid)):
        values = {
            "amount": Money.from_minor(ref.amount_minor, ref.currency).text(),
            "currency": ref.currency,
            "destination": ref.destination,
            "status": ref.status,
        }
        events.append(Event(ref.at, "refund", None, values))
    for note in s.scalars(select(CreditNoteRow).where(CreditNoteRow.customer_id == cid)):
        values = {"amount": ctx.money(note.amount_minor).text(), "reason": note.reason}
        events.append(Event(note.at, "credit_note", None, values))
    for entry in s.scalars(select(WalletEntryRow).where(WalletEntryRow.customer_id == cid)):
        values = {"amount": ctx.money(entry.amount_minor).text(), "reason": entry.reason}
        events.append(Event(entry.at, "wallet", None, values))
    return events


def _email(note: NotificationRow) -> dict[str, Any]:
    state = "sent" if note.sent_at else "failed" if note.failed_at else "waiting"
    return {"template": note.template, "state": state, "error": note.last_error}


# -- outages ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Compensation:
    outage: int  # the customer's own outage row
    customer: str
    request: RequestRow | None  # the service-disruption request the outage opened


@dataclass(frozen=True, slots=True)
class Outage:
    """One incident as declared: the outages of the same span and cause, one per
    customer affected; ``id`` is the first of them (``out_N``)."""

    id: int
    start: datetime
    end: datetime
    cause: str
    reported_at: datetime | None
    compensations: tuple[Compensation, ...]

    @property
    def granted_minor(self) -> int:
        return sum(c.request.amount_minor for c in self.compensations if c.request is not None)

    @property
    def in_review(self) -> int:
        return sum(
            1
            for c in self.compensations
            if c.request is not None and c.request.status == RequestStatus.IN_REVIEW
        )


def outages(ctx: Ctx) -> list[Outage]:
    """The merchant's incidents, the newest first."""
    rows = list(
        ctx.session.execute(
            select(OutageRow, CustomerRow.code)
            .join(CustomerRow, CustomerRow.id == OutageRow.customer_id)
            .where(CustomerRow.merchant_id == ctx.merchant_row.id)
            .order_by(OutageRow.id)
        ).tuples()
    )
    opened = _opened_requests(ctx, [row.customer_id for row, _ in rows])
    groups: dict[tuple[Any, ...], list[tuple[OutageRow, str]]] = {}
    for row, code in rows:
        groups.setdefault((row.start, row.end, row.cause, row.reported_at), []).append((row, code))
    found = [
        Outage(
            members[0][0].id,
            ctx.local(start),
            ctx.local(end),
            cause,
            ctx.local(reported) if reported else None,
            tuple(Compensation(row.id, code, opened.get(row.id)) for row, code in members),
        )
        for (start, end, cause, reported), members in groups.items()
    ]
    return sorted(found, key=lambda o: o.id, reverse=True)


def outage_of(ctx: Ctx, text: str) -> Outage:
    """The incident ``out_N`` names (any of its outages), of this merchant."""
    row = _by_id(ctx, OutageRow, Prefix.OUTAGE, text)
    _merchant_customer(ctx, row.customer_id, f"out {text!r}")
    return next(o for o in outages(ctx) if any(c.outage == row.id for c in o.compensations))


def _opened_requests(ctx: Ctx, customer_ids: list[int]) -> dict[int, RequestRow]:
    """The service-disruption requests of these customers, by the outage that opened them
    (``accounts.outage`` records it in the request's details)."""
    if not customer_ids:
        return {}
    rows = ctx.session.scalars(
        select(RequestRow).where(
            RequestRow.customer_id.in_(set(customer_ids)),
            RequestRow.kind == RequestKind.SERVICE_DISRUPTION,
        )
    )
    return {r.details["outage"]: r for r in rows if isinstance(r.details.get("outage"), int)}


# -- the audit log -----------------------------------------------------------------------------
AUDIT_PAGE = 50


def audit_entries(
    session: Session, merchant_id: int, before: int | None = None
) -> tuple[list[AuditLogRow], int | None]:
    """A page of the merchant's audit log, the newest first, and the id to ask the next
    (older) page ``before`` (None: this is the oldest page)."""
    query = select(AuditLogRow).where(AuditLogRow.merchant_id == merchant_id)
    if before is not None:
        query = query.where(AuditLogRow.id < before)
    rows = list(session.scalars(query.order_by(AuditLogRow.id.desc()).limit(AUDIT_PAGE + 1)))
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return rows, rows[-1].id if more and rows else None
