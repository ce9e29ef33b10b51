"""Unit and property tests for ``fairbill.money``."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbill.errors import CurrencyMismatch, InvalidAmount, MoneyError
from fairbill.money import (
    Money,
    Rounding,
    allocate,
    check_currency,
    minor_units,
    money_sum,
    parse_decimal,
)

CURRENCIES = ["EUR", "USD", "ZAR", "JPY", "KWD"]
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def _nbsp_to_space(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


# -- construction and exactness ---------------------------------------------------------


class TestConstruction:
    def test_decimal_arithmetic_is_exact(self) -> None:
        total = eur("0.1") + eur("0.2")
        assert total.amount == Decimal("0.3")
        assert total == eur("0.3")

    def test_amount_is_a_decimal_from_every_accepted_input(self) -> None:
        assert Money("12.5", "EUR").amount == Decimal("12.5")
        assert Money(12, "EUR").amount == Decimal(12)
        assert Money(Decimal("1.10"), "EUR").amount == Decimal("1.10")
        for value in (Money("12.5", "EUR"), Money(12, "EUR"), Money(Decimal("1"), "EUR")):
            assert type(value.amount) is Decimal

    def test_many_small_additions_stay_exact(self) -> None:
        total = money_sum([eur("0.01")] * 1000, "EUR")
        assert total == eur("10.00")
        assert total.amount == Decimal("10.00")

    def test_float_constructor_raises_type_error(self) -> None:
        with pytest.raises(TypeError, match="float"):
            Money(1.5, "EUR")  # type: ignore[arg-type]

    def test_float_multiplication_raises_type_error(self) -> None:
        with pytest.raises(TypeError):
            eur("10.00") * 1.5  # type: ignore[operator]
        with pytest.raises(TypeError):
            1.5 * eur("10.00")  # type: ignore[operator]

    def test_float_ratio_raises_type_error(self) -> None:
        with pytest.raises(TypeError):
            eur("10.00").ratio(0.5, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            eur("10.00").ratio(1, 3.0)  # type: ignore[arg-type]

    def test_bool_is_rejected(self) -> None:
        with pytest.raises(TypeError, match="bool"):
            Money(True, "EUR")
        with pytest.raises(TypeError, match="bool"):
            eur("10.00") * True

    def test_other_types_rejected(self) -> None:
        with pytest.raises(TypeError):
            Money(None, "EUR")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Money(Fraction(1, 2), "EUR")  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
    def test_non_finite_decimal_is_invalid(self, value: str) -> None:
        with pytest.raises(InvalidAmount):
            Money(Decimal(value), "EUR")

    @pytest.mark.parametrize("code", ["eur", "EURO", "EU", "", "E1R", " EUR"])
    def test_invalid_currency_code(self, code: str) -> None:
        with pytest.raises(InvalidAmount):
            Money("1", code)
        with pytest.raises(InvalidAmount):
            check_currency(code)

    def test_zero(self) -> None:
        zero = Money.zero("JPY")
        assert zero.amount == 0
        assert zero.currency == "JPY"
        assert zero.is_zero
        assert not zero

    def test_money_is_frozen(self) -> None:
        value = eur("1.00")
        with pytest.raises(AttributeError):
            value.amount = Decimal(2)  # type: ignore[misc]

    def test_equal_amounts_with_different_scale_are_equal_and_hash_alike(self) -> None:
        assert eur("1.5") == eur("1.50")
        assert hash(eur("1.5")) == hash(eur("1.50"))
        assert len({eur("1.5"), eur("1.50"), eur("1.500")}) == 1

    def test_equality_across_currencies_is_false_not_an_error(self) -> None:
        assert Money("1.00", "EUR") != Money("1.00", "USD")


# -- arithmetic and currency mixing -----------------------------------------------------


class TestArithmetic:
    def test_add_sub_neg_abs(self) -> None:
        assert eur("10.25") + eur("0.75") == eur("11.00")
        assert eur("10.25") - eur("0.75") == eur("9.50")
        assert eur("1.00") - eur("2.50") == eur("-1.50")
        assert -eur("3.10") == eur("-3.10")
        assert abs(eur("-3.10")) == eur("3.10")

    def test_multiplication_by_int_and_decimal(self) -> None:
        assert eur("19.99") * 3 == eur("59.97")
        assert 3 * eur("19.99") == eur("59.97")
        assert eur("10.00") * Decimal("0.175") == eur("1.75")
        assert (eur("10.00") * Decimal("0.175")).amount == Decimal("1.75000")

    def test_predicates(self) -> None:
        assert eur("-0.01").is_negative
        assert not eur("0").is_negative
        assert eur("0.00").is_zero
        assert bool(eur("0.01"))
        assert not bool(eur("0.00"))

    def test_comparisons_same_currency(self) -> None:
        assert eur("1.00") < eur("1.01")
        assert eur("1.00") <= eur("1.0")
        assert eur("2") > eur("1.99")
        assert eur("2") >= eur("2.00")
        assert not eur("2") < eur("2")

    def test_add_mismatch(self) -> None:
        with pytest.raises(CurrencyMismatch, match=r"EUR.*USD"):
            Money("1", "EUR") + Money("1", "USD")

    def test_sub_mismatch(self) -> None:
        with pytest.raises(CurrencyMismatch):
            Money("1", "EUR") - Money("1", "USD")

    @pytest.mark.parametrize("op", ["lt", "le", "gt", "ge"])
    def test_compare_mismatch(self, op: str) -> None:
        left, right = Money("1", "EUR"), Money("2", "JPY")
        with pytest.raises(CurrencyMismatch):
            getattr(left, f"__{op}__")(right)

    def test_compare_operators_mismatch(self) -> None:
        with pytest.raises(CurrencyMismatch):
            _ = Money("1", "EUR") < Money("2", "USD")
        with pytest.raises(CurrencyMismatch):
            _ = Money("1", "EUR") >= Money("2", "USD")

    def test_currency_mismatch_is_a_money_error_and_value_error(self) -> None:
        assert issubclass(CurrencyMismatch, MoneyError)
        assert issubclass(CurrencyMismatch, ValueError)
        assert issubclass(InvalidAmount, MoneyError)

    def test_adding_a_plain_number_is_a_type_error(self) -> None:
        with pytest.raises(TypeError):
            eur("1.00") + 1  # type: ignore[operator]
        with pytest.raises(TypeError):
            eur("1.00") + Decimal(1)  # type: ignore[operator]

    def test_money_sum(self) -> None:
        assert money_sum([eur("1.10"), eur("2.20"), eur("3.30")], "EUR") == eur("6.60")
        assert money_sum([], "USD") == Money.zero("USD")
        with pytest.raises(CurrencyMismatch):
            money_sum([eur("1.00")], "USD")


# -- parsing -----------------------------------------------------------------------------


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("12.5", Decimal("12.5")),
            ("-3", Decimal("-3")),
            ("0.10", Decimal("0.10")),
            ("1234.50", Decimal("1234.50")),
            (" 7.25 ", Decimal("7.25")),
        ],
    )
    def test_accepted(self, text: str, expected: Decimal) -> None:
        assert parse_decimal(text) == expected
        assert Money(text, "EUR").amount == expected

    def test_parse_keeps_scale(self) -> None:
        assert str(parse_decimal("0.10")) == "0.10"

    @pytest.mark.parametrize(
        "text",
        ["12,50", "1e3", "1E3", "", " ", "1.2.3", "€5", "5€", "1,234.50", "+5", ".5", "5.",
         "abc", "NaN", "Infinity", "- 5", "1 000"],
    )  # fmt: skip
    def test_rejected(self, text: str) -> None:
        with pytest.raises(InvalidAmount):
            parse_decimal(text)
        with pytest.raises(InvalidAmount):
            Money(text, "EUR")

    def test_parse_decimal_requires_a_string(self) -> None:
        with pytest.raises(TypeError):
            parse_decimal(12)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("text", "currency", "expected"),
        [
            ("12.34", "EUR", Decimal("12.34")),
            ("12.3", "EUR", Decimal("12.3")),
            ("12", "EUR", Decimal("12")),
            ("100", "JPY", Decimal("100")),
            ("1.234", "KWD", Decimal("1.234")),
            ("-0.05", "USD", Decimal("-0.05")),
        ],
    )
    def test_money_parse_accepts(self, text: str, currency: str, expected: Decimal) -> None:
        value = Money.parse(text, currency)
        assert value.amount == expected
        assert value.currency == currency

    @pytest.mark.parametrize(
        ("text", "currency"),
        [("12.345", "EUR"), ("1.5", "JPY"), ("100.0", "JPY"), ("1.2345", "KWD"),
         ("0.001", "USD")],
    )  # fmt: skip
    def test_money_parse_rejects_too_many_decimals(self, text: str, currency: str) -> None:
        with pytest.raises(InvalidAmount, match="more decimals"):
            Money.parse(text, currency)

    @pytest.mark.parametrize("text", ["12,50", "1e3", "", "€5"])
    def test_money_parse_is_strict(self, text: str) -> None:
        with pytest.raises(InvalidAmount):
            Money.parse(text, "EUR")


# -- minor units, rounding, text ------------------------------------------------------------


class TestRounding:
    @pytest.mark.parametrize(
        ("currency", "digits"),
        [("EUR", 2), ("USD", 2), ("ZAR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("GBP", 2)],
    )
    def test_minor_units(self, currency: str, digits: int) -> None:
        assert minor_units(currency) == digits

    @pytest.mark.parametrize(
        ("amount", "half_up", "half_even"),
        [
            ("2.345", "2.35", "2.34"),
            ("2.355", "2.36", "2.36"),
            ("-2.345", "-2.35", "-2.34"),
            ("-2.355", "-2.36", "-2.36"),
            ("2.3449", "2.34", "2.34"),
            ("2.3451", "2.35", "2.35"),
            ("0.005", "0.01", "0.00"),
            ("-0.005", "-0.01", "0.00"),
        ],
    )
    def test_half_up_vs_half_even(self, amount: str, half_up: str, half_even: str) -> None:
        assert str(eur(amount).round().amount) == half_up
        assert str(eur(amount).round(Rounding.HALF_UP).amount) == half_up
        assert eur(amount).round(Rounding.HALF_EVEN).amount == Decimal(half_even)

    def test_default_rounding_is_half_away_from_zero(self) -> None:
        assert eur("-2.345").round() == eur("-2.35")
        assert eur("2.345").round() == eur("2.35")

    def test_round_by_currency(self) -> None:
        assert Money("2.5", "JPY").round() == Money("3", "JPY")
        assert Money("2.5", "JPY").round(Rounding.HALF_EVEN) == Money("2", "JPY")
        assert Money("3.5", "JPY").round(Rounding.HALF_EVEN) == Money("4", "JPY")
        assert Money("1.0005", "KWD").round() == Money("1.001", "KWD")
        assert Money("1.0005", "KWD").round(Rounding.HALF_EVEN) == Money("1.000", "KWD")
        assert str(Money("1.0005", "KWD").round().amount) == "1.001"

    def test_round_keeps_currency(self) -> None:
        assert Money("1.005", "USD").round().currency == "USD"

    def test_rounding_enum_values(self) -> None:
        assert Rounding("half_up") is Rounding.HALF_UP
        assert Rounding("half_even") is Rounding.HALF_EVEN

    @pytest.mark.parametrize(
        ("money", "text"),
        [
            (Money("160", "EUR"), "160.00"),
            (Money("160.00", "EUR"), "160.00"),
            (Money("5", "JPY"), "5"),
            (Money("5.4", "JPY"), "5"),
            (Money("2.345", "EUR"), "2.35"),
            (Money("-0.5", "EUR"), "-0.50"),
            (Money("1.5", "KWD"), "1.500"),
            (Money(Decimal("1E+3"), "USD"), "1000.00"),
        ],
    )
    def test_text(self, money: Money, text: str) -> None:
        assert money.text() == text

    def test_str_and_repr(self) -> None:
        assert str(Money("160", "EUR")) == "160.00 EUR"
        assert str(Money("5", "JPY")) == "5 JPY"
        assert repr(Money("12.5", "EUR")) == "Money('12.5', 'EUR')"


class TestFormat:
    def test_english(self) -> None:
        assert Money("1234.50", "EUR").format("en") == "€1,234.50"
        assert Money("1234.5", "EUR").format() == "€1,234.50"

    def test_french(self) -> None:
        assert _nbsp_to_space(Money("1234.50", "EUR").format("fr_FR")) == "1 234,50 €"

    def test_other_currencies(self) -> None:
        assert Money("5", "JPY").format("en") == "¥5"
        assert Money("-2.5", "USD").format("en_US") == "-$2.50"

    def test_format_rounds_half_up_first(self) -> None:
        # Babel alone rounds half-even (1,234.50); money rounds half away from zero.
        assert Money("1234.505", "EUR").format("en") == "€1,234.51"


# -- minor units conversion --------------------------------------------------------------


class TestMinor:
    @pytest.mark.parametrize(
        ("minor", "currency", "amount"),
        [
            (12345, "EUR", "123.45"),
            (-12345, "EUR", "-123.45"),
            (1, "USD", "0.01"),
            (0, "ZAR", "0.00"),
            (5, "JPY", "5"),
            (1500, "KWD", "1.500"),
        ],
    )
    def test_from_minor(self, minor: int, currency: str, amount: str) -> None:
        value = Money.from_minor(minor, currency)
        assert value == Money(amount, currency)
        assert str(value.amount) == amount
        assert value.minor == minor

    def test_minor_of_rounded_amounts(self) -> None:
        assert eur("12.3").minor == 1230
        assert eur("12").minor == 1200
        assert Money("1.5", "KWD").minor == 1500
        assert Money("7", "JPY").minor == 7
        assert eur("-0.07").minor == -7

    @pytest.mark.parametrize(
        ("amount", "currency"), [("2.345", "EUR"), ("0.5", "JPY"), ("1.0001", "KWD")]
    )
    def test_minor_of_unrounded_amount_raises(self, amount: str, currency: str) -> None:
        with pytest.raises(InvalidAmount, match="not rounded"):
            _ = Money(amount, currency).minor

    @PROPERTY_SETTINGS
    @given(minor=st.integers(-(10**15), 10**15), currency=st.sampled_from(CURRENCIES))
    def test_from_minor_round_trip(self, minor: int, currency: str) -> None:
        value = Money.from_minor(minor, currency)
        assert value.minor == minor
        assert value.round() == value
        assert Money.parse(value.text(), currency) == value


# -- ratio and allocation ----------------------------------------------------------------


class TestRatio:
    def test_ratio_then_round(self) -> None:
        assert Money("240.00", "EUR").ratio(8, 12).round() == Money("160.00", "EUR")

    def test_ratio_keeps_precision_until_round(self) -> None:
        third = eur("100.00").ratio(1, 3)
        assert third != eur("33.33")
        assert third.round() == eur("33.33")
        assert (third * 3).round() == eur("100.00")

    def test_ratio_with_decimals(self) -> None:
        assert eur("10.00").ratio(Decimal("1.5"), Decimal("3")) == eur("5.00")

    def test_ratio_by_zero(self) -> None:
        with pytest.raises(ZeroDivisionError):
            eur("10.00").ratio(1, 0)
        with pytest.raises(ZeroDivisionError):
            eur("10.00").ratio(1, Decimal("0.00"))


class TestAllocate:
    def test_thirds(self) -> None:
        parts = allocate(eur("100.00"), [1, 1, 1])
        assert parts == [eur("33.34"), eur("33.33"), eur("33.33")]
        assert [p.text() for p in parts] == ["33.34", "33.33", "33.33"]

    def test_negative_total(self) -> None:
        parts = allocate(eur("-100.00"), [1, 1, 1])
        assert parts == [eur("-33.34"), eur("-33.33"), eur("-33.33")]
        assert money_sum(parts, "EUR") == eur("-100.00")

    def test_largest_remainder_wins(self) -> None:
        # exact: 0.00333.., 0.00666..: the larger remainder gets the single cent
        assert allocate(eur("0.01"), [1, 2]) == [eur("0.00"), eur("0.01")]
        # tie: the first part gets it
        assert allocate(eur("0.01"), [1, 1]) == [eur("0.01"), eur("0.00")]

    def test_proportional_weights(self) -> None:
        assert allocate(eur("10.00"), [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")]) == [
            eur("5.00"),
            eur("2.50"),
            eur("2.50"),
        ]
        assert allocate(eur("10.00"), [0, 1]) == [eur("0.00"), eur("10.00")]

    def test_other_currencies(self) -> None:
        assert allocate(Money("100", "JPY"), [1, 1, 1]) == [
            Money("34", "JPY"),
            Money("33", "JPY"),
            Money("33", "JPY"),
        ]
        assert allocate(Money("1.000", "KWD"), [1, 1, 1]) == [
            Money("0.334", "KWD"),
            Money("0.333", "KWD"),
            Money("0.333", "KWD"),
        ]

    def test_zero_total(self) -> None:
        assert allocate(eur("0"), [1, 2]) == [eur("0"), eur("0")]

    def test_all_zero_weights(self) -> None:
        with pytest.raises(ValueError, match="zero"):
            allocate(eur("10.00"), [0, 0])

    def test_no_weights(self) -> None:
        with pytest.raises(ValueError):
            allocate(eur("10.00"), [])

    def test_negative_weight(self) -> None:
        with pytest.raises(ValueError, match="negative"):
            allocate(eur("10.00"), [2, -1])

    def test_float_weight(self) -> None:
        with pytest.raises(TypeError):
            allocate(eur("10.00"), [0.5, 0.5])  # type: ignore[list-item]

    def test_unrounded_total(self) -> None:
        with pytest.raises(InvalidAmount):
            allocate(eur("10.005"), [1, 1])

    def test_independent_rounding_would_create_money(self) -> None:
        # Why allocate exists: rounding each half of one cent separately makes two cents.
        total = eur("0.01")
        naive = [total.ratio(1, 2).round(), total.ratio(1, 2).round()]
        assert money_sum(naive, "EUR") == eur("0.02")
        assert money_sum(allocate(total, [1, 1]), "EUR") == total


weights_strategy = st.lists(st.integers(0, 10**6), min_size=1, max_size=12).filter(any)


@PROPERTY_SETTINGS
@given(
    total_minor=st.integers(-(10**12), 10**12),
    currency=st.sampled_from(CURRENCIES),
    weights=weights_strategy,
)
def test_allocate_properties(total_minor: int, currency: str, weights: list[int]) -> None:
    total = Money.from_minor(total_minor, currency)
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert all(p.currency == currency for p in parts)
    # exact sum
    assert money_sum(parts, currency) == total
    assert sum(p.minor for p in parts) == total_minor
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        # rounded to the minor unit
        assert part.round() == part
        # within one minor unit of the exact share
        exact_minor = Fraction(total_minor * weight, weight_sum)
        assert abs(Fraction(part.minor) - exact_minor) < 1
        # never the wrong sign, never more than the total
        assert abs(part.minor) <= abs(total_minor)
        assert part.minor * total_minor >= 0
        if weight == 0:
            assert part.is_zero


@PROPERTY_SETTINGS
@given(
    total_minor=st.integers(0, 10**12),
    currency=st.sampled_from(CURRENCIES),
    weights=weights_strategy,
)
def test_rounded_allocation_never_exceeds_total(
    total_minor: int, currency: str, weights: list[int]
) -> None:
    total = Money.from_minor(total_minor, currency)
    parts = allocate(total, weights)
    assert money_sum(parts, currency) <= total
    assert all(part <= total for part in parts)
    assert all(not part.is_negative for part in parts)


@PROPERTY_SETTINGS
@given(
    units=st.integers(-(10**15), 10**15),
    places=st.integers(0, 8),
    currency=st.sampled_from(CURRENCIES),
    rounding=st.sampled_from(list(Rounding)),
)
def test_rounding_never_creates_money(
    units: int, places: int, currency: str, rounding: Rounding
) -> None:
    value = Money(Decimal(units).scaleb(-places), currency)
    rounded = value.round(rounding)
    half_minor = Decimal(1).scaleb(-minor_units(currency)) / 2
    assert abs(rounded.amount - value.amount) <= half_minor
    assert rounded.round(rounding) == rounded
    # text() always shows exactly the currency's minor digits
    digits = minor_units(currency)
    fraction = rounded.text().partition(".")[2]
    assert len(fraction) == digits
    # rounding is symmetric around zero
    assert (-value).round(rounding) == -rounded


@PROPERTY_SETTINGS
@given(
    amount_minor=st.integers(-(10**9), 10**9),
    other_minor=st.integers(-(10**9), 10**9),
    currency=st.sampled_from(CURRENCIES),
)
def test_arithmetic_matches_integer_minor_units(
    amount_minor: int, other_minor: int, currency: str
) -> None:
    a = Money.from_minor(amount_minor, currency)
    b = Money.from_minor(other_minor, currency)
    assert (a + b).minor == amount_minor + other_minor
    assert (a - b).minor == amount_minor - other_minor
    assert (a * 3).minor == amount_minor * 3
    assert (a < b) == (amount_minor < other_minor)
    assert (a == b) == (amount_minor == other_minor)


# -- the formatter built once per locale and currency is Babel's text ----------------------


class TestFastFormatting:
    """``Money.format`` builds a formatter per (locale, currency) from Babel's own output and
    keeps it only if it matches Babel on its probes; here it must match Babel on any
    amount, and fall back to Babel where the digits are grouped otherwise (en_IN)."""

    @PROPERTY_SETTINGS
    @given(
        minor=st.integers(min_value=-(10**13), max_value=10**13),
        currency=st.sampled_from(["EUR", "USD", "ZAR", "JPY", "KWD", "GBP", "CHF", "INR"]),
        locale=st.sampled_from(["en", "fr", "en_US", "fr_FR", "de", "en_IN", "de_CH", "ar"]),
    )
    def test_same_text_as_babel(self, minor: int, currency: str, locale: str) -> None:
        from babel.numbers import format_currency

        money = Money.from_minor(minor, currency)
        expected = format_currency(money.round().amount, currency, locale=locale)
        assert money.format(locale) == expected

    def test_negative_zero_is_formatted_as_babel_does(self) -> None:
        from babel.numbers import format_currency

        minus_zero = Money(Decimal("-0.00"), "EUR")
        assert minus_zero.format("en") == format_currency(Decimal("-0.00"), "EUR", locale="en")

    def test_unusual_grouping_falls_back_to_babel(self) -> None:
        from fairbill.money import _formatter

        assert _formatter("en_IN", "INR").__name__ == "babel"
        assert Money("1234567.89", "INR").format("en_IN") == "₹12,34,567.89"
        assert _formatter("en", "EUR").__name__ == "fast"
