"""SQLAlchemy 2 tables and mapped rows of fairbill's billing state.

Money is stored exactly as integer minor units (``*_minor``) next to its currency, never
as REAL. Instants are stored as UTC-aware timestamps (``UtcDateTime``). Rows that record
history (payments, refunds, journal entries, decisions, notifications) are append-only:
services add new rows rather than rewriting old ones, except for status fields and the
running ``refunded_minor`` of a payment, which is always re-checked against the refunds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fairbill.ids import new_key


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for bulk statements."""
    return cast(Table, model.__table__)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them the same way on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


def _fk(target: str) -> Any:
    return mapped_column(ForeignKey(target, ondelete="RESTRICT"), index=True)


class MerchantRow(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    policy_ref: Mapped[str] = mapped_column(String(500))
    policy_id: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(16), default="en")
    # Where alerts for the merchant's finance people go: refunds that finally failed,
    # scheduled jobs that keep failing (migration 0005). NULL: none on file.
    finance_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # The key its rows' public ids are enciphered under (``fairbill.ids``, migration 0009).
    id_key: Mapped[str] = mapped_column(String(32), default=new_key)


class PolicyVersionRow(Base):
    """One version of a merchant's policy, stored whole (migration 0006). Immutable but
    for its status (draft, then published): ``digest`` is the SHA-256 of ``canonical``,
    the policy's canonical JSON, so the same content is the same version. ``text`` is the
    YAML as the merchant wrote it (line numbers for problems, the source of a render)."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("merchant_id", "digest"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    digest: Mapped[str] = mapped_column(String(64))
    policy_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))  # the file's own ``version``
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    canonical: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PlanRow(Base):
    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    code: Mapped[str] = mapped_column(String(100))
    interval_months: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    commitment_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    includes: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # [{"up_to": int | None, "price_minor": int}], ascending
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    tier_metric: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ProductRow(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    code: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    credit_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)


class PromotionRow(Base):
    __tablename__ = "promotions"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    code: Mapped[str] = mapped_column(String(100))
    percent_off: Mapped[str | None] = mapped_column(String(16), nullable=True)  # exact decimal text
    amount_off_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_periods: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CustomerRow(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        # The scheduler's daily "data retention over" select (migration 0003).
        Index("ix_customers_merchant_id_data_retained_until", "merchant_id", "data_retained_until"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    code: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)  # migration 0004
    type: Mapped[str] = mapped_column(String(16), default="business")
    acquisition: Mapped[str] = mapped_column(String(32), default="self_serve")
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(16), default="en")
    status: Mapped[str] = mapped_column(String(16), default="active")
    in_violation: Mapped[bool] = mapped_column(Boolean, default=False)
    terms_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    terms_notice_at: Mapped[datetime | None] = mapped_column(nullable=True)
    terms_declined_at: Mapped[datetime | None] = mapped_column(nullable=True)
    written_cancel_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_activity_at: Mapped[datetime | None] = mapped_column(nullable=True)
    data_retained_until: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    data_deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    wallet_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class PaymentMethodRow(Base):
    __tablename__ = "payment_methods"
    __table_args__ = (UniqueConstraint("customer_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    code: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32), default="card")
    currency: Mapped[str] = mapped_column(String(3))
    token: Mapped[str] = mapped_column(String(100))  # never card data: a gateway token
    declines: Mapped[bool] = mapped_column(Boolean, default=False)  # sandbox behaviour


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"
    # The scheduler's daily selects filter on a status and an instant: with these, each
    # reads only the due rows instead of every subscription of the merchant (migration 0003).
    __table_args__ = (
        Index("ix_subscriptions_status_next_retry_at", "status", "next_retry_at"),
        Index("ix_subscriptions_status_usage_check_at", "status", "usage_check_at"),
        Index("ix_subscriptions_status_current_period_end", "status", "current_period_end"),
        Index("ix_subscriptions_status_cancel_at", "status", "cancel_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    plan_code: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    anchor: Mapped[datetime]
    started_at: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime] = mapped_column(index=True)
    cancel_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    trial_end: Mapped[datetime | None] = mapped_column(nullable=True)
    payment_method: Mapped[str | None] = mapped_column(String(100), nullable=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)  # the price of the current period
    usage_level: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    usage_fell_at: Mapped[datetime | None] = mapped_column(nullable=True)
    usage_check_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    promotion_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    promotion_periods_left: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_plan: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The policy version the customer accepted for this subscription (migration 0006).
    policy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_versions.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    successor_plan: Mapped[str | None] = mapped_column(String(100), nullable=True)
    is_first: Mapped[bool] = mapped_column(Boolean, default=True)
    first_failed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    suspended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("customer_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id"), nullable=True, index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    wallet_applied_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_applied_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    overcharge_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime | None] = mapped_column(nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(nullable=True)
    purpose: Mapped[str] = mapped_column(String(32))  # subscription | proration | usage | product


class InvoiceLineRow(Base):
    __tablename__ = "invoice_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = _fk("invoices.id")
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime | None] = mapped_column(nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(nullable=True)
    product_code: Mapped[str | None] = mapped_column(String(100), nullable=True)


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("customer_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    invoice_id: Mapped[int] = _fk("invoices.id")
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(100))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # The same payment in the merchant's currency, as settled on the invoice (equal to the
    # amount unless the customer paid in another currency). Decisions reason in these.
    settled_minor: Mapped[int] = mapped_column(BigInteger)
    settled_refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    is_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    gateway_ref: Mapped[str] = mapped_column(String(100))
    disputed: Mapped[str | None] = mapped_column(String(16), nullable=True)  # open | won | lost


class FailedPaymentRow(Base):
    __tablename__ = "failed_payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    invoice_id: Mapped[int] = _fk("invoices.id")
    at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)


class RefundRow(Base):
    __tablename__ = "refunds"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id"), nullable=True, index=True
    )
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("requests.id"), nullable=True, index=True
    )
    at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    destination: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(100), nullable=True)
    clauses: Mapped[list[str]] = mapped_column(JSON, default=list)
    gateway_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # ``lifecycle.RefundStatus``: a refund to a card is pending until the gateway paid it
    # (migration 0005; earlier rows were paid at once).
    status: Mapped[str] = mapped_column(String(16), default="succeeded", server_default="succeeded")


class CreditNoteRow(Base):
    __tablename__ = "credit_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id"), nullable=True, index=True
    )
    applied_to_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id"), nullable=True, index=True
    )
    clauses: Mapped[list[str]] = mapped_column(JSON, default=list)


class WalletEntryRow(Base):
    __tablename__ = "wallet_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    at: Mapped[datetime]
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # + credit, − spend
    reason: Mapped[str] = mapped_column(Text)


class CreditPackRow(Base):
    __tablename__ = "credit_packs"
    # The scheduler's daily expiry select (migration 0003).
    __table_args__ = (Index("ix_credit_packs_status_expires_at", "status", "expires_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    forfeited: Mapped[int] = mapped_column(Integer, default=0)
    purchased_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="purchase")  # purchase | plan
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id"), nullable=True, index=True
    )


class RequestRow(Base):
    __tablename__ = "requests"
    __table_args__ = (UniqueConstraint("customer_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(32))
    recommendation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    destination: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    clauses: Mapped[list[str]] = mapped_column(JSON, default=list)
    explanation: Mapped[str] = mapped_column(Text, default="")
    review_due: Mapped[datetime | None] = mapped_column(nullable=True)
    paid_due: Mapped[datetime | None] = mapped_column(nullable=True)
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id"), nullable=True, index=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DecisionRow(Base):
    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    clauses: Mapped[list[str]] = mapped_column(JSON, default=list)
    explanation: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[str] = mapped_column(String(64))
    # The version that decided, and the call it decided (``decisions.codec``: canonical
    # JSON of the facts), so it can be decided again byte for byte (migration 0006; NULL
    # on older rows and on decisions no pure decider took).
    policy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_versions.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    facts: Mapped[str | None] = mapped_column(Text, nullable=True)


class OutageRow(Base):
    __tablename__ = "outages"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    start: Mapped[datetime]
    end: Mapped[datetime]
    cause: Mapped[str] = mapped_column(String(32))
    reported_at: Mapped[datetime | None] = mapped_column(nullable=True)


class NotificationRow(Base):
    """The outbox: a row per message to send; ``sent_at`` is set once it went out."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    # A message to a customer names the customer; one to the merchant's finance address
    # names the merchant instead (migration 0005).
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    at: Mapped[datetime]
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # Delivery (migration 0004): failures so far, when to try next, and, once parked
    # (no address, a permanent refusal, too many attempts), when and why.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class JournalTransactionRow(Base):
    __tablename__ = "journal_transactions"
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    key: Mapped[str] = mapped_column(String(200), unique=True)
    at: Mapped[datetime]
    description: Mapped[str] = mapped_column(Text)


