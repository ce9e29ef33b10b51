"""``fairbill policy diff`` and ``fairbill whatif`` from the outside: output, plots, exit
status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbill.cli.main import app
from fairbill.policy.load import bundled_policy_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"

# Scenarios whose cancellation falls inside Kalenner's 14-day guarantee (day 7, day 14) and
# one after it: a 7-day guarantee changes the second only.
SCENARIOS = [
    EXAMPLES / "kalenner-guarantee-refund.yaml",
    EXAMPLES / "kalenner-guarantee-day-14-full-refund.yaml",
    EXAMPLES / "kalenner-annual-cancel.yaml",
]


@pytest.fixture(scope="module")
def seven_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kalenner with a 7-day guarantee, as a new version of the policy file."""
    text = bundled_policy_text("kalenner")
    assert "    window_days: 14\n" in text
    text = text.replace("    window_days: 14\n", "    window_days: 7\n")
    text = text.replace('version: "2025-05-26"', 'version: "2027-01-01"')
    path = tmp_path_factory.mktemp("policies") / "kalenner-7-days.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- policy diff -------------------------------------------------------------------------------
def test_diff_says_what_changed_in_words_and_exits_0(seven_days: Path) -> None:
    result = runner.invoke(app, ["policy", "diff", "kalenner", str(seven_days)])
    assert result.exit_code == 0, result.output
    assert "kalenner 2025-05-26 (kalenner) → kalenner 2027-01-01" in result.output
    assert "  changed kalenner/guarantee: window_days: 14 → 7" in result.output
    assert "(material)" in result.output


def test_diff_of_a_policy_with_itself(seven_days: Path) -> None:
    result = runner.invoke(app, ["policy", "diff", str(seven_days), str(seven_days)])
    assert result.exit_code == 0
    assert result.output.endswith(": no differences\n")


