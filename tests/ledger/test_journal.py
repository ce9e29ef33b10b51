"""Unit and property tests of ``fairbill.ledger.journal`` and of ``Ctx.post``, where
journal transactions are stored.

The journal's contract (module docstring): a transaction has at least two legs, its legs
sum to exactly zero per currency, every leg is rounded to its currency's minor unit --
checked when a transaction is built and again when it is stored -- and the key is an
idempotency key: the same key is never posted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairbill.errors import InvalidAmount, UnbalancedTransaction
from fairbill.gateway.sandbox import SandboxGateway
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import (
    Leg,
    Transaction,
    check_balanced,
    imbalance,
    transfer,
    zero_sum,
)
from fairbill.money import Money
from fairbill.plans.effects import Plan
from fairbill.policy.load import bundled_policy
from fairbill.services import applier
from fairbill.services.clock import TestClock
from fairbill.services.context import Ctx
from fairbill.simulator.result import ledger_balanced
from fairbill.store.db import create_schema, make_engine, session_factory
from fairbill.store.tables import JournalEntryRow, JournalTransactionRow, MerchantRow

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ACCOUNTS = list(Account)
CURRENCIES = ["EUR", "USD", "JPY", "KWD"]
PROPS = settings(max_examples=150, deadline=None)


def eur(text: str) -> Money:
    return Money(text, "EUR")


def leg(account: Account, text: str, currency: str = "EUR") -> Leg:
    return Leg(account, Money(text, currency))


def forged(key: str, legs: tuple[Leg, ...]) -> Transaction:
    """A transaction built around the constructor's check (as a buggy caller might)."""
    txn = object.__new__(Transaction)
    object.__setattr__(txn, "key", key)
    object.__setattr__(txn, "at", AT)
    object.__setattr__(txn, "description", "forged")
    object.__setattr__(txn, "legs", legs)
    return txn


# -- construction ---------------------------------------------------------------------------


def post(ctx: Ctx, *txns: Transaction) -> None:
    """The transactions posted through a plan, as every use case posts them."""
    plan = Plan()
    for txn in txns:
        plan.post(txn, None)
    applier.apply(ctx, plan)


