"""What every service call runs with: one unit of work (the session), a clock, a gateway,
the merchant and the policy its customers accepted.

``Ctx`` is the unit of work and what it collects (cosmicpython's ``unit_of_work.py``):
the decisions taken through it (``decide``, then ``decided_of`` for a plan to store
them; ``decided`` lists those written), and two narrow lookups (plans, the next invoice
or payment number).
The facts the deciders read come from its repository, ``facts`` (``services.facts``);
what a use case writes and which money moves is planned by ``plans`` and written by
``services.applier``, which also keeps the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairbill.decisions import codec
from fairbill.decisions.codec import Call
from fairbill.decisions.decision import Decision
from fairbill.decisions.facts import (
    Merchant,
)
from fairbill.errors import NotFound
from fairbill.gateway.port import PaymentGateway
from fairbill.ids import Ids, Prefix
from fairbill.money import Money, Rounding
from fairbill.plans.effects import Decided
from fairbill.policy.model import Policy
from fairbill.services import policies
from fairbill.services.clock import Clock
from fairbill.services.facts import Facts
from fairbill.store.db import SERIALIZED
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    MerchantRow,
    PaymentRow,
    PlanRow,
)

R = TypeVar("R")
M = TypeVar("M")


@dataclass
class Ctx:
    session: Session
    clock: Clock
    gateway: PaymentGateway
    merchant_row: MerchantRow
    policy: Policy  # the merchant's current version: what new subscriptions accept
    version_id: int | None = None  # that version's row (None: a policy not stored)
    merchant: Merchant = field(init=False)
    # Every decision a plan written through this unit of work stored, in order, with its
    # customer id: what a caller shows (cosmicpython's ``collect_new_events``).
    decided: list[tuple[int, Decision]] = field(init=False, default_factory=list)
    # The call behind each decision ``decide`` returned, until ``decided_of`` takes it.
    # Keyed by id(); the decision is kept in the value, so that id is not reused meanwhile.
    _calls: dict[int, tuple[Decision, Call, int | None, str]] = field(
        init=False, default_factory=dict
    )
    _terms: dict[int, tuple[int | None, Merchant]] = field(init=False, default_factory=dict)
    _plans: dict[str, PlanRow] = field(init=False, default_factory=dict)
    facts: Facts = field(init=False)  # the reads the deciders' facts come from
    ids: Ids = field(init=False)  # the merchant's public ids (``fairbill.ids``)

    def __post_init__(self) -> None:
        row = self.merchant_row
        self.merchant = Merchant(self.policy, ZoneInfo(row.timezone), row.country, row.currency)
        self.facts = Facts(self.session, self.merchant, lambda: self.now, self.plan)
        self.ids = Ids(row.id_key)

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
        call is kept so that ``decided_of`` keeps the facts the decision was taken from."""
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
    def named(self, model: type[M], prefix: Prefix, text: str) -> M | None:
        """The ``model`` row a public id names (``fairbill.ids``), or None: not an id this
        merchant issued. Whose the row is stays the caller's to check."""
        row_id = self.ids.private(prefix, text)
        return self.session.get(model, row_id) if row_id is not None else None

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

    # -- decisions, for a plan to store -----------------------------------------------------
    def decided_of(self, customer_id: int, decision: Decision) -> Decided:
        """``decision`` as a plan stores it (``Plan.decided``): with the call ``decide``
        took it by (its facts) and the version it was taken under; a decision not taken
        through ``decide`` (a bookkeeping one) is under the current version, with no
        call. The applier adds it to ``decided`` when it writes the plan."""
        kept = self._calls.pop(id(decision), None)
        call, version_id, label = (
            kept[1:] if kept is not None else (None, self.version_id, self.policy.version)
        )
        return Decided(customer_id, self.now, decision, call, version_id, label)

    def language(self, customer: CustomerRow) -> str:
        """The language the customer's messages are written in."""
        return customer.language or self.policy.language


def decision_values(d: Decided, rounding: Rounding) -> dict[str, Any]:
    """The columns of a stored decision: its outcome, amount (rounded the merchant's way),
    reasons, clauses and explanation, the policy version it was taken under and the facts
    it was taken from. The applier stores them."""
    return {
        "customer_id": d.customer_id,
        "at": d.at,
        "action": d.decision.action,
        "outcome": str(d.decision.outcome),
        "amount_minor": d.decision.amount.round(rounding).minor,
        "reasons": [str(r) for r in d.decision.reasons],
        "clauses": list(d.decision.clauses),
        "explanation": d.decision.explanation,
        "policy_version": d.version,
        "policy_version_id": d.version_id,
        "facts": codec.encode_call(d.call) if d.call is not None else None,
    }
