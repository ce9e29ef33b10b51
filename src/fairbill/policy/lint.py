"""Lint a policy: clauses that contradict each other or can never apply, windows that leave
gaps or overlap, refunds above what was paid, fees above the policy's own cap, published
sentences traced nowhere, and consumer rights below the law of the merchant's country.

Modelled on beancount's ``ops/validation.py``: ``CHECKS`` is a flat list of same-shaped
pure functions ``check_x(policy, ctx) -> list[Finding]``; ``lint`` runs them in order and
applies the policy's ``lint.suppress`` entries. Nothing here reads a file: the YAML lines,
the published text and the legal floors arrive in the ``LintContext``
(``policy.lint_inputs`` gathers them). docs/policy-lint.md documents every code and the
rules each check applies.

Invariants: every finding names a clause id, or the policy id for a finding about the whole
policy; a finding's severity is its code's (``SEVERITY``); the same policy and context give
the same findings in the same order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from fairbill.policy.floors import Floor
from fairbill.policy.lint_codes import SEVERITY, LintCode, Severity, Suppression
from fairbill.policy.lint_spans import longest_span, shortest_span
from fairbill.policy.lint_text import accounted_for, normalise, sentences, states_rule
from fairbill.policy.model import (
    AccountClosure,
    Appeals,
    CancellationRefund,
    CancellationTiming,
    ClauseBase,
    CoolingOff,
    DataRetention,
    Deadlines,
    DeclineGround,
    Disputes,
    Dunning,
    ExceptionRefund,
    Fees,
    MoneyBackGuarantee,
    OutageCompensation,
    Outcome,
    PlanChange,
    Policy,
    PrepaidCredits,
    RefundBasis,
    RefundDestination,
    RequestKind,
    RequestRequirements,
    TermsAcceptance,
    Trials,
    UsageTiers,
    Violations,
)
from fairbill.yamlfile import LineMap

C = TypeVar("C", bound=ClauseBase)


# -- findings and context ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    """One problem. ``path`` is set only when it lies in another file than the policy (a
    sentence of the published text); ``about`` is the subject inside the clause (a floor
    id, a request kind, a sentence) that a suppression may name."""

    code: LintCode
    clause: str
    message: str
    line: int | None = None
    path: str | None = None
    about: str | None = None

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.code]


@dataclass(frozen=True, slots=True)
class PublishedText:
    path: str
    content: str


@dataclass(frozen=True, slots=True)
class LintContext:
    """What the checks know besides the policy: its lines (``None`` for a policy built in
    code), the published text (``None`` when not found: ``searched`` says where it was
    looked for), and the legal floors."""

    lines: LineMap | None = None
    text: PublishedText | None = None
    searched: tuple[str, ...] = ()
    floors: tuple[Floor, ...] = ()


@dataclass(frozen=True, slots=True)
class LintReport:
    findings: tuple[Finding, ...]
    suppressed: tuple[tuple[Finding, Suppression], ...] = ()

    @property
    def failed(self) -> bool:
        """Any finding of severity warning or error (suppressed ones do not count)."""
        return any(f.severity is not Severity.INFO for f in self.findings)


Check = Callable[[Policy, LintContext], list[Finding]]


def _line(ctx: LintContext, *path: str | int) -> int | None:
    return ctx.lines.line(path) if ctx.lines is not None else None


def _on(
    policy: Policy,
    ctx: LintContext,
    code: LintCode,
    clause: ClauseBase,
    message: str,
    field: str | None = None,
    about: str | None = None,
) -> Finding:
    """A finding on ``clause``, at the line of ``field`` (else of the clause)."""
    index = next(i for i, c in enumerate(policy.clauses) if c.id == clause.id)
    path: tuple[str | int, ...] = ("clauses", index) + ((field,) if field else ())
    return Finding(code, clause.id, message, _line(ctx, *path), about=about)


def _on_policy(
    policy: Policy, ctx: LintContext, code: LintCode, message: str, field: str, about: str = ""
) -> Finding:
    return Finding(code, policy.id, message, _line(ctx, field), about=about or None)


def _params(clause: ClauseBase) -> dict[str, Any]:
    """A clause's parameters: every field but its id, source and reading."""
    return clause.model_dump(mode="json", exclude={"id", "source", "reading"})


def _days(lo: int, hi: int | None) -> str:
    return f"days {lo}–{hi}" if hi is not None else f"day {lo} onwards"


# -- precedence: the first clause that matches a case decides it ------------------------------
@dataclass(frozen=True, slots=True)
class _Family(Generic[C]):
    """Clauses of one kind the engine tries in file order, the first matching a case
    deciding it: ``scope`` the cases a clause matches, ``says`` its decision in words."""

    clauses: Sequence[C]
    scope: Callable[[C], frozenset[Hashable]]
    says: Callable[[C], str]
    cases: Callable[[frozenset[Hashable]], str]


