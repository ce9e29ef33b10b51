"""The OpenAPI document says what the server does, strictly (schema fuzzing found them
disagree: schemathesis's "accepted what the schema refuses" and "refused what it allows").

- ``QueryBool``: a boolean query parameter is ``true`` or ``false``; FastAPI's own also
  took ``1``, ``yes``, ``on``... which the schema (``type: boolean``) does not allow.
  In bodies, booleans are ``StrictBool`` (``0`` and ``"yes"`` were taken) and integers
  ``JSON_INT`` (``"12"`` was taken).
- ``exactly_one_of``: a body that needs one of two members (a plan's ``price`` or
  ``tiers``) says so in its schema (``oneOf``), as its model validator enforces it.
- ``allowed_methods``: a 405 names every method of its path (``Allow: GET, POST``), not
  only those of the first route Starlette found for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BeforeValidator
from starlette.routing import Mount
from starlette.types import ASGIApp


def _query_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("true or false")


QueryBool = Annotated[bool, BeforeValidator(_query_bool)]


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a JSON integer")  # pydantic alone took "12" and true
    if isinstance(value, float):
        if not value.is_integer():  # also refuses inf and nan
            raise ValueError("a JSON integer")
        return int(value)  # 12.0 is an integer to JSON Schema
    return value


# An integer member of a body is what JSON Schema calls one (12 or 12.0), nothing else:
# ``Annotated[int, Field(ge=..., le=...), JSON_INT]``. Last, so that it runs first and the
# bounds stay in the document (put before them, pydantic leaves them out of it).
JSON_INT = BeforeValidator(_json_integer)


def exactly_one_of(first: str, second: str) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` for a model that takes ``first`` or ``second``, not both
    and not neither (a member given as null counts as absent, as the model reads it)."""
    absent: dict[str, Any] = {"type": "null"}
    present: dict[str, Any] = {"not": absent}

    def extra(schema: dict[str, Any]) -> None:
        schema["oneOf"] = [
            {"required": [first], "properties": {first: present, second: absent}},
            {"required": [second], "properties": {second: present, first: absent}},
        ]

    return extra


def allowed_methods(app: ASGIApp, path: str) -> list[str]:
    """Every method some route of ``app`` answers at ``path``, sorted."""
    methods: set[str] = set()
    for route in _routes(getattr(app, "routes", [])):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _routes(routes: list[Any]) -> Iterator[Any]:
    """The routes themselves, through included routers (FastAPI ≥ 0.16x keeps them as
    ``original_router``); mounted apps (static files) are not walked."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes)
        elif not isinstance(route, Mount):
            yield route
