"""The policy language: a merchant's published policy as typed clauses.

A policy is data, never code. Each clause has a ``kind`` from the small vocabulary below,
a stable ``id`` (``<policy>/<slug>``, never renamed once published), the exact seed
sentence(s) it implements (``source``, verbatim, in the seed's language) and, where the
text allows more than one reading, the ``reading`` taken. Sentences that state no rule a
machine can run are listed under ``not_automated`` with why.

Decision code looks clauses up by kind (``Policy.clauses_of``), so adding a kind never
changes an existing one. Keep each kind small: one rule, a few parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairbill.money import Rounding, check_currency, parse_decimal
from fairbill.policy.lint_codes import LintSettings
from fairbill.policy.places import country_problem, currency_problem, timezone_problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _decimal_text(value: object) -> Decimal:
    """Money and percentages in policy files are strings ("1000000.00"), never numbers."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('write amounts and percentages as quoted strings, e.g. "18"')
    return parse_decimal(value)


# -- shared vocabularies -------------------------------------------------------------------
class Outcome(StrEnum):
    """How a rule decides when it applies: automatically, or left to a person."""

    APPROVED = "approved"
    DECLINED = "declined"
    NEEDS_REVIEW = "needs_review"


class Destination(StrEnum):
    """Where money goes: the payment method that paid, or the account balance (wallet)."""

    ORIGINAL_METHOD = "original_method"
    WALLET = "wallet"


class RefundBasis(StrEnum):
    """What a refund covers: ``full`` the whole payment; ``unused_days`` price × remaining
    days / period days; ``full_if_unused`` full when nothing was used since the payment, else
    unused days; ``full_remaining_months`` whole months after the current one; ``overcharge``
    the amount charged in excess; ``duration`` price × outage duration / period duration;
    ``none`` nothing."""

    FULL = "full"  # the whole payment
    UNUSED_DAYS = "unused_days"  # price × remaining days / period days
    FULL_IF_UNUSED = (
        "full_if_unused"  # full when nothing was used since the payment, else unused days
    )
    FULL_REMAINING_MONTHS = "full_remaining_months"  # whole months after the current one
    OVERCHARGE = "overcharge"  # the amount charged in excess
    DURATION = "duration"  # price × outage duration / period duration
    NONE = "none"


class ItemKind(StrEnum):
    """The kinds of purchase a policy can name."""

    SUBSCRIPTION = "subscription"
    MESSAGE_CREDITS = "message_credits"
    SETUP_FEE = "setup_fee"
    TRAINING = "training"
    ADD_ON = "add_on"
    DATA_PRODUCT = "data_product"
    OVERAGE = "overage"
    PROMOTIONAL = "promotional"


class RequestKind(StrEnum):
    """Refund request kinds of the scenario contract."""

    MONEY_BACK = "money_back"
    UNUSED_PERIOD = "unused_period"
    DUPLICATE_CHARGE = "duplicate_charge"
    BILLING_ERROR = "billing_error"
    OVERPAYMENT = "overpayment"
    UNAUTHORIZED = "unauthorized"
    NON_DELIVERY = "non_delivery"
    SERVICE_DISRUPTION = "service_disruption"
    PAYMENT_BY_MISTAKE = "payment_by_mistake"
    TERMS_DECLINED = "terms_declined"
    COOLING_OFF = "cooling_off"
    FAILED_DELIVERY = "failed_delivery"
    EXCEPTIONAL = "exceptional"


class OutageCause(StrEnum):
    INTERNAL = "internal"
    THIRD_PARTY = "third_party"
    FORCE_MAJEURE = "force_majeure"


class DeliveryFailure(StrEnum):
    PLATFORM = "platform"
    THIRD_PARTY = "third_party"
    INVALID_RECIPIENT = "invalid_recipient"
    BLOCKED = "blocked"
    DEVICE = "device"


class Channel(StrEnum):
    PORTAL = "portal"
    SUPPORT = "support"
    WRITTEN = "written"


