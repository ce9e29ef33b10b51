"""``fairbill simulate FILE`` and ``fairbill test PATH...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fairbill.cli.console import print_table
from fairbill.errors import InputError
from fairbill.simulator.expect import first_mismatch
from fairbill.simulator.run import simulate
from fairbill.simulator.scenario import load_scenario

err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
    app.command("test")(test_command)


def _fail_input(exc: InputError) -> typer.Exit:
    for location, message in exc.problems:
        err.print(f"{location}: {message}", markup=False)
    return typer.Exit(2)


def simulate_command(
    file: Annotated[Path, typer.Argument(help="A fairbill.scenario/1 file (YAML or JSON).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the fairbill.result/1 JSON.")
    ] = False,
) -> None:
    """Replay a scenario on a test clock and print what happened."""
    try:
        result = simulate(load_scenario(file))
    except InputError as exc:
        raise _fail_input(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    _report(Console(highlight=False), result)


def _report(console: Console, r: dict[str, Any]) -> None:
    console.print(
        f"[bold]{r['scenario']}[/bold]  policy {r['policy']['id']} "
        f"{r['policy']['version']}, now {r['now']}, {r['currency']}"
    )
    subs = Table("subscription", "plan", "status", "period", "ends", title="Subscriptions")
    for s in r["subscriptions"]:
        subs.add_row(
            s["id"],
            s["plan"],
            s["status"],
            f"{s['current_period_start']} → {s['current_period_end']}",
            s["ended_at"] or s["cancel_at"] or "",
        )
    print_table(console, subs)
    inv = Table("#", "issued", "total", "credit", "wallet", "paid", "status", title="Invoices")
    for i in r["invoices"]:
        inv.add_row(
            str(i["number"]),
            i["issued_at"],
            i["total"],
            i["credit_applied"],
            i["wallet_applied"],
            i["amount_paid"],
            i["status"],
        )
    print_table(console, inv)
    if r["refunds"]:
        ref = Table("at", "amount", "to", "payment", "clauses", title="Refunds")
        for f in r["refunds"]:
            ref.add_row(
                f["at"], f["amount"], f["destination"], str(f["payment"]), ", ".join(f["clauses"])
            )
        print_table(console, ref)
    if r["requests"]:
        req = Table("#", "kind", "decision", "amount", "status", "clauses", title="Requests")
        for q in r["requests"]:
            req.add_row(
                str(q["number"]),
                q["kind"],
                q["decision"],
                q["amount"],
                q["status"],
                ", ".join(q["clauses"]),
            )
        print_table(console, req)
    timeline = Table("at", "action", "outcome", "amount", "explanation", title="Decisions")
    for d in r["decisions"]:
        timeline.add_row(d["at"], d["action"], d["outcome"], d["amount"], d["explanation"])
    print_table(console, timeline)
    console.print(f"wallet {r['wallet']['balance']}, ledger balanced: {r['ledger']['balanced']}")


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
            )
        else:
            found.append(path)
    return found


def test_command(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or folders.")],
) -> None:
    """Check each scenario's expect: block; exit 1 if any fails, 2 on input errors.

    A file that cannot be run (it breaks the scenario contract) is an ERROR, not a FAIL:
    reported on stdout with its reason, counted apart, and the exit status is 2."""
    passed = failed = errors = 0
    out = Console(highlight=False, soft_wrap=True)
    files = _files(paths)
    if not files:
        err.print("no scenario files found")
        raise typer.Exit(2)
    for file in files:
        try:
            scenario = load_scenario(file)
            result = simulate(scenario)
        except InputError as exc:
            errors += 1
            for location, message in exc.problems:
                out.print(f"ERROR {location}: {message}", markup=False)
            continue
        mismatch = first_mismatch(scenario.expect or {}, result)
        if mismatch is None:
            passed += 1
            out.print(f"PASS {file}", markup=False)
        else:
            failed += 1
            out.print(
                f"FAIL {file}: {mismatch.path}: expected {mismatch.expected!r}, "
                f"got {mismatch.actual!r}" + (f" ({mismatch.reason})" if mismatch.reason else ""),
                markup=False,
            )
    summary = f"{passed} passed, {failed} failed"
    out.print(summary + (f", {errors} error(s)" if errors else ""), markup=False)
    if errors:
        raise typer.Exit(2)
    if failed:
        raise typer.Exit(1)
