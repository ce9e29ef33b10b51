"""``fairbill policy list | show | check | explain``."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fairbill.cli.main import app
from fairbill.policy.load import BUNDLED_IDS, bundled_policy

# A wide terminal, so that Rich does not wrap or truncate what the assertions look for.
runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def bundled_file(policy_id: str) -> str:
    return str(resources.files("fairbill") / "policies" / f"{policy_id}.yaml")


def test_list_shows_every_bundled_policy() -> None:
    result = run("policy", "list")
    assert result.exit_code == 0, result.output
    for policy_id in BUNDLED_IDS:
        policy = bundled_policy(policy_id)
        assert policy_id in result.stdout
        assert policy.name in result.stdout
        assert policy.timezone in result.stdout
    assert "Africa/Johannesburg" in result.stdout
    assert "ZAR" in result.stdout


def test_show_lists_clauses_with_parameters() -> None:
    result = run("policy", "show", "kalenner")
    assert result.exit_code == 0, result.output
    assert "kalenner/guarantee" in result.stdout
    assert "money_back_guarantee" in result.stdout
    assert "window_days=14" in result.stdout
    assert "retry_offsets_days=[1, 3, 7]" in result.stdout


def test_show_accepts_a_file() -> None:
    result = run("policy", "show", bundled_file("conek"))
    assert result.exit_code == 0, result.output
    assert "conek/cooling-off" in result.stdout
    assert "max_amount=1000000.00" in result.stdout


def test_explain_traces_every_conek_clause_to_its_sentences() -> None:
    result = run("policy", "explain", "conek")
    assert result.exit_code == 0, result.output
    out = normalise(result.stdout)
    policy = bundled_policy("conek")
    for clause in policy.clauses:
        assert clause.id in out
        for sentence in clause.source:
            assert normalise(sentence)[:60] in out, (clause.id, sentence)
        if clause.reading:
            assert normalise(clause.reading)[:60] in out, clause.id
    for item in policy.not_automated:
        assert normalise(item.source)[:60] in out
        assert normalise(item.why)[:40] in out


def test_explain_french_policy_keeps_the_french_text() -> None:
    result = run("policy", "explain", "kalenner")
    assert result.exit_code == 0, result.output
    assert "remboursement à 100%" in normalise(result.stdout)


@pytest.mark.parametrize("policy_id", BUNDLED_IDS)
def test_check_accepts_each_bundled_file(policy_id: str) -> None:
    path = bundled_file(policy_id)
    result = run("policy", "check", path)
    assert result.exit_code == 0, result.output
    clauses = len(bundled_policy(policy_id).clauses)
    assert f"{path}: ok ({clauses} clauses)" in result.stdout


def test_check_accepts_several_files() -> None:
    result = run("policy", "check", *(bundled_file(i) for i in BUNDLED_IDS))
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok (") == len(BUNDLED_IDS)


def test_check_rejects_a_broken_file_with_its_line(tmp_path: Path) -> None:
    text = Path(bundled_file("conek")).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, 1) if 'max_amount: "1000000.00"' in line)
    lines[number - 1] = lines[number - 1].replace('"1000000.00"', "1000000")
    broken = tmp_path / "broken.yaml"
    broken.write_text("".join(lines), encoding="utf-8")

    result = run("policy", "check", bundled_file("qomon"), str(broken))
    assert result.exit_code == 2
    assert f"{broken}:{number}: clauses." in result.stderr
    assert ".max_amount: " in result.stderr
    assert f"{broken}: ok" not in result.stdout
    assert ": ok (12 clauses)" in result.stdout  # the valid file is still reported


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run("policy", "check", str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "cannot read" in result.stderr


def test_check_reports_a_yaml_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "syntax.yaml"
    broken.write_text("id: demo\nname: Demo: Two\n", encoding="utf-8")
    result = run("policy", "check", str(broken))
    assert result.exit_code == 2
    assert f"{broken}:2: not valid YAML" in result.stderr


@pytest.mark.parametrize("command", ["show", "explain"])
def test_unknown_id_exits_2(command: str) -> None:
    result = run("policy", command, "nosuchpolicy")
    assert result.exit_code == 2
    assert "nosuchpolicy" in result.stderr
    assert result.stdout == ""


def test_invalid_policy_file_exits_2_on_show(tmp_path: Path) -> None:
    broken = tmp_path / "bad.yaml"
    broken.write_text(
        Path(bundled_file("voip")).read_text(encoding="utf-8").replace("USD", "usd"),
        encoding="utf-8",
    )
    result = run("policy", "show", str(broken))
    assert result.exit_code == 2
    assert f"{broken}:" in result.stderr
    assert ": currency: " in result.stderr
