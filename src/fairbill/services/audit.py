"""Stored decisions taken again from the facts they were taken from.

``redecide`` reads every decision that stored its call (``decisions.codec``), rebuilds the
facts and runs the same pure decider under the version that took it (an audit: nothing
may differ) or under another policy (a what-if: what would differ, and by how much).
Read-only: nothing here writes.

Invariant: under its own version a stored decision comes back identical, field for field
and byte for byte (outcome, amount, reasons, clauses, explanation); a difference is a
defect (a decider that is not pure, or code that changed what a version means).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairbill.decisions.codec import decode_call
from fairbill.decisions.facts import Merchant
from fairbill.policy.model import Policy
from fairbill.services import policies
from fairbill.store.tables import CustomerRow, DecisionRow, MerchantRow

__all__ = ["Fields", "Redecided", "redecide"]

_FIELDS = ("outcome", "amount_minor", "reasons", "clauses", "explanation")
_BATCH = 5000


# The stored fields of a decision, compared as they are: outcome, amount in minor units,
# reasons, clauses, explanation.
Fields = tuple[str, int, tuple[str, ...], tuple[str, ...], str]


@dataclass(frozen=True, slots=True)
class Redecided:
    decision_id: int
    customer_id: int
    action: str
    clauses: tuple[str, ...]  # the stored decision's
    stored_fields: Fields  # outcome, amount_minor, reasons, clauses, explanation
    again_fields: Fields  # the same fields, decided again
    amount_minor: int
    again_minor: int
    at: str  # the stored decision's instant, ISO 8601

    @property
    def stored(self) -> str:
        """Canonical JSON of the stored fields."""
        return _canonical(*self.stored_fields)

    @property
    def again(self) -> str:
        """Canonical JSON of the same fields, decided again."""
        return _canonical(*self.again_fields)

    @property
    def outcome(self) -> str:
        return self.stored_fields[0]

    @property
    def again_outcome(self) -> str:
        return self.again_fields[0]

    @property
    def again_clauses(self) -> tuple[str, ...]:
        return self.again_fields[3]

    @property
    def same(self) -> bool:
        return self.stored_fields == self.again_fields

    @property
    def delta_minor(self) -> int:
        return self.again_minor - self.amount_minor


def redecide(
    session: Session,
    merchant: MerchantRow,
    *,
    under: Policy | None = None,
    ids: tuple[int, int] | None = None,
) -> Iterator[Redecided]:
    """Each of the merchant's stored decisions with facts, decided again: under the
    version that took it, or under ``under`` for everyone. Streams in batches, in
    decision order; ``ids``: only decision ids ``lo <= id < hi`` (a worker's share)."""
    tz = ZoneInfo(merchant.timezone)
    facts_of: dict[int | None, Merchant] = {}

    def facts(version_id: int | None) -> Merchant:
        found = facts_of.get(version_id)
        if found is None:
            if under is not None:
                policy = under
            elif version_id is not None:
                policy = policies.policy_of(session, version_id)
            else:
                policy = policies.current(session, merchant)[1]
            found = facts_of[version_id] = Merchant(policy, tz, merchant.country, merchant.currency)
        return found

    d = DecisionRow
    query = (
        select(
            d.id,
            d.customer_id,
            d.at,
            d.action,
            d.policy_version_id,
            d.facts,
            d.outcome,
            d.amount_minor,
            d.reasons,
            d.clauses,
            d.explanation,
        )
        .join(CustomerRow, CustomerRow.id == d.customer_id)
        .where(CustomerRow.merchant_id == merchant.id, d.facts.is_not(None))
        .order_by(d.id)
        .execution_options(yield_per=_BATCH)
    )
    if ids is not None:
        query = query.where(d.id >= ids[0], d.id < ids[1])
    for (
        decision_id,
        customer_id,
        at,
        action,
        version_id,
        facts_text,
        outcome,
        amount_minor,
        reasons,
        clauses,
        explanation,
    ) in session.connection().execute(query):  # Core rows: no ORM work per row
        m = facts(None if under is not None else version_id)
        decision = decode_call(facts_text).run(m)
        again_minor = decision.amount.round(m.rounding).minor
        stored_clauses = tuple(clauses)
        yield Redecided(
            decision_id,
            customer_id,
            action,
            stored_clauses,
            (outcome, amount_minor, tuple(reasons), stored_clauses, explanation),
            (
                str(decision.outcome),
                again_minor,
                tuple(map(str, decision.reasons)),
                decision.clauses,
                decision.explanation,
            ),
            amount_minor,
            again_minor,
            at.isoformat(),
        )


def _canonical(*values: object) -> str:
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in zip(_FIELDS, values, strict=True)}
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