class TestConstruction:
    def test_a_balanced_two_leg_transaction_keeps_its_legs(self) -> None:
        txn = Transaction(
            "k1", AT, "sale", (leg(Account.CASH, "10.00"), leg(Account.REVENUE, "-10.00"))
        )
        assert [(str(lg.account), lg.amount.minor) for lg in txn.legs] == [
            ("cash", 1000),
            ("revenue", -1000),
        ]

    def test_transfer_debits_one_account_and_credits_the_other(self) -> None:
        txn = transfer("k", AT, "pay", Account.CASH, Account.RECEIVABLE, eur("29.00"))
        assert txn.legs == (
            Leg(Account.CASH, eur("29.00")),
            Leg(Account.RECEIVABLE, eur("-29.00")),
        )

    def test_legs_that_do_not_sum_to_zero_are_refused(self) -> None:
        with pytest.raises(UnbalancedTransaction, match=r"do not balance: \{'EUR': 1\}"):
            Transaction(
                "k", AT, "off", (leg(Account.CASH, "10.01"), leg(Account.REVENUE, "-10.00"))
            )

    def test_three_legs_balance_together(self) -> None:
        txn = Transaction(
            "k",
            AT,
            "refund with a fee",
            (
                leg(Account.REFUNDS, "100.00"),
                leg(Account.FEES, "-18.00"),
                leg(Account.CASH, "-82.00"),
            ),
        )
        assert sum(lg.amount.minor for lg in txn.legs) == 0

    def test_multi_currency_balances_per_currency(self) -> None:
        txn = Transaction(
            "fx",
            AT,
            "two currencies",
            (
                leg(Account.CASH, "11.00", "USD"),
                leg(Account.RECEIVABLE, "-11.00", "USD"),
                leg(Account.CASH, "10.00"),
                leg(Account.REVENUE, "-10.00"),
            ),
        )
        assert {lg.amount.currency for lg in txn.legs} == {"EUR", "USD"}

    def test_equal_numbers_in_two_currencies_do_not_balance(self) -> None:
        # +10 EUR and -10 USD sum to zero as numbers, not as money.
        with pytest.raises(UnbalancedTransaction) as info:
            Transaction(
                "fx", AT, "x", (leg(Account.CASH, "10.00"), leg(Account.REVENUE, "-10.00", "USD"))
            )
        assert "'EUR': 1000" in str(info.value) and "'USD': -1000" in str(info.value)

    def test_one_currency_off_is_enough_to_refuse(self) -> None:
        with pytest.raises(UnbalancedTransaction, match="USD"):
            Transaction(
                "fx",
                AT,
                "x",
                (
                    leg(Account.CASH, "10.00"),
                    leg(Account.REVENUE, "-10.00"),
                    leg(Account.CASH, "5.00", "USD"),
                    leg(Account.REVENUE, "-4.99", "USD"),
                ),
            )

    @pytest.mark.parametrize(
        ("amount", "currency"), [("10.005", "EUR"), ("0.001", "USD"), ("1.5", "JPY")]
    )
    def test_unrounded_legs_are_refused_even_when_they_sum_to_zero(
        self, amount: str, currency: str
    ) -> None:
        with pytest.raises(UnbalancedTransaction, match="not rounded"):
            Transaction(
                "r",
                AT,
                "x",
                (leg(Account.CASH, amount, currency), leg(Account.REVENUE, "-" + amount, currency)),
            )

    def test_three_minor_digits_are_rounded_for_kwd(self) -> None:
        txn = Transaction(
            "kwd",
            AT,
            "x",
            (leg(Account.CASH, "1.234", "KWD"), leg(Account.REVENUE, "-1.234", "KWD")),
        )
        assert txn.legs[0].amount.minor == 1234

    @pytest.mark.parametrize("legs", [(), (Leg(Account.CASH, Money("0.00", "EUR")),)])
    def test_fewer_than_two_legs_are_refused(self, legs: tuple[Leg, ...]) -> None:
        with pytest.raises(UnbalancedTransaction, match="at least two legs"):
            Transaction("k", AT, "x", legs)

    def test_replace_cannot_smuggle_unbalanced_legs_in(self) -> None:
        txn = transfer("k", AT, "pay", Account.CASH, Account.RECEIVABLE, eur("5.00"))
        with pytest.raises(UnbalancedTransaction):
            dataclasses.replace(
                txn, legs=(leg(Account.CASH, "5.00"), leg(Account.REVENUE, "-4.00"))
            )
        with pytest.raises(UnbalancedTransaction):
            dataclasses.replace(txn, legs=txn.legs[:1])

    def test_a_transaction_is_frozen(self) -> None:
        txn = transfer("k", AT, "pay", Account.CASH, Account.RECEIVABLE, eur("5.00"))
        with pytest.raises(dataclasses.FrozenInstanceError):
            txn.legs = ()  # type: ignore[misc]


class TestHelpers:
    def test_imbalance_reports_only_currencies_that_are_off(self) -> None:
        assert imbalance([("EUR", 100), ("EUR", -100), ("USD", 5), ("USD", -3)]) == {"USD": 2}
        assert imbalance([]) == {}

    def test_zero_sum(self) -> None:
        from decimal import Decimal

        assert zero_sum([Decimal("1.10"), Decimal("-0.10"), Decimal("-1")])
        assert not zero_sum([Decimal("0.01")])


# -- properties -----------------------------------------------------------------------------

minor_amounts = st.integers(min_value=-(10**9), max_value=10**9)
raw_legs = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(CURRENCIES), minor_amounts),
    min_size=0,
    max_size=6,
)


