"""``services.whatif``: the pure sums over re-decided rows, and ``services.whatif_db``: the
same report from a database, in one pass or in worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fairbill.decisions import codec
from fairbill.policy.load import bundled_policy
from fairbill.policy.model import MoneyBackGuarantee
from fairbill.services.audit import Fields, Redecided
from fairbill.services.whatif import combine, refunded, relabel, summarize

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def row(
    decision_id: int,
    customer_id: int,
    action: str,
    before: tuple[str, int, tuple[str, ...]],
    after: tuple[str, int, tuple[str, ...]] | None = None,
    *,
    at: str = "2026-03-05T10:00:00+00:00",
    explanation: str = "because",
    again_explanation: str | None = None,
) -> Redecided:
    after = after or before
    stored: Fields = (before[0], before[1], ("r",), before[2], explanation)
    again: Fields = (after[0], after[1], ("r",), after[2], again_explanation or explanation)
    return Redecided(
        decision_id, customer_id, action, before[2], stored, again, before[1], after[1], at
    )


GUARANTEE = ("k/guarantee",)
MONTH_END = ("k/cancel-end-of-month", "k/monthly-cancel-refund")


def test_nothing_changes_when_every_row_comes_back_the_same() -> None:
    rows = [
        row(1, 1, "cancel", ("approved", 2900, GUARANTEE)),
        row(2, 2, "payment_failed", ("declined", 2900, ("k/dunning",))),
    ]
    r = summarize(rows, currency="EUR")
    assert (r.compared, r.changed, r.delta_minor) == (2, 0, 0)
    assert r.refunded_before_minor == r.refunded_after_minor == 2900  # the dunning one is no refund
    assert r.by_clause == () and r.changes == () and r.changed_customers == frozenset()
    assert r.by_customer == {"1": 0, "2": 0}
    assert r.by_month == {"2026-03": (2900, 2900)}
    assert r.by_action == {"cancel": (1, 0), "payment_failed": (1, 0)}


def test_a_changed_refund_moves_money_under_its_old_and_new_clauses() -> None:
    rows = [
        row(1, 7, "cancel", ("approved", 2900, GUARANTEE), ("approved", 0, MONTH_END)),
        row(2, 7, "refund_request", ("approved", 1000, GUARANTEE), ("declined", 0, GUARANTEE)),
        row(3, 8, "cancel", ("approved", 500, MONTH_END), at="2026-04-01T00:00:00+00:00"),
    ]
    r = summarize(rows, source="a.yaml", currency="EUR", customers={7: "ana", 8: "bob"})
    assert (r.compared, r.changed) == (3, 2)
    assert (r.refunded_before_minor, r.refunded_after_minor, r.delta_minor) == (4400, 500, -3900)
    totals = {t.clause: (t.changed, t.delta_minor) for t in r.by_clause}
    assert totals == {
        "k/guarantee": (2, -3900),  # counted once per decision, old and new alike
        "k/cancel-end-of-month": (1, -2900),
        "k/monthly-cancel-refund": (1, -2900),
    }
    assert r.by_clause[0].clause == "k/guarantee"  # the most money first
    assert r.by_customer == {"a.yaml/ana": -3900, "a.yaml/bob": 0}
    assert r.changed_customers == {"a.yaml/ana"}
    assert r.by_month == {"2026-03": (3900, 0), "2026-04": (500, 500)}
    first, second = r.changes
    assert (first.decision_id, first.customer, first.source) == (1, "a.yaml/ana", "a.yaml")
    assert first.fields == ("amount", "clauses")
    assert (first.refund_delta_minor, first.again_clauses) == (-2900, MONTH_END)
    assert second.fields == ("outcome", "amount")


def test_what_is_refunded_is_a_paying_outcome_of_a_refund_action() -> None:
    assert refunded("cancel", "approved", 100) == 100
    assert refunded("review", "partially_approved", 40) == 40
    assert refunded("refund_request", "needs_review", 100) == 0  # the review pays
    assert refunded("refund_request", "declined", 0) == 0
    assert refunded("change_plan", "approved", 1000) == 0  # a charge, not a refund


def test_a_reworded_or_recharged_decision_changes_without_moving_refunds() -> None:
    rows = [
        row(1, 1, "cancel", ("approved", 0, MONTH_END), again_explanation="other words"),
        row(2, 1, "change_plan", ("approved", 1000, ("k/plan",)), ("approved", 1200, ("k/plan",))),
    ]
    r = summarize(rows, currency="EUR")
    assert (r.changed, r.delta_minor) == (2, 0)
    assert [c.fields for c in r.changes] == [("explanation",), ("amount",)]
    assert r.changed_customers == {"1"} and r.by_customer == {"1": 0}


def test_only_the_first_changes_are_kept_but_all_are_counted() -> None:
    rows = [
        row(i, i, "cancel", ("approved", 100, GUARANTEE), ("declined", 0, ())) for i in range(9)
    ]
    r = summarize(rows, currency="EUR", keep=3)
    assert r.changed == 9 and [c.decision_id for c in r.changes] == [0, 1, 2]


def test_sums_agree_whichever_way_they_are_cut() -> None:
    rows = [
        row(i, i % 4, "cancel", ("approved", 100 * i, GUARANTEE), ("approved", 50 * i, MONTH_END),
            at=f"2026-{1 + i % 3:02d}-10T00:00:00+00:00")
        for i in range(12)
    ]  # fmt: skip
    whole = summarize(rows, currency="EUR")
    parts = combine([summarize(rows[:5], currency="EUR"), summarize(rows[5:], currency="EUR")])
    assert whole == parts
    assert whole.delta_minor == sum(whole.by_customer.values())
    assert whole.delta_minor == sum(a - b for b, a in whole.by_month.values())


def test_combined_currencies_are_kept_apart_from_a_single_one() -> None:
    eur = summarize([row(1, 1, "cancel", ("approved", 100, GUARANTEE))], currency="EUR")
    usd = summarize([row(1, 1, "cancel", ("approved", 100, GUARANTEE))], currency="USD")
    empty = summarize([], currency="USD")
    assert combine([eur, empty]).currency == "EUR"
    assert combine([eur, usd]).currency is None


def test_relabel_names_customers_and_the_source() -> None:
    r = summarize(
        [row(1, 5, "cancel", ("approved", 100, GUARANTEE), ("declined", 0, ()))], currency="EUR"
    )
    named = relabel(r, {"5": "m 1/ana"}, source="m 1")
    assert named.by_customer == {"m 1/ana": -100}
    assert named.changed_customers == {"m 1/ana"}
    assert (named.changes[0].customer, named.changes[0].source) == ("m 1/ana", "m 1")


# -- from a database ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two Kalenner histories replayed into one SQLite file by the real services."""
    import fairbill.simulator.run as run
    from fairbill.simulator.scenario import load_scenario

    url = f"sqlite:///{tmp_path_factory.mktemp('whatif') / 'k.db'}"
    real = run.make_engine
    run.make_engine = lambda _url, **kw: real(url, **kw)  # type: ignore[assignment]
    try:
        for name in ("kalenner-guarantee-refund.yaml", "kalenner-failed-payments.yaml"):
            run.simulate(load_scenario(EXAMPLES / name))
    finally:
        run.make_engine = real  # type: ignore[assignment]
    yield url