class JournalEntryRow(Base):
    __tablename__ = "journal_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = _fk("journal_transactions.id")
    account: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id"), nullable=True, index=True
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class IdempotencyKeyRow(Base):
    """A service call's idempotency key, the fingerprint of its input and its result."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("merchant_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer)  # 0: the platform operator
    key: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # HTTP replay: None while the first request is still running.
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime]
    # The lease of a request in progress (migration 0005): past it, a key whose request
    # died with its process is released; ``owner`` names the process that holds it.
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ApiKeyRow(Base):
    """A merchant API key: only its SHA-256 hash is stored; ``prefix`` identifies it."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # admin | finance | support | readonly
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PortalTokenRow(Base):
    """A customer self-service token, scoped to one customer."""

    __tablename__ = "portal_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = _fk("customers.id")
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Revoked by the merchant, or when the account was closed or terminated.
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditLogRow(Base):
    """Append-only: who changed what, when, under which request id."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # "key:<prefix>" | "portal:<prefix>" | "system"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FxRateRow(Base):
    """An exchange rate from ``at`` on: 1 ``base`` = ``rate`` ``quote`` (exact decimal text)."""

    __tablename__ = "fx_rates"
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    base: Mapped[str] = mapped_column(String(3))
    quote: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime] = mapped_column(index=True)
    rate: Mapped[str] = mapped_column(String(32))


class GatewayOperationRow(Base):
    """A charge or refund sent (or to be sent) to the payment gateway.

    Committed ``pending`` before the gateway is called, with a key derived from stable ids
    (invoice id and attempt, refund id); its outcome is recorded in a second transaction.
    What depends on the money (the payment, the invoice paid, the refund paid, the journal)
    is written with that outcome, never before. ``lifecycle.OperationStatus`` holds the
    states and their transitions.
    """

    __tablename__ = "gateway_operations"
    __table_args__ = (
        Index("ix_gateway_operations_status_next_attempt_at", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    customer_id: Mapped[int] = _fk("customers.id")
    kind: Mapped[str] = mapped_column(String(16))  # charge | refund
    purpose: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id"), nullable=True, index=True
    )
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id"), nullable=True, index=True
    )
    refund_id: Mapped[int | None] = mapped_column(
        ForeignKey("refunds.id"), nullable=True, index=True
    )
    subscription_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token: Mapped[str | None] = mapped_column(String(100), nullable=True)
    method: Mapped[str | None] = mapped_column(String(100), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # in ``currency``, as sent
    currency: Mapped[str] = mapped_column(String(3))
    settled_minor: Mapped[int] = mapped_column(BigInteger)  # in the merchant's currency
    attempt: Mapped[int] = mapped_column(Integer)
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SandboxOperationRow(Base):
    """The sandbox gateway's own record of what it did, by idempotency key: the money it
    took or gave back. It stands for the processor's books, not fairbill's."""

    __tablename__ = "sandbox_operations"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # charge | refund
    token: Mapped[str | None] = mapped_column(String(100), nullable=True)
    charge_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    ok: Mapped[bool] = mapped_column(Boolean)
    reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime]


class SandboxFaultRow(Base):
    """A fault the sandbox gateway is told to produce: for ``operation`` (charge, refund or
    any), for one token (or every one), ``remaining`` more times (NULL: until removed)."""

    __tablename__ = "sandbox_faults"
    id: Mapped[int] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(String(16))
    token: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fault: Mapped[str] = mapped_column(String(32))
    remaining: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delay_ms: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class JobFailureRow(Base):
    """A due item of the scheduler that failed: retried with backoff, shown to the
    merchant, never blocking the others. ``resolved_at`` is set once it ran."""

    __tablename__ = "job_failures"
    __table_args__ = (UniqueConstraint("merchant_id", "job", "target"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = _fk("merchants.id")
    job: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WorkerHeartbeatRow(Base):
    """A process that runs due work, alive as of ``beat_at`` (wall clock): one row per
    process (``services.heartbeat``), read by ``/readyz`` (migration 0008)."""

    __tablename__ = "worker_heartbeats"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # "worker@host:pid"
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime] = mapped_column(index=True)
