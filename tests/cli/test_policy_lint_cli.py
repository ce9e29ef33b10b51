"""``fairbill policy lint``: output lines, JSON, suppressed findings and exit codes 0/1/2."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from typer.testing import CliRunner, Result

from fairbill.cli.main import app
from fairbill.policy.load import BUNDLED_IDS

runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})

HEAD = """\
id: demo
name: Demo
version: "1"
effective: 2026-01-01
seed: demo.txt
currency: EUR
timezone: Europe/Paris
country: US
clauses:
"""
# Two fees clauses that disagree: the second (line 14) contradicts the first.
FEES = """\
  - id: demo/fees-a
    kind: fees
    source: ["Processing costs may be deducted."]
    processing_costs: true
  - id: demo/fees-b
    kind: fees
    source: ["No processing costs are deducted."]
    processing_costs: false
"""


def run(*args: str) -> Result:
    return runner.invoke(app, ["policy", "lint", *args])


def bundled_files() -> list[str]:
    return [str(resources.files("fairbill") / "policies" / f"{p}.yaml") for p in BUNDLED_IDS]


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_bundled_policies_lint_clean() -> None:
    result = run(*bundled_files())
    assert result.exit_code == 0, result.output
    assert "5 policies linted: 0 errors, 0 warnings" in result.stdout
    assert "2 suppressed (--show-suppressed lists them)" in result.stdout


def test_bundled_ids_are_accepted() -> None:
    result = run("qomon")
    assert result.exit_code == 0, result.output
    assert "floor_waived qomon/withdrawal-waived" in result.stdout


def test_a_finding_fails_with_its_file_line_code_and_clause(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + FEES)
    result = run(path)
    assert result.exit_code == 1, result.output
    assert f"{path}:14: contradiction demo/fees-b: demo/fees-a and this clause" in result.stdout
    assert f"{path}:5: text_not_found demo:" in result.stdout


def test_an_invalid_file_exits_2_with_the_loader_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEAD + FEES.replace("processing_costs: false", "processing_costs: maybe")
    )
    result = run(path, *bundled_files()[:1])
    assert result.exit_code == 2
    assert f"{path}:17: clauses.1.processing_costs:" in result.stderr
    assert "1 policy linted" in result.stdout  # the valid one is still linted


def test_an_unknown_policy_exits_2() -> None:
    result = run("no-such-policy")
    assert result.exit_code == 2
    assert "no-such-policy: unknown policy" in result.stderr


def test_json_output(tmp_path: Path) -> None:
    result = run(write(tmp_path, HEAD + FEES), "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["format"] == "fairbill.lint/1"
    (entry,) = document["files"]
    codes = [(f["code"], f["severity"], f["clause"], f["line"]) for f in entry["findings"]]
    assert ("contradiction", "error", "demo/fees-b", 14) in codes
    assert document["summary"]["error"] == 1 and document["invalid"] == []


def test_suppressed_findings_are_shown_on_request() -> None:
    hidden = run("conek")
    assert hidden.exit_code == 0 and "legal_floor" not in hidden.stdout
    shown = run("conek", "--show-suppressed")
    assert shown.exit_code == 0
    assert "legal_floor conek/cooling-off: [suppressed: The published text grants" in shown.stdout
    document = json.loads(run("conek", "--format", "json", "--show-suppressed").stdout)
    (suppressed,) = document["files"][0]["suppressed"]
    assert suppressed["about"] == "za-ecta-cooling-off" and suppressed["why"]


def test_text_option_checks_the_sentences(tmp_path: Path) -> None:
    policy = write(tmp_path, HEAD + FEES)
    text = write(tmp_path, "Processing costs may be deducted.\nA fee of 5% is charged.\n", "t.txt")
    result = run(policy, "--text", text)
    assert result.exit_code == 1
    assert f"{text}:2: unmapped_sentence demo: 'A fee of 5% is charged.'" in result.stdout
    assert f"{policy}:16: source_not_in_text demo/fees-b:" in result.stdout


def test_bad_options_exit_2(tmp_path: Path) -> None:
    assert run("qomon", "--format", "xml").exit_code == 2
    assert run("qomon", "--text", str(tmp_path / "missing.txt")).exit_code == 2