def _precedence(policy: Policy, ctx: LintContext, family: _Family[C]) -> list[Finding]:
    """A clause whose cases are all taken by earlier clauses never applies: ``unreachable``
    when they decide alike, ``contradiction`` when not. Two clauses that share cases and
    decide them differently contradict each other unless the earlier one is the more
    specific (its cases are a subset of the later one's: an exception placed first)."""
    findings: list[Finding] = []
    taken: set[Hashable] = set()
    earlier: list[tuple[C, frozenset[Hashable]]] = []
    for clause in family.clauses:
        scope = family.scope(clause)
        shared = [(a, s & scope, s <= scope) for a, s in earlier if s & scope]
        differing = [(a, cases) for a, cases, _ in shared if family.says(a) != family.says(clause)]
        if scope and scope <= taken:
            findings.append(
                _shadowed(policy, ctx, family, clause, [a for a, *_ in shared], differing)
            )
        else:
            findings += [
                _conflict(policy, ctx, family, clause, a, cases)
                for a, cases, specific in shared
                if not specific and family.says(a) != family.says(clause)
            ]
        taken |= scope
        earlier.append((clause, scope))
    return findings


def _shadowed(
    policy: Policy,
    ctx: LintContext,
    family: _Family[C],
    clause: C,
    shared: list[C],
    differing: list[tuple[C, frozenset[Hashable]]],
) -> Finding:
    if differing:
        first, cases = differing[0]
        return _on(
            policy,
            ctx,
            LintCode.CONTRADICTION,
            clause,
            f"{first.id} already decides {family.cases(cases)}: it {family.says(first)}, "
            f"this clause {family.says(clause)}. The earlier clause wins, so this one never "
            "applies; put the more specific clause first, or remove one.",
        )
    ids = ", ".join(a.id for a in shared)
    return _on(
        policy,
        ctx,
        LintCode.UNREACHABLE,
        clause,
        f"every case it covers ({family.cases(family.scope(clause))}) is already decided, "
        f"the same way, by {ids}: it never applies.",
    )


def _conflict(
    policy: Policy,
    ctx: LintContext,
    family: _Family[C],
    clause: C,
    first: C,
    cases: frozenset[Hashable],
) -> Finding:
    return _on(
        policy,
        ctx,
        LintCode.CONTRADICTION,
        clause,
        f"{first.id} and this clause both decide {family.cases(cases)}, differently: "
        f"{first.id} {family.says(first)}, this clause {family.says(clause)}. Neither is "
        "more specific, so only their order in the file decides.",
    )


# -- 1. contradictions and shadowed clauses ---------------------------------------------------
_INTERVALS = ("month", "year", "multi_month")
_INTERVAL_WORDS = {"month": "monthly", "year": "yearly", "multi_month": "multi-month"}
_PATH_WORDS = {
    "scheduled": "cancelled at the period end",
    "immediate": "cancelled with immediate effect",
}


def _cancel_scope(rule: CancellationRefund) -> frozenset[Hashable]:
    paths = ("immediate",) if rule.when == "immediate" else ("scheduled", "immediate")
    return frozenset((i, p) for i in (rule.intervals or _INTERVALS) for p in paths)


def _cancel_cases(cases: frozenset[Hashable]) -> str:
    plans = {
        path: ", ".join(_INTERVAL_WORDS[i] for i in _INTERVALS if (i, path) in cases)
        for path in _PATH_WORDS
    }
    if plans["scheduled"] == plans["immediate"]:
        return f"every cancellation of {plans['scheduled']} plans"
    return " and ".join(f"{p} plans {_PATH_WORDS[path]}" for path, p in plans.items() if p)


def _cancel_says(rule: CancellationRefund) -> str:
    decided = " after review" if rule.decision is Outcome.NEEDS_REVIEW else ""
    return f"refunds {rule.refund.value.replace('_', ' ')}{decided}"


