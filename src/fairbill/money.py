"""Money: an exact decimal amount in one ISO 4217 currency.

Invariants:
- an amount is a ``Decimal``, never a float; constructing from a float raises ``TypeError``;
- two amounts of different currencies never mix (``CurrencyMismatch``);
- rounding happens only where a caller asks for it (``round``), with an explicit mode;
- ``allocate`` splits an amount into parts that add up to it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from typing import Any

from fairbill.errors import CurrencyMismatch, InvalidAmount

# ISO 4217 minor units for the currencies a merchant is likely to bill in; others default to 2.
_MINOR_UNITS: dict[str, int] = {
    "BHD": 3, "CLP": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3,
    "LYD": 3, "OMR": 3, "PYG": 0, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
}  # fmt: skip
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
# Strict decimal text: optional sign, digits, optional fraction. No exponent, no thousands
# separators, no comma decimals: "12,50" is ambiguous across locales, so it is an error.
_DECIMAL_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class Rounding(StrEnum):
    """How a merchant rounds; half-up is commercial rounding (half away from zero)."""

    HALF_UP = "half_up"
    HALF_EVEN = "half_even"

    @property
    def decimal_mode(self) -> str:
        return ROUND_HALF_UP if self is Rounding.HALF_UP else ROUND_HALF_EVEN


def minor_units(currency: str) -> int:
    """The number of digits after the decimal point for ``currency``."""
    return _MINOR_UNITS.get(currency, 2)


def check_currency(currency: str) -> str:
    if type(currency) is str and currency in _KNOWN_CURRENCIES:
        return currency
    if not isinstance(currency, str) or not _CURRENCY_CODE.match(currency):
        raise InvalidAmount(f"not an ISO 4217 currency code: {currency!r}")
    if type(currency) is str:
        _KNOWN_CURRENCIES.add(currency)
    return currency


def known_currency(currency: str) -> bool:
    """Whether ``currency`` is an ISO 4217 code, as CLDR (through Babel) lists them;
    ``check_currency`` checks the shape only."""
    return currency in iso_currencies()


@cache
def iso_currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def parse_decimal(text: str) -> Decimal:
    """Parse strict decimal text ("12.5", "-3", "0.10"); anything else is ``InvalidAmount``."""
    if not isinstance(text, str):
        raise TypeError(f"amounts are parsed from strings, not {type(text).__name__}")
    stripped = text.strip()
    if not _DECIMAL_TEXT.match(stripped):
        raise InvalidAmount(f'not a decimal amount: {text!r} (write it like "1234.50")')
    try:
        return Decimal(stripped)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InvalidAmount(f"not a decimal amount: {text!r}") from exc


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("a bool is not an amount")
    if isinstance(value, float):
        raise TypeError("money is never a float: pass a Decimal, an int or a decimal string")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(f"not a finite amount: {value}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        return parse_decimal(value)
    raise TypeError(f"cannot make an amount from {type(value).__name__}")


# Codes that passed ``check_currency`` once: checking a known code is a set lookup.
_KNOWN_CURRENCIES: set[str] = set()
# 10^-minor units per currency: the quantum ``round`` and ``is_rounded`` quantize to.
_QUANTA: dict[str, Decimal] = {}


def _quantum(currency: str) -> Decimal:
    quantum = _QUANTA.get(currency)
    if quantum is None:
        quantum = _QUANTA[currency] = Decimal(1).scaleb(-minor_units(currency))
    return quantum


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency. Arithmetic keeps full precision until ``round``."""

    amount: Decimal
    currency: str

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        object.__setattr__(self, "amount", _as_decimal(amount))
        object.__setattr__(self, "currency", check_currency(currency))

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        if cls is not Money:
            return cls(Decimal(0), currency)
        zero = _ZEROS.get(currency)
        if zero is None:  # a Money never changes: one zero per currency serves everyone
            zero = _ZEROS[check_currency(currency)] = cls(Decimal(0), currency)
        return zero

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Strict parse of a money string; the amount may not carry more digits than the
        currency has minor units ("12.345" EUR is an error)."""
        value = parse_decimal(text)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > minor_units(currency):
            raise InvalidAmount(
                f"{text!r} has more decimals than {currency} allows ({minor_units(currency)})"
            )
        return cls(value, currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        if type(minor) is int:  # an int's Decimal is finite: only the currency to check
            return cls._checked(Decimal(minor).scaleb(-minor_units(currency)), currency)
        return cls(Decimal(minor).scaleb(-minor_units(currency)), currency)

    @classmethod
    def _checked(cls, amount: Decimal, currency: str) -> Money:
        """A Money from a finite ``Decimal`` (the caller's guarantee), skipping the amount's
        validation; the currency is still checked."""
        money = object.__new__(cls)
        object.__setattr__(money, "amount", amount)
        object.__setattr__(money, "currency", check_currency(currency))
        return money

    # -- arithmetic ---------------------------------------------------------------------
    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    # The checks run inline for the common case (two Money of one currency): the operators
    # are on every decision's path. The result of two finite amounts is checked finite
    # (``_made``); its currency is one that was already checked.
    def __add__(self, other: Money) -> Money:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return _made(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return _made(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money._checked(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * _as_decimal(factor), self.currency)

    __rmul__ = __mul__

    def ratio(self, numerator: Decimal | int, denominator: Decimal | int) -> Money:
        """``self × numerator / denominator`` exactly enough to round once afterwards."""
        den = _as_decimal(denominator)
        if den == 0:
            raise ZeroDivisionError("ratio with a zero denominator")
        return Money(self.amount * _as_decimal(numerator) / den, self.currency)

    def __lt__(self, other: Money) -> bool:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if type(other) is not Money or other.currency != self.currency:
            self._same(other)
        return self.amount >= other.amount

    def __bool__(self) -> bool:
        return self.amount != 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    # -- rounding and representation --------------------------------------------------
    def round(self, rounding: Rounding = Rounding.HALF_UP) -> Money:
        quantum = _QUANTA.get(self.currency) or _quantum(self.currency)
        money = object.__new__(Money)
        _set(money, "amount", self.amount.quantize(quantum, rounding=_MODES[rounding]))
        _set(money, "currency", self.currency)
        return money

    def is_rounded(self) -> bool:
        """True when the amount is a whole number of minor units: ``round()`` leaves it
        unchanged (in any rounding mode). ``round`` without building the rounded Money."""
        return self.amount.quantize(_quantum(self.currency), rounding=ROUND_HALF_UP) == self.amount

    @property
    def minor(self) -> int:
        """The amount in minor units; the amount must already be rounded."""
        scaled = self.amount.scaleb(_MINOR_UNITS.get(self.currency, 2))
        whole = int(scaled)  # finite: every Money's amount is
        if scaled != whole:
            raise InvalidAmount(f"{self} is not rounded to {self.currency}'s minor unit")
        return whole

    def text(self) -> str:
        """The amount as contract text: the currency's minor digits, no symbol ("160.00")."""
        return str(self.round().amount)

    def __str__(self) -> str:
        return f"{self.text()} {self.currency}"

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def format(self, locale: str = "en", rounding: Rounding = Rounding.HALF_UP) -> str:
        """Display for people, per locale ("€1,234.50", "1 234,50 €"), rounded first
        (``rounding``): Babel's ``format_currency``, through a formatter built once per
        locale and currency."""
        key = (locale, self.currency)
        formatter = _FORMATTERS.get(key)
        if formatter is None:
            formatter = _FORMATTERS[key] = _formatter(locale, self.currency)
        return formatter(self.round(rounding).amount)


# -- formatting for people ---------------------------------------------------------------------
# Babel's ``format_currency`` parses the locale and the pattern and looks up names on every
# call (~80 µs); decisions format several amounts each. A locale and a currency fix all of
# that, so the text is built once per pair from Babel's own output: the symbols and signs
# around the digits, the digits grouped and separated as Babel does. The fast formatter is
# used only if it gives Babel's text, byte for byte, for every probe below (large and small,
# fractions, negatives, negative zero); otherwise that pair keeps calling Babel.
_FORMATTERS: dict[tuple[str, str], Callable[[Decimal], str]] = {}
_ZEROS: dict[str, Money] = {}
_PROBES = (
    "0", "-0", "1", "0.5", "0.01", "1.5", "12.5", "99.99", "999.99", "1000", "1234.56",
    "10000", "123456.78", "1234567.89", "100000000", "987654321.12",
    "-1", "-0.01", "-12.5", "-1234.56", "-1234567.89",
)  # fmt: skip
_REFERENCE = "1234567.89"


def _formatter(locale: str, currency: str) -> Callable[[Decimal], str]:
    from babel.numbers import (
        format_currency,
        get_currency_precision,
        get_decimal_symbol,
        get_group_symbol,
    )

    def babel(amount: Decimal) -> str:
        return str(format_currency(amount, currency, locale=locale))

    try:
        spec = f",.{get_currency_precision(currency)}f"
        group, point = get_group_symbol(locale), get_decimal_symbol(locale)
        table = str.maketrans({",": group, ".": point})

        def digits(amount: Decimal) -> str:
            return format(amount, spec).translate(table)

        if (group, point) == (",", "."):

            def digits(amount: Decimal) -> str:
                return format(amount, spec)

        def around(amount: Decimal) -> tuple[str, str] | None:
            text, body = babel(amount), digits(abs(amount))
            at = text.find(body)
            return (text[:at], text[at + len(body) :]) if at >= 0 else None

        reference = Money(_REFERENCE, currency).round().amount
        plus, minus = around(reference), around(-reference)
        if plus is None or minus is None:
            return babel
        (prefix, suffix), (neg_prefix, neg_suffix) = plus, minus

        def fast(amount: Decimal) -> str:
            if amount.is_signed():  # as Babel decides the sign: -0 is negative
                return neg_prefix + digits(-amount) + neg_suffix
            return prefix + digits(amount) + suffix

        for probe in _PROBES:
            amount = Money(probe, currency).round().amount
            if fast(amount) != babel(amount):
                return babel
    except Exception:  # any surprise in Babel's data: Babel itself, as before
        return babel
    return fast


_set = object.__setattr__
_MODES = {Rounding.HALF_UP: ROUND_HALF_UP, Rounding.HALF_EVEN: ROUND_HALF_EVEN}


def _made(amount: Decimal, currency: str) -> Money:
    """The Money of an arithmetic result: ``currency`` is a checked Money's own, so only the
    amount is checked (finite, as ``Money`` requires; a Decimal context that does not trap
    overflow could make an infinity)."""
    if not amount.is_finite():
        raise InvalidAmount(f"not a finite amount: {amount}")
    money = object.__new__(Money)
    _set(money, "amount", amount)
    _set(money, "currency", currency)
    return money


def money_sum(items: Iterable[Money], currency: str) -> Money:
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def allocate(total: Money, weights: Sequence[Decimal | int]) -> list[Money]:
    """Split ``total`` (rounded to minor units) in proportion to ``weights``.

    Largest-remainder: each part is floored to the minor unit, then the leftover minor
    units go one by one to the parts with the largest remainders (ties: first part).
    The parts always add up to ``total`` exactly.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    dec_weights = [_as_decimal(w) for w in weights]
    if any(w < 0 for w in dec_weights):
        raise ValueError("allocation weights cannot be negative")
    weight_sum = sum(dec_weights, Decimal(0))
    if weight_sum == 0:
        raise ValueError("allocation weights cannot all be zero")
    total_minor = total.minor
    sign = -1 if total_minor < 0 else 1
    magnitude = abs(total_minor)
    exact = [Decimal(magnitude) * w / weight_sum for w in dec_weights]
    floors = [int(e) for e in exact]
    leftover = magnitude - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in order[:leftover]:
        floors[index] += 1
    return [Money.from_minor(sign * part, total.currency) for part in floors]
