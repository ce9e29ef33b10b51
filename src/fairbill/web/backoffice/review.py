"""The review queue and a request's page, where a reviewer decides it.

A request's page shows the facts it was decided on, the engine's recommendation, the
clauses that apply with the policy's own sentences, the explanation, and (to a role that
may review) the actions: accept the recommendation, approve another amount or
destination (with a fee where the policy allows one), or decline.

Invariant: the decision is ``services.refunds.review``'s, as the API's: an override beyond
the policy's bounds (more than is refundable, a fee above its limit, the wallet where the
policy refunds only to the method that paid) is not applied as asked, and the page shows
the reason the decision gives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from fairbill.decisions.reasons import Reason
from fairbill.errors import InvalidAmount
from fairbill.ids import Prefix
from fairbill.lifecycle import RequestStatus
from fairbill.money import Money
from fairbill.policy.customer_terms import quotes
from fairbill.policy.model import Destination
from fairbill.services import backoffice, portal, refunds
from fairbill.services.context import Ctx
from fairbill.services.views import Fmt, decision_row_view, request_view
from fairbill.store.tables import CustomerRow, PaymentRow
from fairbill.web.actions import act
from fairbill.web.backoffice.common import Posted, Visit, Who, make_router, need, visiting
from fairbill.web.http import Form, check_csrf, secure

router = make_router()
MONEY = re.compile(r"^[0-9]{1,9}([.,][0-9]+)?$")  # as the API's MoneyText, a comma allowed
PERCENT = re.compile(r"^[0-9]{1,3}([.,][0-9]{1,6})?$")
VERDICTS = ("accept", "approve", "decline")
# A review's reasons that say the override was not applied as asked.
LIMITED = frozenset(
    {
        Reason.REVIEW_AMOUNT_CAPPED,
        Reason.REVIEW_FEE_CAPPED,
        Reason.REVIEW_FEE_NOT_ALLOWED,
        Reason.REVIEW_DESTINATION_FIXED,
    }
)


@router.get("/queue")
def review_queue(request: Request, staff: Who) -> Response:
    with visiting(request, staff) as v:
        t = Fmt(v.ctx)
        items = [
            {"id": t.id(Prefix.REQUEST, i.request.id), "customer": i.customer}
            | {"deadline": i.deadline}
            | request_view(t, i.request)
            for i in backoffice.queue(v.ctx)
        ]
        return v.page(
            "app/queue.html",
            "queue",
            items=items,
            overdue=sum(1 for i in items if i["deadline"] and i["deadline"].overdue),
            soon=sum(1 for i in items if i["deadline"] and i["deadline"].soon),
            due_soon_days=backoffice.DUE_SOON,
        )


# -- one request ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Review:
    """What the review form asks for, read and checked."""

    verdict: str
    amount: Decimal | None
    destination: Destination | None
    fee_percent: Decimal | None
    note: str | None

    def details(self) -> dict[str, Any]:
        """As the API's audit row records a review (its body)."""
        return {
            "decision": self.verdict,
            "amount": str(self.amount) if self.amount is not None else None,
            "destination": str(self.destination) if self.destination else None,
            "fee_percent": str(self.fee_percent) if self.fee_percent is not None else None,
            "note": self.note,
        }


def read_review(posted: Form, currency: str) -> tuple[Review | None, dict[str, str]]:
    """The review the form asks for, or the errors to show (by field, catalogue keys)."""
    errors: dict[str, str] = {}
    verdict = posted.get("decision")
    amount = fee = None
    amount_text = posted.get("amount").strip().replace(",", ".")
    if verdict == "approve" and amount_text:
        try:
            if not MONEY.match(amount_text):
                raise InvalidAmount(amount_text)
            amount = Money.parse(amount_text, currency).amount
        except InvalidAmount:
            errors["amount"] = "app.review.bad_amount"
    fee_text = posted.get("fee_percent").strip().replace(",", ".")
    if verdict == "approve" and fee_text:
        if PERCENT.match(fee_text):
            fee = Decimal(fee_text)
        else:
            errors["fee_percent"] = "app.review.bad_percent"
    destination = posted.get("destination")
    if destination and destination not in set(Destination):
        errors["destination"] = "app.review.bad_destination"
    note = posted.get("note").strip()
    if len(note) > 2000:
        errors["note"] = "form.too_long"
    if verdict not in VERDICTS:
        errors["decision"] = "app.review.bad_decision"
    if errors:
        return None, errors
    chosen = Destination(destination) if destination and verdict == "approve" else None
    return Review(verdict, amount, chosen, fee, note or None), {}


def request_page(
    v: Visit,
    request_id: str,
    decided: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    ctx, t = v.ctx, Fmt(v.ctx)
    customer, row = backoffice.request_of(ctx, request_id)
    paid = ctx.session.get(PaymentRow, row.payment_id) if row.payment_id else None
    outcome = backoffice.decision_of(ctx, customer, decided) if decided else None
    policy = backoffice.decided_under(ctx, customer, row)  # its words are the ones quoted
    return v.page(
        "app/request.html",
        "queue",
        status=status,
        r=request_view(t, row) | {"id": t.id(Prefix.REQUEST, row.id)},
        customer=customer,
        facts=backoffice.filed_facts(ctx, row),
        deadline=backoffice.deadline(ctx, row.review_due),
        payment=paid,
        payment_amount=Money.from_minor(paid.amount_minor, paid.currency).text() if paid else None,
        quotes=quotes(policy, row.clauses),
        policy_language=policy.language,
        bounds=backoffice.review_bounds(ctx, customer, row),
        may_review=row.status == RequestStatus.IN_REVIEW and v.staff.allows("review"),
        history=[decision_row_view(t, d) for d in backoffice.history(ctx, row)],
        decided=decision_row_view(t, outcome) if outcome else None,
        limited=[r for r in outcome.reasons if r in LIMITED] if outcome else [],
        errors=errors or {},
        values=values or {},
    )


@router.get("/requests/{request_id}")
def request_detail(request_id: str, request: Request, staff: Who, decided: str = "") -> Response:
    with visiting(request, staff) as v:
        return request_page(v, request_id, decided or None)


@router.post("/requests/{request_id}/review")
def review(request_id: str, request: Request, staff: Who, posted: Posted) -> Response:
    check_csrf(posted, staff.session)
    need(staff, "review")
    with visiting(request, staff) as v:
        backoffice.request_of(v.ctx, request_id)  # the merchant's, or 404 before anything
        asked, errors = read_review(posted, v.ctx.currency)
        if asked is None:
            values = {f: posted.get(f) for f in ("amount", "fee_percent", "note", "destination")}
            return request_page(v, request_id, None, errors, values, status=422)
        v.ctx.session.rollback()  # end the read before the write starts

    def work(ctx: Ctx) -> tuple[str, str]:
        customer, row = backoffice.request_of(ctx, request_id)
        refunds.review(
            ctx,
            customer,
            row,
            asked.verdict,
            amount=asked.amount,
            destination=str(asked.destination) if asked.destination else None,
            fee_percent=asked.fee_percent,
        )
        ctx.session.flush()
        return f"refund_request:{ctx.ids.public(Prefix.REQUEST, row.id)}", _latest(ctx, customer)

    decision = act(request, staff.session, "refund_request.review", asked.details(), work)
    where = f"/app/requests/{request_id}?decided={decision}"
    return secure(RedirectResponse(where, status_code=303))


def _latest(ctx: Ctx, customer: CustomerRow) -> str:
    decided = portal.latest_decision(ctx.session, customer)
    return ctx.ids.public(Prefix.DECISION, decided.id) if decided else ""
