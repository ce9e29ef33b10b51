"""The customer document rendered from a policy: every clause, figures from its fields."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest

from fairbill.policy.load import BUNDLED_IDS, bundled_policy, parse_policy
from fairbill.policy.model import (
    ClauseBase,
    CoolingOff,
    Deadlines,
    Dunning,
    Fees,
    MoneyBackGuarantee,
    Policy,
)
from fairbill.policy.reference import (
    clause_kinds,
    example_clause,
    example_policy,
    kind_of,
    own_fields,
    unit_of,
)
from fairbill.policy.render import (
    LANGUAGES,
    TOPIC_OF_KIND,
    RenderError,
    build_document,
    md_escape,
    render_clause,
    render_policy,
)
from fairbill.policy.wording import WORDING, Words

CASES = [(pid, lang) for pid in BUNDLED_IDS for lang in LANGUAGES]
VOID = {"meta", "br", "hr", "img", "link", "input", "source", "wbr"}


class Html(HTMLParser):
    """Collects what the assertions need, and checks every element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.doctype = ""
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(document: str) -> Html:
    parser = Html()
    parser.feed(document)
    parser.close()
    return parser


def statement(policy: Policy, clause_id: str, lang: str) -> str:
    return render_clause(policy.clause(clause_id), lang, policy.currency).text


# -- every clause, in both formats ------------------------------------------------------------
@pytest.mark.parametrize(("policy_id", "lang"), CASES)
def test_every_clause_appears_in_html_with_its_sources(policy_id: str, lang: str) -> None:
    policy = bundled_policy(policy_id)
    page = parsed(render_policy(policy, lang, "html"))
    assert not page.errors and not page.stack
    # Each clause is the element whose id is its own (clause ids hold a "/", topics don't).
    assert sorted(c.id for c in policy.clauses) == sorted(i for i in page.ids if "/" in i)
    text = "\n".join(page.text)
    for clause in policy.clauses:
        for sentence in clause.source:
            assert sentence in text, (clause.id, sentence)
    quotes = [a for tag, a in page.tags if tag == "blockquote"]
    assert len(quotes) == len(policy.clauses)
    assert all(a.get("lang") == policy.language for a in quotes)


@pytest.mark.parametrize(("policy_id", "lang"), CASES)
def test_every_clause_appears_in_markdown_with_its_sources(policy_id: str, lang: str) -> None:
    policy = bundled_policy(policy_id)
    document = render_policy(policy, lang, "md")
    for clause in policy.clauses:
        assert document.count(f"`{clause.id}`") == 1, clause.id
        for sentence in clause.source:
            assert f"> {md_escape(sentence)}\n" in document, (clause.id, sentence)
        assert md_escape(statement(policy, clause.id, lang)) in document


@pytest.mark.parametrize(("policy_id", "lang"), CASES)
def test_html_is_a_standalone_accessible_document(policy_id: str, lang: str) -> None:
    document = render_policy(bundled_policy(policy_id), lang, "html")
    page = parsed(document)
    assert page.doctype.lower() == "doctype html"
    html_tags = [a for tag, a in page.tags if tag == "html"]
    assert html_tags == [{"lang": lang}]
    assert [tag for tag, _ in page.tags].count("h1") == 1
    assert [tag for tag, _ in page.tags].count("title") == 1
    assert ("meta", {"charset": "utf-8"}) in page.tags
    assert len(page.ids) == len(set(page.ids)), "ids are unique"
    # No external asset: no script, no stylesheet link, no image, no remote URL.
    assert not {"script", "link", "img", "iframe"} & {tag for tag, _ in page.tags}
    assert "http" not in document
    # Every in-page link points at an element of the page.
    for tag, attrs in page.tags:
        if tag == "a":
            assert str(attrs["href"]).lstrip("#") in page.ids


def test_text_is_escaped_in_html_and_markdown() -> None:
    text = example_policy(example_clause(MoneyBackGuarantee)).replace(
        '"The sentence of your published policy this clause implements."',
        '"<script>alert(1)</script> & *all* [refunds](x) | # now"',
    )
    policy = parse_policy(text.replace("name: Example Ltd", 'name: "A <b> & Co"'), "x.yaml")
    page = render_policy(policy, "en", "html")
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; *all*" in page
    assert "A &lt;b&gt; &amp; Co" in page
    assert parsed(page).errors == []
    markdown = render_policy(policy, "en", "md")
    assert "> \\<script\\>alert(1)\\</script\\> & \\*all\\* \\[refunds\\](x) \\| # now" in markdown
    assert "# A \\<b\\> & Co:" in markdown


# -- figures come from the clause's fields ----------------------------------------------------
def _numbers(text: str) -> list[Decimal]:
    return [Decimal(n.replace(",", ".")) for n in re.findall(r"\d+(?:[.,]\d+)?", text)]