def check_cancellation_refunds(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Cancellation refunds: the engine applies the first clause matching the plan interval
    and the kind of cancellation (at the period end, or ending service at once)."""
    family = _Family(
        policy.clauses_of(CancellationRefund), _cancel_scope, _cancel_says, _cancel_cases
    )
    return _precedence(policy, ctx, family)


def _guarantee_scope(g: MoneyBackGuarantee) -> frozenset[Hashable]:
    # A money_back request is decided by the first guarantee, whatever its ``via``; a
    # cancellation by the first ``via: cancel`` guarantee that covers it.
    cases: set[Hashable] = {("request",)}
    if g.via == "cancel":
        purchases = ("first",) if g.first_purchase_only else ("first", "later")
        payments = (
            ("initial",) if g.window_from == "initial_subscription" else ("initial", "renewal")
        )
        cases |= {
            ("cancel", p, q, d)
            for p in purchases
            for q in payments
            for d in range(g.window_days + 1)
        }
    return frozenset(cases)


def _guarantee_cases(cases: frozenset[Hashable]) -> str:
    parts = ["money-back requests"] if ("request",) in cases else []
    days = sorted(c[3] for c in cases if isinstance(c, tuple) and c[0] == "cancel")
    if days:
        parts.append(f"cancellations {days[0]}–{days[-1]} days after the purchase")
    return " and ".join(parts)


def _guarantee_says(g: MoneyBackGuarantee) -> str:
    decided = " after review" if g.decision is Outcome.NEEDS_REVIEW else ""
    return (
        f"refunds {g.refund.value.replace('_', ' ')}{decided} and ends service "
        f"{g.ends_service.replace('_', ' ')}"
    )


def check_guarantees(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Money-back guarantees: requests go to the first guarantee; cancellations to the first
    ``via: cancel`` guarantee whose window, purchase and payment cover them."""
    family = _Family(
        policy.clauses_of(MoneyBackGuarantee), _guarantee_scope, _guarantee_says, _guarantee_cases
    )
    return _precedence(policy, ctx, family)


# The kinds the engine reads with ``Policy.first``: a second clause is never read.
SINGLE_CLAUSE_KINDS: tuple[type[ClauseBase], ...] = (
    CancellationTiming,
    CoolingOff,
    OutageCompensation,
    RefundDestination,
    Fees,
    PlanChange,
    UsageTiers,
    PrepaidCredits,
    Dunning,
    Disputes,
    Violations,
    AccountClosure,
    DataRetention,
    Trials,
    Deadlines,
    Appeals,
)


def check_single_clause_kinds(policy: Policy, ctx: LintContext) -> list[Finding]:
    """A kind the engine reads once (``SINGLE_CLAUSE_KINDS``): a second clause of it is
    never read — a contradiction when its parameters differ, unreachable when not."""
    findings: list[Finding] = []
    for kind in SINGLE_CLAUSE_KINDS:
        clauses = policy.clauses_of(kind)
        findings += [_second_of_kind(policy, ctx, clauses[0], c) for c in clauses[1:]]
    return findings


def _second_of_kind(policy: Policy, ctx: LintContext, first: C, clause: C) -> Finding:
    kind = _params(first).get("kind")
    a, b = _params(first), _params(clause)
    differ = [f"{k}: {json.dumps(a[k])} vs {json.dumps(b[k])}" for k in a if a[k] != b[k]]
    if not differ:
        return _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            clause,
            f"repeats {first.id}; the engine reads only the first {kind} clause.",
        )
    return _on(
        policy,
        ctx,
        LintCode.CONTRADICTION,
        clause,
        f"{first.id} and this clause set {kind} differently ({'; '.join(differ)}); the "
        f"engine reads only the first {kind} clause, {first.id}.",
    )


# -- exception refunds: one reason, windows on the days since the charge ----------------------
def _window(ex: ExceptionRefund) -> tuple[int, int | None]:
    """The days after the charge a request can come: from ``after_days`` (the problem must
    have lasted that long) to ``within_days``."""
    return ex.after_days or 0, ex.within_days


_UNBOUNDED = 1_000_000  # sorts a window with no end after every bounded one


def _outcome(ex: ExceptionRefund) -> tuple[object, ...]:
    return (ex.decision, ex.basis, ex.destination, ex.documents_required, ex.order_numbers_required)


def _overlap(a: tuple[int, int | None], b: tuple[int, int | None]) -> tuple[int, int | None]:
    lo = max(a[0], b[0])
    hi = b[1] if a[1] is None else a[1] if b[1] is None else min(a[1], b[1])
    return lo, hi


def _empty(window: tuple[int, int | None]) -> bool:
    return window[1] is not None and window[0] > window[1]


