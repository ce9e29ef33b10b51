"""``policy.lint``: one failing fixture per check, suppressions, and the bundled policies.

Each fixture is a small policy written to ``tmp_path``; the assertions name the code, the
clause id and the line the finding points at. The head below takes lines 1-9, so the first
clause starts on line 10.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fairbill.errors import PolicyError
from fairbill.policy.floors import bundled_floors
from fairbill.policy.lint import (
    CHECKS,
    Finding,
    LintContext,
    PublishedText,
    check_sources_in_text,
    lint,
)
from fairbill.policy.lint_codes import SEVERITY, LintCode, Severity
from fairbill.policy.lint_inputs import LintedFile, find_text, lint_file, load_located
from fairbill.policy.load import BUNDLED_IDS
from fairbill.policy.model import Policy


def head(country: str = "US") -> str:
    return (
        "id: demo\n"  # 1
        "name: Demo\n"  # 2
        'version: "1"\n'  # 3
        "effective: 2026-01-01\n"  # 4
        "seed: demo.txt\n"  # 5
        "currency: EUR\n"  # 6
        "timezone: Europe/Paris\n"  # 7
        f"country: {country}\n"  # 8
        "clauses:\n"  # 9
    )


def write(tmp_path: Path, body: str, country: str = "US", tail: str = "") -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(head(country) + body + tail, encoding="utf-8")
    return path


def run(
    tmp_path: Path, body: str, country: str = "US", tail: str = "", text: str | None = None
) -> LintedFile:
    path = write(tmp_path, body, country, tail)
    text_path = None
    if text is not None:
        text_path = tmp_path / "demo.txt"
        text_path.write_text(text, encoding="utf-8")
    return lint_file(str(path), text_path)


def found(linted: LintedFile) -> list[tuple[LintCode, str, int | None]]:
    """(code, clause, line) of each reported finding, the missing-text note left out."""
    return [
        (f.code, f.clause, f.line)
        for f in linted.report.findings
        if f.code is not LintCode.TEXT_NOT_FOUND
    ]


def clause(slug: str, kind: str, *params: str) -> str:
    lines = [f"  - id: demo/{slug}", f"    kind: {kind}", '    source: ["A sentence."]']
    return "\n".join(lines + [f"    {p}" for p in params]) + "\n"


# -- contradiction ---------------------------------------------------------------------------
def test_two_cancellation_refunds_for_the_same_interval_contradict(tmp_path: Path) -> None:
    body = clause("none", "cancellation_refund", "refund: none", "intervals: [year]")  # 10-14
    body += clause("days", "cancellation_refund", "refund: unused_days", "intervals: [year]")
    linted = run(tmp_path, body)
    assert found(linted) == [(LintCode.CONTRADICTION, "demo/days", 15)]
    assert "demo/none already decides" in linted.report.findings[0].message


def test_partly_overlapping_cancellation_refunds_contradict(tmp_path: Path) -> None:
    body = clause("a", "cancellation_refund", "refund: none", "intervals: [month, year]")
    body += clause(
        "b", "cancellation_refund", "refund: unused_days", "intervals: [year, multi_month]"
    )
    assert found(run(tmp_path, body)) == [(LintCode.CONTRADICTION, "demo/b", 15)]


def test_a_more_specific_refund_placed_first_is_an_exception_not_a_contradiction(
    tmp_path: Path,
) -> None:
    timing = clause(
        "timing", "cancellation_timing", "effective: end_of_period", "immediate_option: true"
    )
    specific = clause("now", "cancellation_refund", "refund: unused_days", "when: immediate")
    general = clause("none", "cancellation_refund", "refund: none")
    assert found(run(tmp_path, timing + specific + general)) == []
    # The other way round the specific clause never applies and says something else.
    linted = run(tmp_path, timing + general + specific)
    assert found(linted) == [(LintCode.CONTRADICTION, "demo/now", 19)]


def test_an_exception_refund_reason_listed_twice_with_different_outcomes(tmp_path: Path) -> None:
    first = clause(
        "dup-a", "exception_refund", "reason: duplicate_charge", "decision: approved", "basis: full"
    )
    second = clause(
        "dup-b",
        "exception_refund",
        "reason: duplicate_charge",
        "decision: needs_review",
        "basis: full",
    )
    linted = run(tmp_path, first + second)  # the second starts on line 16
    assert found(linted) == [(LintCode.CONTRADICTION, "demo/dup-b", 16)]
    assert linted.report.findings[0].about == "duplicate_charge"


def test_two_guarantees_for_the_same_requests_contradict(tmp_path: Path) -> None:
    a = clause("g30", "money_back_guarantee", "window_days: 30", "refund: full", "via: request")
    b = clause(
        "g14", "money_back_guarantee", "window_days: 14", "refund: unused_days", "via: request"
    )
    assert found(run(tmp_path, a + b)) == [(LintCode.CONTRADICTION, "demo/g14", 16)]


def test_tiered_cancel_guarantees_are_not_a_contradiction(tmp_path: Path) -> None:
    full = clause(
        "full",
        "money_back_guarantee",
        "window_days: 14",
        "window_from: initial_subscription",
        "refund: full",
        "via: cancel",
    )
    partial = clause(
        "partial",
        "money_back_guarantee",
        "window_days: 30",
        "window_from: initial_subscription",
        "refund: unused_days",
        "via: cancel",
    )
    assert found(run(tmp_path, full + partial)) == []


def test_a_second_clause_of_a_kind_read_once_contradicts_the_first(tmp_path: Path) -> None:
    a = clause("fees-a", "fees", "processing_costs: true")
    b = clause("fees-b", "fees", "processing_costs: false")
    linted = run(tmp_path, a + b)
    assert found(linted) == [(LintCode.CONTRADICTION, "demo/fees-b", 14)]
    assert "processing_costs: true vs false" in linted.report.findings[0].message


# -- unreachable -----------------------------------------------------------------------------
def test_a_repeated_clause_of_a_kind_read_once_is_unreachable(tmp_path: Path) -> None:
    a = clause("appeals-a", "appeals", "allowed: false")
    b = clause("appeals-b", "appeals", "allowed: false")
    assert found(run(tmp_path, a + b)) == [(LintCode.UNREACHABLE, "demo/appeals-b", 14)]


def test_an_immediate_cancellation_refund_without_the_immediate_option(tmp_path: Path) -> None:
    body = clause("timing", "cancellation_timing", "effective: end_of_period")  # 10-13
    body += clause("now", "cancellation_refund", "refund: unused_days", "when: immediate")  # 14-18
    assert found(run(tmp_path, body)) == [(LintCode.UNREACHABLE, "demo/now", 18)]  # `when:`


def test_remaining_months_refund_that_never_pays(tmp_path: Path) -> None:
    body = clause("timing", "cancellation_timing", "effective: end_of_period")
    body += clause(
        "months", "cancellation_refund", "refund: full_remaining_months", "intervals: [year]"
    )
    linted = run(tmp_path, body)
    assert found(linted) == [(LintCode.UNREACHABLE, "demo/months", 17)]  # `refund:`
    assert "period end" in linted.report.findings[0].message


def test_an_exception_whose_problem_outlasts_the_request_window(tmp_path: Path) -> None:
    body = clause("requests", "request_requirements", "window_days: 30")  # 10-13
    body += clause(
        "late",
        "exception_refund",
        "reason: non_delivery",
        "decision: needs_review",
        "basis: full",
        "after_days: 45",
    )  # 14-20, after_days on 20
    assert found(run(tmp_path, body)) == [(LintCode.UNREACHABLE, "demo/late", 20)]


def test_an_exception_with_an_empty_window(tmp_path: Path) -> None:
    body = clause(
        "never",
        "exception_refund",
        "reason: unauthorized",
        "decision: needs_review",
        "basis: full",
        "after_days: 20",
        "within_days: 10",
    )
    assert found(run(tmp_path, body)) == [(LintCode.UNREACHABLE, "demo/never", 16)]


def test_a_window_decline_without_a_window(tmp_path: Path) -> None:
    body = clause("expired", "decline_ground", "ground: window_expired")
    assert found(run(tmp_path, body)) == [(LintCode.UNREACHABLE, "demo/expired", 13)]


def test_a_cooling_off_for_customers_the_policy_does_not_sell_to(tmp_path: Path) -> None:
    body = clause("cooling", "cooling_off", "business_days: 5", "refund: full")
    linted = run(tmp_path, body, tail="customer_types: [business]\n")
    assert found(linted) == [(LintCode.UNREACHABLE, "demo/cooling", 10)]


# -- window_gap and window_overlap -----------------------------------------------------------
def test_split_exception_windows_leave_a_gap_and_the_second_is_never_read(tmp_path: Path) -> None:
    early = clause(
        "early",
        "exception_refund",
        "reason: unauthorized",
        "decision: approved",
        "basis: full",
        "within_days: 10",
    )  # 10-16
    late = clause(
        "late",
        "exception_refund",
        "reason: unauthorized",
        "decision: needs_review",
        "basis: full",
        "after_days: 30",
    )  # 17-23
    codes = found(run(tmp_path, early + late))
    assert codes == [
        (LintCode.UNREACHABLE, "demo/late", 17),
        (LintCode.WINDOW_GAP, "demo/late", 17),
    ]


def test_overlapping_exception_windows_with_the_same_outcome(tmp_path: Path) -> None:
    a = clause(
        "a", "exception_refund", "reason: billing_error", "decision: approved", "basis: overcharge"
    )
    b = clause(
        "b",
        "exception_refund",
        "reason: billing_error",
        "decision: approved",
        "basis: overcharge",
        "within_days: 60",
    )
    assert found(run(tmp_path, a + b)) == [(LintCode.WINDOW_OVERLAP, "demo/b", 16)]


def test_a_guarantee_longer_than_the_request_window(tmp_path: Path) -> None:
    body = clause("requests", "request_requirements", "window_days: 14")  # 10-13
    body += clause(
        "guarantee", "money_back_guarantee", "window_days: 30", "refund: full", "via: request"
    )  # 14-19, window_days on 17
    linted = run(tmp_path, body)
    assert found(linted) == [(LintCode.WINDOW_GAP, "demo/guarantee", 17)]
    assert "days 15–30" in linted.report.findings[0].message


def test_a_cooling_off_longer_than_the_request_window(tmp_path: Path) -> None:
    body = clause("requests", "request_requirements", "window_days: 5")
    body += clause("cooling", "cooling_off", "business_days: 5", "refund: full")  # 14-18
    assert found(run(tmp_path, body)) == [(LintCode.WINDOW_GAP, "demo/cooling", 17)]


# -- refund_exceeds_paid ---------------------------------------------------------------------
def test_a_cancel_guarantee_counted_from_each_payment_refunds_used_periods(tmp_path: Path) -> None:
    body = clause(
        "guarantee", "money_back_guarantee", "window_days: 14", "refund: full", "via: cancel"
    )
    assert found(run(tmp_path, body)) == [(LintCode.REFUND_EXCEEDS_PAID, "demo/guarantee", 10)]


def test_an_outage_compensated_and_refunded_automatically(tmp_path: Path) -> None:
    body = clause(
        "outage",
        "outage_compensation",
        "min_duration_hours: 4",
        "causes: [internal]",
        "destination: wallet",
        "decision: approved",
    )  # 10-16
    body += clause(
        "not-delivered",
        "exception_refund",
        "reason: non_delivery",
        "decision: approved",
        "basis: full",
        "after_days: 3",
    )  # 17-23
    assert found(run(tmp_path, body)) == [(LintCode.REFUND_EXCEEDS_PAID, "demo/not-delivered", 17)]


# -- fee_above_cap ---------------------------------------------------------------------------
def fees(percent: str, sentence: str = "A flat fee of up to 18% may apply.") -> str:
    return (
        "  - id: demo/fees\n"  # 10
        "    kind: fees\n"  # 11
        f'    source: ["{sentence}"]\n'  # 12
        f'    flat_fee_max_percent: "{percent}"\n'  # 13
    )


def test_a_fee_cap_above_the_percentage_its_sentence_states(tmp_path: Path) -> None:
    linted = run(tmp_path, fees("20"))
    assert found(linted) == [(LintCode.FEE_ABOVE_CAP, "demo/fees", 13)]
    assert "caps it at 18%" in linted.report.findings[0].message
    assert found(run(tmp_path, fees("18"))) == []


def test_a_fee_above_the_whole_refund(tmp_path: Path) -> None:
    assert found(run(tmp_path, fees("150", "A fee of 150% applies."))) == [
        (LintCode.FEE_ABOVE_CAP, "demo/fees", 13)
    ]


def test_a_fixed_fee_above_the_percentage_cap(tmp_path: Path) -> None:
    disputes = clause("disputes", "disputes", 'fee: "15.00"').replace(
        "A sentence.", "Chargebacks cost 15.00."
    )  # 14-17, fee on 17
    linted = run(tmp_path, fees("18") + disputes)
    assert found(linted) == [(LintCode.FEE_ABOVE_CAP, "demo/disputes", 17)]
    assert "under 83.33 EUR" in linted.report.findings[0].message


# -- the published text ----------------------------------------------------------------------
TEXT = """Our refund policy
Refunds are given within 14 days of the charge.
We love our customers.
Cancellations take effect at the end of the period. Fees are never refunded.
"""


def test_a_rule_sentence_neither_quoted_nor_listed(tmp_path: Path) -> None:
    body = clause("timing", "cancellation_timing", "effective: end_of_period").replace(
        "A sentence.", "Cancellations take effect at the end of the period."
    )
    tail = (
        "not_automated:\n"
        '  - source: "Refunds are given within 14 days of the charge."\n'
        "    why: Tested elsewhere.\n"
    )
    linted = run(tmp_path, body, tail=tail, text=TEXT)
    findings = linted.report.findings
    assert [(f.code, f.clause, f.line) for f in findings] == [
        (LintCode.UNMAPPED_SENTENCE, "demo", 4)
    ]
    assert findings[0].path is not None and findings[0].path.endswith("demo.txt")
    assert findings[0].about == "Fees are never refunded."


def test_a_source_that_is_not_in_the_text(tmp_path: Path) -> None:
    body = clause("timing", "cancellation_timing", "effective: end_of_period")  # 10-13
    policy, lines = load_located(write(tmp_path, body))
    ctx = LintContext(lines, PublishedText("demo.txt", "Something else entirely."))
    assert [(f.code, f.clause, f.line) for f in check_sources_in_text(policy, ctx)] == [
        (LintCode.SOURCE_NOT_IN_TEXT, "demo/timing", 12)
    ]


def test_without_the_text_the_text_checks_are_skipped_with_a_note(tmp_path: Path) -> None:
    linted = run(tmp_path, clause("appeals", "appeals", "allowed: false"))
    (note,) = linted.report.findings
    assert (note.code, note.clause, note.line) == (LintCode.TEXT_NOT_FOUND, "demo", 5)
    assert note.severity is Severity.INFO and not linted.report.failed


def test_the_text_is_found_next_to_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, clause("appeals", "appeals", "allowed: false"))
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "demo.txt").write_text("Our decision is final.", encoding="utf-8")
    policy, _ = load_located(path)
    text, searched = find_text(policy, path)
    assert text is not None and text.content == "Our decision is final." and searched == ()


# -- legal floors ----------------------------------------------------------------------------
def test_a_french_policy_without_any_withdrawal_right(tmp_path: Path) -> None:
    linted = run(tmp_path, clause("appeals", "appeals", "allowed: false"), country="FR")
    assert found(linted) == [(LintCode.LEGAL_FLOOR, "demo", 8)]  # the `country:` line
    finding = linted.report.findings[-1]
    assert finding.about == "eu-withdrawal"
    assert "Directive 2011/83/EU" in finding.message and "Article 9" in finding.message


def test_a_declared_waiver_meets_the_floor_with_a_note(tmp_path: Path) -> None:
    body = clause("waiver", "terms_acceptance", "withdrawal_waived_at_payment: true")
    linted = run(tmp_path, body, country="FR")
    assert found(linted) == [(LintCode.FLOOR_WAIVED, "demo/waiver", 13)]
    assert not linted.report.failed


def test_a_fourteen_day_guarantee_meets_the_eu_floor(tmp_path: Path) -> None:
    body = clause(
        "guarantee",
        "money_back_guarantee",
        "window_days: 14",
        "window_from: initial_subscription",
        "refund: full",
        "via: cancel",
    )
    assert found(run(tmp_path, body, country="FR")) == []


def test_a_short_south_african_cooling_off(tmp_path: Path) -> None:
    body = clause("cooling", "cooling_off", "business_days: 3", "refund: full")
    linted = run(tmp_path, body, country="ZA")
    assert found(linted) == [
        (LintCode.LEGAL_FLOOR, "demo/cooling", 10),
        (LintCode.LEGAL_FLOOR, "demo/cooling", 10),
    ]
    assert [f.about for f in linted.report.findings if f.code is LintCode.LEGAL_FLOOR] == [
        "za-cpa-direct-marketing",
        "za-ecta-cooling-off",
    ]


def test_consumer_floors_do_not_apply_to_a_business_only_policy(tmp_path: Path) -> None:
    linted = run(
        tmp_path,
        clause("appeals", "appeals", "allowed: false"),
        "FR",
        "customer_types: [business]\n",
    )
    assert found(linted) == []


# -- suppressions ----------------------------------------------------------------------------
BAD_FEES = fees("20")
SUPPRESS = """lint:
  suppress:
    - code: fee_above_cap
      clause: demo/fees
      why: The published cap was raised by a later notice.