def _legs(raw: list[tuple[Account, str, int]]) -> tuple[Leg, ...]:
    return tuple(Leg(a, Money.from_minor(m, c)) for a, c, m in raw)


def _balancing(raw: list[tuple[Account, str, int]]) -> list[tuple[Account, str, int]]:
    """``raw`` plus one leg per currency that brings that currency back to zero."""
    out = list(raw)
    for currency, off in sorted(imbalance((c, m) for _, c, m in raw).items()):
        out.append((Account.CASH, currency, -off))
    return out


class TestProperties:
    @PROPS
    @given(raw_legs)
    def test_construction_accepts_exactly_the_balanced_transactions(
        self, raw: list[tuple[Account, str, int]]
    ) -> None:
        legs = _legs(raw)
        sums: dict[str, int] = {}
        for _, c, m in raw:
            sums[c] = sums.get(c, 0) + m
        ok = len(raw) >= 2 and all(v == 0 for v in sums.values())
        if ok:
            assert Transaction("k", AT, "p", legs).legs == legs
        else:
            with pytest.raises(UnbalancedTransaction):
                Transaction("k", AT, "p", legs)

    @PROPS
    @given(raw_legs.filter(lambda r: len(r) >= 1))
    def test_adding_the_missing_legs_always_balances(
        self, raw: list[tuple[Account, str, int]]
    ) -> None:
        full = _balancing(raw)
        if len(full) < 2:
            full.append((Account.REVENUE, full[0][1], 0))
            full[0] = (full[0][0], full[0][1], 0)
        txn = Transaction("k", AT, "p", _legs(full))
        assert imbalance((lg.amount.currency, lg.amount.minor) for lg in txn.legs) == {}

    @PROPS
    @given(st.sampled_from(CURRENCIES), minor_amounts, st.integers(1, 9))
    def test_any_sub_minor_digit_makes_a_leg_unrounded(
        self, currency: str, minor: int, extra: int
    ) -> None:
        exact = Money.from_minor(minor, currency).amount
        nudged = Money(exact + Money.from_minor(1, currency).amount * extra / 10, currency)
        with pytest.raises(UnbalancedTransaction, match="not rounded"):
            check_balanced((Leg(Account.CASH, nudged), Leg(Account.REVENUE, -nudged)))

    @PROPS
    @given(st.sampled_from(CURRENCIES), minor_amounts)
    def test_transfer_is_always_balanced(self, currency: str, minor: int) -> None:
        txn = transfer(
            "t", AT, "p", Account.WALLET, Account.CASH, Money.from_minor(minor, currency)
        )
        assert [lg.amount.minor for lg in txn.legs] == [minor, -minor]


# -- storing: Ctx.post ------------------------------------------------------------------------


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    engine = make_engine("sqlite://")
    create_schema(engine)
    policy = bundled_policy("kalenner")
    with session_factory(engine)() as session:
        merchant = MerchantRow(
            name="Kalenner",
            policy_ref="kalenner",
            policy_id="kalenner",
            policy_version=policy.version,
            currency="EUR",
            timezone="Europe/Paris",
            country="FR",
        )
        session.add(merchant)
        session.flush()
        yield Ctx(session, TestClock(AT), SandboxGateway(), merchant, policy)
    engine.dispose()


def stored(session: Session) -> list[tuple[str, list[tuple[str, int, str]]]]:
    out = []
    for txn in session.scalars(select(JournalTransactionRow).order_by(JournalTransactionRow.id)):
        entries = session.scalars(
            select(JournalEntryRow)
            .where(JournalEntryRow.transaction_id == txn.id)
            .order_by(JournalEntryRow.id)
        ).all()
        out.append((txn.key, [(e.account, e.amount_minor, e.currency) for e in entries]))
    return out