def check_exception_refunds(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Exception refunds for one request kind (``reason``): the engine reads only the first.
    A later one whose window overlaps the first's contradicts it (another outcome) or
    repeats it (``window_overlap``); one with a separate window is ``unreachable``, and
    days between the windows are a ``window_gap``."""
    findings: list[Finding] = []
    by_reason: dict[RequestKind, list[ExceptionRefund]] = {}
    for ex in policy.clauses_of(ExceptionRefund):
        by_reason.setdefault(ex.reason, []).append(ex)
    for reason, clauses in by_reason.items():
        first = clauses[0]
        for later in clauses[1:]:
            findings.append(_second_exception(policy, ctx, reason, first, later))
        findings += _exception_gaps(policy, ctx, reason, clauses)
    return findings


def _second_exception(
    policy: Policy,
    ctx: LintContext,
    reason: RequestKind,
    first: ExceptionRefund,
    ex: ExceptionRefund,
) -> Finding:
    shared = _overlap(_window(first), _window(ex))
    what = f"{reason.value} requests"
    if _empty(shared):
        return _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            ex,
            f"the engine decides {what} by the first exception_refund for them, {first.id} "
            f"({_days(*_window(first))}); this clause's window ({_days(*_window(ex))}) is "
            "never used. Merge the two into one clause.",
            about=reason.value,
        )
    if _outcome(first) != _outcome(ex):
        return _on(
            policy,
            ctx,
            LintCode.CONTRADICTION,
            ex,
            f"{first.id} and this clause both decide {what} made {_days(*shared)} after the "
            f"charge, differently ({first.decision.value}, {first.basis.value} vs "
            f"{ex.decision.value}, {ex.basis.value}); the engine uses {first.id}.",
            about=reason.value,
        )
    return _on(
        policy,
        ctx,
        LintCode.WINDOW_OVERLAP,
        ex,
        f"its window overlaps {first.id}'s for {what} ({_days(*shared)} after the charge) "
        f"with the same outcome: it adds nothing, and the engine reads only {first.id}.",
        about=reason.value,
    )


def _exception_gaps(
    policy: Policy, ctx: LintContext, reason: RequestKind, clauses: list[ExceptionRefund]
) -> list[Finding]:
    findings: list[Finding] = []
    windows = sorted(
        ((_window(c), c) for c in clauses if not _empty(_window(c))),
        key=lambda pair: (pair[0][0], _UNBOUNDED if pair[0][1] is None else pair[0][1]),
    )
    reach = windows[0][0][1] if windows else None
    for (lo, hi), clause in windows[1:]:
        if reach is not None and lo > reach + 1:
            findings.append(
                _on(
                    policy,
                    ctx,
                    LintCode.WINDOW_GAP,
                    clause,
                    f"no clause decides {reason.value} requests made {_days(reach + 1, lo - 1)} "
                    "after the charge: the earlier window ends on day "
                    f"{reach}, this one starts on day {lo}.",
                    about=reason.value,
                )
            )
        reach = None if reach is None or hi is None else max(reach, hi)
    return findings


# -- 2. clauses no request reaches ------------------------------------------------------------
def _requirements_for(policy: Policy, kind: RequestKind) -> list[RequestRequirements]:
    """The request requirements that apply to ``kind`` (``kinds`` lists the kinds a
    requirement covers; empty: every kind)."""
    return [r for r in policy.clauses_of(RequestRequirements) if not r.kinds or kind in r.kinds]


def _request_window(policy: Policy, kind: RequestKind) -> RequestRequirements | None:
    windows = [r for r in _requirements_for(policy, kind) if r.window_days is not None]
    return min(windows, key=lambda r: r.window_days or 0) if windows else None


def check_unreachable(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Single clauses that can never take effect; see docs/policy-lint.md, ``unreachable``."""
    return [
        *_immediate_refunds(policy, ctx),
        *_remaining_months(policy, ctx),
        *_empty_exception_windows(policy, ctx),
        *_late_exceptions(policy, ctx),
        *_window_decline_without_window(policy, ctx),
        *_cooling_off_customers(policy, ctx),
    ]


def _immediate_option(policy: Policy) -> bool:
    timing = policy.first(CancellationTiming)
    return timing is not None and timing.immediate_option


def _immediate_refunds(policy: Policy, ctx: LintContext) -> list[Finding]:
    if _immediate_option(policy):
        return []
    return [
        _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            rule,
            "applies only to cancellations that end service at once, but the policy's "
            "cancellation_timing does not offer them (immediate_option is not true).",
            field="when",
        )
        for rule in policy.clauses_of(CancellationRefund)
        if rule.when == "immediate"
    ]


def _remaining_months(policy: Policy, ctx: LintContext) -> list[Finding]:
    timing = policy.first(CancellationTiming)
    effective = timing.effective if timing is not None else "end_of_period"
    findings = []
    for rule in policy.clauses_of(CancellationRefund):
        if rule.refund is not RefundBasis.FULL_REMAINING_MONTHS:
            continue
        why = _why_no_months(rule, effective)
        if why:
            findings.append(
                _on(
                    policy,
                    ctx,
                    LintCode.UNREACHABLE,
                    rule,
                    f"refunds the whole months left after the current one, but {why}: "
                    "it never refunds anything.",
                    field="refund",
                )
            )
    return findings