def test_a_database_report_is_the_same_in_one_pass_and_in_workers(database: str) -> None:
    from sqlalchemy import select

    from fairbill.services import audit
    from fairbill.services.whatif_db import Workers, redecide_merchant, scope
    from fairbill.store.db import make_engine, session_factory
    from fairbill.store.tables import MerchantRow

    kalenner = bundled_policy("kalenner")
    stricter = kalenner.model_copy(
        update={
            "clauses": [
                c.model_copy(update={"window_days": 5}) if isinstance(c, MoneyBackGuarantee) else c
                for c in kalenner.clauses
            ]
        }
    )
    engine = make_engine(database)
    try:
        with session_factory(engine)() as session:
            reports, counts = [], []
            for merchant in session.scalars(select(MerchantRow).order_by(MerchantRow.id)):
                assert scope(session, merchant).count >= 1
                counts.append(scope(session, merchant).count)
                # stored facts come back as the text they were stored as
                for r in audit.redecide(session, merchant):
                    assert r.same
                one = redecide_merchant(database, session, merchant, stricter)
                told: list[int] = []
                with Workers(2) as workers:
                    many = redecide_merchant(
                        database, session, merchant, stricter, workers=workers, chunk=1, small=0,
                        on_progress=told.append,
                    )  # fmt: skip
                assert one == many and sum(told) == one.compared
                reports.append(one)
    finally:
        engine.dispose()
    report = combine(reports)
    # The cancellation on day 7 of the guarantee is no longer covered by a 5-day one.
    assert report.changed == 1 and report.delta_minor == -2900
    assert "kalenner/guarantee" in [t.clause for t in report.by_clause]
    assert max(counts) > 1  # so that one merchant ran in more than one worker task


def test_stored_facts_decode_to_the_text_they_were_stored_as(database: str) -> None:
    from sqlalchemy import select

    from fairbill.store.db import make_engine, session_factory
    from fairbill.store.tables import DecisionRow

    engine = make_engine(database)
    try:
        with session_factory(engine)() as session:
            texts = list(
                session.scalars(select(DecisionRow.facts).where(DecisionRow.facts.is_not(None)))
            )
    finally:
        engine.dispose()
    assert texts
    for text in texts:
        assert codec.encode_call(codec.decode_call(text)) == text
