"""The customer-facing terms, rendered from the executable policy.

``render_policy(policy, lang, fmt)`` states every clause of the policy in plain words
(``policy.wording``), grouped under headings by topic, each followed by the verbatim
sentence(s) of the published text it implements. Nothing is written by hand: what a
customer reads is what the engine runs.

Invariants:
- every clause appears exactly once, under one topic (an unknown kind goes under "Other");
  in HTML its id is the ``id`` of its element, in Markdown it is named under the quote;
- every figure comes from the clause's fields (amounts formatted by Babel in the policy's
  currency and the document's language; dates likewise);
- HTML is a standalone HTML5 document (``lang`` set, one ``h1``, no external asset), every
  text escaped; the quotes carry the published text's language.

Pure: no I/O. ``MEDIA_TYPES`` gives the media type of each format for an HTTP response.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from fairbill.policy.model import ClauseBase, Policy
from fairbill.policy.wording import Words, clause_statement

LANGUAGES = ("en", "fr")
FORMATS = ("md", "html")
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}


class RenderError(ValueError):
    """An unknown language or format."""


# Topics in document order, with their headings; each kind belongs to one.
_TOPICS: dict[str, dict[str, str]] = {
    "billing": {"en": "Billing & renewal", "fr": "Facturation et renouvellement"},
    "cancelling": {"en": "Cancelling", "fr": "Annulation"},
    "refunds": {"en": "Refunds & guarantees", "fr": "Remboursements et garanties"},
    "fees": {"en": "Fees", "fr": "Frais"},
    "failed-payments": {"en": "Failed payments", "fr": "Échecs de paiement"},
    "outages": {"en": "Outages", "fr": "Interruptions de service"},
    "credits": {"en": "Credits & promotions", "fr": "Crédits et promotions"},
    "disputes": {"en": "Disputes & chargebacks", "fr": "Litiges et contestations de paiement"},
    "changes": {"en": "Changes to these terms", "fr": "Modification de ces conditions"},
    "other": {"en": "Other", "fr": "Autres dispositions"},
}
TOPIC_OF_KIND = {
    "billing_terms": "billing",
    "plan_change": "billing",
    "usage_tiers": "billing",
    "trials": "billing",
    "activation": "billing",
    "cancellation_timing": "cancelling",
    "cancellation_refund": "cancelling",
    "account_closure": "cancelling",
    "money_back_guarantee": "refunds",
    "cooling_off": "refunds",
    "non_refundable": "refunds",
    "exception_refund": "refunds",
    "request_requirements": "refunds",
    "decline_ground": "refunds",
    "refund_destination": "refunds",
    "deadlines": "refunds",
    "appeals": "refunds",
    "terms_acceptance": "refunds",
    "fees": "fees",
    "dunning": "failed-payments",
    "outage_compensation": "outages",
    "prepaid_credits": "credits",
    "promotions": "credits",
    "disputes": "disputes",
    "terms_change": "changes",
    "violations": "other",
    "data_retention": "other",
}

_TEXT = {
    "en": {
        "title": "{name}: billing, cancellation and refund terms",
        "version": "Version {version}, effective {date}.",
        "intro": "Each rule below is what we apply, followed by the words of our published "
        "policy it comes from.",
        "quotes": "Quotations are in {language}, the language of the published policy.",
        "contents": "Contents",
        "rule": "Rule",
        "footer": "Generated from policy {id}, version {version}.",
    },
    "fr": {
        "title": "{name} : conditions de facturation, d'annulation et de remboursement",
        "version": "Version {version}, applicable à compter du {date}.",
        "intro": "Chaque règle ci-dessous est celle que nous appliquons, suivie des termes de "
        "notre politique publiée dont elle découle.",
        "quotes": "Les citations sont en {language}, la langue de la politique publiée.",
        "contents": "Sommaire",
        "rule": "Règle",
        "footer": "Document généré à partir de la politique {id}, version {version}.",
    },
}


@dataclass(frozen=True, slots=True)
class RenderedClause:
    id: str
    kind: str
    text: str  # the plain statement, in the document's language
    sources: tuple[str, ...]  # verbatim, in the policy's language


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    title: str
    clauses: tuple[RenderedClause, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """The customer document, before it is written as Markdown or HTML."""

    lang: str
    source_lang: str
    title: str
    effective: date
    lines: tuple[str, ...]  # the version line, the introduction, the note on quotes
    topics: tuple[Topic, ...]
    footer: str


def default_language(policy: Policy) -> str:
    """The policy's own language when it can be rendered in it ("fr-CA" → "fr"), else en."""
    primary = re.split(r"[-_]", policy.language.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else "en"


def long_date(day: date, lang: str) -> str:
    """ "May 26, 2025", "26 mai 2025" ("1er mai 2026": French writes the first so)."""
    text = str(format_date(day, "long", locale=lang))
    if lang == "fr" and day.day == 1 and text.startswith("1 "):
        text = "1er" + text[1:]
    return text


def _language_name(code: str, lang: str) -> str | None:
    try:
        name = Locale.parse(lang).languages.get(code.split("-")[0].split("_")[0].lower())
    except (UnknownLocaleError, ValueError):
        return None
    return str(name) if name else None


def render_clause(clause: ClauseBase, lang: str, currency: str) -> RenderedClause:
    """One clause stated in ``lang``, with its verbatim sources."""
    return RenderedClause(
        id=clause.id,
        kind=str(getattr(clause, "kind", "")),
        text=clause_statement(clause, Words(lang, currency)),
        sources=tuple(clause.source),
    )


def build_document(policy: Policy, lang: str) -> Document:
    """The document's content in ``lang``: every clause, grouped by topic."""
    _check(lang, LANGUAGES, "language")
    words = _TEXT[lang]
    by_topic: dict[str, list[RenderedClause]] = {key: [] for key in _TOPICS}
    for clause in policy.clauses:
        rendered = render_clause(clause, lang, policy.currency)
        by_topic[TOPIC_OF_KIND.get(rendered.kind, "other")].append(rendered)
    lines = [
        words["version"].format(version=policy.version, date=long_date(policy.effective, lang)),
        words["intro"],
    ]
    source_lang = policy.language
    language_name = _language_name(source_lang, lang)
    if default_language(policy) != lang and language_name:
        lines.append(words["quotes"].format(language=language_name))
    return Document(
        lang=lang,
        source_lang=source_lang,
        title=words["title"].format(name=policy.name),
        effective=policy.effective,
        lines=tuple(lines),
        topics=tuple(
            Topic(key, _TOPICS[key][lang], tuple(found)) for key, found in by_topic.items() if found
        ),
        footer=words["footer"].format(id=policy.id, version=policy.version),
    )


def render_policy(policy: Policy, lang: str = "en", fmt: str = "md") -> str:
    """The customer document for ``policy`` in ``lang`` ("en", "fr") as ``fmt`` ("md",
    "html"); ``RenderError`` for any other language or format."""
    _check(fmt, FORMATS, "format")
    document = build_document(policy, lang)
    return to_html(document) if fmt == "html" else to_markdown(document)


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise RenderError(f"unknown {what} {value!r}: choose {' or '.join(allowed)}")


# -- Markdown -------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LINE_START = re.compile(r"^(#|[-+]\s|\d+[.)]\s|=|>)")


def md_escape(text: str) -> str:
    """Text that Markdown shows as written: inline markup characters and line-start
    markers (a heading, a list item, a quote) are backslash-escaped."""
    escaped = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    return _MD_LINE_START.sub(r"\\\1", escaped)


def to_markdown(document: Document) -> str:
    rule = _TEXT[document.lang]["rule"]
    out = [f"# {md_escape(document.title)}", ""]
    for line in document.lines:
        out += [md_escape(line), ""]
    for topic in document.topics:
        out += [f"## {md_escape(topic.title)}", ""]
        for clause in topic.clauses:
            out += [md_escape(clause.text), ""]
            # One quoted paragraph per source sentence.
            out += "\n>\n".join(f"> {md_escape(s)}" for s in clause.sources).split("\n")
            out += ["", f"{rule} `{clause.id}`", ""]
    out += ["---", "", md_escape(document.footer)]
    return "\n".join(out) + "\n"


# -- HTML -----------------------------------------------------------------------------------
_STYLE = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;max-width:46rem;margin:0 auto;"
    "padding:1rem;color:#1a1a1a;background:#fff}"
    "blockquote{margin:.5rem 0;padding:.25rem 1rem;border-left:4px solid #767676;color:#333}"
    ".clause{margin:0 0 1.5rem}.rule{font-size:.875rem;color:#555}"
)


