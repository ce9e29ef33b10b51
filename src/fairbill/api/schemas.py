"""Request bodies. Money is a decimal string ("240.00"): a JSON number is rejected."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from fairbill.api.strict import JSON_INT, exactly_one_of
from fairbill.policy.places import (
    country_problem,
    currency_problem,
    iso_currencies,
    supported_countries,
    timezone_problem,
    timezones,
)

# Bounds that keep every stored number inside its column: counts live in 32-bit integer
# columns on PostgreSQL, amounts in 64-bit minor units (a price of at most 9 digits, times
# a purchase quantity of at most a million, in a currency of up to 3 minor digits, fits).
MAX_COUNT = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_COUNT), JSON_INT]
MoneyText = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}(\.[0-9]+)?$", max_length=20)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def _known(problem: Callable[[str], str | None], names: Callable[[], Iterable[str]]) -> Any:
    """A string the engine can compute with (``policy.places``), listed in the schema."""

    def check(value: str) -> str:
        why = problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    def listed(schema: dict[str, Any]) -> None:  # run when the OpenAPI document is built
        schema["enum"] = sorted(names())

    return (AfterValidator(check), Field(json_schema_extra=listed))


Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), *_known(currency_problem, iso_currencies)
]
Country = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}$"), *_known(country_problem, supported_countries)
]
Timezone = Annotated[str, StringConstraints(max_length=64), *_known(timezone_problem, timezones)]


class MerchantIn(Body):
    """``policy``: a bundled policy's id; or ``policy_text``: the merchant's own policy file
    (YAML), stored as its first published version. Exactly one of the two. ``currency``,
    ``timezone`` and ``country`` default to the policy's, and are checked as the policy's
    are (an unknown country made every refund request of the merchant a 500)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=exactly_one_of("policy", "policy_text")
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    policy: Code | None = None
    policy_text: Annotated[str, StringConstraints(min_length=1, max_length=262_144)] | None = None
    currency: Currency | None = None
    timezone: Timezone | None = None
    country: Country | None = None
    finance_email: EmailStr | None = None  # where finance alerts go; none: they are parked

    @model_validator(mode="after")
    def _one_policy(self) -> MerchantIn:
        if (self.policy is None) == (self.policy_text is None):
            raise ValueError("give exactly one of policy (a bundled id) and policy_text (YAML)")
        return self


class MerchantUpdateIn(Body):
    """The merchant's settings that may change; a field left out stays as it is, null
    clears it."""

    finance_email: EmailStr | None = None


class ApiKeyIn(Body):
    role: Literal["admin", "finance", "support", "readonly"]


class PortalTokenIn(Body):
    expires_in_days: Annotated[int, Field(ge=1, le=365), JSON_INT] = 30


class TierLevelIn(Body):
    up_to: Count | None
    price: MoneyText


class TiersIn(Body):
    metric: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
    levels: Annotated[list[TierLevelIn], Field(min_length=1, max_length=50)]


