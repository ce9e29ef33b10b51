"""Sentences of a published policy text, and which of them state rules.

Pure text handling for the ``unmapped_sentence`` and ``source_not_in_text`` lint checks
(``policy.lint``).

- ``normalise``: what two quotations must share to be "the same text": whitespace runs
  become one space, typographic quotes and apostrophes become plain ones, case is folded
  and trailing punctuation (``.;:,``) is dropped.
- ``sentences``: a text is cut into lines, list markers and section numbers (``•``, ``-``,
  ``1.``, ``8.1``) are dropped, and each line is cut after ``.``, ``!`` or ``?`` followed by
  a capital letter or a quote. A line of six words or fewer that ends without ``.``, ``!``,
  ``?`` or ``;`` (a colon may end it) is a heading, not a sentence.
- ``states_rule``: a sentence states a rule when it contains one of ``RULE_WORDS`` (English
  and French stems) or a number of days, hours, months or a percentage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTES = str.maketrans({"’": "'", "‘": "'", "´": "'", "“": '"', "”": '"', "«": '"', "»": '"'})
_SPACE = re.compile(r"\s+")
_MARKER = re.compile(r"^\s*(?:[•·▪◦\-–—*]|\d{1,2}(?:\.\d{1,2})+|\d{1,2}[.)])\s+")
_CUT = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý0-9\"'“«])")

# Stems that mark a sentence as stating a billing rule (matched case-insensitively, at the
# start of a word). English, then French.
RULE_WORDS = (
    "refund",
    "reimburs",
    "cancel",
    "terminat",
    "within",
    "day",
    "fee",
    "charge",
    "bill",
    "invoice",
    "credit",
    "renew",
    "withdraw",
    "suspen",
    "prorat",
    "pro-rat",
    "pro rata",
    "non-refundable",
    "rembours",
    "annul",
    "résili",
    "dans les",
    "jour",
    "frais",
    "factur",
    "crédit",
    "renouvel",
    "rétract",
    "suspend",
    "prorata",
)
_RULE = re.compile(
    r"\b(?:" + "|".join(re.escape(w) for w in RULE_WORDS) + r")"
    r"|\d+\s*(?:%|days?\b|hours?\b|months?\b|jours?\b|heures?\b|mois\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Sentence:
    line: int  # 1-based line of the text where the sentence is
    text: str


def normalise(text: str) -> str:
    flat = _SPACE.sub(" ", text.translate(_QUOTES)).strip().casefold()
    return flat.rstrip(".;:, ")


def _is_heading(line: str) -> bool:
    return len(line.split()) <= 6 and not line.rstrip().endswith((".", "!", "?", ";"))


def sentences(text: str) -> list[Sentence]:
    """Every sentence of ``text`` with its line, headings left out."""
    found: list[Sentence] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _MARKER.sub("", raw).strip()
        if not line or _is_heading(line):
            continue
        found += [Sentence(number, part.strip()) for part in _CUT.split(line) if part.strip()]
    return found


def states_rule(sentence: str) -> bool:
    return _RULE.search(sentence) is not None


def accounted_for(sentence: str, quotes: list[str]) -> bool:
    """True when the sentence is quoted (whole, or as part of a longer quotation) or
    contains a quotation: a clause may quote just the part of a sentence it implements.
    ``quotes`` are already ``normalise``d."""
    own = normalise(sentence)
    return any(own in quote or quote in own for quote in quotes)
