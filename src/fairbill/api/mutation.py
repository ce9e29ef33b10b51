"""Every state change the API makes goes through ``mutate``: one transaction, the audit
log, and ``Idempotency-Key`` replay.

Idempotency (as Stripe does it): the first response to a key is stored and replayed for
the same key and body; the same key with another body is 409 ``idempotency_key_reused``;
a second request while the first still runs is 409 ``idempotency_key_in_progress``.
Keys belong to the merchant; a portal token's belong to its customer alone. A stored
response keeps API keys and portal tokens by prefix only (they are shown once).
The key is claimed in its own short transaction first, so two concurrent requests with the
same key cannot both run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairbill.api.deps import Principal, merchant_ctx
from fairbill.api.problems import Problem, conflict
from fairbill.api.settings import Runtime
from fairbill.services.context import Ctx
from fairbill.services.idempotency import fingerprint
from fairbill.services.merchants import redact_secrets
from fairbill.store.tables import AuditLogRow, IdempotencyKeyRow, table


@dataclass(frozen=True)
class Done:
    """What a piece of work reports: the audit target, the response body, the merchant."""

    target: str
    body: dict[str, Any]
    merchant_id: int


Work = Callable[[Session], Done]


def merchant_work(
    rt: Runtime, who: Principal, work: Callable[[Ctx], tuple[str, dict[str, Any]]]
) -> Work:
    """Adapt work that needs the caller's merchant context."""

    def run(session: Session) -> Done:
        ctx = merchant_ctx(session, rt, who)
        target, body = work(ctx)
        return Done(target, body, ctx.merchant_row.id)

    return run


def mutate(
    request: Request,
    rt: Runtime,
    who: Principal,
    action: str,
    payload: dict[str, Any],
    work: Work,
    status: int = 200,
) -> JSONResponse:
    shown = request.headers.get("idempotency-key")
    key = _scoped_key(who, shown)
    merchant_id = who.merchant_id or 0
    digest = fingerprint(f"{request.method} {request.url.path}", payload)
    if key:
        replay = _claim(rt, merchant_id, key, digest, action, shown or "")
        if replay is not None:
            return replay
    try:
        with rt.sessions() as session:
            done = work(session)
            body = done.body
            session.add(
                AuditLogRow(
                    merchant_id=done.merchant_id,
                    at=rt.clock.now(),
                    actor=who.actor,
                    action=action,
                    target=done.target[:_TARGET_LENGTH],
                    request_id=getattr(request.state, "request_id", "") or "",
                    details={"payload": _jsonable(payload)},
                )
            )
            if key:
                row = _key_row(session, merchant_id, key)
                if row is not None:
                    # Secrets are shown once: a replay names them by prefix only.
                    row.result, row.status_code = redact_secrets(body), status
            session.commit()
    except Exception:
        if key:
            _release(rt, merchant_id, key)
        raise
    return JSONResponse(body, status_code=status)


MAX_IDEMPOTENCY_KEY = 128
# The audit column's width: a target naming two 100-character codes would not fit (on
# PostgreSQL a 500 after the work was done).
_TARGET_LENGTH = cast(String, table(AuditLogRow).c.target.type).length


def _scoped_key(who: Principal, key: str | None) -> str | None:
    """The stored form of an ``Idempotency-Key``. Keys are the merchant's, except a portal
    token's: those are its customer's own, so that another customer of the merchant who
    sends the same key (and the same request) is not replayed this customer's response."""
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "invalid field: Idempotency-Key",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "message": f"at most {MAX_IDEMPOTENCY_KEY} characters",
                }
            ],
        )
    return f"portal:{who.customer_id}:{key}" if who.kind == "portal" else key


def _key_row(session: Session, merchant_id: int, key: str) -> IdempotencyKeyRow | None:
    return session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.merchant_id == merchant_id, IdempotencyKeyRow.key == key
        )
    )


def _claim(
    rt: Runtime, merchant_id: int, key: str, digest: str, action: str, shown: str
) -> JSONResponse | None:
    with rt.sessions() as session:
        seen = _key_row(session, merchant_id, key)
        if seen is None:
            session.add(
                IdempotencyKeyRow(
                    merchant_id=merchant_id,
                    key=key,
                    operation=action,
                    fingerprint=digest,
                    result={},
                    created_at=rt.clock.now(),
                )
            )
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
                seen = _key_row(session, merchant_id, key)
        if seen is None:  # pragma: no cover - the row vanished between two statements
            raise conflict("idempotency_key_in_progress", "retry the request")
        if seen.fingerprint != digest:
            raise conflict(
                "idempotency_key_reused",
                f"Idempotency-Key {shown!r} was used with a different request",
            )
        if seen.status_code is None:
            raise conflict(
                "idempotency_key_in_progress",
                f"a request with Idempotency-Key {shown!r} is still running",
            )
        response = JSONResponse(seen.result, status_code=seen.status_code)
        response.headers["Idempotent-Replayed"] = "true"
        return response


def _release(rt: Runtime, merchant_id: int, key: str) -> None:
    with rt.sessions() as session:
        session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.merchant_id == merchant_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.status_code.is_(None),
            )
        )
        session.commit()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
