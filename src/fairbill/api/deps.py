"""Request plumbing: the database session, who is calling, and the merchant context.

What each role may do, and the caller (``Principal``), are ``services.roles`` (the back
office checks the same table); they are re-exported here for the routes and tests.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fairbill.api.problems import Problem, forbidden, too_many_failures, unauthorized
from fairbill.api.settings import Runtime
from fairbill.services import merchants as merchant_service
from fairbill.services.context import Ctx
from fairbill.services.roles import PORTAL as PORTAL
from fairbill.services.roles import ROLE_PERMISSIONS as ROLE_PERMISSIONS
from fairbill.services.roles import Principal as Principal
from fairbill.store.tables import CustomerRow, MerchantRow


async def runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function in its thread pool, a hop per request.
    rt: Runtime = request.app.state.runtime
    return rt


async def db(rt: Annotated[Runtime, Depends(runtime)]) -> AsyncIterator[Session]:
    """A read-only session: state changes go through ``mutation.mutate``'s own.

    Made and closed on the event loop (a session opens no connection until its first
    query), not in the thread pool: a request's hops to threads are what its CPU goes to
    when its work is small. A session that did read is closed in a thread (a rollback may
    wait on the database)."""
    session = rt.reads()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


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


# Where ``api.guard`` leaves the principal it authenticated before reading a body.
GUARDED_PRINCIPAL = "fairbill.principal"


async def principal(
    request: Request,
    session: Annotated[Session, Depends(db)],
    rt: Annotated[Runtime, Depends(runtime)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    known = request.scope.get("state", {}).get(GUARDED_PRINCIPAL)
    if isinstance(known, Principal):
        return known  # the guard authenticated this request before its body was read
    client = client_address(request)
    # A key the credential cache knows needs neither the database nor a thread.
    who = known_caller(rt, authorization, client)
    if who is None:
        who = await run_in_threadpool(_looked_up, session, rt, authorization, client)
    request.state.principal = who  # the request's log line names it (``api.observe``)
    return who


def _looked_up(session: Session, rt: Runtime, authorization: str | None, client: str) -> Principal:
    try:
        return authenticate(session, rt, authorization, client)
    finally:
        # End the read now, or it keeps a pooled connection (and, under WAL, an old
        # snapshot) for the whole request while ``mutate`` works in a session of its own.
        session.rollback()


def client_address(request: Request) -> str:
    """Whom failed authentications are counted against (``api.throttle``): the peer's
    address (behind a proxy, uvicorn's ``--forwarded-allow-ips`` makes it the client's)."""
    return request.client.host if request.client else "unknown"


def authenticate(
    session: Session, rt: Runtime, authorization: str | None, client: str
) -> Principal:
    """The caller, or 401; a client with too many recent failures is refused (429) before
    its credentials are looked at, and every 401 counts as one more failure."""
    wait = rt.throttle.retry_after(client)
    if wait:
        raise too_many_failures(wait)
    try:
        return _authenticate(session, rt, authorization)
    except Problem:
        rt.throttle.failed(client)
        raise


def known_caller(rt: Runtime, authorization: str | None, client: str) -> Principal | None:
    """The caller, if the credential cache knows its key and its client is not being
    throttled: no database and no thread needed. None: ask ``authenticate``."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if not token.startswith("fb_") or rt.throttle.retry_after(client):
        return None
    return rt.credentials.get(token)


def _authenticate(session: Session, rt: Runtime, authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise unauthorized()
    token = authorization[7:].strip()
    if rt.admin_token and hmac.compare_digest(token.encode(), rt.admin_token.encode()):
        return Principal("admin", "admin")
    if token.startswith("fb_"):
        known = rt.credentials.get(token)
        if known is not None:
            return known  # read from the database less than a second ago
        key = merchant_service.authenticate_key(session, token)
        if key is not None:
            who = Principal("key", f"key:{key.prefix}", key.merchant_id, key.role)
            rt.credentials.put(token, key.prefix, who)
            return who
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
