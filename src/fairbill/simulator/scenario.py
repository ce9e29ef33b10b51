"""Scenario files: a customer's story, parsed and checked against the public contract.

The contract is ``docs/scenario-format.md`` (format ``fairbill.scenario/1``). Parsing goes:

1. YAML (or JSON, which is YAML) with the line of every value (``fairbill.yamlfile``);
2. ``format`` must be ``fairbill.scenario/1`` — anything else stops here;
3. the merchant's policy is resolved, which gives the timezone and currency every time and
   amount of the file is read in;
4. the whole file is validated by the pydantic models below, all errors at once;
5. cross-checks that need the whole file: catalog and payment-method references, events in
   time order between ``start`` and ``until``.

Every problem is reported as a ``ScenarioError`` naming the file, the 1-based line and the
dotted field (``events.3.subscribe.plan``).

Invariants of a parsed ``Scenario``: money is ``Decimal`` (never float) with no more
decimals than the currency's minor units; every time is aware and in the merchant's
timezone; events are in time order, each between ``start`` and ``until``; every catalog
and payment-method reference names something the file defines.
"""

from __future__ import annotations

import itertools
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fairbill.calendar.periods import localize
from fairbill.errors import InvalidAmount, Location, NotFound, PolicyError, ScenarioError
from fairbill.money import check_currency, minor_units, parse_decimal
from fairbill.policy.load import BUNDLED_IDS, resolve_policy, validation_problems
from fairbill.policy.model import (
    Channel,
    DeliveryFailure,
    Destination,
    OutageCause,
    Policy,
    RequestKind,
)
from fairbill.yamlfile import LineMap, load_yaml, syntax_location

FORMAT = "fairbill.scenario/1"

Problems = list[tuple[Location, str]]


# -- value types: money, percentages, rates, times, references ------------------------------
def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context if isinstance(info.context, dict) else {}


def _money(value: object, info: ValidationInfo) -> Decimal:
    """Money is a quoted decimal string with at most the currency's minor digits."""
    if isinstance(value, Decimal) and value.is_finite():  # built in Python, not from a file
        amount = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError("money_type", 'money is written as a string, e.g. "240.00"')
    elif not isinstance(value, str):
        raise PydanticCustomError(
            "money_type",
            'money is written as a string, e.g. "240.00" (got {kind})',
            {"kind": type(value).__name__},
        )
    else:
        try:
            amount = parse_decimal(value)
        except InvalidAmount as exc:
            raise PydanticCustomError("money_text", "{problem}", {"problem": str(exc)}) from None
    if amount < 0:
        raise PydanticCustomError("money_sign", "an amount here cannot be negative")
    currency = _context(info).get("currency")
    exponent = amount.as_tuple().exponent
    if (
        isinstance(currency, str)
        and isinstance(exponent, int)
        and -exponent > minor_units(currency)
    ):
        raise PydanticCustomError(
            "money_digits",
            "{text} has more decimals than {currency} allows ({digits})",
            {"text": str(value), "currency": currency, "digits": minor_units(currency)},
        )
    return amount


def _percent(value: object) -> Decimal:
    """A percentage (not money): a number or a decimal string, 0 to 100."""
    if isinstance(value, bool):
        raise PydanticCustomError("percent_type", "a percentage is a number from 0 to 100")
    try:
        if isinstance(value, Decimal):
            pct = value
        elif isinstance(value, int | float):
            pct = parse_decimal(str(value))
        elif isinstance(value, str):
            pct = parse_decimal(value)
        else:
            raise PydanticCustomError("percent_type", "a percentage is a number from 0 to 100")
    except InvalidAmount as exc:
        raise PydanticCustomError("percent_text", "{problem}", {"problem": str(exc)}) from None
    if not 0 <= pct <= 100:
        raise PydanticCustomError("percent_range", "a percentage is a number from 0 to 100")
    return pct


def _rate(value: object) -> Decimal:
    """An exchange rate: a quoted decimal string, greater than zero."""
    if isinstance(value, Decimal) and value.is_finite():
        rate = value
    elif not isinstance(value, str):
        raise PydanticCustomError("rate_type", 'a rate is written as a string, e.g. "1.1000"')
    else:
        try:
            rate = parse_decimal(value)
        except InvalidAmount as exc:
            raise PydanticCustomError("rate_text", "{problem}", {"problem": str(exc)}) from None
    if rate <= 0:
        raise PydanticCustomError("rate_sign", "a rate is greater than zero")
    return rate


_TIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
)
_TIME_HELP = (
    "write 2026-01-10T09:00 (merchant time), 2026-01-10 (local midnight) "
    "or 2026-01-10T09:00:00+01:00"
)


def _instant(value: object, info: ValidationInfo) -> datetime:
    """A time in the merchant's timezone. Without an offset it is local merchant time (a
    wall time in a DST gap moves forward by the gap); with one it is converted."""
    tz = _context(info).get("tz")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo("UTC")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _TIME_TEXT.match(value):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "time", "not a valid date or time: {text}", {"text": value}
            ) from None
    else:
        raise PydanticCustomError(
            "time", "not a time: {text}; {help}", {"text": repr(value), "help": _TIME_HELP}
        )
    if moment.tzinfo is None:
        return localize(moment, zone)
    return moment.astimezone(zone)


def _ref(value: object) -> int | Literal["last"]:
    """``payment: N`` / ``invoice: N`` / ``request: N`` (1-based) or ``last``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if value == "last":
        return "last"
    raise PydanticCustomError("reference", "a reference is a number from 1, or last")


def _months(value: object, *, allow_names: bool) -> int:
    if allow_names and value == "month":
        return 1
    if allow_names and value == "year":
        return 12
    if isinstance(value, dict) and len(value) == 1:
        (unit, count), *_ = value.items()
        if (
            unit in ("months", "years")
            and isinstance(count, int)
            and not isinstance(count, bool)
            and count >= 1
        ):
            return count * (12 if unit == "years" else 1)
    if allow_names:
        raise PydanticCustomError(
            "interval", "an interval is month, year or {form}", {"form": "{months: N}"}
        )
    raise PydanticCustomError(
        "term", "a commitment is {form}", {"form": "{months: N} or {years: N}"}
    )


def _interval(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value  # already in months (built in Python)
    return _months(value, allow_names=True)


def _term(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return _months(value, allow_names=False)


Money = Annotated[Decimal, PlainValidator(_money)]
Percent = Annotated[Decimal, PlainValidator(_percent)]
Rate = Annotated[Decimal, PlainValidator(_rate)]
Instant = Annotated[datetime, PlainValidator(_instant)]
Ref = Annotated[int | Literal["last"], PlainValidator(_ref)]
Id = Annotated[StrictStr, Field(min_length=1)]
Count = Annotated[StrictInt, Field(ge=1)]
Level = Annotated[StrictInt, Field(ge=0)]
CreditKind = Literal["sms", "mms", "email", "message"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- merchant, catalog, customer, fx -----------------------------------------------------------
class MerchantSpec(_Model):
    policy: Id
    timezone: StrictStr | None = None
    currency: StrictStr | None = None
    country: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")] | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise PydanticCustomError(
                    "timezone", "unknown timezone {tz} (write e.g. Europe/Paris)", {"tz": value}
                ) from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_currency(value)
            except InvalidAmount as exc:
                raise PydanticCustomError("currency", "{problem}", {"problem": str(exc)}) from None
        return value


class TierLevel(_Model):
    up_to: Level | None
    price: Money


class TierSpec(_Model):
    metric: Id
    levels: list[TierLevel] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _ascending(cls, levels: list[TierLevel]) -> list[TierLevel]:
        bounds = [level.up_to for level in levels]
        if any(b is None for b in bounds[:-1]):
            raise PydanticCustomError("tiers", "only the last level may have up_to: null")
        numbers = [b for b in bounds if b is not None]
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            raise PydanticCustomError("tiers", "levels are in ascending order of up_to")
        return levels

    def level_for(self, value: int) -> TierLevel | None:
        """The first level whose ``up_to`` covers ``value`` (None above the last bound)."""
        for level in self.levels:
            if level.up_to is None or value <= level.up_to:
                return level
        return None


class PlanSpec(_Model):
    id: Id
    interval_months: Annotated[int, PlainValidator(_interval)] = Field(alias="interval")
    price: Money | None = None
    commitment_months: Annotated[int, PlainValidator(_term)] | None = Field(
        default=None, alias="commitment"
    )
    includes: dict[StrictStr, Level] = Field(default_factory=dict)
    tiers: TierSpec | None = None

    @model_validator(mode="after")
    def _price_or_tiers(self) -> PlanSpec:
        if (self.price is None) == (self.tiers is None):
            raise PydanticCustomError(
                "plan_price", "a plan has either price or tiers (one of them)"
            )
        return self


ProductKind = Literal["message_credits", "setup_fee", "training", "add_on", "data_product"]


class ProductSpec(_Model):
    id: Id
    kind: ProductKind
    quantity: Count | None = None
    credit_kind: CreditKind | None = None
    price: Money

    @model_validator(mode="after")
    def _credits(self) -> ProductSpec:
        if self.kind == "message_credits" and (self.quantity is None or self.credit_kind is None):
            raise PydanticCustomError(
                "product", "a message_credits product needs quantity and credit_kind"
            )
        return self


class PromotionSpec(_Model):
    id: Id
    percent_off: Percent | None = None
    amount_off: Money | None = None
    duration_periods: Count | None = None  # None: for as long as the subscription runs

    @model_validator(mode="after")
    def _one_discount(self) -> PromotionSpec:
        if (self.percent_off is None) == (self.amount_off is None):
            raise PydanticCustomError(
                "promotion", "a promotion has either percent_off or amount_off (one of them)"
            )
        return self


class Catalog(_Model):
    plans: list[PlanSpec] = Field(default_factory=list)
    products: list[ProductSpec] = Field(default_factory=list)
    promotions: list[PromotionSpec] = Field(default_factory=list)

    def plan(self, plan_id: str) -> PlanSpec:
        for plan in self.plans:
            if plan.id == plan_id:
                return plan
        raise NotFound(f"no plan {plan_id!r} in the catalog")

    def product(self, product_id: str) -> ProductSpec:
        for product in self.products:
            if product.id == product_id:
                return product
        raise NotFound(f"no product {product_id!r} in the catalog")

    def promotion(self, promotion_id: str) -> PromotionSpec:
        for promotion in self.promotions:
            if promotion.id == promotion_id:
                return promotion
        raise NotFound(f"no promotion {promotion_id!r} in the catalog")


class PaymentMethodSpec(_Model):
    id: Id
    type: StrictStr = "card"
    currency: StrictStr | None = None  # None: the merchant's currency

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_currency(value)
            except InvalidAmount as exc:
                raise PydanticCustomError("currency", "{problem}", {"problem": str(exc)}) from None
        return value


class CustomerSpec(_Model):
    id: Id
    type: Literal["consumer", "business"] = "business"
    acquisition: Literal["self_serve", "direct_marketing"] = "self_serve"
    flags: list[StrictStr] = Field(default_factory=list)
    language: StrictStr | None = None
    payment_methods: list[PaymentMethodSpec] = Field(default_factory=list)

    def payment_method(self, method_id: str) -> PaymentMethodSpec:
        for method in self.payment_methods:
            if method.id == method_id:
                return method
        raise NotFound(f"no payment method {method_id!r} for customer {self.id!r}")


class FxRate(_Model):
    at: Instant
    pair: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}/[A-Z]{3}$")]
    rate: Rate

    @property
    def base(self) -> str:
        return self.pair.split("/")[0]

    @property
    def quote(self) -> str:
        return self.pair.split("/")[1]


# -- actions ----------------------------------------------------------------------------------
class Subscribe(_Model):
    plan: Id
    payment_method: Id | None = None
    trial_days: Count | None = None
    promotion: Id | None = None
    usage: Level | None = None


class Cancel(_Model):
    immediately: StrictBool = False
    channel: Channel | None = None
    reason: StrictStr | None = None


class ChangePlan(_Model):
    plan: Id


class Usage(_Model):
    metric: Id
    value: Level


class Activity(_Model):
    pass


class Purchase(_Model):
    product: Id
    quantity: Count = 1
    payment_method: Id | None = None


class ConsumeCredits(_Model):
    kind: CreditKind
    quantity: Count
    failed: DeliveryFailure | None = None


class PaymentMethodAction(_Model):
    id: Id
    declines: StrictBool


class PayOutstanding(_Model):
    payment_method: Id | None = None


class BillingMistake(_Model):
    kind: Literal["duplicate_charge", "overcharge", "wrong_tier"]
    payment: Ref | None = None
    invoice: Ref | None = None
    amount: Money

    @model_validator(mode="after")
    def _target(self) -> BillingMistake:
        if (self.payment is None) == (self.invoice is None):
            raise PydanticCustomError(
                "billing_mistake", "a billing mistake names either payment or invoice (one of them)"
            )
        return self


class RefundRequest(_Model):
    kind: RequestKind
    payment: Ref | None = None
    invoice: Ref | None = None
    reason: StrictStr | None = None
    refund_to: Id | None = None
    documents: list[StrictStr] = Field(default_factory=list)
    order_numbers: list[StrictStr] = Field(default_factory=list)

    @field_validator("order_numbers", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class Review(_Model):
    request: Ref
    decision: Literal["accept", "approve", "decline"]
    amount: Money | None = None
    destination: Destination | None = None
    fee_percent: Percent | None = None
    note: StrictStr | None = None


class Appeal(_Model):
    request: Ref
    reason: StrictStr | None = None


class Chargeback(_Model):
    payment: Ref
    reason: StrictStr
    contacted_support_first: StrictBool


class DisputeClosed(_Model):
    payment: Ref
    outcome: Literal["won", "lost"]


class Outage(_Model):
    start: Instant
    end: Instant
    cause: OutageCause
    reported_at: Instant | None = None

    @model_validator(mode="after")
    def _order(self) -> Outage:
        if self.end <= self.start:
            raise PydanticCustomError("outage", "an outage ends after it starts")
        return self


class TermsChange(_Model):
    material: StrictBool


class DeclineTerms(_Model):
    pass


class Violation(_Model):
    kind: Id


class CloseAccount(_Model):
    pass


class ExportData(_Model):
    pass


ActionParams = (
    Subscribe
    | Cancel
    | ChangePlan
    | Usage
    | Activity
    | Purchase
    | ConsumeCredits
    | PaymentMethodAction
    | PayOutstanding
    | BillingMistake
    | RefundRequest
    | Review
    | Appeal
    | Chargeback
    | DisputeClosed
    | Outage
    | TermsChange
    | DeclineTerms
    | Violation
    | CloseAccount
    | ExportData
)

ACTIONS: dict[str, type[_Model]] = {
    "subscribe": Subscribe,
    "cancel": Cancel,
    "change_plan": ChangePlan,
    "usage": Usage,
    "activity": Activity,
    "purchase": Purchase,
    "consume_credits": ConsumeCredits,
    "payment_method": PaymentMethodAction,
    "pay_outstanding": PayOutstanding,
    "billing_mistake": BillingMistake,
    "refund_request": RefundRequest,
    "review": Review,
    "appeal": Appeal,
    "chargeback": Chargeback,
    "dispute_closed": DisputeClosed,
    "outage": Outage,
    "terms_change": TermsChange,
    "decline_terms": DeclineTerms,
    "violation": Violation,
    "close_account": CloseAccount,
    "export_data": ExportData,
}


class _EventItem(_Model):
    """One ``events`` item as written: ``at`` and exactly one action key."""

    at: Instant
    subscribe: Subscribe | None = None
    cancel: Cancel | None = None
    change_plan: ChangePlan | None = None
    usage: Usage | None = None
    activity: Activity | None = None
    purchase: Purchase | None = None
    consume_credits: ConsumeCredits | None = None
    payment_method: PaymentMethodAction | None = None
    pay_outstanding: PayOutstanding | None = None
    billing_mistake: BillingMistake | None = None
    refund_request: RefundRequest | None = None
    review: Review | None = None
    appeal: Appeal | None = None
    chargeback: Chargeback | None = None
    dispute_closed: DisputeClosed | None = None
    outage: Outage | None = None
    terms_change: TermsChange | None = None
    decline_terms: DeclineTerms | None = None
    violation: Violation | None = None
    close_account: CloseAccount | None = None
    export_data: ExportData | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_actions(cls, data: object) -> object:
        # `activity:` with nothing after it is an action with no fields, like `activity: {}`.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ACTIONS else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_action(self) -> _EventItem:
        actions = self.actions
        if not actions:
            raise PydanticCustomError(
                "event_action",
                "an event needs one action besides at: {known}",
                {"known": ", ".join(ACTIONS)},
            )
        if len(actions) > 1:
            raise PydanticCustomError(
                "event_action",
                "an event has exactly one action, this one has {count}: {names}",
                {"count": len(actions), "names": ", ".join(actions)},
            )
        return self

    @property
    def actions(self) -> list[str]:
        return [name for name in ACTIONS if name in self.model_fields_set]


class _ScenarioFile(_Model):
    format: StrictStr
    name: Annotated[StrictStr, Field(min_length=1)]
    merchant: MerchantSpec
    catalog: Catalog = Field(default_factory=Catalog)
    customer: CustomerSpec = Field(default_factory=lambda: CustomerSpec(id="cus_1"))
    fx: list[FxRate] = Field(default_factory=list)
    start: Instant
    until: Instant | None = None
    events: list[_EventItem]
    expect: dict[StrictStr, Any] | None = None


class _Head(BaseModel):
    """Just the merchant, read before the rest (times and money depend on it)."""

    model_config = ConfigDict(extra="ignore")
    merchant: MerchantSpec


# -- the parsed scenario ----------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """One event: ``action`` is the action key, ``params`` its typed fields."""

    index: int  # 0-based, in file order
    at: datetime
    action: str
    params: ActionParams
    location: Location  # the `- at:` item, field ``events.N``
    lines: LineMap = field(repr=False, compare=False)

    def loc(self, field: str = "") -> Location:
        """Where ``events.N.<action>.<field>`` is written (``field`` may be dotted, e.g.
        ``order_numbers.1``); the line falls back to the action when the field is absent."""
        parts: list[str | int] = ["events", self.index, self.action]
        parts += [int(p) if p.isdigit() else p for p in field.split(".") if p]
        return self.lines.locate(parts)


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    policy: Policy
    timezone: ZoneInfo
    currency: str
    country: str
    language: str  # the customer's language, else the policy's
    catalog: Catalog
    customer: CustomerSpec
    fx: list[FxRate]
    start: datetime
    until: datetime
    events: list[Event]
    expect: dict[str, Any] | None
    lines: LineMap = field(repr=False, compare=False)


# -- entry points -----------------------------------------------------------------------------
def load_scenario(path: str | Path) -> Scenario:
    """Read and parse a scenario file (YAML or JSON); raise ``ScenarioError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            [(Location(str(path), None, ""), f"cannot read: {exc.strerror or exc}")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError([(Location(str(path), None, ""), f"not UTF-8 text: {exc}")]) from exc
    return parse_scenario(text, str(path), base_dir=file.parent)


def parse_scenario(text: str, path: str, base_dir: Path | None = None) -> Scenario:
    """Parse scenario text; a relative policy path is read from ``base_dir`` (by default
    the folder of ``path``). Raise ``ScenarioError`` listing every problem found."""
    if base_dir is None:
        base_dir = Path(path).parent
    data, lines = _load(text, path)
    if not isinstance(data, dict):
        raise ScenarioError([(Location(path, 1, ""), "a scenario file is a mapping of fields")])
    _check_format(data, lines)

    problems: Problems = []
    policy, tz, currency, country = _merchant(data, lines, base_dir, problems)
    try:
        raw = _ScenarioFile.model_validate(data, context={"tz": tz, "currency": currency})
    except ValidationError as exc:
        problems += _problems(exc, lines, data)
        raise ScenarioError(_sorted(problems)) from exc
    if policy is None:
        raise ScenarioError(_sorted(problems))

    events = [
        Event(
            index=i,
            at=item.at,
            action=item.actions[0],
            params=getattr(item, item.actions[0]),
            location=lines.locate(("events", i)),
            lines=lines,
        )
        for i, item in enumerate(raw.events)
    ]
    until = raw.until
    if until is None:  # the last event's time (the latest one, should they be out of order)
        until = max([raw.start, *(event.at for event in events)])
    problems += _cross_checks(raw, events, until, currency, lines)
    if problems:
        raise ScenarioError(_sorted(problems))
    return Scenario(
        name=raw.name,
        path=path,
        policy=policy,
        timezone=tz,
        currency=currency,
        country=country,
        language=raw.customer.language or policy.language,
        catalog=raw.catalog,
        customer=raw.customer,
        fx=list(raw.fx),
        start=raw.start,
        until=until,
        events=events,
        expect=raw.expect,
        lines=lines,
    )


# -- steps ------------------------------------------------------------------------------------
def _load(text: str, path: str) -> tuple[Any, LineMap]:
    try:
        return load_yaml(text, path)
    except yaml.YAMLError as exc:
        # JSON indented with tabs is valid JSON but not valid YAML; JSON forbids raw tabs
        # inside strings, so turning them into spaces changes nothing else (lines included).
        if "\t" in text and text.lstrip().startswith(("{", "[")):
            try:
                return load_yaml(text.replace("\t", " "), path)
            except yaml.YAMLError:
                pass
        raise ScenarioError([(syntax_location(exc, path), f"not valid YAML: {exc}")]) from exc


def _check_format(data: dict[Any, Any], lines: LineMap) -> None:
    if "format" not in data:
        raise ScenarioError(
            [(lines.locate(("format",)), f"format is required: write `format: {FORMAT}` first")]
        )
    if data["format"] != FORMAT:
        raise ScenarioError(
            [
                (
                    lines.locate(("format",)),
                    f"unknown format {data['format']!r}: this fairbill reads {FORMAT}",
                )
            ]
        )


def _merchant(
    data: dict[Any, Any], lines: LineMap, base_dir: Path, problems: Problems
) -> tuple[Policy | None, ZoneInfo, str, str]:
    """The policy and the merchant's timezone, currency and country. A broken merchant
    block is reported by the full validation; here it only falls back to UTC."""
    try:
        merchant = _Head.model_validate(data).merchant
    except ValidationError:
        return None, ZoneInfo("UTC"), "XXX", "ZZ"
    policy: Policy | None = None
    try:
        policy = resolve_policy(merchant.policy, base_dir=base_dir)
    except PolicyError as exc:
        problems.append(
            (lines.locate(("merchant", "policy")), _policy_message(merchant.policy, base_dir, exc))
        )
    except (OSError, UnicodeDecodeError) as exc:  # a bundled file missing, a binary file
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(
            (
                lines.locate(("merchant", "policy")),
                f"cannot load policy {merchant.policy!r}: {reason}",
            )
        )
    tz_name = merchant.timezone or (policy.timezone if policy else "UTC")
    currency = merchant.currency or (policy.currency if policy else "XXX")
    country = merchant.country or (policy.country if policy else "ZZ")
    return policy, ZoneInfo(tz_name), currency, country


def _policy_message(ref: str, base_dir: Path, exc: PolicyError) -> str:
    candidate = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if ref not in BUNDLED_IDS and not candidate.exists():
        return (
            f"unknown policy {ref!r}: not a bundled policy ({', '.join(BUNDLED_IDS)}) "
            f"and no policy file at {candidate}"
        )
    return f"policy {ref!r} cannot be used:\n{exc}"


def _cross_checks(
    raw: _ScenarioFile, events: list[Event], until: datetime, currency: str, lines: LineMap
) -> Problems:
    problems: Problems = []

    def add(at: Sequence[str | int], message: str) -> None:
        problems.append((lines.locate(at), message))

    catalog = raw.catalog
    plans = [p.id for p in catalog.plans]
    products = [p.id for p in catalog.products]
    promotions = [p.id for p in catalog.promotions]
    for section, ids in (("plans", plans), ("products", products), ("promotions", promotions)):
        for j, item_id in enumerate(ids):
            if item_id in ids[:j]:
                add(("catalog", section, j, "id"), f"{item_id!r} is used twice in {section}")
    for j, plan in enumerate(catalog.plans):
        term = plan.commitment_months
        if term is not None and (term < plan.interval_months or term % plan.interval_months):
            add(
                ("catalog", "plans", j, "commitment"),
                f"a commitment of {term} months is not a whole number of "
                f"{plan.interval_months}-month billing periods",
            )
    methods = [m.id for m in raw.customer.payment_methods]
    for j, method_id in enumerate(methods):
        if method_id in methods[:j]:
            add(("customer", "payment_methods", j, "id"), f"{method_id!r} is used twice")
    for j, rate in enumerate(raw.fx):
        if rate.base == rate.quote:
            add(("fx", j, "pair"), "a pair names two different currencies")
    pairs = {frozenset((rate.base, rate.quote)) for rate in raw.fx}
    for j, method in enumerate(raw.customer.payment_methods):
        foreign = method.currency not in (None, currency)
        if foreign and frozenset((currency, method.currency)) not in pairs:
            add(
                ("customer", "payment_methods", j, "currency"),
                f"payments in {method.currency} need an fx rate: add "
                f'`fx: [{{at: ..., pair: {currency}/{method.currency}, rate: "..."}}]`',
            )

    def known(kind: str, value: str | None, ids: list[str], event: Event, name: str) -> None:
        if value is None or value in ids:
            return
        listed = ", ".join(ids) if ids else "none"
        add(
            ("events", event.index, event.action, name),
            f"unknown {kind} {value!r} (known: {listed})",
        )

    if raw.until is not None and raw.until < raw.start:
        add(
            ("until",), f"until ({raw.until.isoformat()}) is before start ({raw.start.isoformat()})"
        )
    previous: Event | None = None
    for event in events:
        at_path = ("events", event.index, "at")
        if event.at < raw.start:
            add(at_path, f"{event.at.isoformat()} is before start ({raw.start.isoformat()})")
        elif event.at > until:
            add(at_path, f"{event.at.isoformat()} is after until ({until.isoformat()})")
        if previous is not None and event.at < previous.at:
            add(
                at_path,
                f"events are in time order: {event.at.isoformat()} is before the previous "
                f"event's time ({previous.at.isoformat()}, line {previous.location.line})",
            )
        previous = event

        p = event.params
        if isinstance(p, Subscribe):
            known("plan", p.plan, plans, event, "plan")
            known("promotion", p.promotion, promotions, event, "promotion")
            known("payment method", p.payment_method, methods, event, "payment_method")
        elif isinstance(p, ChangePlan):
            known("plan", p.plan, plans, event, "plan")
        elif isinstance(p, Purchase):
            known("product", p.product, products, event, "product")
            known("payment method", p.payment_method, methods, event, "payment_method")
        elif isinstance(p, PayOutstanding):
            known("payment method", p.payment_method, methods, event, "payment_method")
        elif isinstance(p, PaymentMethodAction):
            known("payment method", p.id, methods, event, "id")
        elif isinstance(p, RefundRequest):
            known("payment method", p.refund_to, methods, event, "refund_to")
    return problems


# -- pydantic errors → located problems -----------------------------------------------------
def _problems(exc: ValidationError, lines: LineMap, data: Any) -> Problems:
    located = validation_problems(exc, lines, data)
    errors = exc.errors(include_url=False)
    return [
        (location, _message(error, message))
        for (location, message), error in zip(located, errors, strict=True)
    ]


def _message(error: Any, message: str) -> str:
    loc: tuple[Any, ...] = tuple(error["loc"])
    kind = error["type"]
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        if len(loc) == 3 and loc[0] == "events" and isinstance(loc[1], int):
            return f"unknown action {name!r}; the actions are: {', '.join(ACTIONS)}"
        fields = _fields_at(loc[:-1])
        where = f"; the fields here are: {', '.join(fields)}" if fields else ""
        return f"unknown field {name!r}{where}"
    if kind == "missing":
        return f"{name} is required"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "expected a mapping of fields"
    return message


def _fields_at(loc: Sequence[Any]) -> list[str]:
    """The field names (as written in files) of the model at ``loc`` of the file."""
    tp: Any = _ScenarioFile
    for part in loc:
        tp = _unwrap(tp, list_item=isinstance(part, int))
        if isinstance(part, int):
            continue
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            return []
        for field_name, info in tp.model_fields.items():
            if (info.alias or field_name) == part:
                tp = info.annotation
                break
        else:
            return []
    tp = _unwrap(tp, list_item=False)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _unwrap(tp: Any, *, list_item: bool) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
        origin = typing.get_origin(tp)
    if origin is Annotated:
        tp = typing.get_args(tp)[0]
        origin = typing.get_origin(tp)
    if list_item and origin is list:
        return typing.get_args(tp)[0]
    return tp


def _sorted(problems: Problems) -> Problems:
    return sorted(problems, key=lambda p: p[0].line or 0)
