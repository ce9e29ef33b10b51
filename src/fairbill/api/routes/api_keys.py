"""API keys: list, issue and revoke a merchant's keys; the operator's recovery path.

A key's secret is in the response that issues it and nowhere else: the database keeps its
hash, and an idempotent replay of that response shows the prefix only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fairbill.api.deps import Caller, Db, merchant_ctx, need, runtime
from fairbill.api.mutation import Done, merchant_work, mutate
from fairbill.api.problems import RESPONSES, forbidden, not_found
from fairbill.api.schemas import ApiKeyIn
from fairbill.api.settings import Runtime
from fairbill.services import merchants as service
from fairbill.services.context import Ctx
from fairbill.store.tables import ApiKeyRow, MerchantRow

router = APIRouter(prefix="/v1", tags=["API keys"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def key_view(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "role": row.role,
        "created_at": utc_text(row.created_at),
        "revoked_at": utc_text(row.revoked_at) if row.revoked_at else None,
    }


def utc_text(at: datetime) -> str:
    """Credential times in UTC: the same text fresh from a call or read back."""
    return at.astimezone(UTC).isoformat()


def _issued(session: Session, merchant: MerchantRow, role: str, rt: Runtime) -> dict[str, Any]:
    issued = service.issue_key(session, merchant, role, rt.clock.now())
    session.flush()
    row = next(k for k in service.api_keys(session, merchant) if k.prefix == issued.prefix)
    return key_view(row) | {"key": issued.key}


@router.get("/api_keys")
def list_api_keys(session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    """Every key of the merchant, revoked ones included, by prefix and role."""
    need(who, "keys")
    ctx = merchant_ctx(session, rt, who)
    return {"data": [key_view(k) for k in service.api_keys(session, ctx.merchant_row)]}


@router.post("/api_keys", status_code=201)
def create_api_key(body: ApiKeyIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """A new key for ``role``, shown once (rotate: issue, deploy, revoke the old one)."""
    need(who, "keys")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        view = _issued(ctx.session, ctx.merchant_row, body.role, rt)
        return f"api_key:{view['prefix']}", view

    return mutate(
        request, rt, who, "api_key.create", body.model_dump(), merchant_work(rt, who, work), 201
    )


@router.post("/api_keys/{prefix}/revoke")
def revoke_api_key(prefix: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """Revoke a key at once; the merchant's last admin key cannot be revoked (409)."""
    need(who, "keys")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = service.revoke_key(ctx.session, ctx.merchant_row, prefix, ctx.now)
        return f"api_key:{row.prefix}", key_view(row)

    return mutate(
        request, rt, who, "api_key.revoke", {"prefix": prefix}, merchant_work(rt, who, work)
    )


@router.post("/merchants/{merchant_id}/api_keys", status_code=201)
def operator_create_api_key(
    merchant_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: ApiKeyIn,
    request: Request,
    rt: Rt,
    who: Caller,
) -> JSONResponse:
    """Platform operator only: a key for a merchant that lost all of its admin keys."""
    if who.kind != "admin":
        raise forbidden("only the platform operator issues keys for a merchant")

    def work(session: Session) -> Done:
        merchant = session.get(MerchantRow, merchant_id)
        if merchant is None:
            raise not_found(f"no merchant {merchant_id}")
        view = _issued(session, merchant, body.role, rt)
        return Done(f"api_key:{view['prefix']}", view, merchant.id)

    return mutate(
        request,
        rt,
        who,
        "api_key.create",
        body.model_dump() | {"merchant": merchant_id},
        work,
        201,
    )
