"""Every state change the API makes goes through ``mutate``: one transaction, the audit
log, and ``Idempotency-Key`` replay.

Idempotency (as Stripe does it): the first response to a key is stored and replayed for
the same key and body; the same key with another body is 409 ``idempotency_key_reused``;
a second request while the first still runs is 409 ``idempotency_key_in_progress``.
Keys belong to the merchant; a portal token's belong to its customer alone. A stored
response keeps API keys and portal tokens by prefix only (they are shown once).

One transaction per request: the key is claimed in the work's own transaction (an
``INSERT ... ON CONFLICT DO NOTHING`` of the key's row, finished by an ``UPDATE`` just
before the commit: ``services.idempotency``'s ``claim`` and ``finish``), so the claim,
the work, the audit row and the stored response commit together or not at all, and a
request that dies leaves nothing behind. Two concurrent requests with the same key
cannot both run: in this process ``_RUNNING`` answers the second 409; in another process
on PostgreSQL the claim also takes a transaction-scoped advisory lock on the key
(``pg_try_advisory_xact_lock``), which the second fails to take (409, never a wait); on
SQLite write transactions run one at a time, so the second finds the first finished and
replays it. Claims committed unfinished (by ``_claim``, or by servers before this one: a
process that died between its claim and its work) are leases (``services.idempotency``):
a retry takes over a claim whose process died or whose lease ended, and the work commits
only while its process still holds the claim, so a request that outlived its lease is
not done twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fairbill.api.deps import Principal, merchant_ctx
from fairbill.api.fastjson import json_response
from fairbill.api.problems import Problem, conflict
from fairbill.api.settings import Runtime
from fairbill.services import audit_log, idempotency, operations
from fairbill.services.context import Ctx
from fairbill.services.idempotency import (
    Claimed,
    Finished,
    Reused,
    Running,
    fingerprint,
    wall_now,
)
from fairbill.services.merchants import redact_secrets

log = logging.getLogger("fairbill.api")


@dataclass(frozen=True)
class Done:
    """What a piece of work reports: the audit target, the response body, the merchant;
    and, for work that may move money, its context and how to render the body again once
    the gateway answered (``render``)."""

    target: str
    body: dict[str, Any]
    merchant_id: int
    ctx: Ctx | None = None
    render: Callable[[], dict[str, Any]] | None = None


Work = Callable[[Session], Done]
# A body, or how to render it: money-moving work renders after the gateway answered too.
Body = dict[str, Any] | Callable[[], dict[str, Any]]


def merchant_work(
    rt: Runtime,
    who: Principal,
    work: Callable[[Ctx], tuple[str, Body]],
) -> Work:
    """Adapt work that needs the caller's merchant context (the same context, a unit of
    work, then records the outcomes that come after the commit, and their decisions)."""

    def run(session: Session) -> Done:
        ctx = merchant_ctx(session, rt, who)
        target, body = work(ctx)
        if callable(body):
            return Done(target, body(), ctx.merchant_row.id, ctx, body)
        return Done(target, body, ctx.merchant_row.id, ctx)

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
    if key and not _RUNNING.enter(merchant_id, key):
        raise _in_progress(shown or "")
    running = bool(key)
    try:
        with rt.sessions() as session:
            try:
                claim: int | None = None
                if key:
                    claimed = _claim_in(session, merchant_id, key, digest, action, shown or "")
                    if isinstance(claimed, JSONResponse):
                        session.rollback()  # nothing was written: end the read
                        return claimed
                    claim = claimed
                done = work(session)
                body = done.body
                audit_log.record(
                    session,
                    merchant_id=done.merchant_id,
                    at=rt.clock.now(),
                    actor=who.actor,
                    action=action,
                    target=done.target,
                    request_id=getattr(request.state, "request_id", "") or "",
                    # Secrets (gateway tokens, keys) are never stored in clear.
                    details={"payload": _jsonable(payload)},
                )
                if claim is not None:
                    # Secrets are shown once: a replay names them by prefix only.
                    _finish(session, claim, redact_secrets(body), status)
                sent = bool(session.info.get(operations.PENDING))
                session.commit()
            except Exception:
                session.rollback()  # the claim goes with the work: a retry runs it again
                raise
            finally:
                if running:  # committed or not, no request of this process runs it now
                    running = False
                    _RUNNING.leave(merchant_id, key or "")
            # Committed: the key is finished and replays ``body`` until the gateway
            # answered. Now the money moves (after the commit, never inside it).
            if done.ctx is not None and sent:
                body = _settled(done, claim, body)
    finally:
        if running:  # the session could not even start
            _RUNNING.leave(merchant_id, key or "")
    return json_response(body, status)


def _settled(done: Done, claim: int | None, body: dict[str, Any]) -> dict[str, Any]:
    """Send the operations the work requested and record their outcomes; the response
    (and the key's stored replay) then shows them. A failure here loses nothing: the
    operations stay open for the reconciler, and the response stays the committed one."""
    assert done.ctx is not None
    session = done.ctx.session
    try:
        operations.commit_and_settle(done.ctx)
        if done.render is None:
            return body
        body = done.render()
        if claim is not None:
            idempotency.replace_result(session, claim, redact_secrets(body))
        session.commit()
    except Exception:  # the reconciler finishes what is open; the work itself is done
        session.rollback()
        log.exception("settling the gateway operations of %s failed", done.target)
    return body


MAX_IDEMPOTENCY_KEY = 128


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


def _claim_in(
    session: Session, merchant_id: int, key: str, digest: str, action: str, shown: str
) -> int | JSONResponse:
    """Claim ``key`` in the session's transaction (``idempotency.claim``): the id of the
    key's row, now this process's (run the work, then ``_finish``), or the answer from a
    row already there: its stored response, or 409."""
    # Leases run on the wall clock, never the runtime's (services.idempotency).
    claim = idempotency.claim(session, merchant_id, key, digest, action, wall_now())
    if isinstance(claim, Claimed):
        return claim.id
    if isinstance(claim, Finished):
        return _replay(claim)
    if isinstance(claim, Reused):
        raise conflict(
            "idempotency_key_reused",
            f"Idempotency-Key {shown!r} was used with a different request",
        )
    if isinstance(claim, Running):
        raise _in_progress(shown)
    assert_never(claim)


def _claim(
    rt: Runtime, merchant_id: int, key: str, digest: str, action: str, shown: str
) -> JSONResponse | None:
    """Claim ``key`` in a transaction of its own and commit the claim unfinished, as a
    process that died before its work left it (tests and tools; requests claim in their
    work's transaction). None when claimed, else the answer from the key's row."""
    with rt.sessions() as session:
        answer = _claim_in(session, merchant_id, key, digest, action, shown)
        session.commit()
        return answer if isinstance(answer, JSONResponse) else None


def _replay(done: Finished) -> JSONResponse:
    """The stored response of the key's request, marked as a replay."""
    response = json_response(done.result, done.status_code)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _finish(session: Session, claim: int, body: dict[str, Any], status: int) -> None:
    """Store the response on the key's row (``idempotency.finish``), if this process still
    holds the claim; else 409 and the work rolls back: a request that outlived its lease
    and was taken over must not be done twice."""
    if not idempotency.finish(session, claim, body, status):
        raise conflict(
            "idempotency_key_in_progress",
            "the request outlived its claim on its Idempotency-Key; retry it",
        )


def _in_progress(shown: str) -> Problem:
    return conflict(
        "idempotency_key_in_progress",
        f"a request with Idempotency-Key {shown!r} is still running",
    )


class _Running:
    """The keys whose work runs in this process now, from the claim to the end of the
    work. Invariant: at most one request of a process runs a key, so the row's ``owner``
    (a process) tells which request holds the claim."""

    def __init__(self) -> None:
        self._keys: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def enter(self, merchant_id: int, key: str) -> bool:
        with self._lock:
            if (merchant_id, key) in self._keys:
                return False
            self._keys.add((merchant_id, key))
            return True

    def leave(self, merchant_id: int, key: str) -> None:
        with self._lock:
            self._keys.discard((merchant_id, key))


_RUNNING = _Running()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
