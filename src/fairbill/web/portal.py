"""The customer portal, ``/portal/…``: a customer's subscriptions, what cancelling now
would do, cancelling, invoices and payments with printable receipts, refund requests
and appeals, every decision with its explanation, and the merchant's published policy.

A customer enters through a portal link (``/portal/enter?token=cpt_…``): the token is
exchanged at once for a session cookie and the browser is sent on to ``/portal/``, so no
secret stays in the address bar, the history or a ``Referer``.

Invariants:
- every page shows only the session's customer (``services.portal`` answers 404 for the
  records of anyone else); a session ends with its portal token (revoked or expired);
- every POST carries the session's CSRF token (``http.check_csrf``) and changes state
  only through the services, in ``actions.act`` (audit row, commit, then settle);
- a page works without JavaScript; htmx only loads the cancel confirmation in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from fairbill.errors import NotFound
from fairbill.ids import Prefix
from fairbill.policy.customer_terms import (
    Requirements,
    appeal_allowed,
    offered_kinds,
    quotes,
    requirements,
)
from fairbill.policy.model import Policy, RequestKind
from fairbill.policy.render import build_document, render_clause
from fairbill.services import merchants as merchant_service
from fairbill.services import policies, portal, refunds
from fairbill.services import subscriptions as subscription_service
from fairbill.services.context import Ctx
from fairbill.services.views import (
    Fmt,
    decision_row_view,
    decision_view,
    invoice_view,
    payment_view,
    refund_state,
    refund_view,
    request_view,
    subscription_view,
)
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    InvoiceRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
)
from fairbill.web import sessions
from fairbill.web.actions import act, context, runtime
from fairbill.web.http import (
    PORTAL,
    Form,
    WebError,
    check_csrf,
    clear_session,
    current,
    form,
    html_route,
    secure,
    set_session,
    signed_out,
    status_of,
    wall_now,
)
from fairbill.web.templating import language_of, render
from fairbill.web.words import LANGUAGES

HOME = "/portal/"


def error_page(request: Request, exc: Exception) -> Response:
    """An error as a page, in the session's language when there is one."""
    status, key = status_of(exc)
    who = current(request, PORTAL)
    detail = exc.detail if isinstance(exc, WebError) else None
    if status == 409:
        detail = str(exc)  # the service's own words say what stands in the way
    return render(
        request,
        "message.html",
        {
            "language": language_of(request, who.language if who else None),
            "key": key,
            "detail": detail,
            "back": HOME if who is not None else None,
        },
        status=status,
    )


router = APIRouter(prefix="/portal", route_class=html_route(error_page), include_in_schema=False)


# -- the session -------------------------------------------------------------------------
def signed_in(request: Request) -> sessions.WebSession:
    """The request's portal session, while its portal token is still valid; else the
    "sign in again" page (401)."""
    who = current(request, PORTAL)
    if who is None or who.customer_id is None:
        raise signed_out()
    rt = runtime(request)
    with rt.reads() as session:
        if portal.token_alive(session, who.subject, rt.clock.now()) is None:
            raise signed_out()
    return who


Who = Annotated[sessions.WebSession, Depends(signed_in)]
Posted = Annotated[Form, Depends(form)]


@dataclass
class Visit:
    """One page of a signed-in customer: the read-only unit of work and who is reading."""

    request: Request
    who: sessions.WebSession
    ctx: Ctx
    customer: CustomerRow
    language: str

    @property
    def policy(self) -> Policy:
        return portal.accepted_policy(self.ctx, self.customer)

    def page(self, template: str, **values: Any) -> Response:
        """The page, with the session refreshed (idle time restarted, language kept)."""
        response = render(
            self.request,
            template,
            {
                "language": self.language,
                "currency": self.ctx.currency,
                "timezone": self.ctx.merchant_row.timezone,
                "merchant_name": self.ctx.merchant_row.name,
                "customer_code": self.customer.code,
                "csrf": self.who.csrf,
                "policy_language": self.policy.language,
                **values,
            },
        )
        kept = replace(self.who, language=self.language)
        set_session(response, self.request, PORTAL, sessions.refreshed(kept, wall_now()))
        return response


@contextmanager
def visiting(request: Request, who: sessions.WebSession) -> Iterator[Visit]:
    rt = runtime(request)
    with rt.reads() as session:
        ctx = context(session, rt, who.merchant_id)
        customer = session.get_one(CustomerRow, who.customer_id)
        language = language_of(request, who.language, customer.language)
        yield Visit(request, who, ctx, customer, language)


