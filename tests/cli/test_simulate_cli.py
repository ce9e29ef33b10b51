"""``fairbill simulate`` and ``fairbill test`` from the outside: output, exit status."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fairbill.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
runner = CliRunner()

BROKEN_REF = """\
format: fairbill.scenario/1
name: refers to a payment that does not exist
merchant: {policy: kalenner}
catalog:
  plans:
    - {id: solo, interval: month, price: "29.00"}
customer:
  id: cus_1
  payment_methods: [{id: card_1, type: card}]
start: 2026-03-01T09:00
until: 2026-03-20
events:
  - at: 2026-03-01T09:00
    subscribe: {plan: solo, payment_method: card_1}
  - at: 2026-03-05T09:00
    refund_request: {kind: money_back, payment: 5, reason: "no"}
"""


def test_simulate_json_prints_the_contract_result() -> None:
    result = runner.invoke(
        app, ["simulate", str(EXAMPLES / "kalenner-annual-cancel.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["format"] == "fairbill.result/1"
    assert data["policy"] == {"id": "kalenner", "version": "2025-05-26"}
    assert data["now"] == "2027-02-01T00:00:00+01:00"
    assert [r["amount"] for r in data["refunds"]] == ["160.00"]
    assert data["refunds"][0]["clauses"] == [
        "kalenner/cancel-end-of-month",
        "kalenner/annual-cancel-refund",
    ]
    assert data["ledger"] == {"balanced": True}
    # Money is text everywhere in the result: no JSON number stands for an amount.
    assert all(isinstance(i["total"], str) for i in data["invoices"])


def test_simulate_report_shows_the_explanation() -> None:
    result = runner.invoke(
        app, ["simulate", str(EXAMPLES / "kalenner-annual-cancel.yaml")], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0
    assert "€240.00 × 8 / 12 months = €160.00" in result.output


def test_a_reference_to_a_missing_payment_is_an_input_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(BROKEN_REF)
    result = runner.invoke(app, ["simulate", str(file), "--json"])
    assert result.exit_code == 2
    assert f"{file}:16: events.1.refund_request.payment" in result.output
    assert "no payment 5: the customer has 1 payment(s)" in result.output


def test_test_command_counts_and_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text((EXAMPLES / "voip-immediate-cancel.yaml").read_text())
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        (EXAMPLES / "voip-immediate-cancel.yaml")
        .read_text()
        .replace('amount: "33.87"', 'amount: "33.88"')
    )
    result = runner.invoke(app, ["test", str(good)])
    assert result.exit_code == 0
    assert "1 passed, 0 failed" in result.output
    result = runner.invoke(app, ["test", str(good), str(wrong)], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "refunds[0].amount" in result.output
    assert "'33.88'" in result.output and "'33.87'" in result.output
    assert "1 passed, 1 failed" in result.output


def test_test_command_on_a_folder_runs_every_file(tmp_path: Path) -> None:
    """Every file of a folder, one per policy here: ``make scenarios`` runs the whole
    examples folder through the same command."""
    for policy in ("qomon", "voip", "conek", "emailconsul", "kalenner"):
        first = sorted(EXAMPLES.glob(f"{policy}-*.yaml"))[0]
        (tmp_path / first.name).write_text(first.read_text())
    result = runner.invoke(app, ["test", str(tmp_path)])
    assert "5 passed, 0 failed" in result.output
    assert result.exit_code == 0


def test_an_input_error_is_reported_on_stdout_apart_from_failures(tmp_path: Path) -> None:
    """A file that cannot run is an ERROR with its reason on stdout, not a FAIL (whose
    reason was only on stderr); input errors exit 2, failures alone exit 1."""
    good = tmp_path / "good.yaml"
    good.write_text((EXAMPLES / "voip-immediate-cancel.yaml").read_text())
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_REF)
    result = runner.invoke(app, ["test", str(good), str(broken)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert f"ERROR {broken}:16: events.1.refund_request.payment" in result.stdout
    assert "no payment 5" in result.stdout
    assert "FAIL" not in result.stdout
    assert "1 passed, 0 failed, 1 error(s)" in result.stdout
