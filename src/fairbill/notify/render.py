"""Customer emails from Jinja templates, in the customer's language.

Each template exists once per language under ``templates/<language>/``: ``NAME.txt`` holds
the subject (``{% block subject %}``) and the plain-text body; ``NAME.html`` the HTML
body (autoescaped). A language without its own templates falls back to English, and then
everything (words, numbers, dates) is English.

The context a template sees is the outbox row's payload plus what the outbox adds:

``merchant_name``  the merchant's name (required)
``currency``       ISO 4217 code of the payload's amounts (required when a template shows money)
``timezone``       the merchant's IANA timezone; dates are shown there (default ``UTC``)
``customer_code``  the customer's code (optional)

Payload money values are decimal strings ("160.00"): they are parsed as ``Decimal`` (a float
is refused) and formatted with Babel for the customer's locale and the merchant's currency.
Instants are ISO 8601 strings; one without an offset is merchant-local time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal
from jinja2 import (
    Environment,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
    select_autoescape,
)

from fairbill.errors import InvalidAmount
from fairbill.money import parse_decimal

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

# Every template the outbox may meet. Services emit all but the last two today.
TEMPLATES = (
    "welcome",
    "receipt",
    "payment_failed",
    "suspended",
    "reactivated",
    "cancellation_confirmed",
    "request_received",
    "refund_decided",
    "refund_paid",
    "data_deletion_notice",
    "terms_changed",
    "job_failed",  # to the merchant's finance address (services.alerts.notify_finance)
    "refund_failed",  # to the merchant's finance address too
    "request_needs_information",
    "credits_expiring",
)

# Optional payload keys: a template may test them without the payload carrying them.
_OPTIONAL: dict[str, Any] = {
    "amount": None,
    "clauses": (),
    "customer_code": None,
    "decline_days": None,
    "deletes_at": None,
    "destination": None,
    "due": None,
    "effective_at": None,
    "ends_at": None,
    "explanation": None,
    "information": None,
    "kind": None,
    "next_attempt_at": None,
    "next_retry_at": None,
    "reason": None,
    "review_due": None,
    "url": None,
}

_LABELS: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "outcome": {
            "approved": "approved",
            "partially_approved": "partially approved",
            "declined": "declined",
            "needs_review": "under review",
        },
        # "€160.00 has been …"
        "destination": {
            "original_method": "refunded to your original payment method",
            "wallet": "credited to your account balance",
        },
        # "a refund of €160.00 …"
        "destination_to": {
            "original_method": "to your original payment method",
            "wallet": "to your account balance",
        },
        "credit_kind": {"message": "message", "sms": "SMS", "email": "email"},
    },
    "fr": {
        "outcome": {
            "approved": "acceptée",
            "partially_approved": "partiellement acceptée",
            "declined": "refusée",
            "needs_review": "en cours d'examen",
        },
        # « Un montant de 160,00 € a été … »
        "destination": {
            "original_method": "remboursé sur votre moyen de paiement d'origine",
            "wallet": "crédité sur le solde de votre compte",
        },
        # « un remboursement de 160,00 € … »
        "destination_to": {
            "original_method": "sur votre moyen de paiement d'origine",
            "wallet": "sur le solde de votre compte",
        },
        "credit_kind": {"message": "de messages", "sms": "SMS", "email": "d'e-mails"},
    },
}


class RenderError(ValueError):
    """The message cannot be rendered: unknown template, missing or malformed payload."""


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str
    html: str
    language: str = DEFAULT_LANGUAGE  # the language the message was actually written in


@dataclass(frozen=True, slots=True)
class Clause:
    """A policy clause a decision applied: its id and, when known, the published words."""

    id: str
    quote: str | None = None


def template_language(language: str | None) -> str:
    """The template language for a customer language tag ("fr", "fr-CA", "FR_fr" → "fr")."""
    primary = re.split(r"[-_]", (language or "").strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def render(template: str, language: str, context: Mapping[str, Any]) -> Message:
    """Render ``template`` in ``language`` (English when there is no such translation)."""
    if template not in TEMPLATES:
        raise RenderError(f"unknown notification template {template!r}")
    lang = template_language(language)
    values = _values(lang, context)
    try:
        text_tmpl = _ENV.get_template(f"{lang}/{template}.txt")
        html_tmpl = _ENV.get_template(f"{lang}/{template}.html")
        subject = "".join(text_tmpl.blocks["subject"](text_tmpl.new_context(values)))
        subject = _one_line(subject)
        text = text_tmpl.render(values)
        html = html_tmpl.render({**values, "subject": subject})
    except TemplateNotFound as exc:
        raise RenderError(f"no template {exc.name!r}") from exc
    except UndefinedError as exc:
        raise RenderError(f"{template}: the payload lacks a value: {exc.message}") from exc
    except (InvalidAmount, TypeError, ValueError) as exc:
        raise RenderError(f"{template}: {exc}") from exc
    return Message(subject=subject, text=_tidy(text), html=html, language=lang)


# -- the environment and its filters -----------------------------------------------------------
def _values(lang: str, context: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = dict(_OPTIONAL)
    values.update(context)
    if not values.get("merchant_name"):
        raise RenderError("the context needs merchant_name")
    values["language"] = lang
    values["locale"] = lang
    values["clauses"] = _clauses(values.get("clauses"))
    return values


def _clauses(raw: Any) -> list[Clause]:
    if not raw:
        return []
    if isinstance(raw, str):
        raw = [part for part in re.split(r"[,\s]+", raw) if part]
    out: list[Clause] = []
    for item in raw:
        if isinstance(item, Clause):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Clause(str(item["id"]), item.get("quote") or None))
        else:
            out.append(Clause(str(item)))
    return out


def _ctx(context: Any, key: str) -> Any:
    return context.get(key)


def _tz(context: Any) -> ZoneInfo:
    name = _ctx(context, "timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown timezone {name!r}") from exc


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool | float):
        raise TypeError(f"money is never a float or a bool: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return parse_decimal(str(value))


def money(context: Any, value: Any, currency: str | None = None) -> str:
    """``"160.00"`` → ``"160,00 €"`` (fr) or ``"€160.00"`` (en) in the context's currency."""
    code = currency or _ctx(context, "currency")
    if not code:
        raise RenderError("the context needs a currency to show an amount")
    return str(format_currency(_decimal(value), code, locale=_ctx(context, "locale")))