class TestPost:
    def test_post_stores_the_legs_in_minor_units(self, ctx: Ctx) -> None:
        post(
            ctx, transfer("inv:1", AT, "invoice", Account.RECEIVABLE, Account.REVENUE, eur("29.90"))
        )
        assert stored(ctx.session) == [
            ("inv:1", [("customer_receivable", 2990, "EUR"), ("revenue", -2990, "EUR")])
        ]
        assert ledger_balanced(ctx)

    def test_a_second_post_with_the_same_key_is_ignored(self, ctx: Ctx) -> None:
        first = transfer("pay:1", AT, "payment", Account.CASH, Account.RECEIVABLE, eur("10.00"))
        other = transfer("pay:1", AT, "again", Account.CASH, Account.RECEIVABLE, eur("99.00"))
        post(ctx, first)
        post(ctx, first)
        post(ctx, other)
        assert stored(ctx.session) == [
            ("pay:1", [("cash", 1000, "EUR"), ("customer_receivable", -1000, "EUR")])
        ]
        count = ctx.session.scalar(select(func.count()).select_from(JournalEntryRow))
        assert count == 2

    def test_distinct_keys_are_both_stored(self, ctx: Ctx) -> None:
        post(ctx, transfer("a", AT, "a", Account.CASH, Account.RECEIVABLE, eur("1.00")))
        post(ctx, transfer("b", AT, "b", Account.CASH, Account.RECEIVABLE, eur("1.00")))
        assert [key for key, _ in stored(ctx.session)] == ["a", "b"]

    def test_post_refuses_a_forged_unbalanced_transaction(self, ctx: Ctx) -> None:
        txn = forged("bad", (leg(Account.CASH, "10.00"), leg(Account.REVENUE, "-9.99")))
        with pytest.raises(
            UnbalancedTransaction, match=r"refusing to store bad: legs do not balance: \{'EUR': 1\}"
        ):
            post(ctx, txn)
        assert stored(ctx.session) == []

    def test_post_refuses_a_forged_cross_currency_transaction(self, ctx: Ctx) -> None:
        txn = forged("fx", (leg(Account.CASH, "10.00"), leg(Account.REVENUE, "-10.00", "USD")))
        with pytest.raises(UnbalancedTransaction):
            post(ctx, txn)
        assert stored(ctx.session) == []
        assert ledger_balanced(ctx)

    def test_post_refuses_legs_mutated_after_construction(self, ctx: Ctx) -> None:
        txn = transfer("m", AT, "x", Account.CASH, Account.RECEIVABLE, eur("10.00"))
        object.__setattr__(txn, "legs", (txn.legs[0], leg(Account.RECEIVABLE, "-1.00")))
        with pytest.raises(UnbalancedTransaction):
            post(ctx, txn)
        assert stored(ctx.session) == []

    def test_a_forged_unrounded_leg_is_not_stored(self, ctx: Ctx) -> None:
        txn = forged("r", (leg(Account.CASH, "10.005"), leg(Account.REVENUE, "-10.005")))
        with pytest.raises((UnbalancedTransaction, InvalidAmount)):
            post(ctx, txn)
        assert stored(ctx.session) == []

    @pytest.mark.parametrize(
        "legs", [(), (Leg(Account.CASH, Money("0.00", "EUR")),)], ids=["no-legs", "one-leg"]
    )
    def test_post_refuses_a_forged_transaction_with_fewer_than_two_legs(
        self, ctx: Ctx, legs: tuple[Leg, ...]
    ) -> None:
        with pytest.raises(UnbalancedTransaction):
            post(ctx, forged("short", legs))
        assert stored(ctx.session) == []

    def test_post_refuses_an_unrounded_leg_as_unbalanced(self, ctx: Ctx) -> None:
        txn = forged("r", (leg(Account.CASH, "10.005"), leg(Account.REVENUE, "-10.005")))
        with pytest.raises(UnbalancedTransaction):
            post(ctx, txn)

    def test_an_unbalanced_transaction_after_a_good_one_leaves_the_good_one(self, ctx: Ctx) -> None:
        post(ctx, transfer("ok", AT, "ok", Account.CASH, Account.RECEIVABLE, eur("3.00")))
        with pytest.raises(UnbalancedTransaction):
            post(ctx, forged("bad", (leg(Account.CASH, "3.00"), leg(Account.REVENUE, "-2.00"))))
        assert [key for key, _ in stored(ctx.session)] == ["ok"]
        assert ledger_balanced(ctx)

    def test_post_many_stores_fresh_keys_once_and_skips_stored_ones(self, ctx: Ctx) -> None:
        post(ctx, transfer("a", AT, "a", Account.CASH, Account.RECEIVABLE, eur("1.00")))
        batch = [
            transfer("a", AT, "a again", Account.CASH, Account.RECEIVABLE, eur("7.00")),
            transfer("b", AT, "b", Account.CASH, Account.RECEIVABLE, eur("2.00")),
            transfer("c", AT, "c", Account.RECEIVABLE, Account.REVENUE, eur("3.00")),
        ]
        post(ctx, *batch)
        post(ctx, *batch)
        assert stored(ctx.session) == [
            ("a", [("cash", 100, "EUR"), ("customer_receivable", -100, "EUR")]),
            ("b", [("cash", 200, "EUR"), ("customer_receivable", -200, "EUR")]),
            ("c", [("customer_receivable", 300, "EUR"), ("revenue", -300, "EUR")]),
        ]
        assert ledger_balanced(ctx)

    def test_post_many_refuses_a_forged_unbalanced_transaction_whole(self, ctx: Ctx) -> None:
        good = transfer("g", AT, "g", Account.CASH, Account.RECEIVABLE, eur("1.00"))
        bad = forged("bad", (leg(Account.CASH, "1.00"), leg(Account.REVENUE, "-0.50")))
        with pytest.raises(UnbalancedTransaction, match="refusing to store bad"):
            post(ctx, *[good, bad])
        assert stored(ctx.session) == []

    def test_post_many_treats_a_key_repeated_in_the_batch_as_one_post(self, ctx: Ctx) -> None:
        txn = transfer("k", AT, "k", Account.CASH, Account.RECEIVABLE, eur("4.00"))
        post(ctx, *[txn, txn])
        assert stored(ctx.session) == [
            ("k", [("cash", 400, "EUR"), ("customer_receivable", -400, "EUR")])
        ]

    def test_post_many_refuses_a_forged_one_leg_transaction(self, ctx: Ctx) -> None:
        with pytest.raises(UnbalancedTransaction):
            post(ctx, *[forged("one", (Leg(Account.CASH, Money("0.00", "EUR")),))])
        assert stored(ctx.session) == []

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 10**6)),
            min_size=1,
            max_size=12,
        )
    )
    def test_posting_is_idempotent_per_key(self, posts: list[tuple[str, int]]) -> None:
        engine = make_engine("sqlite://")
        create_schema(engine)
        policy = bundled_policy("kalenner")
        try:
            with session_factory(engine)() as session:
                merchant = MerchantRow(
                    name="K",
                    policy_ref="kalenner",
                    policy_id="kalenner",
                    policy_version=policy.version,
                    currency="EUR",
                    timezone="Europe/Paris",
                    country="FR",
                )
                session.add(merchant)
                session.flush()
                c = Ctx(session, TestClock(AT), SandboxGateway(), merchant, policy)
                first: dict[str, int] = {}
                for key, minor in posts:
                    first.setdefault(key, minor)
                    amount = Money.from_minor(minor, "EUR")
                    post(c, transfer(key, AT, key, Account.CASH, Account.RECEIVABLE, amount))
                expected = [
                    (k, [("cash", m, "EUR"), ("customer_receivable", -m, "EUR")])
                    for k, m in first.items()
                ]
                assert stored(session) == expected
                assert ledger_balanced(c)
        finally:
            engine.dispose()