"""


def test_a_suppressed_finding_is_not_reported(tmp_path: Path) -> None:
    linted = run(tmp_path, BAD_FEES, tail=SUPPRESS)
    assert found(linted) == []
    ((finding, by),) = linted.report.suppressed
    assert finding.code is LintCode.FEE_ABOVE_CAP and "later notice" in by.why


def test_a_suppression_needs_a_why(tmp_path: Path) -> None:
    tail = "lint:\n  suppress:\n    - code: fee_above_cap\n      clause: demo/fees\n"
    with pytest.raises(PolicyError) as info:
        run(tmp_path, BAD_FEES, tail=tail)
    ((where, message),) = info.value.problems
    assert (where.line, where.field, message) == (16, "lint.suppress.0.why", "Field required")
    with pytest.raises(PolicyError):
        run(
            tmp_path,
            BAD_FEES,
            tail=SUPPRESS.replace("The published cap was raised by a later notice.", '" "'),
        )


def test_a_suppression_names_a_known_code(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        run(tmp_path, BAD_FEES, tail=SUPPRESS.replace("fee_above_cap", "fee_too_high"))
    ((where, _),) = info.value.problems
    assert (where.line, where.field) == (16, "lint.suppress.0.code")


def test_a_suppression_that_matches_nothing_is_reported(tmp_path: Path) -> None:
    linted = run(tmp_path, fees("18"), tail=SUPPRESS)
    assert found(linted) == [(LintCode.UNUSED_SUPPRESSION, "demo/fees", 16)]


def test_about_narrows_a_suppression_to_one_subject(tmp_path: Path) -> None:
    body = clause("cooling", "cooling_off", "business_days: 3", "refund: full")
    tail = (
        "lint:\n  suppress:\n    - code: legal_floor\n      clause: demo/cooling\n"
        "      about: za-ecta-cooling-off\n      why: The service starts at once.\n"
    )
    linted = run(tmp_path, body, country="ZA", tail=tail)
    assert [f.about for f in linted.report.findings if f.code is LintCode.LEGAL_FLOOR] == [
        "za-cpa-direct-marketing"
    ]
    assert [f.about for f, _ in linted.report.suppressed] == ["za-ecta-cooling-off"]


# -- the bundled policies and the codes ------------------------------------------------------
@pytest.mark.parametrize("policy_id", BUNDLED_IDS)
def test_bundled_policies_lint_clean(policy_id: str) -> None:
    linted = lint_file(policy_id)
    assert not linted.report.failed, [f.message for f in linted.report.findings]
    # Their published texts are found, so every sentence and source was checked.
    assert LintCode.TEXT_NOT_FOUND not in {f.code for f in linted.report.findings}


def test_every_suppression_of_the_bundled_policies_says_why() -> None:
    for policy_id in BUNDLED_IDS:
        for _, by in lint_file(policy_id).report.suppressed:
            assert len(by.why.split()) >= 10, (policy_id, by)


def test_every_code_has_a_severity_and_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "policy-lint.md").read_text("utf-8")
    for code in LintCode:
        assert code in SEVERITY
        assert f"### `{code.value}`" in doc, code


def test_the_checks_are_pure_and_repeatable(tmp_path: Path) -> None:
    policy, lines = load_located(write(tmp_path, BAD_FEES))
    ctx = LintContext(lines, None, (), bundled_floors())
    first: list[Finding] = [f for check in CHECKS for f in check(policy, ctx)]
    assert lint(policy, ctx).findings == tuple(first) == lint(policy, ctx).findings


def test_a_policy_built_in_code_lints_without_lines() -> None:
    policy = Policy.model_validate(
        {
            "id": "demo",
            "name": "Demo",
            "version": "1",
            "effective": "2026-01-01",
            "seed": "demo.txt",
            "currency": "EUR",
            "timezone": "UTC",
            "country": "US",
            "clauses": [
                {"id": "demo/a", "kind": "appeals", "source": ["x"], "allowed": True},
                {"id": "demo/b", "kind": "appeals", "source": ["x"], "allowed": False},
            ],
        }
    )
    report = lint(policy, LintContext())
    assert [(f.code, f.clause, f.line) for f in report.findings] == [
        (LintCode.CONTRADICTION, "demo/b", None),
        (LintCode.TEXT_NOT_FOUND, "demo", None),
    ]