def _e(text: str) -> str:
    """Text escaped for an element's content or a double-quoted attribute."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def to_html(document: Document) -> str:
    words = _TEXT[document.lang]
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(document.lang)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(document.title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(document.title)}</h1>",
        *_header_lines(document),
        "</header>",
        '<nav aria-labelledby="contents">',
        f'<h2 id="contents">{_e(words["contents"])}</h2>',
        "<ul>",
        *[f'<li><a href="#{t.key}">{_e(t.title)}</a></li>' for t in document.topics],
        "</ul>",
        "</nav>",
        "<main>",
    ]
    for topic in document.topics:
        out += [
            f'<section aria-labelledby="{topic.key}">',
            f'<h2 id="{topic.key}">{_e(topic.title)}</h2>',
        ]
        for clause in topic.clauses:
            out += _html_clause(clause, document.source_lang, words["rule"])
        out.append("</section>")
    out += [
        "</main>",
        "<footer>",
        f"<p>{_e(document.footer)}</p>",
        "</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


def _header_lines(document: Document) -> list[str]:
    first, *rest = document.lines
    shown = long_date(document.effective, document.lang)
    dated = _e(first).replace(
        _e(shown), f'<time datetime="{document.effective.isoformat()}">{_e(shown)}</time>', 1
    )
    return [f"<p>{dated}</p>", *[f"<p>{_e(line)}</p>" for line in rest]]


def _html_clause(clause: RenderedClause, source_lang: str, rule: str) -> list[str]:
    return [
        f'<div class="clause" id="{_e(clause.id)}">',
        f"<p>{_e(clause.text)}</p>",
        f'<blockquote lang="{_e(source_lang)}">',
        *[f"<p>{_e(sentence)}</p>" for sentence in clause.sources],
        "</blockquote>",
        f'<p class="rule">{_e(rule)} <code>{_e(clause.id)}</code></p>',
        "</div>",
    ]