def _why_no_months(rule: CancellationRefund, effective: str) -> str:
    if rule.intervals == ["month"]:
        return "a monthly plan has no month left after the current one"
    if rule.when == "immediate":
        return "a cancellation that ends service at once refunds only unused days"
    if effective != "end_of_month_period":
        return (
            f"cancellations take effect at the {effective.removeprefix('end_of_')} end "
            "(cancellation_timing), so no whole month of the billing period is left"
        )
    return ""


def _empty_exception_windows(policy: Policy, ctx: LintContext) -> list[Finding]:
    return [
        _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            ex,
            f"needs a problem lasting {ex.after_days} days and a request within "
            f"{ex.within_days} days of the charge: no request meets both.",
            field="after_days",
            about=ex.reason.value,
        )
        for ex in policy.clauses_of(ExceptionRefund)
        if _empty(_window(ex))
    ]


def _late_exceptions(policy: Policy, ctx: LintContext) -> list[Finding]:
    findings = []
    for ex in policy.clauses_of(ExceptionRefund):
        rule = _request_window(policy, ex.reason)
        window = rule.window_days if rule is not None else None
        if rule is None or window is None or ex.within_days or not ex.after_days:
            continue
        if ex.after_days > window:
            findings.append(
                _on(
                    policy,
                    ctx,
                    LintCode.UNREACHABLE,
                    ex,
                    f"needs the problem to have lasted {ex.after_days} days, but requests "
                    f"must come within {window} days of the charge ({rule.id}): no request "
                    "can qualify.",
                    field="after_days",
                    about=ex.reason.value,
                )
            )
    return findings


def _window_decline_without_window(policy: Policy, ctx: LintContext) -> list[Finding]:
    if any(r.window_days for r in policy.clauses_of(RequestRequirements)):
        return []
    return [
        _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            ground,
            "declines requests whose window has expired, but no request_requirements clause "
            "sets a window (window_days).",
            field="ground",
        )
        for ground in policy.clauses_of(DeclineGround)
        if ground.ground == "window_expired"
    ]


def _cooling_off_customers(policy: Policy, ctx: LintContext) -> list[Finding]:
    return [
        _on(
            policy,
            ctx,
            LintCode.UNREACHABLE,
            clause,
            f"covers {', '.join(clause.customer_types)} customers, but the policy sells only "
            f"to {', '.join(policy.customer_types)} (customer_types).",
            field="customer_types",
        )
        for clause in policy.clauses_of(CoolingOff)
        if not set(clause.customer_types) & set(policy.customer_types)
    ]


# -- 3. windows across clauses ----------------------------------------------------------------
def check_request_windows(policy: Policy, ctx: LintContext) -> list[Finding]:
    """A right whose days outlast the window in which refund requests are accepted."""
    return [*_guarantee_request_gaps(policy, ctx), *_cooling_off_request_gaps(policy, ctx)]


def _guarantee_request_gaps(policy: Policy, ctx: LintContext) -> list[Finding]:
    rule = _request_window(policy, RequestKind.MONEY_BACK)
    if rule is None or rule.window_days is None:
        return []
    window = rule.window_days
    return [
        _on(
            policy,
            ctx,
            LintCode.WINDOW_GAP,
            g,
            f"promises money back for {g.window_days} days, but refund requests must come "
            f"within {window} days of the charge ({rule.id}): requests on days "
            f"{window + 1}–{g.window_days} are declined.",
            field="window_days",
        )
        for g in policy.clauses_of(MoneyBackGuarantee)
        if g.via == "request" and g.window_days > window
    ]


def _cooling_off_request_gaps(policy: Policy, ctx: LintContext) -> list[Finding]:
    rule = _request_window(policy, RequestKind.COOLING_OFF)
    if rule is None or rule.window_days is None:
        return []
    findings = []
    for clause in policy.clauses_of(CoolingOff):
        span = longest_span(clause.business_days, policy.country, policy.effective.year)
        if span > rule.window_days:
            findings.append(
                _on(
                    policy,
                    ctx,
                    LintCode.WINDOW_GAP,
                    clause,
                    f"{clause.business_days} business days can end {span} days after the sale "
                    f"in {policy.country}, but refund requests must come within "
                    f"{rule.window_days} days of the charge ({rule.id}).",
                    field="business_days",
                )
            )
    return findings