def test_diff_json(seven_days: Path) -> None:
    result = runner.invoke(app, ["policy", "diff", "kalenner", str(seven_days), "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["material"] is True
    assert data["new"] == {"ref": str(seven_days), "id": "kalenner", "version": "2027-01-01"}
    guarantee = next(c for c in data["changes"] if c["clause"] == "kalenner/guarantee")
    assert guarantee["fields"] == [{"field": "window_days", "old": 14, "new": 7}]


def test_diff_lines_are_not_cut_when_piped() -> None:
    result = runner.invoke(app, ["policy", "diff", "kalenner", "qomon"], env={"COLUMNS": "40"})
    assert result.exit_code == 0
    long = [line for line in result.output.splitlines() if len(line) > 40]
    assert long and all("…" not in line for line in long)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "kalenner"], "nope: unknown policy"),
        (
            ["kalenner", "pv_0123456789abc"],
            "pv_0123456789abc: a stored policy version needs --database-url",
        ),
        (["kalenner", "kalenner", "--format", "xml"], "--format: unknown value 'xml'"),
    ],
)
def test_diff_input_errors_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["policy", "diff", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_diff_of_an_invalid_file_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: kalenner\nclauses: []\n", encoding="utf-8")
    result = runner.invoke(app, ["policy", "diff", "kalenner", str(broken)])
    assert result.exit_code == 2
    assert str(broken) in result.output


# -- whatif on scenario files ------------------------------------------------------------------
def test_whatif_reports_changes_and_writes_plots(seven_days: Path, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    args = ["whatif", "--policy", str(seven_days), "--plots", str(plots)]
    result = runner.invoke(app, [*args, *map(str, SCENARIOS)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "What if kalenner 2027-01-01" in out
    assert "3 decisions compared, 2 would change" in out
    assert "refunds: €218.00 as decided, €189.00 under 2027-01-01: -€29.00" in out
    assert "kalenner/guarantee" in out
    assert "kalenner-guarantee-day-14-full-refund.yaml/cus_k_g14  -€29.00" in out
    for name in ("refunds-per-month.png", "change-per-customer.png"):
        data = (plots / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
        assert f"wrote {plots / name}" in out


def test_whatif_json(seven_days: Path) -> None:
    result = runner.invoke(
        app, ["whatif", "--policy", str(seven_days), "--format", "json", *map(str, SCENARIOS)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["compared"], data["changed"], data["delta"]) == (3, 2, "-29.00")
    assert data["currency"] == "EUR"
    assert data["by_month"]["2026-03"] == {"before": "58.00", "after": "29.00"}
    [day14] = [c for c in data["changes"] if c["before"]["amount"] != c["after"]["amount"]]
    after = ["kalenner/cancel-end-of-month", "kalenner/monthly-cancel-refund"]
    assert day14["after"]["clauses"] == after
    assert day14["delta"] == "-29.00"


def test_whatif_under_the_same_policy_changes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["whatif", "--policy", "kalenner", "--plots", str(tmp_path), *map(str, SCENARIOS)]
    )
    assert result.exit_code == 0, result.output
    assert "3 decisions compared, 0 would change" in result.output
    assert "Changed decisions" not in result.output
    assert (tmp_path / "change-per-customer.png").read_bytes().startswith(PNG)


def test_whatif_skips_other_policies_and_needs_something_to_compare(seven_days: Path) -> None:
    other = str(EXAMPLES / "voip-immediate-cancel.yaml")
    result = runner.invoke(app, ["whatif", "--policy", str(seven_days), other, str(SCENARIOS[0])])
    assert result.exit_code == 0
    assert "skipped 1 scenario file of other policies (1 voip)" in result.output
    result = runner.invoke(app, ["whatif", "--policy", str(seven_days), other])
    assert result.exit_code == 2
    assert "no stored decision to compare" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(SCENARIOS[0])], "--policy: give the version"),
        (["--policy", "kalenner"], "give scenario files"),
        (["--policy", "nope", str(SCENARIOS[0])], "nope: unknown policy"),
        (["--policy", "kalenner", "--database-url", "sqlite:///no/such.db"], "no such database"),
        (["--policy", "kalenner", "--lang", "de", str(SCENARIOS[0])], "--lang: unknown value"),
    ],
)
def test_whatif_input_errors_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["whatif", *args])
    assert result.exit_code == 2
    assert message in result.output


# -- whatif on a database ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three histories stored in one SQLite file by the real services."""
    import fairbill.simulator.run as run
    from fairbill.simulator.scenario import load_scenario

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'whatif.db'}"
    real = run.make_engine
    run.make_engine = lambda _url, **kw: real(url, **kw)  # type: ignore[assignment]
    try:
        for path in SCENARIOS:
            run.simulate(load_scenario(path))
    finally:
        run.make_engine = real  # type: ignore[assignment]
    return url


def test_whatif_on_a_database_redecides_its_stored_decisions(
    seven_days: Path, database: str, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        ["whatif", "--policy", str(seven_days), "--database-url", database, "--jobs", "1",
         "--plots", str(tmp_path), "--lang", "fr"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(3 merchants of sqlite:///" in result.output
    assert "3 decisions compared, 2 would change" in result.output
    assert "merchant 2/cus_k_g14" in result.output  # merchants are numbered as replayed
    assert "-29,00\u00a0€" in result.output  # --lang fr
    assert (tmp_path / "refunds-per-month.png").read_bytes().startswith(PNG)


def test_whatif_on_a_database_under_its_own_policy_changes_nothing(database: str) -> None:
    result = runner.invoke(
        app, ["whatif", "--policy", "kalenner", database, "--merchant", "1", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["compared"], data["changed"], data["delta"]) == (1, 0, "0.00")
    assert data["sources"] == [f"1 merchant of {database}"]


def test_whatif_on_a_database_without_the_policy_exits_2(database: str) -> None:
    result = runner.invoke(app, ["whatif", "--policy", "voip", "--database-url", database])
    assert result.exit_code == 2
    assert "no merchant running policy voip" in result.output
