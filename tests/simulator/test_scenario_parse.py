"""Scenario files: the examples parse, and every broken file is reported at its line."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fairbill.errors import ScenarioError
from fairbill.simulator.scenario import (
    Cancel,
    CloseAccount,
    ConsumeCredits,
    Outage,
    RefundRequest,
    Review,
    Scenario,
    Subscribe,
    load_scenario,
    parse_scenario,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
PARIS = ZoneInfo("Europe/Paris")

# A minimal policy of our own, so the error cases do not depend on the bundled ones.
SHOP_POLICY = """\
id: shop
name: Shop
version: "1"
effective: 2025-01-01
seed: none.txt
currency: EUR
timezone: Europe/Paris
country: FR
clauses:
  - id: shop/billing
    kind: billing_terms
    source: ["We bill in advance."]
"""


# -- the examples ------------------------------------------------------------------------
# The 15 worked scenarios shared with the policy owners; more examples are added beside them.
SHARED_EXAMPLES = frozenset(
    {
        "conek-cooling-off.yaml",
        "conek-message-credits.yaml",
        "conek-outage-credit.yaml",
        "emailconsul-money-back.yaml",
        "emailconsul-no-reason.yaml",
        "kalenner-annual-cancel.yaml",
        "kalenner-failed-payments.yaml",
        "kalenner-guarantee-refund.yaml",
        "kalenner-monthly-cancel-after-guarantee.yaml",
        "kalenner-upgrade-proration.yaml",
        "qomon-annual-no-refund.yaml",
        "qomon-duplicate-charge-to-wallet.yaml",
        "qomon-usage-tiers.yaml",
        "voip-immediate-cancel.yaml",
        "voip-service-disruption.yaml",
    }
)


def test_the_shared_examples_are_all_present() -> None:
    names = {file.name for file in EXAMPLES.glob("*.yaml")}
    assert len(SHARED_EXAMPLES) == 15
    assert sorted(SHARED_EXAMPLES - names) == []


def test_every_example_parses() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= len(SHARED_EXAMPLES)
    for file in files:
        scenario = load_scenario(file)
        assert scenario.path == str(file)
        assert scenario.events, file
        assert scenario.start.tzinfo is not None and scenario.until >= scenario.start
        times = [event.at for event in scenario.events]
        assert times == sorted(times)


def test_kalenner_annual_cancel_values() -> None:
    s = load_scenario(EXAMPLES / "kalenner-annual-cancel.yaml")
    assert s.policy.id == "kalenner"
    assert s.timezone == PARIS and s.currency == "EUR" and s.country == "FR"
    assert s.start == datetime(2026, 1, 10, 9, 0, tzinfo=PARIS)
    assert s.start.utcoffset() == timedelta(hours=1)
    assert s.until == datetime(2027, 2, 1, 0, 0, tzinfo=PARIS)
    plan = s.catalog.plan("pro-annual")
    assert plan.interval_months == 12
    assert plan.price == Decimal("240.00") and isinstance(plan.price, Decimal)
    assert plan.tiers is None and plan.commitment_months is None
    assert s.customer.id == "cus_k3" and s.customer.payment_methods[0].id == "card_1"
    first, second = s.events
    assert first.action == "subscribe" and isinstance(first.params, Subscribe)
    assert first.params.plan == "pro-annual" and first.params.payment_method == "card_1"
    assert second.index == 1 and second.action == "cancel"
    assert isinstance(second.params, Cancel)
    assert second.params.channel == "portal" and second.params.immediately is False
    assert second.at == datetime(2026, 4, 20, 10, 0, tzinfo=PARIS)
    assert second.at.utcoffset() == timedelta(hours=2)  # summer time
    assert (second.location.line, second.location.field) == (16, "events.1")
    assert second.loc("channel").field == "events.1.cancel.channel"
    assert second.loc("channel").line == 17
    assert s.expect is not None and s.expect["refunds_total"] == "160.00"
    assert s.expect["subscriptions"] == [
        {"status": "canceled", "ended_at": "2026-05-10T09:00:00+02:00"}
    ]


def test_qomon_usage_tiers() -> None:
    s = load_scenario(EXAMPLES / "qomon-usage-tiers.yaml")
    plan = s.catalog.plan("essential")
    assert plan.price is None and plan.interval_months == 1
    assert plan.tiers is not None and plan.tiers.metric == "contacts"
    levels = [(level.up_to, level.price) for level in plan.tiers.levels]
    assert levels == [
        (5000, Decimal("100.00")),
        (10000, Decimal("160.00")),
        (None, Decimal("250.00")),
    ]
    subscribe = s.events[0].params
    assert isinstance(subscribe, Subscribe) and subscribe.usage == 4000
    assert [e.action for e in s.events] == ["subscribe", "usage", "usage"]


def test_conek_outage_times_in_johannesburg() -> None:
    s = load_scenario(EXAMPLES / "conek-outage-credit.yaml")
    joburg = ZoneInfo("Africa/Johannesburg")
    assert s.timezone == joburg and s.currency == "ZAR"
    outage = s.events[1].params
    assert isinstance(outage, Outage)
    assert outage.start == datetime(2026, 4, 10, 0, 0, tzinfo=joburg)
    assert outage.end == datetime(2026, 4, 13, 8, 0, tzinfo=joburg)
    assert outage.reported_at == datetime(2026, 4, 10, 2, 0, tzinfo=joburg)
    assert outage.start.utcoffset() == timedelta(hours=2)
    assert outage.cause == "internal"


def test_emailconsul_order_numbers_and_activity() -> None:
    s = load_scenario(EXAMPLES / "emailconsul-money-back.yaml")
    assert s.timezone == ZoneInfo("UTC")
    assert s.events[1].action == "activity"
    request = s.events[2].params
    assert isinstance(request, RefundRequest) and request.order_numbers == ["1"]


# -- inline files --------------------------------------------------------------------------
HEAD = """\
format: fairbill.scenario/1
name: inline
merchant: {policy: shop.yaml}
catalog:
  plans:
    - {id: solo, interval: month, price: "29.00"}
  products:
    - {id: sms-100, kind: message_credits, quantity: 100, credit_kind: sms, price: "5.00"}