def _field_numbers(clause: ClauseBase) -> set[Decimal]:
    """Every count, window and percentage a clause sets (amounts are checked apart)."""
    found: set[Decimal] = set()
    for name, field in own_fields(type(clause)).items():
        value: Any = getattr(clause, name)
        if unit_of(name, field) == "amount" or isinstance(value, bool):
            continue
        values = value if isinstance(value, list) else [value]
        found |= {Decimal(v) for v in values if isinstance(v, int | Decimal) and v}
    return found


@pytest.mark.parametrize(("policy_id", "lang"), CASES)
def test_the_numbers_in_each_statement_are_the_clause_fields(policy_id: str, lang: str) -> None:
    policy = bundled_policy(policy_id)
    words = Words(lang, policy.currency)
    for clause in policy.clauses:
        text = render_clause(clause, lang, policy.currency).text
        for name, field in own_fields(type(clause)).items():
            amount = getattr(clause, name)
            if unit_of(name, field) == "amount" and amount is not None:
                assert words.money(amount) in text, clause.id
                text = text.replace(words.money(amount), "")
        shown = set(_numbers(text))
        expected = _field_numbers(clause)
        assert expected <= shown, (clause.id, text)
        derived = (
            {Decimal(len(clause.retry_offsets_days))} if isinstance(clause, Dunning) else set()
        )
        assert shown <= expected | derived, (clause.id, text)


@pytest.mark.parametrize(
    ("policy_id", "clause_id", "lang", "pattern", "field"),
    [
        ("kalenner", "kalenner/guarantee", "en", r"Within (\d+) days of", "window_days"),
        ("kalenner", "kalenner/guarantee", "fr", r"Dans les (\d+) jours suivant", "window_days"),
        (
            "emailconsul",
            "emailconsul/money-back-guarantee",
            "fr",
            r"Dans les (\d+) jours suivant le paiement",
            "window_days",
        ),
        ("conek", "conek/cooling-off", "en", r"within (\d+) business days", "business_days"),
        ("conek", "conek/cooling-off", "fr", r"dans les (\d+) jours ouvrables", "business_days"),
        (
            "kalenner",
            "kalenner/guarantee-processing",
            "fr",
            r"traité dans un délai de (\d+) jours ouvrables",
            "processing_business_days",
        ),
        (
            "conek",
            "conek/review-deadlines",
            "en",
            r"review a refund request within (\d+) business days",
            "review_business_days",
        ),
        (
            "qomon",
            "qomon/fx-and-fees",
            "en",
            r"flat fee of up to (\d+)% of",
            "flat_fee_max_percent",
        ),
        (
            "qomon",
            "qomon/fx-and-fees",
            "fr",
            r"forfaitaires d'au plus (\d+)\u00a0% du",
            "flat_fee_max_percent",
        ),
        ("voip", "voip/service-disruption", "en", r"at least (\d+) hours", "min_duration_hours"),
        ("conek", "conek/outage-credit", "fr", r"plus de (\d+) heures", "min_duration_hours"),
        ("conek", "conek/unauthorized", "fr", r"dans les (\d+) jours suivant", "within_days"),
    ],
)
def test_a_window_or_fee_read_back_from_the_statement_equals_the_field(
    policy_id: str, clause_id: str, lang: str, pattern: str, field: str
) -> None:
    policy = bundled_policy(policy_id)
    match = re.search(pattern, statement(policy, clause_id, lang))
    assert match, statement(policy, clause_id, lang)
    assert Decimal(match.group(1)) == getattr(policy.clause(clause_id), field)


def test_the_cooling_off_ceiling_is_the_clause_amount_in_babel_format() -> None:
    conek = bundled_policy("conek")
    clause = conek.clause("conek/cooling-off")
    assert isinstance(clause, CoolingOff) and clause.max_amount == Decimal("1000000.00")
    assert "up to ZAR1,000,000.00." in statement(conek, clause.id, "en")
    french = statement(conek, clause.id, "fr")
    amount = re.search(r"d'au plus ([\d\s\u202f\u00a0]+,\d{2})\s?ZAR", french)
    assert amount, french
    assert Decimal(re.sub(r"\D", "", amount.group(1))) / 100 == clause.max_amount


def test_dunning_retries_read_back_in_both_languages() -> None:
    kalenner = bundled_policy("kalenner")
    clause = kalenner.clause("kalenner/failed-payments")
    assert isinstance(clause, Dunning)
    english = re.search(
        r"(\d+) times: ([\d, and]+) days after", statement(kalenner, clause.id, "en")
    )
    french = re.search(
        r"(\d+) fois : ([\d, et]+) jours après", statement(kalenner, clause.id, "fr")
    )
    for match in (english, french):
        assert match
        assert int(match.group(1)) == len(clause.retry_offsets_days)
        assert [int(n) for n in re.findall(r"\d+", match.group(2))] == clause.retry_offsets_days


