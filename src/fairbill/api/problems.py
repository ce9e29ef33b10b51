"""RFC 9457 problem details with a stable ``code`` for every error the API returns.

Codes are a public contract: never rename one. 4xx for the client's mistakes, never a 500
for bad input.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fairbill.api.strict import allowed_methods
from fairbill.errors import (
    AlreadyDisputed,
    Conflict,
    FairbillError,
    GatewayError,
    IllegalTransition,
    InputError,
    MoneyError,
    NotFound,
    PolicyError,
)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail, self.extra = (
            status,
            code,
            title,
            detail,
            extra,
        )
        self.headers = headers or {}  # e.g. Retry-After on a 429

    def response(self, request: Request) -> JSONResponse:
        body = {
            "type": f"https://fairbill.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "instance": request.url.path,
            **self.extra,
        }
        return JSONResponse(
            body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers
        )


# -- documenting them: every route declares the problems it may answer ------------------
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable: never renamed"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}


# ``APIRouter(responses=RESPONSES)``: the problems any authenticated route may answer
# (FastAPI then drops its own ``application/json`` 422, which this API never sends).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("The body could not be parsed (`http_error`)."),
    401: _problem("Missing or invalid credentials (`unauthorized`)."),
    403: _problem("The credential may not do this (`forbidden`)."),
    404: _problem("No such object for this merchant (`not_found`)."),
    409: _problem(
        "Refused in the object's present state, or an `Idempotency-Key` reused or in progress."
    ),
    413: _problem("The body is larger than the API accepts (`payload_too_large`)."),
    422: _problem("Invalid input (`validation_error`, `invalid_input`, `invalid_amount`, ...)."),
    429: _problem(
        "Too many failed authentications from this client (`too_many_failures`): "
        "retry after `Retry-After` seconds."
    )
    | {"headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}},
    503: _problem(
        "The database chose this request as the one to give way to another "
        "(`database_busy`): nothing was written; retry after `Retry-After` seconds, "
        "with the same `Idempotency-Key`."
    )
    | {"headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}},
}
# Routes that may refund through the payment gateway.
GATEWAY_RESPONSES: dict[int | str, dict[str, Any]] = RESPONSES | {
    502: _problem("The payment gateway refused or failed (`gateway_error`).")
}


def unauthorized(detail: str = "missing or invalid credentials") -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail)


# SQLSTATEs of a transaction the database undid to let another through: a deadlock, a
# serialisation failure, a lock not available. Trying again is the remedy.
_TRANSIENT = frozenset({"40P01", "40001", "55P03"})


def transient(exc: DBAPIError) -> bool:
    """Whether ``exc`` is the database giving way to another transaction (trying again
    is the remedy), not a fault of fairbill's or of the request's."""
    if getattr(exc.orig, "sqlstate", None) in _TRANSIENT:
        return True
    return "database is locked" in str(exc.orig)  # SQLite's busy writer


def database_busy() -> Problem:
    return Problem(
        503,
        "database_busy",
        "Database busy",
        "the database undid this request to let another through; nothing was written: "
        "retry with the same Idempotency-Key",
        headers={"Retry-After": "1"},
    )


def too_many_failures(retry_after: int) -> Problem:
    return Problem(
        429,
        "too_many_failures",
        "Too many failed authentications",
        f"too many failed authentications from this client: retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def payload_too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload_too_large",
        "Payload too large",
        f"a request body is at most {limit} bytes",
    )


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "not_found", "Not found", detail)


def conflict(code: str, detail: str) -> Problem:
    return Problem(409, code, "Conflict", detail)


def invalid_policy(exc: PolicyError) -> Problem:
    """A policy file that does not load: each problem with its line and field."""
    errors = [
        {"line": loc.line, "field": loc.field, "message": message} for loc, message in exc.problems
    ]
    detail = f"the policy has {len(errors)} problem(s): " + "; ".join(
        f"line {e['line']}: {e['field']}: {e['message']}" if e["line"] else str(e["message"])
        for e in errors[:3]
    )
    return Problem(422, "invalid_policy", "Invalid policy", detail, errors=errors)


def from_error(exc: FairbillError) -> Problem:
    if isinstance(exc, NotFound):
        return not_found(str(exc))
    # Before Conflict, its base: a move its lifecycle's table refuses has its own code.
    if isinstance(exc, PolicyError):
        return invalid_policy(exc)
    if isinstance(exc, IllegalTransition):
        return conflict("illegal_transition", str(exc))
    if isinstance(exc, AlreadyDisputed):  # also what the route's own check answers
        return conflict("already_disputed", str(exc))
    if isinstance(exc, Conflict):
        return conflict("conflict", str(exc))
    if isinstance(exc, InputError):
        errors = [{"field": loc.field, "message": msg} for loc, msg in exc.problems]
        return Problem(422, "invalid_input", "Invalid input", str(exc), errors=errors)
    if isinstance(exc, MoneyError):
        return Problem(422, "invalid_amount", "Invalid amount", str(exc))
    if isinstance(exc, GatewayError):
        return Problem(502, "gateway_error", "Payment gateway error", str(exc))
    return Problem(409, "operation_refused", "Operation refused", str(exc))


def _field(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body")


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request)

    @app.exception_handler(FairbillError)
    async def _fairbill(request: Request, exc: FairbillError) -> JSONResponse:
        return from_error(exc).response(request)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if transient(exc):
            return database_busy().response(request)
        raise exc  # a fault: the server's error handler logs it (a 500)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            # A body that is not JSON is located by a character offset, not a field.
            {"field": "" if e["type"] == "json_invalid" else _field(e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0]["field"] if errors else ""
        return Problem(
            422,
            "validation_error",
            "Validation error",
            f"invalid field: {first}" if first else "invalid request",
            errors=errors,
        ).response(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        response = Problem(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            str(exc.detail),
        ).response(request)
        for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
            response.headers[name] = value
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only.
            methods = allowed_methods(request.app, request.scope["path"])
            if methods:
                response.headers["Allow"] = ", ".join(methods)
        return response
