"""The merchant's admin pages: the audit log, and the API keys (issue, revoke).

Both need the ``keys`` permission (the admin role), as the API's key routes do. A key
issued here is shown once, on the page that answers the form (never in an address, never
stored but as its hash); the merchant's last admin key cannot be revoked (409, the
service's words).
"""

from __future__ import annotations

import json

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from fairbill.services import backoffice
from fairbill.services import merchants as merchant_service
from fairbill.services.context import Ctx
from fairbill.web.actions import act
from fairbill.web.backoffice.common import Posted, Visit, Who, make_router, need, visiting
from fairbill.web.http import WebError, check_csrf, secure

router = make_router()


@router.get("/audit")
def audit(request: Request, staff: Who, before: str = "") -> Response:
    with visiting(request, staff, "keys") as v:
        start = int(before) if before.isascii() and before.isdigit() and len(before) < 19 else None
        rows, older = backoffice.audit_entries(v.ctx.session, v.ctx.merchant_row.id, start)
        entries = [
            {
                "at": v.ctx.local(r.at).isoformat(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "request_id": r.request_id,
                "details": json.dumps(r.details, sort_keys=True, ensure_ascii=False),
            }
            for r in rows
        ]
        return v.page("app/audit.html", "audit", entries=entries, older=older)


def keys_page(v: Visit, issued: merchant_service.IssuedKey | None = None) -> Response:
    rows = merchant_service.api_keys(v.ctx.session, v.ctx.merchant_row)
    keys = [
        {
            "prefix": k.prefix,
            "role": k.role,
            "created_at": v.ctx.local(k.created_at).isoformat(),
            "revoked_at": v.ctx.local(k.revoked_at).isoformat() if k.revoked_at else None,
        }
        for k in rows
    ]
    return v.page("app/keys.html", "keys", keys=keys, roles=merchant_service.ROLES, issued=issued)


@router.get("/keys")
def keys(request: Request, staff: Who) -> Response:
    with visiting(request, staff, "keys") as v:
        return keys_page(v)


@router.post("/keys")
def issue(request: Request, staff: Who, posted: Posted) -> Response:
    check_csrf(posted, staff.session)
    need(staff, "keys")
    role = posted.get("role")
    if role not in merchant_service.ROLES:
        raise WebError(422, "error.invalid", f"unknown role {role!r}")

    def work(ctx: Ctx) -> tuple[str, merchant_service.IssuedKey]:
        made = merchant_service.issue_key(ctx.session, ctx.merchant_row, role, ctx.now)
        return f"api_key:{made.prefix}", made

    made = act(request, staff.session, "api_key.create", {"role": role}, work)
    with visiting(request, staff, "keys") as v:
        return keys_page(v, made)


@router.post("/keys/{prefix}/revoke")
def revoke(prefix: str, request: Request, staff: Who, posted: Posted) -> Response:
    check_csrf(posted, staff.session)
    need(staff, "keys")

    def work(ctx: Ctx) -> tuple[str, None]:
        row = merchant_service.revoke_key(ctx.session, ctx.merchant_row, prefix, ctx.now)
        return f"api_key:{row.prefix}", None

    act(request, staff.session, "api_key.revoke", {"prefix": prefix}, work)
    return secure(RedirectResponse("/app/keys", status_code=303))