# -- 4. refunds above what was paid -----------------------------------------------------------
def check_refund_ceiling(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Rules that, applied as written, pay back more than the payment they are about."""
    return [*_guarantees_refunding_all(policy, ctx), *_outage_paid_twice(policy, ctx)]


def _guarantees_refunding_all(policy: Policy, ctx: LintContext) -> list[Finding]:
    return [
        _on(
            policy,
            ctx,
            LintCode.REFUND_EXCEEDS_PAID,
            g,
            f"counts its {g.window_days} days from each payment, and a cancellation inside "
            "the guarantee refunds every payment of the subscription: cancelling just after "
            "a renewal would refund the periods already used too. Count the window from the "
            "initial subscription (window_from: initial_subscription).",
            field="window_from",
        )
        for g in policy.clauses_of(MoneyBackGuarantee)
        if g.via == "cancel" and g.window_from == "payment"
    ]


def _outage_paid_twice(policy: Policy, ctx: LintContext) -> list[Finding]:
    outage = policy.first(OutageCompensation)
    if outage is None or outage.decision is not Outcome.APPROVED or "internal" not in outage.causes:
        return []
    return [
        _on(
            policy,
            ctx,
            LintCode.REFUND_EXCEEDS_PAID,
            ex,
            f"refunds {ex.basis.value.replace('_', ' ')} for a service not delivered, and "
            f"{outage.id} also compensates the same internal outage automatically: together "
            "they pay more than the period cost. Send one of them to review, or say which "
            "one applies.",
            about=ex.reason.value,
        )
        for ex in policy.clauses_of(ExceptionRefund)
        if ex.reason is RequestKind.NON_DELIVERY
        and ex.decision is Outcome.APPROVED
        and ex.basis is not RefundBasis.NONE
    ]


# -- 5. fees above the policy's own cap -------------------------------------------------------
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s*%")  # "18%", "2,5 %" (a decimal comma)
_AMOUNT = re.compile(r"\d[\d,]*(?:\.\d+)?")  # "15.00", "1,000,000" (thousands commas)


def _percentages(texts: Sequence[str]) -> list[Decimal]:
    return [Decimal(m.group(1).replace(",", ".")) for t in texts for m in _PERCENT.finditer(t)]


def _amounts(texts: Sequence[str]) -> list[Decimal]:
    return [Decimal(m.group(0).replace(",", "")) for t in texts for m in _AMOUNT.finditer(t)]


def check_fee_caps(policy: Policy, ctx: LintContext) -> list[Finding]:
    """A fee above the cap the policy sets: above 100 %, above the percentage its own
    sentences state, or a fixed fee that exceeds the percentage cap on small payments."""
    fees = policy.first(Fees)
    cap = fees.flat_fee_max_percent if fees is not None else None
    findings: list[Finding] = []
    if fees is not None and cap is not None:
        findings += _percent_cap(policy, ctx, fees, cap)
    for disputes in policy.clauses_of(Disputes):
        if disputes.fee is not None:
            findings += _fixed_fee(policy, ctx, disputes, disputes.fee, fees, cap)
    return findings


def _percent_cap(policy: Policy, ctx: LintContext, fees: Fees, cap: Decimal) -> list[Finding]:
    stated = _percentages(fees.source)
    if cap > 100:
        why = f"a fee of up to {cap}% of a refund is more than the refund itself"
    elif not stated:
        why = f"it allows a flat fee of up to {cap}%, but its source sentences state no percentage"
    elif cap > max(stated):
        why = f"it allows a flat fee of up to {cap}%, but its source caps it at {max(stated)}%"
    else:
        return []
    return [_on(policy, ctx, LintCode.FEE_ABOVE_CAP, fees, why + ".", field="flat_fee_max_percent")]


def _fixed_fee(
    policy: Policy,
    ctx: LintContext,
    disputes: Disputes,
    fee: Decimal,
    fees: Fees | None,
    cap: Decimal | None,
) -> list[Finding]:
    findings = []
    if not any(n >= fee for n in _amounts(disputes.source)):
        findings.append(
            _on(
                policy,
                ctx,
                LintCode.FEE_ABOVE_CAP,
                disputes,
                f"charges a fee of {fee} {policy.currency}, an amount its source sentences do "
                "not state.",
                field="fee",
            )
        )
    if fees is not None and cap is not None and cap > 0:
        below = (fee * 100 / cap).quantize(Decimal("0.01"))
        findings.append(
            _on(
                policy,
                ctx,
                LintCode.FEE_ABOVE_CAP,
                disputes,
                f"a fixed fee of {fee} {policy.currency} is more than the {cap}% the policy "
                f"caps fees at ({fees.id}) on any payment under {below} {policy.currency}.",
                field="fee",
            )
        )
    return findings


# -- 6. the published text --------------------------------------------------------------------
_TEXT_CODES = (LintCode.UNMAPPED_SENTENCE, LintCode.SOURCE_NOT_IN_TEXT)


def check_text_found(policy: Policy, ctx: LintContext) -> list[Finding]:
    """The text checks need the published text; say so when it was not found."""
    if ctx.text is not None:
        return []
    where = "; ".join(ctx.searched) if ctx.searched else "nowhere (no search path)"
    return [
        _on_policy(
            policy,
            ctx,
            LintCode.TEXT_NOT_FOUND,
            f"the published text {policy.seed!r} was not found, so sentences and sources were "
            f"not checked against it (looked in: {where}); pass it with --text.",
            "seed",
        )
    ]


def check_sources_in_text(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Every quoted source sentence (clauses and not_automated) is in the published text."""
    if ctx.text is None:
        return []
    text = normalise(ctx.text.content)
    findings = []
    for i, clause in enumerate(policy.clauses):
        for j, source in enumerate(clause.source):
            if normalise(source) not in text:
                findings.append(
                    _missing_source(policy, ctx, clause.id, source, ("clauses", i, "source", j))
                )
    for k, item in enumerate(policy.not_automated):
        if normalise(item.source) not in text:
            findings.append(
                _missing_source(policy, ctx, policy.id, item.source, ("not_automated", k, "source"))
            )
    return findings


def _missing_source(
    policy: Policy, ctx: LintContext, owner: str, source: str, at: tuple[str | int, ...]
) -> Finding:
    assert ctx.text is not None
    return Finding(
        LintCode.SOURCE_NOT_IN_TEXT,
        owner,
        f"quotes {source!r}, which is not in the published text {ctx.text.path}.",
        _line(ctx, *at),
    )


def check_unmapped_sentences(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Every sentence of the published text that states a rule is quoted by a clause's
    source or listed under not_automated (lint_text says what "states a rule" means)."""
    if ctx.text is None:
        return []
    quotes = [normalise(s) for c in policy.clauses for s in c.source]
    quotes += [normalise(item.source) for item in policy.not_automated]
    return [
        Finding(
            LintCode.UNMAPPED_SENTENCE,
            policy.id,
            f"{s.text!r} states a rule but no clause quotes it in its source and it is not "
            "listed under not_automated.",
            s.line,
            path=ctx.text.path,
            about=s.text,
        )
        for s in sentences(ctx.text.content)
        if states_rule(s.text) and not accounted_for(s.text, quotes)
    ]


# -- 7. legal floors --------------------------------------------------------------------------
_CHANNEL_WORDS = {"self_serve": "self-serve sign-ups", "direct_marketing": "direct-marketing sales"}


def _grants(policy: Policy, floor: Floor, channel: str) -> list[CoolingOff | MoneyBackGuarantee]:
    """The clauses that let a consumer acquired through ``channel`` withdraw."""
    cooling = [
        c
        for c in policy.clauses_of(CoolingOff)
        if channel in c.acquisition and set(c.customer_types) & set(floor.customer_types)
    ]
    return [*cooling, *policy.clauses_of(MoneyBackGuarantee)]


def _covers_days(days: int, unit: str, floor: Floor, policy: Policy) -> str:
    """Why ``days`` of ``unit`` fall short of the floor, or "" when they do not."""
    if unit == floor.unit:
        short, gives = days < floor.days, f"gives {days} {unit} days"
    elif unit == "business":
        span = shortest_span(days)
        gives = f"gives {days} business days, which can end {span} days after the sale"
        short = span < floor.days
    else:
        span = longest_span(floor.days, policy.country, policy.effective.year)
        gives = f"gives {days} days, but {floor.days} business days can run {span} days"
        short = days < span
    return f"{gives}: less than {floor.days} {floor.unit} days" if short else ""


def _shortfalls(grant: CoolingOff | MoneyBackGuarantee, floor: Floor, policy: Policy) -> list[str]:
    if isinstance(grant, CoolingOff):
        out = [_covers_days(grant.business_days, "business", floor, policy)]
    else:
        out = [_covers_days(grant.window_days, "calendar", floor, policy)]
        if grant.first_purchase_only:
            out.append("covers only a customer's first subscription, not a later new contract")
    if grant.decision is not Outcome.APPROVED:
        out.append("leaves the refund to a reviewer")
    return [s for s in out if s]


def _channel_gap(policy: Policy, floor: Floor, channel: str) -> tuple[ClauseBase | None, str]:
    """The best clause for the channel and what it lacks ("" when it meets the floor)."""
    grants = _grants(policy, floor, channel)
    if not grants:
        return None, "no clause grants it"
    shortfalls = [(g, _shortfalls(g, floor, policy)) for g in grants]
    best, lacks = min(shortfalls, key=lambda pair: len(pair[1]))
    return best, f"{best.id} {'; '.join(lacks)}" if lacks else ""


def _waiver(policy: Policy, floor: Floor) -> TermsAcceptance | None:
    if floor.waiver is None:
        return None
    # The only acknowledgement the language has: the customer consents at payment to
    # immediate performance and gives the right of withdrawal up.
    return next(
        (t for t in policy.clauses_of(TermsAcceptance) if t.withdrawal_waived_at_payment), None
    )


def check_legal_floors(policy: Policy, ctx: LintContext) -> list[Finding]:
    """Consumers get at least the cooling-off the law of the policy's country gives them,
    unless the policy declares the acknowledgement by which the law lets them waive it."""
    findings = []
    for floor in ctx.floors:
        applies = policy.country in floor.countries
        if not applies or not set(floor.customer_types) & set(policy.customer_types):
            continue
        waiver = _waiver(policy, floor)
        if waiver is not None:
            findings.append(_waived(policy, ctx, floor, waiver))
            continue
        finding = _floor_gap(policy, ctx, floor)
        if finding is not None:
            findings.append(finding)
    return findings


def _law(floor: Floor) -> str:
    return f"{floor.source.law}, {floor.source.article}"


def _waived(policy: Policy, ctx: LintContext, floor: Floor, waiver: TermsAcceptance) -> Finding:
    assert floor.waiver is not None
    return _on(
        policy,
        ctx,
        LintCode.FLOOR_WAIVED,
        waiver,
        f"{floor.name} ({floor.days} {floor.unit} days; {_law(floor)}) is waived by the "
        f"consumer's acknowledgement at payment, which this clause declares. The law's "
        f"conditions: {floor.waiver.summary}",
        field="withdrawal_waived_at_payment",
        about=floor.id,
    )


def _floor_gap(policy: Policy, ctx: LintContext, floor: Floor) -> Finding | None:
    gaps = {channel: _channel_gap(policy, floor, channel) for channel in floor.acquisition}
    by_gap: dict[str, list[str]] = {}
    for channel, (_, words) in gaps.items():
        if words:
            by_gap.setdefault(words, []).append(_CHANNEL_WORDS[channel])
    if not by_gap:
        return None
    missing = "; ".join(f"{' and '.join(ch)}: {words}" for words, ch in by_gap.items())
    message = (
        f"{floor.name}: consumers may withdraw within {floor.days} {floor.unit} days "
        f"({_law(floor)}, {floor.source.url}); this policy gives less — {missing}."
    )
    if floor.waiver is not None:
        message += (
            " If the published text has consumers waive the right at payment, declare it with "
            "a terms_acceptance clause (withdrawal_waived_at_payment: true)."
        )
    clause = next((c for c, words in gaps.values() if words and c is not None), None)
    if clause is None:
        return _on_policy(policy, ctx, LintCode.LEGAL_FLOOR, message, "country", about=floor.id)
    return _on(policy, ctx, LintCode.LEGAL_FLOOR, clause, message, about=floor.id)


# -- running the checks -----------------------------------------------------------------------
CHECKS: tuple[Check, ...] = (
    check_cancellation_refunds,
    check_guarantees,
    check_single_clause_kinds,
    check_exception_refunds,
    check_unreachable,
    check_request_windows,
    check_refund_ceiling,
    check_fee_caps,
    check_text_found,
    check_sources_in_text,
    check_unmapped_sentences,
    check_legal_floors,
)


def _matches(suppression: Suppression, finding: Finding) -> bool:
    return (
        suppression.code == finding.code
        and suppression.clause == finding.clause
        and (suppression.about is None or suppression.about == finding.about)
    )


def lint(policy: Policy, ctx: LintContext, checks: Sequence[Check] = CHECKS) -> LintReport:
    """Run ``checks`` and apply the policy's suppressions. A suppression that matches no
    finding is itself reported (``unused_suppression``), except one for a text check when
    the text was not found."""
    found = [finding for check in checks for finding in check(policy, ctx)]
    suppressions = policy.lint.suppress
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, Suppression]] = []
    for finding in found:
        by = next((s for s in suppressions if _matches(s, finding)), None)
        if by is None:
            kept.append(finding)
        else:
            suppressed.append((finding, by))
    kept += _unused(policy, ctx, found)
    return LintReport(tuple(kept), tuple(suppressed))


def _unused(policy: Policy, ctx: LintContext, found: list[Finding]) -> list[Finding]:
    unused = []
    for k, s in enumerate(policy.lint.suppress):
        if any(_matches(s, f) for f in found) or (ctx.text is None and s.code in _TEXT_CODES):
            continue
        unused.append(
            Finding(
                LintCode.UNUSED_SUPPRESSION,
                s.clause,
                f"suppresses {s.code.value} on {s.clause}"
                + (f" about {s.about}" if s.about else "")
                + ", but there is no such finding: remove the suppression.",
                _line(ctx, "lint", "suppress", k),
            )
        )
    return unused