# -- clause kinds --------------------------------------------------------------------------
class ClauseBase(_Strict):
    """What every clause has; each kind adds its own parameters."""

    id: str = Field(
        pattern=r"^[a-z0-9]+/[a-z0-9][a-z0-9-]*$",
        description="`<policy id>/<slug>`, unique in the policy, never renamed once published.",
    )
    source: list[str] = Field(
        min_length=1,
        description="The sentence(s) of the published text this clause implements, verbatim.",
    )
    reading: str | None = Field(
        default=None,
        description="Where the text allows more than one reading: the one this clause takes.",
    )

    @field_validator("source")
    @classmethod
    def _non_blank(cls, value: list[str]) -> list[str]:
        if any(not s.strip() for s in value):
            raise ValueError("a source sentence cannot be blank")
        return value


class BillingTerms(ClauseBase):
    """Subscriptions renew automatically, billed in advance, on the anchor date."""

    kind: Literal["billing_terms"]
    in_advance: bool = True
    auto_renew: bool = True


class MoneyBackGuarantee(ClauseBase):
    """A window after a purchase in which the customer gets money back.

    ``via: cancel`` — cancelling inside the window is the request (Kalenner);
    ``via: request`` — a ``money_back`` refund request (EmailConsul).
    """

    kind: Literal["money_back_guarantee"]
    window_days: int = Field(gt=0)
    window_from: Literal["initial_subscription", "payment"] = "payment"
    first_purchase_only: bool = False
    refund: Literal[RefundBasis.FULL, RefundBasis.UNUSED_DAYS, RefundBasis.FULL_IF_UNUSED]
    via: Literal["cancel", "request"]
    decision: Literal[Outcome.APPROVED, Outcome.NEEDS_REVIEW] = Outcome.APPROVED
    ends_service: Literal["immediately", "end_of_period"] = "immediately"


class CancellationTiming(ClauseBase):
    """When a cancellation takes effect.

    ``end_of_period``: the current billing period; ``end_of_commitment``: the commitment
    term (every remaining period is billed); ``end_of_month_period``: the current monthly
    slice of the subscription, for any interval (Kalenner). ``immediate_option``: a
    cancellation asking to end now ends at once (refund per ``CancellationRefund``).
    ``cutoff_before_renewal``: a cancellation dated on the renewal date itself takes
    effect only after the renewal.
    """

    kind: Literal["cancellation_timing"]
    effective: Literal["end_of_period", "end_of_commitment", "end_of_month_period"]
    immediate_option: bool = False
    cutoff_before_renewal: bool = False
    channels: list[Channel] = Field(default_factory=lambda: [Channel.PORTAL, Channel.SUPPORT])


class CancellationRefund(ClauseBase):
    """What a cancellation refunds, for the plan intervals listed (empty: every plan).

    ``when``: ``always`` or ``immediate`` (only a cancellation that ends service now).
    """

    kind: Literal["cancellation_refund"]
    refund: Literal[RefundBasis.NONE, RefundBasis.UNUSED_DAYS, RefundBasis.FULL_REMAINING_MONTHS]
    intervals: list[Literal["month", "year", "multi_month"]] = Field(default_factory=list)
    when: Literal["always", "immediate"] = "always"
    decision: Literal[Outcome.APPROVED, Outcome.NEEDS_REVIEW] = Outcome.APPROVED


class NonRefundable(ClauseBase):
    """Items whose payments are never refunded on request once delivered or started."""

    kind: Literal["non_refundable"]
    items: list[ItemKind] = Field(min_length=1)


