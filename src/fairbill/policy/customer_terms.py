"""What a policy offers a customer who asks: the kinds of refund request it knows, what
each must carry, whether decisions may be appealed, and the published words of a clause.

Pure: reads the policy model only. The portal shows these; the decisions themselves stay
with ``decisions.refund`` (a kind not listed here is still decided, by the general rule).

Invariants:
- a kind is offered only when a clause of the policy decides it (``offered_kinds``), in
  the order of the policy's clauses, each once;
- service disruptions are never offered: the merchant opens them for the customer
  (``decisions.refund`` ignores request requirements for them for the same reason);
- ``requirements`` asks for a field exactly when a clause would decline the request
  without it (reason: a ``request_requirements`` clause or the ``no_reason`` ground;
  order numbers: ``order_number_required`` or an exception's ``order_numbers_required``;
  documents: an exception's ``documents_required``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fairbill.policy.model import (
    Appeals,
    ClauseBase,
    CoolingOff,
    DeclineGround,
    ExceptionRefund,
    MoneyBackGuarantee,
    Policy,
    RequestKind,
    RequestRequirements,
)


@dataclass(frozen=True, slots=True)
class OfferedKind:
    kind: RequestKind
    clause: ClauseBase  # the clause that decides requests of this kind


@dataclass(frozen=True, slots=True)
class Requirements:
    """The fields a request of one kind must carry, and the window it must come in."""

    reason: bool = False
    order_numbers: int = 0  # how many order numbers (0: none asked)
    documents: bool = False
    window_days: int | None = None
    clauses: tuple[str, ...] = ()  # the clauses that ask for them


def offered_kinds(policy: Policy) -> list[OfferedKind]:
    """The request kinds the policy decides, each with its deciding clause."""
    seen: dict[RequestKind, OfferedKind] = {}
    for clause in policy.clauses:
        kind = _kind_of(clause)
        if kind is not None and kind not in seen:
            seen[kind] = OfferedKind(kind, clause)
    return list(seen.values())


def _kind_of(clause: ClauseBase) -> RequestKind | None:
    if isinstance(clause, MoneyBackGuarantee):
        return RequestKind.MONEY_BACK if clause.via == "request" else None
    if isinstance(clause, ExceptionRefund):
        return RequestKind(clause.reason)
    if isinstance(clause, CoolingOff):
        return RequestKind.COOLING_OFF
    return None


def requirements(policy: Policy, kind: RequestKind) -> Requirements:
    """What a request of ``kind`` must carry under ``policy``."""
    rules = [r for r in policy.clauses_of(RequestRequirements) if not r.kinds or kind in r.kinds]
    exceptions = [c for c in policy.clauses_of(ExceptionRefund) if c.reason == kind]
    no_reason = [g for g in policy.clauses_of(DeclineGround) if g.ground == "no_reason"]
    reason = [r.id for r in rules if r.reason_required] + [g.id for g in no_reason]
    orders = [r.id for r in rules if r.order_number_required]
    counted = [c for c in exceptions if c.order_numbers_required]
    documents = [c.id for c in exceptions if c.documents_required]
    windows = [r.window_days for r in rules if r.window_days is not None]
    windows += [c.within_days for c in exceptions if c.within_days is not None]
    count = max([c.order_numbers_required for c in counted] + [1 if orders else 0])
    asked = reason + orders + [c.id for c in counted] + documents
    return Requirements(
        reason=bool(reason),
        order_numbers=count,
        documents=bool(documents),
        window_days=min(windows) if windows else None,
        clauses=tuple(dict.fromkeys(asked)),
    )


def appeal_allowed(policy: Policy) -> bool:
    """Whether a refund decision may be appealed (no ``appeals`` clause: it may, and the
    appeal goes to a reviewer, as ``decisions.review.decide_appeal`` decides)."""
    rule = policy.first(Appeals)
    return rule is None or rule.allowed


def quotes(policy: Policy, clause_ids: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """Each clause id with the published words it implements (verbatim, in the policy's
    language); an id the policy does not hold is shown with no words."""
    known = {c.id: " ".join(c.source) for c in policy.clauses}
    return [(cid, known.get(cid, "")) for cid in clause_ids]
