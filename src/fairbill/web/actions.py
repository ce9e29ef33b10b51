"""Every state change a page makes goes through ``act``: one unit of work for the
session's merchant, its audit row, the commit, then the gateway operations it requested
are sent and recorded (as the API's ``mutate`` does; the simulator does the same).

Invariant: money moves only after the commit (``operations.commit_and_settle``); if
sending fails, nothing is lost: the operations stay open for the reconciler, and the
page shows what was committed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from fairbill.api.settings import Runtime
from fairbill.services import audit_log, operations
from fairbill.services import merchants as merchant_service
from fairbill.services.context import Ctx
from fairbill.store.tables import MerchantRow
from fairbill.web.sessions import WebSession

log = logging.getLogger("fairbill.web")
T = TypeVar("T")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)  # set by the app's RequestId middleware
    return str(rid) if rid else f"req_{uuid.uuid4().hex[:16]}"


def context(session: Session, rt: Runtime, merchant_id: int) -> Ctx:
    merchant = session.get_one(MerchantRow, merchant_id)
    return merchant_service.context(session, rt.clock, rt.gateway, merchant)


def act(
    request: Request,
    who: WebSession,
    action: str,
    details: dict[str, Any],
    work: Callable[[Ctx], tuple[str, T]],
) -> T:
    """Run ``work`` (it returns the audit target and its result) in one transaction for
    the session's merchant, commit it with its audit row, then settle."""
    rt = runtime(request)
    with rt.sessions() as session:
        ctx = context(session, rt, who.merchant_id)
        try:
            target, result = work(ctx)
            audit_log.record(
                session,
                merchant_id=who.merchant_id,
                at=rt.clock.now(),
                actor=who.actor,
                action=action,
                target=target,
                request_id=request_id(request),
                details=details,
            )
            sent = bool(session.info.get(operations.PENDING))
            session.commit()
        except Exception:
            session.rollback()
            raise
        if sent:
            try:
                operations.commit_and_settle(ctx)
            except Exception:  # the reconciler finishes what is open; the work is done
                session.rollback()
                log.exception("settling the gateway operations of %s failed", target)
    return result
