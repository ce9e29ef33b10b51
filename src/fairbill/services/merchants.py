"""Merchant, catalog, customer and credential use cases (the API's admin side).

Secrets are generated here and returned once; only their SHA-256 hashes are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairbill.errors import Conflict, NotFound
from fairbill.gateway.port import PaymentGateway
from fairbill.lifecycle import CUSTOMER_ENDED, CustomerStatus
from fairbill.money import Money
from fairbill.policy.load import parse_policy
from fairbill.policy.model import Policy
from fairbill.services import credential_cache, policies
from fairbill.services.clock import Clock
from fairbill.services.context import Ctx
from fairbill.store.tables import (
    ApiKeyRow,
    CustomerRow,
    MerchantRow,
    PaymentMethodRow,
    PlanRow,
    PortalTokenRow,
    ProductRow,
    PromotionRow,
)

ROLES = ("admin", "finance", "support", "readonly")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(kind: str) -> tuple[str, str, str]:
    """(full key shown once, prefix stored in clear, hash stored)."""
    prefix = f"{kind}_{secrets.token_hex(6)}"
    full = f"{prefix}.{secrets.token_urlsafe(24)}"
    return full, prefix, _hash(full)


def split_prefix(full: str) -> str:
    return full.split(".", 1)[0]


def verify(full: str, stored_hash: str) -> bool:
    return hmac.compare_digest(_hash(full), stored_hash)


@dataclass(frozen=True)
class IssuedKey:
    role: str
    key: str
    prefix: str


def create_merchant(
    session: Session,
    now: datetime,
    *,
    name: str,
    policy_ref: str | None = None,
    policy_text: str | None = None,
    currency: str | None = None,
    timezone: str | None = None,
    country: str | None = None,
    finance_email: str | None = None,
) -> tuple[MerchantRow, list[IssuedKey]]:
    if policy_text is not None:
        text, name_ = policy_text, "policy_text"
    else:
        assert policy_ref is not None, "a bundled id or a file, or the policy's text"
        text, name_ = policies.source_text(policy_ref)
    policy = parse_policy(text, name_)
    row = MerchantRow(
        name=name,
        # Where the first version came from; decisions read the stored versions only.
        policy_ref=policy_ref if policy_text is None else f"upload:{policy.id}",
        policy_id=policy.id,
        policy_version=policy.version,
        currency=currency or policy.currency,
        timezone=timezone or policy.timezone,
        country=country or policy.country,
        language=policy.language,
        finance_email=finance_email,
    )
    session.add(row)
    session.flush()
    # Read once, stored whole: decisions never read the file again.
    first, _ = policies.add_draft(session, row, text, at=now, by="merchant creation", name=name_)
    policies.publish(session, row, first, at=now)
    keys = [issue_key(session, row, role, now) for role in ROLES]
    return row, keys


def add_merchant(
    session: Session,
    policy: Policy,
    *,
    name: str,
    policy_ref: str,
    currency: str,
    timezone: str,
    country: str,
    id_key: str | None = None,
) -> MerchantRow:
    """A merchant under a policy already read and parsed, flushed (it has its id), with
    no policy version stored and no API key issued: the caller stores the policy
    (``policies.store_published``). What the simulator replays a scenario's merchant with;
    ``create_merchant`` reads the policy's text and issues the keys. ``id_key``: the key
    its public ids are enciphered under (a fixed one gives the same ids every time);
    None, a new random one."""
    row = MerchantRow(
        name=name,
        policy_ref=policy_ref,
        policy_id=policy.id,
        policy_version=policy.version,
        currency=currency,
        timezone=timezone,
        country=country,
        language=policy.language,
    )
    if id_key is not None:
        row.id_key = id_key
    session.add(row)
    session.flush()
    return row


def set_finance_email(merchant: MerchantRow, address: str | None) -> None:
    """Where alerts for the merchant's finance people go (``services.alerts``); None: no
    address, their alerts are parked in the outbox. The caller has checked the address
    (the API's ``EmailStr``)."""
    merchant.finance_email = address


def issue_key(session: Session, merchant: MerchantRow, role: str, now: datetime) -> IssuedKey:
    if role not in ROLES:
        raise Conflict(f"unknown role {role!r}")
    full, prefix, digest = new_secret("fb")
    session.add(
        ApiKeyRow(
            merchant_id=merchant.id, prefix=prefix, secret_hash=digest, role=role, created_at=now
        )
    )
    return IssuedKey(role, full, prefix)


def authenticate_key(session: Session, full: str) -> ApiKeyRow | None:
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == split_prefix(full)))
    if row is None or row.revoked_at is not None or not verify(full, row.secret_hash):
        return None
    return row


def api_keys(session: Session, merchant: MerchantRow) -> list[ApiKeyRow]:
    """The merchant's keys, oldest first: prefixes and roles only, never secrets."""
    return list(
        session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.merchant_id == merchant.id).order_by(ApiKeyRow.id)
        )
    )