def number(context: Any, value: Any) -> str:
    return str(format_decimal(_decimal(value), locale=_ctx(context, "locale")))


def _instant(context: Any, value: Any) -> datetime:
    tz = _tz(context)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise RenderError(f"not an ISO 8601 date or time: {value!r}") from exc
    else:
        raise RenderError(f"not a date or time: {value!r}")
    if moment.tzinfo is None:  # local merchant time, as everywhere in fairbill
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def _is_date_only(value: Any) -> bool:
    return (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()) is not None
    )


def long_date(context: Any, value: Any) -> str:
    """A calendar date in the merchant's timezone: "11 mars 2026", "March 11, 2026"."""
    if _is_date_only(value):
        day = value if isinstance(value, date) else date.fromisoformat(value.strip())
    else:
        day = _instant(context, value).date()
    return _date_text(context, day)


def _date_text(context: Any, day: date) -> str:
    locale = _ctx(context, "locale")
    text = str(format_date(day, "long", locale=locale))
    if locale == "fr" and day.day == 1 and text.startswith("1 "):
        text = "1er" + text[1:]  # « le 1er mai 2026 », as French writes the first of a month
    return text


def long_datetime(context: Any, value: Any) -> str:
    """Date and time in the merchant's timezone: "11 mars 2026, 14:30 (Europe/Paris)"."""
    if _is_date_only(value):
        return long_date(context, value)
    locale = _ctx(context, "locale")
    moment = _instant(context, value)
    pattern = str(get_datetime_format("long", locale=locale))
    shown = (
        pattern.replace("'", "")
        .replace("{0}", str(format_time(moment, "short", locale=locale)))
        .replace("{1}", _date_text(context, moment.date()))
    )
    return f"{shown} ({_tz(context).key})"


def label(context: Any, value: Any, kind: str) -> str:
    """The customer-facing words for an enum value (outcome, destination, credit kind)."""
    table = _LABELS[_ctx(context, "language")][kind]
    return table.get(str(value), str(value).replace("_", " "))


def _one_line(text: str) -> str:
    """One header line; no-break spaces (French typography, Babel's amounts) are kept."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def _tidy(text: str) -> str:
    """Collapse the blank lines optional paragraphs leave behind; end with one newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def _environment() -> Environment:

    env = Environment(
        loader=PackageLoader("fairbill.notify", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    install_formatting(env)
    env.tests["plural"] = _plural
    return env


def install_formatting(env: Environment) -> None:
    """The Babel filters the emails and the web pages share: money, numbers, dates,
    labels, each in the template's own ``language``."""
    from jinja2 import pass_context

    env.filters["money"] = pass_context(money)
    env.filters["number"] = pass_context(number)
    env.filters["date"] = pass_context(long_date)
    env.filters["datetime"] = pass_context(long_datetime)
    env.filters["label"] = pass_context(label)


def _plural(value: Any, language: str = DEFAULT_LANGUAGE) -> bool:
    """English: everything but 1 is plural; French: 0 and 1 are singular."""
    count = abs(_decimal(value))
    return count > 1 if language == "fr" else count != 1


_ENV = _environment()


def available(language: str) -> Sequence[str]:
    """The templates written in ``language`` itself (no fallback)."""
    names = set(_ENV.list_templates(filter_func=lambda n: n.startswith(f"{language}/")))
    return [
        t for t in TEMPLATES if f"{language}/{t}.txt" in names and f"{language}/{t}.html" in names
    ]
