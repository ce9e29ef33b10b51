"""Request plumbing: the database session, who is calling, and the merchant context."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from fairbill.api.problems import forbidden, unauthorized
from fairbill.api.settings import Runtime
from fairbill.services import merchants as merchant_service
from fairbill.services.context import Ctx
from fairbill.store.tables import CustomerRow, MerchantRow

# What each role may do. A portal token may only act on its own customer, and only read,
# cancel, preview, ask for a refund and export its own data (data portability):
PORTAL = frozenset({"read", "cancel", "preview", "request_refund", "export"})
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "read",
            "catalog",
            "customers",
            "subscribe",
            "cancel",
            "change_plan",
            "preview",
            "usage",
            "purchase",
            "request_refund",
            "review",
            "refund",
            "outage",
            "dispute",
            "terms",
            "close",
            "export",
            "keys",
            "policy",  # upload and publish policy versions
        }
    ),
    "finance": frozenset(
        {"read", "preview", "review", "refund", "outage", "dispute", "request_refund", "export"}
    ),
    "support": frozenset({"read", "cancel", "preview", "request_refund", "export"}),
    "readonly": frozenset({"read"}),
}


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" (platform operator) | "key" | "portal"
    actor: str
    merchant_id: int | None = None
    role: str | None = None
    customer_id: int | None = None

    def allows(self, permission: str) -> bool:
        if self.kind == "admin":
            return True
        if self.kind == "portal":
            return permission in PORTAL
        return permission in ROLE_PERMISSIONS.get(self.role or "", frozenset())


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def db(rt: Annotated[Runtime, Depends(runtime)]) -> Iterator[Session]:
    """A read-only session: state changes go through ``mutation.mutate``'s own."""
    with rt.reads() as session:
        yield session


MAX_REQUEST_ID = 64  # the audit log's request_id column


def client_request_id(header: str | None) -> str:
    """The caller's ``X-Request-Id`` if it fits the audit log, else a new one (a longer
    one made every state change a 500 on PostgreSQL)."""
    if header and len(header) <= MAX_REQUEST_ID:
        return header
    return f"req_{uuid.uuid4().hex[:16]}"


def request_id(request: Request) -> str:
    rid = client_request_id(request.headers.get("x-request-id"))
    request.state.request_id = rid
    return rid


def principal(
    session: Annotated[Session, Depends(db)],
    rt: Annotated[Runtime, Depends(runtime)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    try:
        return _authenticate(session, rt, authorization)
    finally:
        # End the read now, or it keeps a pooled connection (and, under WAL, an old
        # snapshot) for the whole request while ``mutate`` works in a session of its own.
        session.rollback()


def _authenticate(session: Session, rt: Runtime, authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise unauthorized()
    token = authorization[7:].strip()
    if rt.admin_token and hmac.compare_digest(token.encode(), rt.admin_token.encode()):
        return Principal("admin", "admin")
    if token.startswith("fb_"):
        key = merchant_service.authenticate_key(session, token)
        if key is not None:
            return Principal("key", f"key:{key.prefix}", key.merchant_id, key.role)
    elif token.startswith("cpt_"):
        portal = merchant_service.authenticate_portal(session, token, rt.clock.now())
        if portal is not None:
            customer = session.get_one(CustomerRow, portal.customer_id)
            return Principal(
                "portal", f"portal:{portal.prefix}", customer.merchant_id, customer_id=customer.id
            )
    raise unauthorized()


Caller = Annotated[Principal, Depends(principal)]
Db = Annotated[Session, Depends(db)]


def need(who: Principal, permission: str) -> None:
    if not who.allows(permission):
        raise forbidden(f"this credential may not {permission.replace('_', ' ')}")


def merchant_ctx(session: Session, rt: Runtime, who: Principal) -> Ctx:
    if who.merchant_id is None:
        raise forbidden("a merchant key is needed for this resource")
    merchant = session.get_one(MerchantRow, who.merchant_id)
    return merchant_service.context(session, rt.clock, rt.gateway, merchant)


def customer_for(ctx: Ctx, who: Principal, code: str) -> CustomerRow:
    """The customer ``code`` of the caller's merchant; a portal token sees only its own.
    Anything else is a 404, so ids of other merchants' customers leak nothing."""
    customer = merchant_service.find_customer(ctx.session, ctx.merchant_row, code)
    if who.kind == "portal" and customer.id != who.customer_id:
        from fairbill.errors import NotFound

        raise NotFound(f"no customer {code!r}")
    return customer