# -- entering and leaving ----------------------------------------------------------------
@router.get("/enter")
def enter(request: Request, token: str = "") -> Response:
    """Exchange a portal token for a session cookie, then leave the URL that held it."""
    rt = runtime(request)
    with rt.reads() as session:
        now = rt.clock.now()
        row = merchant_service.authenticate_portal(session, token, now) if token else None
        if row is None:
            raise WebError(401, "error.bad_link")
        customer = session.get_one(CustomerRow, row.customer_id)
        wall = wall_now()
        # The token's remaining life, on the wall clock sessions run on.
        left = int((row.expires_at - now).total_seconds()) if row.expires_at else None
        limit = wall + (left if left is not None else sessions.ABSOLUTE)
        started = sessions.start(
            "portal", customer.merchant_id, row.prefix, wall, limit, customer_id=customer.id
        )
        started = replace(started, language=language_of(request, customer.language))
    response = secure(RedirectResponse(HOME, status_code=303))
    response.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak onwards
    set_session(response, request, PORTAL, started)
    return response


@router.post("/sign-out")
def sign_out(request: Request, who: Who, posted: Posted) -> Response:
    check_csrf(posted, who)
    response = secure(RedirectResponse("/portal/signed-out", status_code=303))
    clear_session(response, request, PORTAL)
    return response


@router.get("/signed-out")
def signed_out_page(request: Request) -> Response:
    return render(
        request,
        "message.html",
        {"language": language_of(request), "key": "signed_out", "detail": None, "back": None},
    )


# -- subscriptions and cancelling ----------------------------------------------------------
def subscription_card(v: Visit, sub: SubscriptionRow) -> dict[str, Any]:
    """A subscription as its pages show it, with what cancelling it now would do."""
    ctx = v.ctx
    coming = portal.next_charge(ctx, sub)
    card: dict[str, Any] = {
        "view": subscription_view(Fmt(ctx), sub),
        "next": {"at": coming.at.isoformat(), "amount": coming.amount.text()} if coming else None,
        "preview": None,
    }
    if sub.status not in ("canceled", "expired", "terminated") and sub.cancel_at is None:
        outcome = portal.cancel_preview(ctx, v.customer, sub)
        card["preview"] = {
            "ends_at": ctx.local(outcome.ends_at).isoformat(),
            "ends_now": outcome.ends_now,
            "decision": decision_view(Fmt(ctx), outcome.decision),
            "quotes": quotes(v.policy, outcome.decision.clauses),
        }
    return card


