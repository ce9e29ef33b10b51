"""The five bundled policies: they load, match the seed table, and quote their seeds."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from fairbill.policy.load import BUNDLED_IDS, bundled_policy
from fairbill.policy.model import (
    CancellationRefund,
    CancellationTiming,
    CoolingOff,
    DataRetention,
    Deadlines,
    DeclineGround,
    Dunning,
    ExceptionRefund,
    Fees,
    ItemKind,
    MoneyBackGuarantee,
    OutageCompensation,
    Outcome,
    Policy,
    PrepaidCredits,
    RefundBasis,
    RequestKind,
    RequestRequirements,
    UsageTiers,
)

SEEDS = Path(__file__).resolve().parent.parent / "data" / "seeds"
LANGUAGES = {"English": "en", "French": "fr"}
# The country whose public holidays count (interpretation.md, "Business days").
COUNTRIES = {"qomon": "FR", "voip": "US", "conek": "ZA", "emailconsul": "US", "kalenner": "FR"}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def seed_table() -> dict[str, dict[str, str]]:
    """The rows of tests/data/seeds/README.md, keyed by policy id."""
    rows: dict[str, dict[str, str]] = {}
    for line in (SEEDS / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            policy_id, file, _, currency, timezone, language = cells
            rows[policy_id.strip("`")] = {
                "file": file,
                "currency": currency,
                "timezone": timezone,
                "language": LANGUAGES[language],
            }
    return rows


def seed_text(policy: Policy) -> str:
    return normalise((SEEDS / policy.seed).read_text(encoding="utf-8"))


def all_sources(policy: Policy) -> list[str]:
    return [s for c in policy.clauses for s in c.source] + [n.source for n in policy.not_automated]


@pytest.fixture(params=BUNDLED_IDS)
def policy(request: pytest.FixtureRequest) -> Policy:
    return bundled_policy(request.param)


def test_seed_table_lists_every_bundled_policy() -> None:
    assert sorted(seed_table()) == sorted(BUNDLED_IDS)


def test_metadata_matches_seed_table(policy: Policy) -> None:
    row = seed_table()[policy.id]
    assert policy.seed == row["file"]
    assert policy.currency == row["currency"]
    assert policy.timezone == row["timezone"]
    assert policy.language == row["language"]
    assert policy.country == COUNTRIES[policy.id]
    assert policy.rounding.value == "half_up"
    assert policy.version == policy.effective.isoformat()


def test_dates_come_from_the_seed_where_it_has_one() -> None:
    assert bundled_policy("conek").effective == date(2025, 10, 25)
    assert bundled_policy("kalenner").effective == date(2025, 5, 26)
    assert "25 October 2025" in seed_text(bundled_policy("conek"))
    assert "26.05.2025" in seed_text(bundled_policy("kalenner"))


def test_every_source_is_quoted_verbatim(policy: Policy) -> None:
    text = seed_text(policy)
    missing = [s for s in all_sources(policy) if normalise(s) not in text]
    assert missing == []


def test_every_clause_quotes_a_source(policy: Policy) -> None:
    for clause in policy.clauses:
        assert clause.source, clause.id
        assert all(s.strip() for s in clause.source), clause.id


def test_not_automated_entries_say_why(policy: Policy) -> None:
    for item in policy.not_automated:
        assert item.why.strip(), item.source


def test_clause_ids_are_unique_and_prefixed(policy: Policy) -> None:
    ids = [c.id for c in policy.clauses]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"{policy.id}/") for i in ids)


def test_rule_sentences_are_all_accounted_for() -> None:
    """A few rule sentences from each seed that must be traced somewhere."""
    expected = {
        "qomon": ["a discretionary flat fee of up to 18% may apply"],
        "voip": ["Cancellations will take effect at the end of the current billing cycle."],
        "conek": ["We strive to respond to all inquiries within 2 business days."],
        "emailconsul": ["Processing fee or other bank fees may be applied"],
        "kalenner": ["jusqu'à 3 fois sur une période de 7 jours"],
    }
    for policy_id, fragments in expected.items():
        joined = " | ".join(normalise(s) for s in all_sources(bundled_policy(policy_id)))
        for fragment in fragments:
            assert fragment in joined, (policy_id, fragment)


# -- parameters read from the seed texts ---------------------------------------------------
def test_kalenner_parameters() -> None:
    p = bundled_policy("kalenner")
    guarantee = p.clause("kalenner/guarantee")
    assert isinstance(guarantee, MoneyBackGuarantee)
    assert guarantee.window_days == 14  # « dans les 14 jours »
    assert guarantee.window_from == "initial_subscription"
    assert guarantee.first_purchase_only
    assert guarantee.via == "cancel"
    processing = p.clause("kalenner/guarantee-processing")
    assert isinstance(processing, Deadlines)
    assert processing.processing_business_days == 5  # « 3 à 5 jours ouvrables »
    dunning = p.first(Dunning)
    assert dunning is not None
    assert len(dunning.retry_offsets_days) == 3  # « jusqu'à 3 fois »
    assert dunning.retry_offsets_days[-1] == 7  # « sur une période de 7 jours »
    timing = p.first(CancellationTiming)
    assert timing is not None and timing.effective == "end_of_month_period"
    refunds = {c.id: c for c in p.clauses_of(CancellationRefund)}
    assert refunds["kalenner/monthly-cancel-refund"].refund is RefundBasis.NONE
    assert refunds["kalenner/annual-cancel-refund"].refund is RefundBasis.FULL_REMAINING_MONTHS


def test_qomon_parameters() -> None:
    p = bundled_policy("qomon")
    fees = p.first(Fees)
    assert fees is not None
    assert fees.flat_fee_max_percent == Decimal("18")  # "a discretionary flat fee of up to 18%"
    assert fees.fx_risk_on_customer
    tiers = p.first(UsageTiers)
    assert tiers is not None and tiers.detection_hours == 24  # "detected within 24 hours"
    timing = p.first(CancellationTiming)
    assert timing is not None
    assert timing.effective == "end_of_commitment"
    assert timing.cutoff_before_renewal  # "up until the last day before your renewal date"
    corrections = [
        c for c in p.clauses_of(ExceptionRefund) if c.reason is not RequestKind.EXCEPTIONAL
    ]
    assert corrections and all(c.destination == "wallet" for c in corrections)


def test_voip_parameters() -> None:
    p = bundled_policy("voip")
    outage = p.first(OutageCompensation)
    assert outage is not None
    assert outage.min_duration_hours == 4
    assert outage.report_within_hours == 48
    assert not outage.strictly_longer
    assert {c.value for c in outage.causes} == {"internal", "third_party", "force_majeure"}
    timing = p.first(CancellationTiming)
    assert timing is not None
    assert timing.effective == "end_of_period"  # "at the end of the current billing cycle"
    assert timing.immediate_option
    refund = p.first(CancellationRefund)
    assert (
        refund is not None
        and refund.refund is RefundBasis.UNUSED_DAYS
        and refund.when == "immediate"
    )


def test_conek_parameters() -> None:
    p = bundled_policy("conek")
    cooling = p.first(CoolingOff)
    assert cooling is not None
    assert cooling.business_days == 5  # "You have 5 business days to cancel"
    assert cooling.max_amount == Decimal("1000000.00")  # "Transactions over R1,000,000"
    assert cooling.written_notice  # "You must notify us in writing"
    outage = p.first(OutageCompensation)
    assert outage is not None
    assert outage.min_duration_hours == 72 and outage.strictly_longer  # "more than 72"
    assert [c.value for c in outage.causes] == ["internal"]
    credits = p.first(PrepaidCredits)
    assert credits is not None and credits.validity_days == 30  # "30 days from date of purchase"
    retention = p.first(DataRetention)
    assert retention is not None
    assert retention.after_cancellation_days == 180
    assert retention.after_suspension_days == 30
    requests = p.first(RequestRequirements)
    assert requests is not None and requests.window_days == 30  # "within 30 days of the charge"
    deadlines = p.first(Deadlines)
    assert deadlines is not None
    assert deadlines.review_business_days == 10
    assert deadlines.processing_business_days == 10
    non_delivery = p.clause("conek/non-delivery")
    assert isinstance(non_delivery, ExceptionRefund) and non_delivery.after_days == 14


def test_emailconsul_parameters() -> None:
    p = bundled_policy("emailconsul")
    guarantee = p.first(MoneyBackGuarantee)
    assert guarantee is not None
    assert guarantee.window_days == 30  # "30-day money back guarantee"
    assert guarantee.window_from == "payment"
    assert guarantee.decision is Outcome.NEEDS_REVIEW
    deadlines = p.first(Deadlines)
    assert deadlines is not None and deadlines.review_business_days == 10  # "7 to 10"
    grounds = {c.ground for c in p.clauses_of(DeclineGround)}
    assert grounds == {
        "on_go_funds",
        "different_payment_method",
        "violation",
        "no_reason",
        "window_expired",
    }
    on_go = p.clause("emailconsul/decline-on-go-funds")
    # interpretation.md: "a payment for a one-time message_credits product"
    assert isinstance(on_go, DeclineGround) and on_go.items == [ItemKind.MESSAGE_CREDITS]
    terms = p.clause("emailconsul/terms-declined")
    assert isinstance(terms, ExceptionRefund) and terms.within_days == 10  # "10-day period"
    mistake = p.clause("emailconsul/payment-by-mistake")
    assert isinstance(mistake, ExceptionRefund) and mistake.order_numbers_required == 2