class ExceptionRefund(ClauseBase):
    """A refund the policy grants as an exception to its general rule.

    ``within_days`` from the charge; ``after_days``: only once the problem has lasted
    longer than that (non-delivery: not resolved within those days, so a problem resolved
    at exactly that many days does not count); ``documents_required``: supporting
    documents must come with the request; ``basis`` says what is refunded; ``destination``
    where cash goes.
    """

    kind: Literal["exception_refund"]
    reason: Literal[
        RequestKind.DUPLICATE_CHARGE,
        RequestKind.BILLING_ERROR,
        RequestKind.OVERPAYMENT,
        RequestKind.UNAUTHORIZED,
        RequestKind.NON_DELIVERY,
        RequestKind.PAYMENT_BY_MISTAKE,
        RequestKind.TERMS_DECLINED,
        RequestKind.EXCEPTIONAL,
        RequestKind.UNUSED_PERIOD,
    ]
    decision: Outcome
    basis: RefundBasis
    destination: Destination | None = None
    within_days: int | None = Field(default=None, gt=0)
    after_days: int | None = Field(default=None, gt=0)
    documents_required: bool = False
    order_numbers_required: int = Field(default=0, ge=0)


class OutageCompensation(ClauseBase):
    """Compensation for a service disruption, prorated by exact duration.

    Applies to outages of at least ``min_duration_hours`` (more than, with
    ``strictly_longer``) whose cause is one of ``causes``, reported within
    ``report_within_hours`` when set; the compensation goes to ``destination``;
    ``alternatives`` are other remedies a reviewer may choose instead.
    """

    kind: Literal["outage_compensation"]
    min_duration_hours: int = Field(ge=0)
    strictly_longer: bool = False  # "more than 72 hours" vs "at least 4 hours"
    report_within_hours: int | None = Field(default=None, gt=0)
    causes: list[OutageCause] = Field(min_length=1)
    destination: Destination
    decision: Outcome = Outcome.NEEDS_REVIEW
    alternatives: list[Literal["extend_period", "message_credits"]] = Field(default_factory=list)


class CoolingOff(ClauseBase):
    """Statutory cooling-off for consumers acquired by direct marketing.

    Customers of ``customer_types`` acquired through ``acquisition`` may cancel within
    ``business_days`` (in writing, with ``written_notice``) and get ``refund``; agreements
    above ``max_amount`` (in the policy's currency) are not covered.
    """

    kind: Literal["cooling_off"]
    business_days: int = Field(gt=0)
    customer_types: tuple[Literal["consumer", "business"], ...] = ("consumer",)
    acquisition: tuple[Literal["direct_marketing", "self_serve"], ...] = ("direct_marketing",)
    written_notice: bool = True
    max_amount: Decimal | None = Field(default=None, json_schema_extra={"unit": "amount"})
    refund: Literal[RefundBasis.FULL_IF_UNUSED, RefundBasis.FULL]
    decision: Literal[Outcome.APPROVED, Outcome.NEEDS_REVIEW] = Outcome.APPROVED

    _amount = field_validator("max_amount", mode="before")(
        lambda v: None if v is None else _decimal_text(v)
    )


class RequestRequirements(ClauseBase):
    """What every refund request must carry, and the window it must come in.

    ``window_days`` counts from the charge the request is about; ``kinds`` lists the
    request kinds the rule covers (empty: every kind).
    """

    kind: Literal["request_requirements"]
    window_days: int | None = Field(default=None, gt=0)
    window_from: Literal["charge"] = "charge"
    reason_required: bool = False
    order_number_required: bool = False
    same_payment_method: bool = False
    kinds: list[RequestKind] = Field(default_factory=list)  # empty: every kind


class DeclineGround(ClauseBase):
    """A ground on which a request is declined automatically: no reason given, a request
    for "on the go" plan funds, a refund asked to another payment method than the one that
    paid, a request after its window, or an account with a recorded violation."""

    kind: Literal["decline_ground"]
    ground: Literal[
        "no_reason", "on_go_funds", "different_payment_method", "window_expired", "violation"
    ]
    # ``on_go_funds``: the purchases that are "on go" funds, by product kind (EmailConsul:
    # one-time ``message_credits``); a request about a payment for one is declined.
    items: list[ItemKind] = Field(default_factory=list)

    @model_validator(mode="after")
    def _items_for_on_go_funds(self) -> DeclineGround:
        if (self.ground == "on_go_funds") != bool(self.items):
            raise ValueError("items lists the on-go purchases, for ground on_go_funds only")
        return self