def test_changed_fields_change_the_text() -> None:
    kalenner = bundled_policy("kalenner")
    changed = [
        c.model_copy(update={"window_days": 21})
        if isinstance(c, MoneyBackGuarantee)
        else c.model_copy(update={"processing_business_days": 1})
        if isinstance(c, Deadlines)
        else c
        for c in kalenner.clauses
    ]
    policy = kalenner.model_copy(update={"clauses": changed})
    assert "Within 21 days of" in statement(policy, "kalenner/guarantee", "en")
    assert "dans un délai de 1 jour ouvrable" in statement(
        policy, "kalenner/guarantee-processing", "fr"
    )
    fees = Fees(id="x/fees", kind="fees", source=["s"], flat_fee_max_percent=Decimal("12.5"))
    assert "up to 12.5% of the refund" in render_clause(fees, "en", "EUR").text
    assert "d'au plus 12,5\u00a0% du remboursement" in render_clause(fees, "fr", "EUR").text


# -- templates, fallback, structure ---------------------------------------------------------
def test_every_kind_has_a_template_and_a_topic_in_both_languages() -> None:
    kinds = {kind_of(c) for c in clause_kinds()}
    for lang in LANGUAGES:
        assert set(WORDING[lang]) == kinds, lang
    assert set(TOPIC_OF_KIND) == kinds


@pytest.mark.parametrize("cls", clause_kinds(), ids=kind_of)
def test_every_kind_is_stated_from_its_minimal_clause(cls: type[ClauseBase]) -> None:
    policy = parse_policy(example_policy(example_clause(cls)), "example.yaml")
    for lang in LANGUAGES:
        text = render_clause(policy.clauses[0], lang, policy.currency).text
        assert text.endswith(".") and len(text) > 20, (kind_of(cls), lang, text)
        assert "_" not in text, "a raw code leaked into the customer text"


def test_a_kind_without_a_template_is_stated_by_its_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(WORDING["en"], "fees")
    monkeypatch.delitem(WORDING["fr"], "fees")
    qomon = bundled_policy("qomon")
    assert statement(qomon, "qomon/fx-and-fees", "en") == (
        "This rule (fees) sets: processing costs: yes; flat fee max percent: 18; "
        "fx risk on customer: yes."
    )
    assert statement(qomon, "qomon/fx-and-fees", "fr").startswith("Cette règle (fees) fixe : ")
    assert 'id="qomon/fx-and-fees"' in render_policy(qomon, "en", "html")


def test_topics_follow_the_document_order_and_the_language() -> None:
    kalenner = bundled_policy("kalenner")
    english = [t.title for t in build_document(kalenner, "en").topics]
    assert english == [
        "Billing & renewal",
        "Cancelling",
        "Refunds & guarantees",
        "Failed payments",
        "Changes to these terms",
    ]
    french = [t.title for t in build_document(kalenner, "fr").topics]
    assert french[0] == "Facturation et renouvellement"
    html_page = render_policy(kalenner, "en", "html")
    assert '<h2 id="billing">Billing &amp; renewal</h2>' in html_page


def test_title_version_and_date_are_in_the_language() -> None:
    kalenner = bundled_policy("kalenner")
    english = render_policy(kalenner, "en", "md")
    assert english.startswith("# Kalenner: billing, cancellation and refund terms\n")
    assert "Version 2025-05-26, effective May 26, 2025." in english
    assert "Quotations are in French, the language of the published policy." in english
    french = render_policy(kalenner, "fr", "md")
    assert "Version 2025-05-26, applicable à compter du 26 mai 2025." in french
    assert "Les citations sont en" not in french
    assert '<time datetime="2025-05-26">26 mai 2025</time>' in render_policy(kalenner, "fr", "html")
    first = kalenner.model_copy(update={"effective": kalenner.effective.replace(month=5, day=1)})
    assert "à compter du 1er mai 2025." in render_policy(first, "fr", "md")
    conek_fr = render_policy(bundled_policy("conek"), "fr", "md")
    assert "Les citations sont en anglais, la langue de la politique publiée." in conek_fr


def test_unknown_language_or_format_is_refused() -> None:
    kalenner = bundled_policy("kalenner")
    with pytest.raises(RenderError, match="unknown language 'de'"):
        render_policy(kalenner, "de", "md")
    with pytest.raises(RenderError, match="unknown format 'pdf'"):
        render_policy(kalenner, "en", "pdf")
