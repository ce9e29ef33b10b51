"""``fairbill policy render`` and ``fairbill policy docs``."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fairbill.cli.main import app
from fairbill.policy.load import bundled_policy
from fairbill.policy.reference import bundled_reference

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def test_render_kalenner_in_french() -> None:
    result = run("policy", "render", "kalenner", "--lang", "fr")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("# Kalenner : conditions de facturation")
    assert "applicable à compter du 26 mai 2025" in out
    assert "Dans les 14 jours suivant votre abonnement initial" in out
    assert "Règle `kalenner/guarantee`" in out
    for clause in bundled_policy("kalenner").clauses:
        assert f"`{clause.id}`" in out


def test_render_defaults_to_the_policy_language_and_markdown() -> None:
    kalenner = run("policy", "render", "kalenner")
    assert kalenner.exit_code == 0, kalenner.output
    assert kalenner.stdout == run("policy", "render", "kalenner", "--lang", "fr").stdout
    conek = run("policy", "render", "conek")
    assert conek.exit_code == 0, conek.output
    assert conek.stdout.startswith("# Conek: billing, cancellation and refund terms\n")
    assert "## Refunds & guarantees" in conek.stdout
    assert "This applies to agreements of up to ZAR1,000,000.00." in conek.stdout
    assert "> You have 5 business days to cancel without penalty" in conek.stdout


def test_render_html_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "terms.html"
    result = run("policy", "render", "emailconsul", "--format", "html", "--output", str(target))
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert 'id="emailconsul/money-back-guarantee"' in page
    HTMLParser().feed(page)


def test_render_accepts_a_policy_file() -> None:
    path = str(resources.files("fairbill") / "policies" / "voip.yaml")
    result = run("policy", "render", path, "--lang", "fr")
    assert result.exit_code == 0, result.output
    assert "pendant au moins 4 heures" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kalenner", "--lang", "de"], "unknown language 'de': choose en or fr"),
        (["kalenner", "--format", "pdf"], "unknown format 'pdf': choose md or html"),
        (["nosuchpolicy"], "unknown policy"),
    ],
)
def test_render_input_errors_exit_2(args: list[str], message: str) -> None:
    result = run("policy", "render", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_docs_prints_or_writes_the_generated_reference(tmp_path: Path) -> None:
    printed = run("policy", "docs", "--output", "-")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == bundled_reference()
    target = tmp_path / "language.md"
    written = run("policy", "docs", "--output", str(target))
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == bundled_reference()
    assert f"wrote {target}" in written.stdout


def test_docs_writes_docs_policy_language_md_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    result = run("policy", "docs")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "docs" / "policy-language.md").read_text(encoding="utf-8") == (
        bundled_reference()
    )


def test_docs_to_an_unwritable_place_exits_2(tmp_path: Path) -> None:
    result = run("policy", "docs", "--output", str(tmp_path / "missing" / "x.md"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