class PlanIn(Body):
    """A price, or tiers (one of the two)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("price", "tiers"))

    id: Code
    interval_months: Annotated[int, Field(ge=1, le=120), JSON_INT] = 1
    price: MoneyText | None = None
    commitment_months: Annotated[int, Field(ge=1, le=240), JSON_INT] | None = None
    includes: dict[Code, Count] = Field(default_factory=dict)
    tiers: TiersIn | None = None


class ProductIn(Body):
    id: Code
    kind: Literal["message_credits", "setup_fee", "training", "add_on", "data_product"]
    quantity: Annotated[int, Field(ge=1, le=MAX_COUNT), JSON_INT] | None = None
    credit_kind: Literal["sms", "mms", "email", "message"] | None = None
    price: MoneyText

    @model_validator(mode="after")
    def _credits(self) -> ProductIn:
        if self.kind == "message_credits" and (self.quantity is None or self.credit_kind is None):
            raise ValueError("a message_credits product needs quantity and credit_kind")
        return self


class PromotionIn(Body):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=exactly_one_of("percent_off", "amount_off")
    )

    id: Code
    # 0 to 100, as in scenario files (more than 100% off made invoices negative).
    percent_off: (
        Annotated[str, StringConstraints(pattern=r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$")] | None
    ) = None
    amount_off: MoneyText | None = None
    duration_periods: Annotated[int, Field(ge=1, le=MAX_COUNT), JSON_INT] | None = None

    @model_validator(mode="after")
    def _one_discount(self) -> PromotionIn:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("a promotion has either percent_off or amount_off (one of them)")
        return self


class PaymentMethodIn(Body):
    id: Code
    type: Literal["card", "sepa_debit", "bank_transfer"] = "card"
    token: Code | None = None  # a gateway token: card data never reaches fairbill


class CustomerIn(Body):
    id: Code
    email: EmailStr | None = None  # where notifications go; none: they are parked
    type: Literal["consumer", "business"] = "business"
    acquisition: Literal["self_serve", "direct_marketing"] = "self_serve"
    flags: list[Code] = Field(default_factory=list, max_length=20)
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] | None = None
    payment_methods: list[PaymentMethodIn] = Field(default_factory=list, max_length=20)


class SubscriptionIn(Body):
    customer: Code
    plan: Code
    payment_method: Code | None = None
    trial_days: Annotated[int, Field(ge=1, le=365), JSON_INT] | None = None
    promotion: Code | None = None
    usage: Count | None = None


class CancelIn(Body):
    immediately: StrictBool = False
    channel: Literal["portal", "support", "written"] | None = None
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ChangePlanIn(Body):
    plan: Code


class PreviewIn(Body):
    action: Literal["cancel", "change_plan"]
    immediately: StrictBool = False
    plan: Code | None = None


class UsageIn(Body):
    metric: Code
    value: Count


# -- refund requests, reviews, appeals ------------------------------------------------------
from pydantic import AwareDatetime  # noqa: E402  (appended section: times need an offset)

from fairbill.policy.model import (  # noqa: E402  (the policy's own vocabularies)
    DeliveryFailure,
    Destination,
    OutageCause,
    RequestKind,
)

PaymentId = Annotated[str, StringConstraints(pattern=r"^pay_[0-9a-z]{13}$")]
InvoiceId = Annotated[str, StringConstraints(pattern=r"^inv_[0-9a-z]{13}$")]
Percent = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}(\.[0-9]{1,6})?$")]
Text = Annotated[str, StringConstraints(max_length=2000)]


class RefundRequestIn(Body):
    customer: Code
    kind: RequestKind
    payment: PaymentId | None = None
    invoice: InvoiceId | None = None
    reason: Text | None = None
    refund_to: Code | None = None
    documents: list[Annotated[str, StringConstraints(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=20
    )
    order_numbers: list[Code] = Field(default_factory=list, max_length=20)


class ReviewIn(Body):
    decision: Literal["accept", "approve", "decline"]
    amount: MoneyText | None = None
    destination: Destination | None = None
    fee_percent: Percent | None = None
    note: Text | None = None


class AppealIn(Body):
    reason: Text | None = None


# -- purchases, credits, collection ---------------------------------------------------------
class PurchaseIn(Body):
    product: Code
    quantity: Annotated[int, Field(ge=1, le=1_000_000), JSON_INT] = 1
    payment_method: Code | None = None


class ConsumeIn(Body):
    kind: Literal["sms", "mms", "email", "message"]
    quantity: Annotated[int, Field(ge=1, le=100_000_000), JSON_INT]
    failed: DeliveryFailure | None = None


class PayOutstandingIn(Body):
    payment_method: Code | None = None


# -- disputes, outages, terms ---------------------------------------------------------------
class DisputeIn(Body):
    payment: PaymentId
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    contacted_support_first: StrictBool


class DisputeCloseIn(Body):
    outcome: Literal["won", "lost"]


def _time_text(value: Any) -> Any:
    # The schema says a date-time string: pydantic alone also took a number (a Unix time).
    if isinstance(value, int | float):
        raise ValueError("an ISO 8601 time with an offset, as text")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_time_text)]


class OutageIn(Body):
    """Times need an offset: a naive time is rejected on its field."""

    start: Instant
    end: Instant
    cause: OutageCause
    reported_at: Instant | None = None
    customers: list[Code] | None = Field(default=None, min_length=1, max_length=1000)


class TermsChangeIn(Body):
    material: StrictBool
