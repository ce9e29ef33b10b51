"""The FastAPI application. ``create_app`` wires a runtime; routes live in ``routes/``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from fairbill.api import problems
from fairbill.api.deps import client_request_id
from fairbill.api.guard import Guard
from fairbill.api.observe import Observe
from fairbill.api.routes import jobs, ops, register_routes
from fairbill.api.settings import Runtime
from fairbill.services import operations
from fairbill.services.idempotency import release_abandoned, wall_now
from fairbill.web import install as install_web

log = logging.getLogger("fairbill.api")


class RequestId(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        rid = client_request_id(request.headers.get("x-request-id"))
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        return response


def _nul_field(value: Any) -> str | None:
    """The dotted name of the first string in a JSON value holding a NUL, if any. A loop
    with its own stack, not recursion: a body nested 1,000 deep was a RecursionError (500)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
            continue
        if isinstance(node, dict):
            items: list[tuple[Any, Any]] = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        for key, item in reversed(items):  # reversed: the first member is looked at first
            name = f"{path}.{key}".lstrip(".")
            if isinstance(key, str) and "\x00" in key:
                return name
            stack.append((name, item))
    return None


class RejectNul(BaseHTTPMiddleware):
    """PostgreSQL text cannot hold a NUL character: one in the path is a 404 (no object has
    such an id), in the query or a JSON body a 422 naming the field, instead of a 500 from
    the database (SQLite stored them)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        def invalid(field: str) -> Response:
            return problems.Problem(
                422,
                "validation_error",
                "Validation error",
                f"invalid field: {field}",
                errors=[{"field": field, "message": "must not contain NUL characters"}],
            ).response(request)

        if "\x00" in request.scope["path"]:
            return problems.not_found("no such resource").response(request)
        for name, value in request.query_params.multi_items():
            if "\x00" in name + value:
                return invalid(name)
        body = await request.body()
        if b"\\u0000" in body:  # the JSON escape (a raw NUL is not JSON)
            try:
                field = _nul_field(json.loads(body))
            except (ValueError, RecursionError):
                field = None  # not JSON, or nested too deep to parse: the route answers it
            if field is not None:
                return invalid(field)
        return await call_next(request)


def release_abandoned_keys(runtime: Runtime) -> int:
    """Delete the idempotency claims of requests that died with their process (a server
    killed before this start): their retries run at once instead of answering 409 until
    the claims' leases end. Returns how many; a database error is logged, not raised (the
    leases end on their own)."""
    try:
        with runtime.sessions() as session:
            released = release_abandoned(session, wall_now())
            session.commit()
    except SQLAlchemyError:
        log.exception("could not release abandoned idempotency keys")
        return 0
    if released:
        log.info("released %d abandoned idempotency keys", released)
    return released


def reconcile_at_start(runtime: Runtime) -> dict[str, int]:
    """Finish the gateway operations a previous process left open (it died between the
    commit and the gateway's answer): asked again under their own keys, with no grace.
    A failure is logged, not raised: the scheduler's janitor runs again soon."""
    try:
        counts = operations.reconcile_all(
            runtime.sessions, runtime.clock, runtime.gateway, grace=timedelta(0)
        )
    except SQLAlchemyError:
        log.exception("could not reconcile gateway operations at start-up")
        return {}
    if counts:
        log.info("reconciled gateway operations at start-up: %s", counts)
    return counts


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Once per server start, before the first request (nothing waits on the loop yet).
    release_abandoned_keys(app.state.runtime)
    reconcile_at_start(app.state.runtime)
    yield


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        # The docs pages are the web's, served from vendored assets (FastAPI's load a CDN).
        docs_url=None,
        redoc_url=None,
        title="fairbill",
        version="1",
        summary="Subscription billing that runs the merchant's published refund policy.",
        description=(
            "Every decision carries its outcome, amount, destination, stable reason codes, "
            "the policy clauses that fired and the calculation in words. Money is always a "
            "string with the currency's minor digits. Errors are RFC 9457 problem details "
            "with a stable `code`. Every POST accepts an `Idempotency-Key` header."
        ),
    )
    app.state.runtime = runtime
    app.add_middleware(RejectNul)
    app.add_middleware(Guard)  # outside RejectNul: no body is read before it passes here
    app.add_middleware(Observe)  # the request's log line and latency, Guard's refusals too
    app.add_middleware(RequestId)  # the outer one: problems above carry the id too
    problems.install(app)
    register_routes(app)
    app.include_router(jobs.router)
    app.include_router(ops.router)  # /healthz, /readyz, /metrics: outside /v1 and OpenAPI
    install_web(app)  # /static, /docs, /redoc and the pages (/portal)
    return app