customer:
  id: cus_1
  payment_methods: [{id: card_1}]
start: 2026-01-10T09:00
events:
  - at: 2026-01-10T09:00
    subscribe: {plan: solo, payment_method: card_1}
"""  # events.0 is on line 14; the next event starts on line 16


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    (tmp_path / "shop.yaml").write_text(SHOP_POLICY, encoding="utf-8")
    return tmp_path


def parse(text: str, base_dir: Path) -> Scenario:
    return parse_scenario(text, "story.yaml", base_dir=base_dir)


def problems(text: str, base_dir: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse(text, base_dir)
    return [(loc.line, loc.field, message) for loc, message in info.value.problems]


def only(text: str, base_dir: Path) -> tuple[int | None, str, str]:
    found = problems(text, base_dir)
    assert len(found) == 1, found
    return found[0]


def test_inline_head_parses(base_dir: Path) -> None:
    s = parse(HEAD, base_dir)
    assert s.policy.id == "shop" and s.until == s.start  # until defaults to the last event
    assert s.customer.type == "business" and s.customer.acquisition == "self_serve"
    assert s.catalog.product("sms-100").quantity == 100
    assert s.language == "en"


def test_json_is_accepted(base_dir: Path) -> None:
    text = (
        '{\n\t"format": "fairbill.scenario/1", "name": "json",\n'
        '\t"merchant": {"policy": "shop.yaml"},\n'
        '\t"start": "2026-01-10T09:00:00Z",\n'
        '\t"events": [{"at": "2026-01-10T10:00", "activity": {}}]\n}\n'
    )
    s = parse(text, base_dir)
    assert s.start == datetime(2026, 1, 10, 10, 0, tzinfo=PARIS)  # 09:00Z is 10:00 in Paris
    assert s.events[0].location.line == 5


def test_times(base_dir: Path) -> None:
    text = HEAD + (
        "  - at: 2026-03-29T02:30\n    activity:\n"  # DST gap in Paris: moves to 03:30
        "  - at: 2026-03-30\n    activity: {}\n"
        "  - at: 2026-03-30T12:00:00-04:00\n    activity: {}\n"
    )
    s = parse(text, base_dir)
    gap, midnight, offset = (e.at for e in s.events[1:])
    assert gap == datetime(2026, 3, 29, 3, 30, tzinfo=PARIS)
    assert midnight == datetime(2026, 3, 30, 0, 0, tzinfo=PARIS)
    assert offset == datetime(2026, 3, 30, 18, 0, tzinfo=PARIS) and offset.tzinfo == PARIS
    assert s.until == offset


def test_money_as_yaml_number(base_dir: Path) -> None:
    text = HEAD.replace('price: "29.00"', "price: 29.00")
    assert only(text, base_dir) == (
        6,
        "catalog.plans.0.price",
        'money is written as a string, e.g. "240.00"',
    )


def test_money_with_a_comma(base_dir: Path) -> None:
    text = (
        HEAD
        + "  - at: 2026-01-11\n"
        + '    billing_mistake: {kind: overcharge, invoice: 1, amount: "12,50"}\n'
    )
    line, field, message = only(text, base_dir)
    assert (line, field) == (17, "events.1.billing_mistake.amount")
    assert "12,50" in message and "not a decimal amount" in message


def test_money_with_too_many_decimals(base_dir: Path) -> None:
    line, field, message = only(HEAD.replace('"5.00"', '"5.001"'), base_dir)
    assert (line, field) == (8, "catalog.products.0.price")
    assert "more decimals than EUR" in message


def test_unknown_plan_in_subscribe(base_dir: Path) -> None:
    text = HEAD.replace("{plan: solo,", "{plan: gold,")
    line, field, message = only(text, base_dir)
    assert (line, field) == (15, "events.0.subscribe.plan")
    assert "unknown plan 'gold'" in message and "solo" in message


def test_unknown_action(base_dir: Path) -> None:
    text = HEAD + "  - at: 2026-01-11\n    teleport: {to: mars}\n"
    line, field, message = only(text, base_dir)
    assert (line, field) == (17, "events.1.teleport")
    assert "unknown action 'teleport'" in message and "refund_request" in message


def test_two_actions_in_one_event(base_dir: Path) -> None:
    text = HEAD + "  - at: 2026-01-11\n    activity:\n    cancel: {}\n"
    line, field, message = only(text, base_dir)
    assert (line, field) == (16, "events.1")
    assert "exactly one action" in message and "cancel" in message and "activity" in message


def test_event_without_action(base_dir: Path) -> None:
    line, field, message = only(HEAD + "  - at: 2026-01-11\n", base_dir)
    assert (line, field) == (16, "events.1")
    assert "needs one action" in message


def test_events_out_of_time_order(base_dir: Path) -> None:
    text = HEAD + (
        "  - at: 2026-01-12\n    activity:\n"
        "  - at: 2026-01-11T08:00\n    activity:\n"
        "  - at: 2026-01-12\n    activity:\n"  # equal times are fine
    )
    line, field, message = only(text, base_dir)
    assert (line, field) == (18, "events.2.at")
    assert "time order" in message and "line 16" in message


def test_equal_times_keep_file_order(base_dir: Path) -> None:
    text = HEAD + "  - at: 2026-01-10T09:00\n    cancel: {channel: written}\n"
    s = parse(text, base_dir)
    assert [e.action for e in s.events] == ["subscribe", "cancel"]


def test_event_before_start(base_dir: Path) -> None:
    text = HEAD.replace("  - at: 2026-01-10T09:00\n", "  - at: 2026-01-10T08:59\n")
    line, field, message = only(text, base_dir)
    assert (line, field) == (14, "events.0.at")
    assert "before start" in message


def test_event_after_until(base_dir: Path) -> None:
    text = HEAD.replace("start: 2026-01-10T09:00\n", "start: 2026-01-10T09:00\nuntil: 2026-01-10\n")
    found = problems(text, base_dir)
    assert (15, "events.0.at") in [(line, field) for line, field, _ in found]
    assert any("after until" in message for _, _, message in found)


def test_unknown_payment_method(base_dir: Path) -> None:
    text = HEAD + (
        "  - at: 2026-01-11\n    purchase: {product: sms-100, payment_method: card_2}\n"
        "  - at: 2026-01-12\n"
        "    refund_request: {kind: money_back, payment: last, refund_to: iban}\n"
    )
    found = problems(text, base_dir)
    assert [(line, field) for line, field, _ in found] == [
        (17, "events.1.purchase.payment_method"),
        (19, "events.2.refund_request.refund_to"),
    ]
    assert "unknown payment method 'card_2'" in found[0][2]


def test_unknown_policy_id(base_dir: Path) -> None:
    text = HEAD.replace("{policy: shop.yaml}", "{policy: acme}")
    line, field, message = only(text, base_dir)
    assert (line, field) == (3, "merchant.policy")
    assert "unknown policy 'acme'" in message and "kalenner" in message


def test_invalid_policy_file(base_dir: Path) -> None:
    (base_dir / "broken.yaml").write_text("id: broken\n", encoding="utf-8")
    text = HEAD.replace("{policy: shop.yaml}", "{policy: broken.yaml}")
    line, field, message = only(text, base_dir)
    assert (line, field) == (3, "merchant.policy")
    assert "broken.yaml" in message


def test_missing_format(base_dir: Path) -> None:
    text = HEAD.replace("format: fairbill.scenario/1\n", "")
    line, field, message = only(text, base_dir)
    assert (line, field) == (1, "format")
    assert "fairbill.scenario/1" in message


def test_wrong_format(base_dir: Path) -> None:
    text = HEAD.replace("fairbill.scenario/1", "fairbill.scenario/2")
    line, field, message = only(text, base_dir)
    assert (line, field) == (1, "format")
    assert "'fairbill.scenario/2'" in message


def test_unknown_top_level_key(base_dir: Path) -> None:
    text = HEAD.replace("start:", "clock: fast\nstart:")
    line, field, message = only(text, base_dir)
    assert (line, field) == (12, "clock")
    assert "unknown field 'clock'" in message and "until" in message


def test_bad_time_string(base_dir: Path) -> None:
    text = HEAD + "  - at: 10/01/2026\n    activity:\n"
    line, field, message = only(text, base_dir)
    assert (line, field) == (16, "events.1.at")
    assert "not a time" in message


def test_impossible_date(base_dir: Path) -> None:
    text = HEAD.replace("start: 2026-01-10T09:00", "start: 2026-02-30T09:00")
    found = problems(text, base_dir)
    assert found[0][:2] == (12, "start") and "2026-02-30" in found[0][2]


def test_unknown_field_inside_an_action(base_dir: Path) -> None:
    text = HEAD + "  - at: 2026-01-11\n    cancel: {channel: portal, when: now}\n"
    line, field, message = only(text, base_dir)
    assert (line, field) == (17, "events.1.cancel.when")
    assert "unknown field 'when'" in message and "immediately" in message


def test_missing_required_fields(base_dir: Path) -> None:
    text = HEAD.replace("name: inline\n", "").replace("start: 2026-01-10T09:00\n", "")
    found = problems(text, base_dir)
    assert [(field, message) for _, field, message in found] == [
        ("name", "name is required"),
        ("start", "start is required"),
    ]


def test_all_field_errors_are_reported(base_dir: Path) -> None:
    text = HEAD.replace('price: "29.00"', "price: 29").replace(
        "start: 2026-01-10T09:00", "start: soon"
    ) + ("  - at: 2026-01-11\n    review: {request: 0, decision: maybe}\n")
    found = [(line, field) for line, field, _ in problems(text, base_dir)]
    assert found == [
        (6, "catalog.plans.0.price"),
        (12, "start"),
        (17, "events.1.review.request"),
        (17, "events.1.review.decision"),
    ]


def test_catalog_rules(base_dir: Path) -> None:
    text = HEAD.replace(
        '- {id: solo, interval: month, price: "29.00"}',
        '- {id: solo, interval: fortnight, price: "29.00"}\n'
        '    - {id: solo, interval: {months: 3}, commitment: {months: 4}, price: "1.00"}\n'
        "    - {id: both, interval: year}\n"
        "    - id: tiered\n"
        "      interval: month\n"
        "      tiers:\n"
        "        metric: contacts\n"
        '        levels: [{up_to: 10, price: "1.00"}, {up_to: 5, price: "2.00"}]',
    )
    found = [(line, field, message) for line, field, message in problems(text, base_dir)]
    assert [(line, field) for line, field, _ in found] == [
        (6, "catalog.plans.0.interval"),
        (8, "catalog.plans.2"),
        (13, "catalog.plans.3.tiers.levels"),
    ]
    assert "{months: N}" in found[0][2]
    assert "price or tiers" in found[1][2]


def test_catalog_cross_rules(base_dir: Path) -> None:
    text = HEAD.replace(
        '- {id: solo, interval: month, price: "29.00"}',
        '- {id: solo, interval: month, price: "29.00"}\n'
        '    - {id: solo, interval: {months: 3}, commitment: {months: 4}, price: "1.00"}',
    )
    found = [(line, field) for line, field, _ in problems(text, base_dir)]
    assert found == [(7, "catalog.plans.1.id"), (7, "catalog.plans.1.commitment")]


def test_commitment_years(base_dir: Path) -> None:
    text = HEAD.replace(
        'interval: month, price: "29.00"',
        'interval: year, commitment: {years: 3}, price: "240.00", includes: {message_credits: 500}',
    )
    plan = parse(text, base_dir).catalog.plan("solo")
    assert (plan.interval_months, plan.commitment_months) == (12, 36)
    assert plan.includes == {"message_credits": 500}


def test_promotions_and_payment_method_currency(base_dir: Path) -> None:
    text = HEAD.replace(
        "customer:",
        "  promotions:\n"
        "    - {id: WELCOME20, percent_off: 20, duration_periods: 1}\n"
        '    - {id: TENOFF, amount_off: "10.00"}\n'
        "customer:",
    ).replace("[{id: card_1}]", "[{id: card_1}, {id: card_2, currency: USD}]")
    line, field, message = only(text, base_dir)
    assert (line, field) == (14, "customer.payment_methods.1.currency")
    assert "fx" in message
    text = text.replace(
        "start:", 'fx:\n  - {at: 2026-01-01, pair: EUR/USD, rate: "1.1000"}\nstart:'
    )
    s = parse(text, base_dir)
    assert s.catalog.promotion("WELCOME20").percent_off == Decimal(20)
    assert s.catalog.promotion("TENOFF").amount_off == Decimal("10.00")
    assert s.fx[0].rate == Decimal("1.1000") and s.fx[0].at.tzinfo == PARIS


def test_action_fields(base_dir: Path) -> None:
    text = HEAD + (
        "  - at: 2026-01-11\n"
        '    refund_request: {kind: payment_by_mistake, payment: 1, order_numbers: [12, "A-3"],'
        " documents: [receipt.pdf]}\n"
        "  - at: 2026-01-12\n"
        '    review: {request: last, decision: approve, amount: "3.00", fee_percent: "18",'
        " destination: wallet}\n"
        "  - at: 2026-01-13\n"
        "    consume_credits: {kind: sms, quantity: 5, failed: device}\n"
        "  - at: 2026-01-14\n"
        "    close_account:\n"
    )
    s = parse(text, base_dir)
    request, review, consume, close = (e.params for e in s.events[1:])
    assert isinstance(request, RefundRequest) and request.order_numbers == ["12", "A-3"]
    assert request.documents == ["receipt.pdf"]
    assert isinstance(review, Review) and isinstance(consume, ConsumeCredits)
    assert review.request == "last" and review.amount == Decimal("3.00")
    assert review.fee_percent == Decimal(18) and review.destination == "wallet"
    assert consume.failed == "device" and consume.quantity == 5
    assert isinstance(close, CloseAccount)
    assert s.events[4].action == "close_account"
    assert s.events[1].loc("order_numbers.1").field == "events.1.refund_request.order_numbers.1"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    ((location, message),) = info.value.problems
    assert location.path.endswith("nope.yaml") and "cannot read" in message


def test_yaml_syntax_error(base_dir: Path) -> None:
    line, _field, message = only(HEAD + "  - at: [\n", base_dir)
    assert line is not None and "not valid YAML" in message
