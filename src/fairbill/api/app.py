"""The FastAPI application. ``create_app`` wires a runtime; routes live in ``routes/``."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from fairbill.api import problems
from fairbill.api.deps import client_request_id
from fairbill.api.routes import register_routes
from fairbill.api.settings import Runtime


class RequestId(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        rid = client_request_id(request.headers.get("x-request-id"))
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        return response


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
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
    app.add_middleware(RequestId)
    problems.install(app)
    register_routes(app)
    return app