def revoke_key(session: Session, merchant: MerchantRow, prefix: str, now: datetime) -> ApiKeyRow:
    """Revoke one key for good. Revoking twice is a no-op; the merchant's last live admin
    key cannot be revoked, or nobody could issue keys for it again."""
    row = session.scalar(
        select(ApiKeyRow).where(ApiKeyRow.merchant_id == merchant.id, ApiKeyRow.prefix == prefix)
    )
    if row is None:
        raise NotFound(f"no API key {prefix!r}")
    if row.revoked_at is not None:
        return row
    live_admins = [
        k for k in api_keys(session, merchant) if k.role == "admin" and k.revoked_at is None
    ]
    if live_admins == [row]:
        raise Conflict(f"{prefix} is the merchant's last admin key: issue another first")
    row.revoked_at = now
    # This process refuses it at once; the others once their cached entry is too old.
    credential_cache.forget(prefix)
    return row


PORTAL_TOKEN_DAYS = 30  # default life of a self-service token
MAX_PORTAL_TOKEN_DAYS = 365


@dataclass(frozen=True)
class IssuedToken:
    token: str
    prefix: str
    expires_at: datetime


def issue_portal_token(
    session: Session, customer: CustomerRow, now: datetime, days: int = PORTAL_TOKEN_DAYS
) -> IssuedToken:
    """A token that expires: a link mailed to a customer must not open the account forever."""
    if not 1 <= days <= MAX_PORTAL_TOKEN_DAYS:
        raise Conflict(f"a portal token lives 1 to {MAX_PORTAL_TOKEN_DAYS} days, not {days}")
    full, prefix, digest = new_secret("cpt")
    # A lifetime in elapsed hours, not local calendar days: DST does not stretch it.
    expires_at = now.astimezone(UTC) + timedelta(days=days)
    session.add(
        PortalTokenRow(
            customer_id=customer.id,
            prefix=prefix,
            secret_hash=digest,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return IssuedToken(full, prefix, expires_at)


# A secret as ``new_secret`` makes it: the prefix, a dot, then the part only its holder has.
_SECRET = re.compile(r"^((?:fb|cpt)_[0-9a-f]{12})\.[A-Za-z0-9_-]+$")


def redact_secrets(value: Any) -> Any:
    """``value`` with every full key or token cut back to its prefix, for what is stored
    beside a response (idempotent replays): secrets are shown once, then only by prefix."""
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    if isinstance(value, str) and (match := _SECRET.match(value)):
        return f"{match.group(1)}.redacted"
    return value


def authenticate_portal(session: Session, full: str, now: datetime) -> PortalTokenRow | None:
    """The token's row while it acts for its customer: not expired, not revoked, and its
    customer's account neither closed nor terminated (accounts closed before tokens
    could be revoked are refused too)."""
    row = session.scalar(select(PortalTokenRow).where(PortalTokenRow.prefix == split_prefix(full)))
    if row is None or not verify(full, row.secret_hash):
        return None
    if not portal_token_live(session, row, now):
        return None
    return row


def portal_token_live(session: Session, row: PortalTokenRow, now: datetime) -> bool:
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return False
    status = session.scalar(select(CustomerRow.status).where(CustomerRow.id == row.customer_id))
    return status not in CUSTOMER_ENDED


def portal_tokens(session: Session, customer: CustomerRow) -> list[PortalTokenRow]:
    """The customer's portal tokens, oldest first: prefixes and times, never secrets."""
    return list(
        session.scalars(
            select(PortalTokenRow)
            .where(PortalTokenRow.customer_id == customer.id)
            .order_by(PortalTokenRow.id)
        )
    )


def revoke_portal_token(
    session: Session, customer: CustomerRow, prefix: str, now: datetime
) -> PortalTokenRow:
    """Revoke one of the customer's tokens for good (twice is a no-op). A prefix of
    another customer's token is ``NotFound``, as an unknown one."""
    row = session.scalar(
        select(PortalTokenRow).where(
            PortalTokenRow.customer_id == customer.id, PortalTokenRow.prefix == prefix
        )
    )
    if row is None:
        raise NotFound(f"no portal token {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def revoke_portal_tokens(session: Session, customer: CustomerRow, now: datetime) -> int:
    """Revoke every live token of the customer (their account closes); returns how many."""
    live = [t for t in portal_tokens(session, customer) if t.revoked_at is None]
    for token in live:
        token.revoked_at = now
    return len(live)


def merchant_policy(session: Session, merchant: MerchantRow) -> Policy:
    """The merchant's current policy version (stored: never read from a file again)."""
    return policies.current(session, merchant)[1]


def context(session: Session, clock: Clock, gateway: PaymentGateway, merchant: MerchantRow) -> Ctx:
    """A unit of work for the merchant, under its current policy version."""
    version_id, policy = policies.current(session, merchant)
    return Ctx(session, clock, gateway, merchant, policy, version_id)


def _minor(amount: Decimal, currency: str) -> int:
    return Money(amount, currency).minor


def add_plan(session: Session, merchant: MerchantRow, spec: dict[str, Any]) -> PlanRow:
    _unique(session, PlanRow, merchant, spec["id"])
    tiers = spec.get("tiers")
    row = PlanRow(
        merchant_id=merchant.id,
        code=spec["id"],
        interval_months=spec["interval_months"],
        price_minor=_minor(spec["price"], merchant.currency)
        if spec.get("price") is not None
        else None,
        commitment_months=spec.get("commitment_months"),
        includes=spec.get("includes") or {},
        tiers=[
            {"up_to": t["up_to"], "price_minor": _minor(t["price"], merchant.currency)}
            for t in tiers["levels"]
        ]
        if tiers
        else None,
        tier_metric=tiers["metric"] if tiers else None,
    )
    session.add(row)
    session.flush()
    return row


def add_product(session: Session, merchant: MerchantRow, spec: dict[str, Any]) -> ProductRow:
    _unique(session, ProductRow, merchant, spec["id"])
    row = ProductRow(
        merchant_id=merchant.id,
        code=spec["id"],
        kind=spec["kind"],
        quantity=spec.get("quantity"),
        credit_kind=spec.get("credit_kind"),
        price_minor=_minor(spec["price"], merchant.currency),
    )
    session.add(row)
    session.flush()
    return row


def add_promotion(session: Session, merchant: MerchantRow, spec: dict[str, Any]) -> PromotionRow:
    _unique(session, PromotionRow, merchant, spec["id"])
    off = spec.get("amount_off")
    row = PromotionRow(
        merchant_id=merchant.id,
        code=spec["id"],
        percent_off=str(spec["percent_off"]) if spec.get("percent_off") is not None else None,
        amount_off_minor=_minor(off, merchant.currency) if off is not None else None,
        duration_periods=spec.get("duration_periods"),
    )
    session.add(row)
    session.flush()
    return row


def _unique(session: Session, model: Any, merchant: MerchantRow, code: str) -> None:
    if (
        session.scalar(select(model.id).where(model.merchant_id == merchant.id, model.code == code))
        is not None
    ):
        raise Conflict(f"{model.__tablename__[:-1]} {code!r} already exists")


def create_customer(session: Session, merchant: MerchantRow, spec: dict[str, Any]) -> CustomerRow:
    _unique(session, CustomerRow, merchant, spec["id"])
    row = CustomerRow(
        merchant_id=merchant.id,
        code=spec["id"],
        email=spec.get("email"),
        type=spec.get("type") or "business",
        acquisition=spec.get("acquisition") or "self_serve",
        flags=list(spec.get("flags") or []),
        language=spec.get("language") or merchant.language,
        status=CustomerStatus.ACTIVE,
    )
    session.add(row)
    session.flush()
    return row


def find_customer(session: Session, merchant: MerchantRow, code: str) -> CustomerRow:
    row = session.scalar(
        select(CustomerRow).where(CustomerRow.merchant_id == merchant.id, CustomerRow.code == code)
    )
    if row is None:
        raise NotFound(f"no customer {code!r}")
    return row


def add_payment_method(
    session: Session, merchant: MerchantRow, customer: CustomerRow, spec: dict[str, Any]
) -> PaymentMethodRow:
    exists = session.scalar(
        select(PaymentMethodRow.id).where(
            PaymentMethodRow.customer_id == customer.id, PaymentMethodRow.code == spec["id"]
        )
    )
    if exists is not None:
        raise Conflict(f"payment method {spec['id']!r} already exists")
    row = PaymentMethodRow(
        customer_id=customer.id,
        code=spec["id"],
        type=spec.get("type") or "card",
        currency=spec.get("currency") or merchant.currency,
        token=spec.get("token") or f"tok_{secrets.token_hex(8)}",
    )
    session.add(row)
    session.flush()
    return row


def add_given_payment_method(
    session: Session, customer: CustomerRow, *, code: str, type: str, currency: str, token: str
) -> PaymentMethodRow:
    """A payment method stored exactly as given, nothing defaulted or made up (unlike
    ``add_payment_method``, which takes a missing or empty type for a card and makes up
    a token): for a caller whose values are already checked and complete, the simulator,
    whose tokens are fixed so that a replay gives the same rows. A code the customer
    already has is a ``Conflict``."""
    exists = session.scalar(
        select(PaymentMethodRow.id).where(
            PaymentMethodRow.customer_id == customer.id, PaymentMethodRow.code == code
        )
    )
    if exists is not None:
        raise Conflict(f"payment method {code!r} already exists")
    row = PaymentMethodRow(
        customer_id=customer.id, code=code, type=type, currency=currency, token=token
    )
    session.add(row)
    session.flush()
    return row
