"""What would change under another policy version: stored decisions taken again
(``services.audit.redecide``) summed up by decision, clause, customer and month.

Pure: functions over ``Redecided`` rows, no database, no rendering (``fairbill whatif``
renders). One pass over the rows, so a million decisions stream through in constant
memory but for the per-customer and per-month totals and the first few changes kept for
the report.

Money is what the decisions *refund*: the amount of a decision that gives money back
(a cancellation, a refund request, a review or an appeal of one) and pays it now
(approved or partially approved). A refund request left to a reviewer pays nothing
itself: the review that follows pays. Amounts are minor units of the merchant's currency.

Invariants:
- ``delta_minor == refunded_after_minor - refunded_before_minor`` and equals the sum of
  the per-customer deltas and of the per-month deltas;
- a decision is ``changed`` when any stored field (outcome, amount, reasons, clauses,
  explanation) differs; a change can move no money (a reworded explanation);
- per clause, a changed decision counts once under every clause of its old and of its new
  version, so the clause rows overlap and do not add up to the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from fairbill.services.audit import Redecided

__all__ = [
    "PAYING_OUTCOMES",
    "REFUND_ACTIONS",
    "Change",
    "ClauseTotal",
    "Report",
    "combine",
    "refunded",
    "relabel",
    "summarize",
]

REFUND_ACTIONS = frozenset({"cancel", "refund_request", "review", "appeal"})
PAYING_OUTCOMES = frozenset({"approved", "partially_approved"})
_FIELD_NAMES = ("outcome", "amount", "reasons", "clauses", "explanation")
KEEP = 50  # changed decisions kept for the report, in decision order


def refunded(action: str, outcome: str, amount_minor: int) -> int:
    """What a decision refunds now, in minor units (0 for one that pays nothing back)."""
    if action in REFUND_ACTIONS and outcome in PAYING_OUTCOMES:
        return amount_minor
    return 0


@dataclass(frozen=True, slots=True)
class Change:
    """One decision that would come out differently."""

    source: str  # where it was stored: a scenario file, a merchant
    decision_id: int
    customer: str
    action: str
    at: str
    outcome: str
    again_outcome: str
    amount_minor: int
    again_minor: int
    clauses: tuple[str, ...]
    again_clauses: tuple[str, ...]
    fields: tuple[str, ...]  # the stored fields that differ
    refund_delta_minor: int


@dataclass(frozen=True, slots=True)
class ClauseTotal:
    clause: str
    changed: int  # changed decisions with this clause in their old or new version
    delta_minor: int  # the refunds those decisions would move


@dataclass(frozen=True)
class Report:
    currency: str | None  # None: no rows, or rows of several currencies combined
    compared: int = 0
    changed: int = 0
    refunded_before_minor: int = 0
    refunded_after_minor: int = 0
    by_clause: tuple[ClauseTotal, ...] = ()  # largest money moved first
    # Every customer compared, unchanged ones included (delta 0).
    by_customer: Mapping[str, int] = field(default_factory=dict)
    changed_customers: frozenset[str] = frozenset()
    # "YYYY-MM" of the decision's instant -> (refunded before, refunded after), in order.
    by_month: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # action -> (compared, changed)
    by_action: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()  # the first KEEP changes

    @property
    def delta_minor(self) -> int:
        return self.refunded_after_minor - self.refunded_before_minor


def summarize(
    rows: Iterable[Redecided],
    *,
    source: str = "",
    currency: str | None = None,
    customers: Mapping[int, str] | None = None,
    keep: int = KEEP,
) -> Report:
    """One pass over ``rows``: counts, refund totals before and after, per clause, per
    customer (labelled ``customers[id]``, else the id; ``source/label`` when a source is
    given, so that customers of two scenario files stay apart) and per month."""
    compared = changed = before_total = after_total = 0
    clause_changed: dict[str, int] = {}
    clause_delta: dict[str, int] = {}
    per_customer: dict[int, int] = {}
    changed_ids: set[int] = set()
    months: dict[str, list[int]] = {}
    actions: dict[str, list[int]] = {}
    kept: list[Change] = []
    for row in rows:
        compared += 1
        action = row.action
        stored, again = row.stored_fields, row.again_fields
        before = refunded(action, stored[0], row.amount_minor)
        after = refunded(action, again[0], row.again_minor)
        before_total += before
        after_total += after
        delta = after - before
        customer_id = row.customer_id
        per_customer[customer_id] = per_customer.get(customer_id, 0) + delta
        tally = actions.get(action)
        if tally is None:
            tally = actions[action] = [0, 0]
        tally[0] += 1
        if before or after:
            month = months.get(row.at[:7])
            if month is None:
                month = months[row.at[:7]] = [0, 0]
            month[0] += before
            month[1] += after
        if stored == again:
            continue
        changed += 1
        tally[1] += 1
        changed_ids.add(customer_id)
        old_clauses, new_clauses = stored[3], again[3]
        for clause in dict.fromkeys((*old_clauses, *new_clauses)):
            clause_changed[clause] = clause_changed.get(clause, 0) + 1
            clause_delta[clause] = clause_delta.get(clause, 0) + delta
        if len(kept) < keep:
            kept.append(
                Change(
                    source=source,
                    decision_id=row.decision_id,
                    customer=_label(customer_id, source, customers),
                    action=action,
                    at=row.at,
                    outcome=stored[0],
                    again_outcome=again[0],
                    amount_minor=row.amount_minor,
                    again_minor=row.again_minor,
                    clauses=old_clauses,
                    again_clauses=new_clauses,
                    fields=tuple(
                        name
                        for name, a, b in zip(_FIELD_NAMES, stored, again, strict=True)
                        if a != b
                    ),
                    refund_delta_minor=delta,
                )
            )
    return Report(
        currency=currency,
        compared=compared,
        changed=changed,
        refunded_before_minor=before_total,
        refunded_after_minor=after_total,
        by_clause=_ranked([ClauseTotal(c, n, clause_delta[c]) for c, n in clause_changed.items()]),
        by_customer={_label(c, source, customers): d for c, d in per_customer.items()},
        changed_customers=frozenset(_label(c, source, customers) for c in changed_ids),
        by_month={m: (v[0], v[1]) for m, v in sorted(months.items())},
        by_action={a: (v[0], v[1]) for a, v in sorted(actions.items())},
        changes=tuple(kept),
    )


def combine(reports: Iterable[Report], *, keep: int = KEEP) -> Report:
    """One report for several (scenario files, merchants): sums, per clause, customer and
    month merged. The currency is kept when every report with rows has the same one."""
    reports = list(reports)
    currencies = {r.currency for r in reports if r.compared}
    clause_changed: dict[str, int] = {}
    clause_delta: dict[str, int] = {}
    customers: dict[str, int] = {}
    months: dict[str, tuple[int, int]] = {}
    actions: dict[str, tuple[int, int]] = {}
    changes: list[Change] = []
    for r in reports:
        for t in r.by_clause:
            clause_changed[t.clause] = clause_changed.get(t.clause, 0) + t.changed
            clause_delta[t.clause] = clause_delta.get(t.clause, 0) + t.delta_minor
        for c, d in r.by_customer.items():
            customers[c] = customers.get(c, 0) + d
        for m, (b, a) in r.by_month.items():
            ob, oa = months.get(m, (0, 0))
            months[m] = (ob + b, oa + a)
        for action, (n, k) in r.by_action.items():
            on, ok = actions.get(action, (0, 0))
            actions[action] = (on + n, ok + k)
        changes.extend(r.changes[: max(0, keep - len(changes))])
    return Report(
        currency=currencies.pop() if len(currencies) == 1 else None,
        compared=sum(r.compared for r in reports),
        changed=sum(r.changed for r in reports),
        refunded_before_minor=sum(r.refunded_before_minor for r in reports),
        refunded_after_minor=sum(r.refunded_after_minor for r in reports),
        by_clause=_ranked([ClauseTotal(c, n, clause_delta[c]) for c, n in clause_changed.items()]),
        by_customer=customers,
        changed_customers=frozenset().union(*(r.changed_customers for r in reports)),
        by_month=dict(sorted(months.items())),
        by_action=dict(sorted(actions.items())),
        changes=tuple(changes),
    )


def relabel(report: Report, customers: Mapping[str, str], *, source: str = "") -> Report:
    """The report with its customers' labels (ids, from ``summarize`` without names)
    replaced by ``customers[label]`` and ``source`` set on its changes; labels without a
    name are kept."""

    def name(label: str) -> str:
        return customers.get(label, label)

    return replace(
        report,
        by_customer={name(c): d for c, d in report.by_customer.items()},
        changed_customers=frozenset(name(c) for c in report.changed_customers),
        changes=tuple(
            replace(c, customer=name(c.customer), source=source or c.source) for c in report.changes
        ),
    )


def _ranked(totals: list[ClauseTotal]) -> tuple[ClauseTotal, ...]:
    return tuple(sorted(totals, key=lambda t: (-abs(t.delta_minor), -t.changed, t.clause)))


def _label(customer_id: int, source: str, customers: Mapping[int, str] | None) -> str:
    name = customers.get(customer_id, str(customer_id)) if customers else str(customer_id)
    return f"{source}/{name}" if source else name