class RefundDestination(ClauseBase):
    """Where refunds go by default; ``aml_exception``: flagged accounts get cash back."""

    kind: Literal["refund_destination"]
    default: Destination
    aml_exception: bool = False
    same_method_only: bool = False


class Fees(ClauseBase):
    """Fees a reviewer may deduct from a refund: processing costs, a flat fee of at most
    ``flat_fee_max_percent`` of the refund; ``fx_risk_on_customer``: a refund of a payment in
    another currency is converted at the refund day's rate, the customer bearing the
    difference."""

    kind: Literal["fees"]
    processing_costs: bool = False
    flat_fee_max_percent: Decimal | None = Field(
        default=None, json_schema_extra={"unit": "percent"}
    )
    fx_risk_on_customer: bool = False

    _pct = field_validator("flat_fee_max_percent", mode="before")(
        lambda v: None if v is None else _decimal_text(v)
    )


class PlanChange(ClauseBase):
    """Upgrades and downgrades (which is which is decided by price).

    ``upgrade``: at once, charging the price difference for the rest of the period, or at
    the end of the period. ``downgrade``: at the end of the period, by cancelling and
    subscribing again, or at once with a credit. ``downgrade_refund``: whether the price
    difference of a downgrade is refunded.
    """

    kind: Literal["plan_change"]
    upgrade: Literal["immediate_prorated", "end_of_period"] = "immediate_prorated"
    downgrade: Literal["end_of_period", "cancel_and_resubscribe", "immediate_credit"] = (
        "end_of_period"
    )
    downgrade_refund: bool = False


class UsageTiers(ClauseBase):
    """Plans priced by a usage metric: up at once pro rata, down with a credit note.

    A tier change is detected within ``detection_hours`` of the usage crossing a tier.
    """

    kind: Literal["usage_tiers"]
    up: Literal["immediate_prorated"] = "immediate_prorated"
    down: Literal["credit_note_next_invoice", "none"] = "credit_note_next_invoice"
    detection_hours: int = Field(default=24, gt=0)


class PrepaidCredits(ClauseBase):
    """Prepaid message credits: validity, transfer, refund and failed-delivery returns.

    ``failed_delivery`` maps a failure cause to what happens to the credits spent
    (``return`` them, leave it to a ``review``, or ``none``); ``forfeit_on`` lists the events
    that forfeit unused credits.
    """

    kind: Literal["prepaid_credits"]
    validity_days: int | None = Field(default=None, gt=0)
    transferable: bool = False
    refundable: bool = False
    extendable: bool = False
    failed_delivery: dict[DeliveryFailure, Literal["return", "review", "none"]] = Field(
        default_factory=dict
    )
    forfeit_on: list[Literal["closure", "termination", "cancellation", "suspension"]] = Field(
        default_factory=list
    )


class Dunning(ClauseBase):
    """Failed payments: retries (days after the first failure), suspension, reactivation."""

    kind: Literal["dunning"]
    retry_offsets_days: list[int] = Field(default_factory=list)
    suspend_after_last: bool = True
    reactivate_on_payment: bool = True
    notify: bool = True

    @field_validator("retry_offsets_days")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if any(d <= 0 for d in value) or value != sorted(set(value)):
            raise ValueError("retry offsets are positive days in ascending order")
        return value


class Disputes(ClauseBase):
    """Chargebacks: suspend when support was not contacted first; a fee may apply.

    ``terminate_if_unjustified: review`` leaves ending the account to a reviewer; ``fee`` is
    an amount in the policy's currency.
    """

    kind: Literal["disputes"]
    suspend_if_support_not_contacted: bool = True
    terminate_if_unjustified: Literal["never", "review"] = "never"
    fee: Decimal | None = Field(default=None, json_schema_extra={"unit": "amount"})

    _fee = field_validator("fee", mode="before")(lambda v: None if v is None else _decimal_text(v))


class Violations(ClauseBase):
    """Breach of terms: the merchant ends or suspends service, with no refund."""

    kind: Literal["violations"]
    action: Literal["terminate", "suspend"]
    refund: Literal[RefundBasis.NONE] = RefundBasis.NONE
    forfeit_credits: bool = False


