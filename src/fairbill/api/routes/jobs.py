"""Scheduled jobs that failed: what the merchant's due work could not do, and when it is
tried again (``services.jobs``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from fairbill.api.deps import Caller, Db, merchant_ctx, need, runtime
from fairbill.api.pagination import page
from fairbill.api.problems import RESPONSES, forbidden
from fairbill.api.settings import Runtime
from fairbill.api.strict import QueryBool
from fairbill.ids import Prefix
from fairbill.services.jobs import status_of
from fairbill.services.views import Fmt
from fairbill.store.tables import JobFailureRow

router = APIRouter(prefix="/v1", tags=["scheduled jobs"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def job_failure_view(t: Fmt, row: JobFailureRow) -> dict[str, Any]:
    return {
        "id": t.id(Prefix.JOB_FAILURE, row.id),
        "job": row.job,
        "target": t.target(row.target),
        "status": str(status_of(row)),
        "error": row.error,
        "attempts": row.attempts,
        "first_failed_at": t.time(row.first_failed_at),
        "last_failed_at": t.time(row.last_failed_at),
        "next_attempt_at": t.time(row.next_attempt_at),
        "resolved_at": t.time(row.resolved_at),
    }


@router.get("/job_failures")
def list_job_failures(
    session: Db,
    rt: Rt,
    who: Caller,
    include_resolved: Annotated[
        QueryBool, Query(alias="all", description="Resolved failures too, not only open ones.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The merchant's scheduled work that failed, oldest first: open failures (retried
    with backoff until the item runs) unless ``all=true``."""
    need(who, "read")
    if who.kind == "portal":
        # Targets name other customers' subscriptions: the merchant's staff only.
        raise forbidden("job failures are the merchant's: a merchant API key is needed")
    ctx = merchant_ctx(session, rt, who)
    query = select(JobFailureRow).where(JobFailureRow.merchant_id == ctx.merchant_row.id)
    if not include_resolved:
        query = query.where(JobFailureRow.resolved_at.is_(None))
    t = Fmt(ctx)
    return page(ctx, query, JobFailureRow, limit, cursor, lambda r: job_failure_view(t, r))