@router.get("/")
def home(request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        subs = [subscription_card(v, s) for s in portal.subscriptions(v.ctx.session, v.customer)]
        recent = portal.decisions(v.ctx.session, v.customer)[:5]
        return v.page(
            "portal/home.html",
            subscriptions=subs,
            decisions=[decision_row_view(Fmt(v.ctx), d) for d in recent],
        )


@router.get("/subscriptions/{sub_id}")
def subscription(sub_id: str, request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        sub = portal.owned(v.ctx, SubscriptionRow, sub_id, v.customer)
        return v.page("portal/subscription.html", s=subscription_card(v, sub))


@router.get("/subscriptions/{sub_id}/cancel")
def cancel_page(sub_id: str, request: Request, who: Who) -> Response:
    """The preview, then the confirmation form (the subscription page loads the form in
    place with htmx; without JavaScript its link comes here)."""
    with visiting(request, who) as v:
        sub = portal.owned(v.ctx, SubscriptionRow, sub_id, v.customer)
        card = subscription_card(v, sub)
        if card["preview"] is None:  # already ending: nothing to confirm
            return RedirectResponse(f"/portal/subscriptions/{sub_id}", status_code=303)
        return v.page("portal/cancel.html", s=card)


@router.post("/subscriptions/{sub_id}/cancel")
def cancel(sub_id: str, request: Request, who: Who, posted: Posted) -> Response:
    check_csrf(posted, who)
    reason = posted.get("reason").strip()[:2000] or None

    def work(ctx: Ctx) -> tuple[str, str]:
        customer = ctx.session.get_one(CustomerRow, who.customer_id)
        sub = portal.owned(ctx, SubscriptionRow, sub_id, customer)
        subscription_service.cancel(ctx, customer, sub, channel="portal", reason=reason)
        ctx.session.flush()
        decided = portal.latest_decision(ctx.session, customer)
        shown = ctx.ids.public(Prefix.DECISION, decided.id) if decided else ""
        return f"subscription:{ctx.ids.public(Prefix.SUBSCRIPTION, sub.id)}", shown

    decision = act(request, who, "subscription.cancel", {"reason": reason}, work)
    where = f"/portal/decisions/{decision}" if decision else HOME
    return secure(RedirectResponse(where, status_code=303))


# -- decisions -----------------------------------------------------------------------------
def decision_policy(v: Visit, row: DecisionRow) -> Policy:
    """The policy version that took the decision (its words are the ones quoted)."""
    if row.policy_version_id is not None:
        return policies.policy_of(v.ctx.session, row.policy_version_id)
    return v.policy


@router.get("/decisions")
def decision_list(request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        rows = portal.decisions(v.ctx.session, v.customer)
        return v.page(
            "portal/decisions.html", decisions=[decision_row_view(Fmt(v.ctx), d) for d in rows]
        )


@router.get("/decisions/{decision_id}")
def decision(decision_id: str, request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, DecisionRow, decision_id, v.customer)
        decided_by = decision_policy(v, row)
        return v.page(
            "portal/decision.html",
            d=decision_row_view(Fmt(v.ctx), row),
            quotes=quotes(decided_by, row.clauses),
            policy_language=decided_by.language,
        )


# -- invoices and payments -------------------------------------------------------------------
def payment_card(v: Visit, p: PaymentRow) -> dict[str, Any]:
    invoice = v.ctx.session.get_one(InvoiceRow, p.invoice_id)
    return payment_view(Fmt(v.ctx), p, invoice.number) | {
        "id": v.ctx.ids.public(Prefix.PAYMENT, p.id),
        "invoice_id": v.ctx.ids.public(Prefix.INVOICE, invoice.id),
    }


@router.get("/billing")
def billing(request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        t = Fmt(v.ctx)
        return v.page(
            "portal/billing.html",
            payments=[payment_card(v, p) for p in portal.payments(v.ctx.session, v.customer)],
            invoices=[
                invoice_view(t, i) | {"id": t.id(Prefix.INVOICE, i.id)}
                for i in portal.invoices(v.ctx.session, v.customer)
            ],
        )


@router.get("/invoices/{invoice_id}")
def invoice(invoice_id: str, request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, InvoiceRow, invoice_id, v.customer)
        return v.page("portal/invoice.html", i=invoice_view(Fmt(v.ctx), row))


@router.get("/payments/{payment_id}")
def payment(payment_id: str, request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, PaymentRow, payment_id, v.customer)
        paid = v.ctx.session.scalars(
            select(RefundRow).where(RefundRow.payment_id == row.id).order_by(RefundRow.id)
        )
        t = Fmt(v.ctx)
        return v.page(
            "portal/payment.html",
            p=payment_card(v, row),
            refunds=[refund_view(t, r, row.number, None) | refund_state(r) for r in paid],
        )


# -- refund requests -------------------------------------------------------------------------
ORDER_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_TEXT = 2000
MAX_ITEMS = 20


def kinds_on_offer(v: Visit) -> list[dict[str, Any]]:
    """The kinds the customer's policy decides, each with its rule in plain words."""
    currency = v.policy.currency
    lang = v.language if v.language in LANGUAGES else "en"
    return [
        {"kind": str(k.kind), "statement": render_clause(k.clause, lang, currency).text}
        for k in offered_kinds(v.policy)
        if k.kind != RequestKind.SERVICE_DISRUPTION
    ]


def refund_page(
    v: Visit,
    row: PaymentRow,
    kind: str | None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    kinds = kinds_on_offer(v)
    chosen = next((k for k in kinds if k["kind"] == kind), None)
    if kind and chosen is None:
        raise NotFound(f"no refund kind {kind!r} in this policy")
    needs = requirements(v.policy, RequestKind(chosen["kind"])) if chosen else Requirements()
    response = v.page(
        "portal/refund.html",
        p=payment_card(v, row),
        kinds=kinds,
        chosen=chosen,
        needs=needs,
        errors=errors or {},
        values=values or {"reason": "", "order_numbers": "", "documents": ""},
    )
    response.status_code = status
    return response


@router.get("/payments/{payment_id}/refund")
def refund_form(payment_id: str, request: Request, who: Who, kind: str = "") -> Response:
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, PaymentRow, payment_id, v.customer)
        return refund_page(v, row, kind or None)


@dataclass(frozen=True)
class RefundAsked:
    kind: RequestKind
    reason: str | None
    order_numbers: tuple[str, ...]
    documents: tuple[str, ...]


def read_refund(posted: Form, needs: Requirements) -> tuple[RefundAsked | None, dict[str, str]]:
    """The request the form asks for, or the errors to show (by field, catalogue keys)."""
    errors: dict[str, str] = {}
    reason = posted.get("reason").strip()
    orders = [o for o in re.split(r"[,\s]+", posted.get("order_numbers")) if o]
    documents = [d.strip() for d in posted.get("documents").splitlines() if d.strip()]
    if len(reason) > MAX_TEXT:
        errors["reason"] = "form.too_long"
    elif needs.reason and not reason:
        errors["reason"] = "form.missing"
    if len(orders) > MAX_ITEMS:
        errors["order_numbers"] = "form.too_many"
    elif not all(ORDER_NUMBER.match(o) for o in orders):
        errors["order_numbers"] = "form.bad_order_numbers"
    elif needs.order_numbers and not orders:
        errors["order_numbers"] = "form.missing"
    if len(documents) > MAX_ITEMS:
        errors["documents"] = "form.too_many"
    elif any(len(d) > 500 for d in documents):
        errors["documents"] = "form.too_long"
    elif needs.documents and not documents:
        errors["documents"] = "form.missing"
    if errors:
        return None, errors
    kind = RequestKind(posted.get("kind"))
    return RefundAsked(kind, reason or None, tuple(orders), tuple(documents)), {}


@router.post("/payments/{payment_id}/refund")
def refund_request(payment_id: str, request: Request, who: Who, posted: Posted) -> Response:
    check_csrf(posted, who)
    kind = posted.get("kind")
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, PaymentRow, payment_id, v.customer)
        if kind not in {k["kind"] for k in kinds_on_offer(v)}:
            raise NotFound(f"no refund kind {kind!r} in this policy")
        asked, errors = read_refund(posted, requirements(v.policy, RequestKind(kind)))
        if asked is None:
            values = {f: posted.get(f) for f in ("reason", "order_numbers", "documents")}
            return refund_page(v, row, kind, errors, values, status=422)
        v.ctx.session.rollback()  # end the read before the write starts

    def work(ctx: Ctx) -> tuple[str, str]:
        customer = ctx.session.get_one(CustomerRow, who.customer_id)
        paid = portal.owned(ctx, PaymentRow, payment_id, customer)
        filed = refunds.request_refund(
            ctx,
            customer,
            asked.kind,
            payment=paid,
            reason=asked.reason,
            documents=asked.documents,
            order_numbers=asked.order_numbers,
        )
        ctx.session.flush()
        shown = ctx.ids.public(Prefix.REQUEST, filed.id)
        return f"refund_request:{shown}", shown

    details = {"kind": str(asked.kind), "payment": payment_id, "reason": asked.reason}
    filed = act(request, who, "refund_request.create", details, work)
    return secure(RedirectResponse(f"/portal/requests/{filed}", status_code=303))


@router.get("/requests")
def request_list(request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        t = Fmt(v.ctx)
        rows = portal.requests(v.ctx.session, v.customer)
        return v.page(
            "portal/requests.html",
            requests=[request_view(t, r) | {"id": t.id(Prefix.REQUEST, r.id)} for r in rows],
        )


def may_appeal(v: Visit, row: RequestRow) -> bool:
    """An appeal is offered on a decided request the policy lets the customer contest:
    one declined or partly approved, not in review (already with a person) nor paid."""
    return (
        appeal_allowed(v.policy)
        and row.status == "decided"
        and row.decision in ("declined", "partially_approved")
    )


@router.get("/requests/{request_id}")
def request_page(request_id: str, request: Request, who: Who) -> Response:
    with visiting(request, who) as v:
        row = portal.owned(v.ctx, RequestRow, request_id, v.customer)
        t = Fmt(v.ctx)
        paid = v.ctx.session.get(PaymentRow, row.payment_id) if row.payment_id else None
        history = [
            decision_row_view(t, d)
            for d in portal.decisions(v.ctx.session, v.customer)
            if d.action in ("refund_request", "review", "appeal") and d.at >= row.at
        ]
        return v.page(
            "portal/request.html",
            r=request_view(t, row) | {"id": t.id(Prefix.REQUEST, row.id)},
            quotes=quotes(v.policy, row.clauses),
            can_appeal=may_appeal(v, row),
            payment_id=t.id(Prefix.PAYMENT, paid.id) if paid else None,
            payment_number=paid.number if paid else None,
            decisions=history,
        )


@router.post("/requests/{request_id}/appeal")
def appeal(request_id: str, request: Request, who: Who, posted: Posted) -> Response:
    check_csrf(posted, who)

    def work(ctx: Ctx) -> tuple[str, None]:
        customer = ctx.session.get_one(CustomerRow, who.customer_id)
        row = portal.owned(ctx, RequestRow, request_id, customer)
        refunds.appeal(ctx, customer, row)
        return f"refund_request:{ctx.ids.public(Prefix.REQUEST, row.id)}", None

    act(request, who, "refund_request.appeal", {}, work)
    return secure(RedirectResponse(f"/portal/requests/{request_id}", status_code=303))


# -- the policy ----------------------------------------------------------------------------
@router.get("/policy")
def policy(request: Request, who: Who) -> Response:
    """The merchant's policy as published now, in the page's language."""
    with visiting(request, who) as v:
        _, current_policy = policies.current(v.ctx.session, v.ctx.merchant_row)
        return v.page("portal/policy.html", document=build_document(current_policy, v.language))


@router.get("/{rest:path}")
def unknown(rest: str, request: Request) -> Response:
    raise NotFound(f"no page {rest!r}")