class Trials(ClauseBase):
    """Free trials: whether a card is needed, whether the trial turns into a paid
    subscription by itself, and whether trial credits carry over to a paid plan."""

    kind: Literal["trials"]
    card_required: bool = False
    credits_roll_over: bool = False
    converts_automatically: bool = False


class Promotions(ClauseBase):
    """Promotional discounts and credits: whether they are refundable (paid out as cash)
    and whether they combine with other offers."""

    kind: Literal["promotions"]
    refundable: bool = False
    combinable: bool = False


class DataRetention(ClauseBase):
    """Days data is kept after the service ends, by how it ended (0: deleted at once)."""

    kind: Literal["data_retention"]
    after_cancellation_days: int | None = Field(default=None, ge=0)
    after_suspension_days: int | None = Field(default=None, ge=0)
    after_termination_days: int | None = Field(default=None, ge=0)
    after_closure_days: int | None = Field(default=None, ge=0)
    export_anytime: bool = True


class Deadlines(ClauseBase):
    """Review and processing deadlines in business days (the policy country's public
    holidays excluded): review counts from the request, processing from the approval."""

    kind: Literal["deadlines"]
    review_business_days: int | None = Field(default=None, gt=0)
    processing_business_days: int | None = Field(default=None, gt=0)


class Appeals(ClauseBase):
    """Whether a customer may appeal a refund decision (when not, an appeal is refused with
    a reason)."""

    kind: Literal["appeals"]
    allowed: bool


class TermsAcceptance(ClauseBase):
    """What the customer accepts at payment (the terms version, any withdrawal waiver)."""

    kind: Literal["terms_acceptance"]
    withdrawal_waived_at_payment: bool = False


class TermsChange(ClauseBase):
    """Publishing new terms: notice by email; continued use is acceptance."""

    kind: Literal["terms_change"]
    notify_material_changes: bool = True
    continued_use_is_acceptance: bool = True


class AccountClosure(ClauseBase):
    """A customer closing the account: treated as a cancellation, credits forfeited."""

    kind: Literal["account_closure"]
    treated_as_cancellation: bool = True
    refund: Literal[RefundBasis.NONE] = RefundBasis.NONE
    forfeit_credits: bool = True


class Activation(ClauseBase):
    """Activation details are sent by email once registration and payment succeed."""

    kind: Literal["activation"]
    notify_on_payment: bool = True


Clause = Annotated[
    BillingTerms
    | MoneyBackGuarantee
    | CancellationTiming
    | CancellationRefund
    | NonRefundable
    | ExceptionRefund
    | OutageCompensation
    | CoolingOff
    | RequestRequirements
    | DeclineGround
    | RefundDestination
    | Fees
    | PlanChange
    | UsageTiers
    | PrepaidCredits
    | Dunning
    | Disputes
    | Violations
    | Trials
    | Promotions
    | DataRetention
    | Deadlines
    | Appeals
    | TermsAcceptance
    | TermsChange
    | AccountClosure
    | Activation,
    Field(discriminator="kind"),
]

C = TypeVar("C", bound=ClauseBase)
T = TypeVar("T")


