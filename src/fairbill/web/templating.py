"""Pages from Jinja templates, formatted as the emails are.

The filters are the emails' own (``notify.render``): ``money``, ``number``, ``date``,
``datetime``, ``label``, reading ``currency``, ``timezone``, ``locale`` and ``language``
from the page's context, so an amount or a date reads the same in a page and in the
email about it. Words come from the catalogue (``web.words``) through ``t(key, **values)``.

Invariants: templates are autoescaped and undefined names are errors (a page that lacks
a value fails its test instead of showing a blank); every page gets ``SECURITY_HEADERS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape

from fairbill.money import parse_decimal
from fairbill.notify.render import install_formatting, template_language
from fairbill.web.http import secure
from fairbill.web.words import LANGUAGES, word

STATIC = "/static"


def _t(context: Any, key: str, **values: Any) -> str:
    return word(context.get("language"), key, **values)


def _positive(value: Any) -> bool:
    """An amount above zero ("0.00" is not; money is a decimal string, never a float)."""
    return value is not None and parse_decimal(str(value)) > 0


def static(path: str) -> str:
    return f"{STATIC}/{path}"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fairbill.web", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install_formatting(env)
    env.tests["positive"] = _positive
    env.globals["t"] = pass_context(_t)
    env.globals["static"] = static
    env.globals["languages"] = LANGUAGES
    return env


ENV = _environment()


def language_of(request: Request, *preferred: str | None) -> str:
    """The page language: ``?lang=`` if it is one we write, else the first of
    ``preferred`` given (the session's choice, the account's language), else the
    browser's ``Accept-Language``, else English."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    for choice in preferred:
        if choice:
            return template_language(choice)
    accepted = request.headers.get("accept-language", "")
    return template_language(accepted.split(",")[0].split(";")[0])


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> HTMLResponse:
    """The page ``template`` with ``context``; the context must name ``language`` and,
    to format money and dates, ``currency`` and ``timezone``."""
    values: dict[str, Any] = {
        "currency": None,
        "timezone": "UTC",
        "merchant_name": "fairbill",
        "csrf": None,
        "path": request.url.path,
        **context,
    }
    values["locale"] = values["language"]
    html = ENV.get_template(template).render(values)
    return secure(HTMLResponse(html, status_code=status))


__all__ = ["ENV", "language_of", "render", "static"]
