"""What every service call runs with: one unit of work, a clock, a gateway, the merchant.

``Ctx`` also holds the small shared steps services compose: loading facts for the pure
core, posting balanced journal transactions, recording decisions and outbox rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from fairbill.calendar.periods import Interval, Period
from fairbill.decisions import codec
from fairbill.decisions.codec import Call
from fairbill.decisions.decision import Decision
from fairbill.decisions.facts import (
    UNUSED_TIME_KINDS,
    CustomerFacts,
    Merchant,
    PaymentFacts,
    PlanFacts,
    SubscriptionFacts,
)
from fairbill.errors import NotFound, UnbalancedTransaction
from fairbill.gateway.port import PaymentGateway
from fairbill.ledger.journal import Transaction, check_balanced
from fairbill.lifecycle import RefundStatus
from fairbill.money import Money
from fairbill.policy.model import ItemKind, Policy
from fairbill.services import policies
from fairbill.services.clock import Clock
from fairbill.store.bulk import BulkWriter
from fairbill.store.db import SERIALIZED
from fairbill.store.ids import allocate_ids
from fairbill.store.sets import one_of
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    JournalEntryRow,
    JournalTransactionRow,
    MerchantRow,
    NotificationRow,
    PaymentRow,
    PlanRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    table,
)

R = TypeVar("R")


@dataclass
class Ctx:
    session: Session
    clock: Clock
    gateway: PaymentGateway
    merchant_row: MerchantRow
    policy: Policy  # the merchant's current version: what new subscriptions accept
    version_id: int | None = None  # that version's row (None: a policy not stored)
    merchant: Merchant = field(init=False)
    # Every decision recorded through this unit of work, in order, with its customer id:
    # what a caller shows (cosmicpython's ``collect_new_events``), nothing spies on services.
    decided: list[tuple[int, Decision]] = field(init=False, default_factory=list)
    # The call behind each decision ``decide`` returned, until ``record`` stores it.
    # Keyed by id(); the decision is kept in the value, so that id is not reused meanwhile.
    _calls: dict[int, tuple[Decision, Call, int | None, str]] = field(
        init=False, default_factory=dict
    )
    _terms: dict[int, tuple[int | None, Merchant]] = field(init=False, default_factory=dict)
    _plans: dict[str, PlanRow] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        row = self.merchant_row
        self.merchant = Merchant(self.policy, ZoneInfo(row.timezone), row.country, row.currency)

    # -- the policy that decides ---------------------------------------------------------
    def terms(self, customer_id: int) -> tuple[int | None, Merchant]:
        """The version the customer accepted (their newest subscription's) and the
        merchant facts under it; the current version for a customer with none yet."""
        found = self._terms.get(customer_id)
        if found is None:
            version_id = policies.accepted(self.session, customer_id)
            found = self._terms[customer_id] = self._terms_of(version_id)
        return found

    def prefetch_terms(self, customer_ids: Collection[int]) -> None:
        """``terms`` of many customers read at once (one query, not one per customer):
        for the bulk paths, before they decide for each."""
        missing = [c for c in customer_ids if c not in self._terms]
        for customer_id, version_id in policies.accepted_many(self.session, missing).items():
            self._terms[customer_id] = self._terms_of(version_id)

    def _terms_of(self, version_id: int | None) -> tuple[int | None, Merchant]:
        if version_id is None or version_id == self.version_id:
            return (self.version_id, self.merchant)
        policy = policies.policy_of(self.session, version_id)
        return (version_id, replace(self.merchant, policy=policy))

    def decide(self, customer_id: int, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``fn(merchant, *args, **kwargs)`` under the customer's accepted version; the
        call is kept so that ``record`` stores the facts the decision was taken from."""
        version_id, merchant = self.terms(customer_id)
        result = fn(merchant, *args, **kwargs)
        decision = codec.decision_of(result)
        call = Call(codec.name_of(fn), args, kwargs)
        self._calls[id(decision)] = (decision, call, version_id, merchant.policy.version)
        return result

    def forget_terms(self, customer_id: int) -> None:
        """After a subscription changed the customer's accepted version."""
        self._terms.pop(customer_id, None)

    # -- time and money ------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.clock.now().astimezone(self.merchant.tz)

    @property
    def currency(self) -> str:
        return self.merchant.currency

    def money(self, minor: int) -> Money:
        return Money.from_minor(minor, self.currency)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.merchant.tz)

    # -- lookups ---------------------------------------------------------------------------
    def plan(self, code: str) -> PlanRow:
        """The merchant's plan ``code``, read once per unit of work (a plan's row is the
        session's one object for it; plans are never deleted or renamed). One a rollback
        took out of the session is read again."""
        row = self._plans.get(code)
        if row is None or row not in self.session:
            row = self.session.scalar(
                select(PlanRow).where(
                    PlanRow.merchant_id == self.merchant_row.id, PlanRow.code == code
                )
            )
            if row is None:
                raise NotFound(f"no plan {code!r}")
            self._plans[code] = row
        return row

    def next_number(self, model: type[InvoiceRow] | type[PaymentRow], customer: CustomerRow) -> int:
        """The customer's next invoice or payment number. On PostgreSQL the customer's row
        is locked first, so two transactions numbering for one customer queue instead of
        colliding (SQLite serialises writers)."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                select(CustomerRow.id).where(CustomerRow.id == customer.id).with_for_update()
            )
        current = self.session.scalar(
            select(func.max(model.number)).where(model.customer_id == customer.id)
        )
        return (current or 0) + 1

    # -- facts for the pure core -----------------------------------------------------------
    def plan_facts(self, sub: SubscriptionRow) -> PlanFacts:
        plan = self.plan(sub.plan_code)
        return PlanFacts(
            code=plan.code,
            interval=Interval(plan.interval_months),
            price=self.money(sub.price_minor),
            commitment_months=plan.commitment_months,
        )

    def payment_facts(self, payment: PaymentRow) -> PaymentFacts:
        invoice = self.session.get_one(InvoiceRow, payment.invoice_id)
        period = None
        period_price = None
        item = ItemKind.SUBSCRIPTION
        discount_minor = 0
        if invoice.purpose == "product":
            line = self.session.scalar(
                select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice.id)
            )
            kind = line.description.split(":", 1)[0] if line is not None else "add_on"
            item = ItemKind(kind) if kind in ItemKind.__members__.values() else ItemKind.ADD_ON
        elif invoice.period_start is not None and invoice.period_end is not None:
            period = Period(self.local(invoice.period_start), self.local(invoice.period_end))
            period_price = self.money(invoice.total_minor)
            discount_minor = -sum(
                self.session.scalars(
                    select(InvoiceLineRow.amount_minor).where(
                        InvoiceLineRow.invoice_id == invoice.id, InvoiceLineRow.kind == "credit"
                    )
                )
            )
        return PaymentFacts(
            number=payment.number,
            at=self.local(payment.at),
            amount=self.money(payment.settled_minor),
            refunded=self.money(payment.settled_refunded_minor),
            method=payment.method,
            item=item,
            is_duplicate=payment.is_duplicate,
            overcharge=self._overcharge_left(invoice),
            period=period,
            period_price=period_price,
            discount=self.money(discount_minor) if period is not None and discount_minor else None,
            is_renewal=self._is_renewal(invoice),
            subscription_id=invoice.subscription_id,
            refunded_unused=self._refunded_unused(payment),
        )

    def _is_renewal(self, invoice: InvoiceRow) -> bool:
        """An automatic renewal charge: the invoice of a subscription period after the
        subscription's first (which starts at its anchor). The customer's payment number
        says nothing about it: a sign-up after an earlier purchase is no renewal."""
        if invoice.purpose != "subscription" or invoice.subscription_id is None:
            return False
        sub = self.session.get_one(SubscriptionRow, invoice.subscription_id)
        return invoice.period_start is not None and invoice.period_start > sub.anchor

    def _refunded_unused(self, payment: PaymentRow) -> Money | None:
        """What refunds of ``payment`` gave back for unused time, in the merchant's currency
        (as reserved on the payment): a cancellation's refund (it has no request) and
        refunds of ``UNUSED_TIME_KINDS`` requests; a refund that failed gave nothing back.
        Compensation for time that was used (an outage) is left out."""
        if not payment.settled_refunded_minor:
            return None
        total = self.session.scalar(
            select(
                func.coalesce(
                    func.sum(
                        func.coalesce(GatewayOperationRow.settled_minor, RefundRow.amount_minor)
                    ),
                    0,
                )
            )
            .select_from(RefundRow)
            .outerjoin(RequestRow, RequestRow.id == RefundRow.request_id)
            .outerjoin(GatewayOperationRow, GatewayOperationRow.refund_id == RefundRow.id)
            .where(
                RefundRow.payment_id == payment.id,
                RefundRow.status != RefundStatus.FAILED,
                or_(
                    RefundRow.request_id.is_(None),
                    RequestRow.kind.in_([str(k) for k in UNUSED_TIME_KINDS]),
                ),
            )
        )
        return self.money(int(total)) if total else None

    def _overcharge_left(self, invoice: InvoiceRow) -> Money | None:
        """The overcharge recorded inside the invoice's own payments (``overcharge_minor``:
        no money of its own) less what billing-error refunds of those payments already gave
        back: an overcharge is corrected once. Money taken in excess as a payment of its own
        (``is_duplicate``, what ``accounts.billing_mistake`` charges) is not counted here: it
        is corrected on that payment, whose unrefunded amount is its ceiling."""
        if not invoice.overcharge_minor:
            return None
        corrected = (
            self.session.scalar(
                select(func.coalesce(func.sum(RefundRow.amount_minor + RefundRow.fee_minor), 0))
                .join(RequestRow, RequestRow.id == RefundRow.request_id)
                .join(PaymentRow, PaymentRow.id == RefundRow.payment_id)
                .where(
                    PaymentRow.invoice_id == invoice.id,
                    PaymentRow.is_duplicate.is_(False),
                    RequestRow.kind.in_(("billing_error", "overpayment")),
                )
            )
            or 0
        )
        return self.money(max(0, invoice.overcharge_minor - int(corrected)))

    def subscription_facts(self, sub: SubscriptionRow) -> SubscriptionFacts:
        payments = self.session.scalars(
            select(PaymentRow)
            .join(InvoiceRow, InvoiceRow.id == PaymentRow.invoice_id)
            .where(InvoiceRow.subscription_id == sub.id, PaymentRow.is_duplicate.is_(False))
            .order_by(PaymentRow.number)
        ).all()
        plan = self.plan_facts(sub)
        commitment_end = None
        if plan.commitment_months:
            from fairbill.calendar.periods import period_containing

            term = Interval(plan.commitment_months)
            commitment_end = period_containing(self.local(sub.anchor), term, self.now).end
        return SubscriptionFacts(
            id=sub.id,
            plan=plan,
            anchor=self.local(sub.anchor),
            current_period=Period(
                self.local(sub.current_period_start), self.local(sub.current_period_end)
            ),
            status=sub.status,
            is_first=sub.is_first,
            commitment_end=commitment_end,
            cancel_at=self.local(sub.cancel_at) if sub.cancel_at else None,
            payments=tuple(self.payment_facts(p) for p in payments),
        )

    def customer_facts(self, customer: CustomerRow) -> CustomerFacts:
        def loc(value: datetime | None) -> datetime | None:
            return self.local(value) if value is not None else None

        return CustomerFacts(
            type=customer.type,
            acquisition=customer.acquisition,
            flags=frozenset(customer.flags or ()),
            in_violation=customer.in_violation,
            terms_notice_at=loc(customer.terms_notice_at),
            terms_declined_at=loc(customer.terms_declined_at),
            written_cancel_at=loc(customer.written_cancel_at),
        )

    def lock_customer(self, customer: CustomerRow) -> None:
        """Take the customer's row lock before changing their money (PostgreSQL; SQLite
        serialises writers): concurrent cancels, refunds and reviews for one customer queue
        here. Rows read before the lock may be stale, so they are re-read after it. Lock
        order is customer, then payment. In a SQLite write transaction that began before
        the session read anything (``store.db.SERIALIZED``) nothing can be stale, and no
        lock is needed: the re-reads are skipped."""
        self.session.flush()
        if self.session.info.get(SERIALIZED):
            return
        self.session.expire_all()
        self.session.refresh(customer, with_for_update=True)

    # -- recording -------------------------------------------------------------------------
    def post(self, txn: Transaction, customer: CustomerRow | None = None) -> None:
        """Store a balanced transaction once: its key is an idempotency key, and the legs
        are checked again here, where they are stored."""
        exists = self.session.scalar(
            select(JournalTransactionRow.id).where(JournalTransactionRow.key == txn.key)
        )
        if exists is not None:
            return
        recheck(txn)
        row = JournalTransactionRow(
            merchant_id=self.merchant_row.id, key=txn.key, at=txn.at, description=txn.description
        )
        self.session.add(row)
        self.session.flush()
        self.session.add_all(
            JournalEntryRow(
                transaction_id=row.id,
                account=str(leg.account),
                customer_id=customer.id if customer else None,
                amount_minor=leg.amount.minor,
                currency=leg.amount.currency,
            )
            for leg in txn.legs
        )

    def post_many(self, txns: list[Transaction], customers: dict[str, int]) -> None:
        """``post`` for a chunk: one query for keys already stored, then bulk inserts.
        Each transaction was checked when built; its legs are checked again here."""
        if not txns:
            return
        seen = set(
            self.session.scalars(
                select(JournalTransactionRow.key).where(
                    one_of(self.session, JournalTransactionRow.key, [t.key for t in txns])
                )
            )
        )
        # A key repeated inside the batch is one post, as it would be across two calls.
        fresh: list[Transaction] = []
        for txn in txns:
            if txn.key not in seen:
                seen.add(txn.key)
                fresh.append(txn)
        for txn in fresh:
            recheck(txn)
        if not fresh:
            return
        conn = self.session.connection()
        journal = table(JournalTransactionRow)
        ids = allocate_ids(conn, journal, len(fresh))
        writer = BulkWriter(conn)  # its instants are the txns' own, alive throughout
        writer.execute(
            insert(journal),
            [
                {
                    "id": txn_id,
                    "merchant_id": self.merchant_row.id,
                    "key": t.key,
                    "at": t.at,
                    "description": t.description,
                }
                for t, txn_id in zip(fresh, ids, strict=True)
            ],
        )
        writer.execute(
            insert(table(JournalEntryRow)),
            [
                {
                    "transaction_id": txn_id,
                    "account": str(leg.account),
                    "customer_id": customers.get(txn.key),
                    "amount_minor": leg.amount.minor,
                    "currency": leg.amount.currency,
                }
                for txn, txn_id in zip(fresh, ids, strict=True)
                for leg in txn.legs
            ],
        )

    def record(self, customer: CustomerRow, decision: Decision) -> DecisionRow:
        self.decided.append((customer.id, decision))
        kept = self._calls.pop(id(decision), None)
        call, version_id, label = (
            kept[1:] if kept is not None else (None, self.version_id, self.policy.version)
        )
        row = DecisionRow(
            customer_id=customer.id,
            at=self.now,
            action=decision.action,
            outcome=str(decision.outcome),
            amount_minor=decision.amount.round(self.merchant.rounding).minor,
            reasons=[str(r) for r in decision.reasons],
            clauses=list(decision.clauses),
            explanation=decision.explanation,
            policy_version=label,
            policy_version_id=version_id,
            facts=codec.encode_call(call) if call is not None else None,
        )
        self.session.add(row)
        return row

    def notify(self, customer: CustomerRow, template: str, **payload: str) -> None:
        self.session.add(
            NotificationRow(
                customer_id=customer.id,
                at=self.now,
                template=template,
                language=customer.language or self.policy.language,
                payload=payload,
            )
        )


def recheck(txn: Transaction) -> None:
    """The journal's balance rule again, where the transaction is stored: a transaction
    is frozen, but a forged or mutated one must not reach the ledger."""
    try:
        check_balanced(txn.legs)
    except UnbalancedTransaction as exc:
        raise UnbalancedTransaction(f"refusing to store {txn.key}: {exc}") from None