class ClauseIdError(ValueError):
    """A clause id that breaks the policy's id rules; ``index`` is the clause's position."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class NotAutomated(_Strict):
    """A sentence of the published text that states no rule a machine can run."""

    source: str = Field(min_length=1, description="The sentence, verbatim.")
    why: str = Field(min_length=1, description="Why no clause implements it.")


_KINDS = "_clauses_by_kind"  # Policy.__dict__ key of the per-kind index (not a field)


def _known(value: str, problem: Callable[[str], str | None]) -> str:
    why = problem(value)
    if why is not None:
        raise ValueError(why)
    return value


class Policy(_Strict):
    """One merchant policy, one version. ``clauses`` ids are unique and start with ``id/``."""

    id: str = Field(pattern=r"^[a-z0-9]+$", description="The policy's short name.")
    name: str = Field(description="The merchant's name, as customers know it.")
    version: str = Field(description="This version's label, usually the text's date.")
    effective: date = Field(description="The date this version applies from.")
    seed: str = Field(description="The file of the published text the sources quote.")
    language: str = Field(default="en", description="The language of the published text.")
    currency: str = Field(description="ISO 4217 code of the merchant's prices and refunds.")
    timezone: str = Field(description="IANA timezone in which days and dates are counted.")
    country: str = Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 country whose public holidays business days skip.",
    )
    rounding: Rounding = Field(
        default=Rounding.HALF_UP, description="How amounts round to the currency's minor unit."
    )
    clauses: list[Clause] = Field(min_length=1, description="The rules, in any order.")
    not_automated: list[NotAutomated] = Field(
        default_factory=list, description="The text's sentences that state no runnable rule."
    )
    customer_types: tuple[Literal["consumer", "business"], ...] = Field(
        default=("consumer", "business"),
        min_length=1,
        description="Who the merchant sells to; consumer law floors apply to consumers.",
    )
    lint: LintSettings = Field(
        default_factory=LintSettings,
        description="Settings of `fairbill policy lint`: findings suppressed, each with why.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return _known(check_currency(value), currency_problem)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _known(value, timezone_problem)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        # ``holidays`` must know it: business-day deadlines skip its public holidays.
        return _known(value, country_problem)

    @model_validator(mode="after")
    def _ids(self) -> Policy:
        seen: set[str] = set()
        for index, clause in enumerate(self.clauses):
            if not clause.id.startswith(f"{self.id}/"):
                raise ClauseIdError(f"clause id {clause.id!r} must start with '{self.id}/'", index)
            if clause.id in seen:
                raise ClauseIdError(f"clause id {clause.id!r} is used twice", index)
            seen.add(clause.id)
        return self

    def clauses_of(self, kind: type[C]) -> list[C]:
        cache = self.__dict__.get(_KINDS)
        if cache is not None and cache[0] is self.clauses and kind in cache[1]:
            return list(cache[1][kind])
        return list(self._of_kind(kind))

    def first(self, kind: type[C]) -> C | None:
        cache = self.__dict__.get(_KINDS)
        if cache is not None and cache[0] is self.clauses and kind in cache[1]:
            found = cache[1][kind]
        else:
            found = self._of_kind(kind)
        return found[0] if found else None

    def _of_kind(self, kind: type[C]) -> tuple[C, ...]:
        """The clauses of ``kind``, found once per policy and kind (decisions ask the same
        questions of one policy over and over). Kept in the instance's ``__dict__`` beside
        the fields, which pydantic ignores there (equality, dumps and digests compare
        fields only), and tied to the ``clauses`` list it was built from, so a copy with
        other clauses (``model_copy(update=...)``) builds its own. The list itself is not
        to be changed in place (the model is frozen)."""
        cache = self.__dict__.get(_KINDS)
        clauses = self.clauses
        if cache is None or cache[0] is not clauses:
            cache = self.__dict__[_KINDS] = (clauses, {})
        index: dict[type, tuple[ClauseBase, ...]] = cache[1]
        found = index.get(kind)
        if found is None:
            found = index[kind] = tuple(c for c in clauses if isinstance(c, kind))
        return found  # type: ignore[return-value]

    def derived(self, key: str, build: Callable[[Policy], T]) -> T:
        """What ``build`` computes from this policy, computed once (the decisions ask the
        same questions of one policy over and over: its decline grounds, its exceptions by
        request kind); kept beside the per-kind index and dropped with it."""
        cache = self.__dict__.get(_KINDS)
        if cache is None or cache[0] is not self.clauses:
            cache = self.__dict__[_KINDS] = (self.clauses, {})
        index: dict[object, Any] = cache[1]
        if key in index:
            return index[key]  # type: ignore[no-any-return]
        value = index[key] = build(self)
        return value

    def clause(self, clause_id: str) -> ClauseBase:
        for c in self.clauses:
            if c.id == clause_id:
                return c
        raise KeyError(clause_id)
