"""``fairbill policy lint``: run the lint on policy files and render the findings.

Adapter only: ``policy.lint_inputs`` loads and lints; this module prints text lines
(``path:line: code clause: message``) or JSON (``fairbill.lint/1``) and sets the exit
status: 0 clean, 1 a finding of severity warning or error, 2 an invalid file or usage.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from fairbill.decisions.explain import plural
from fairbill.errors import PolicyError
from fairbill.policy.lint import Finding
from fairbill.policy.lint_codes import Severity, Suppression
from fairbill.policy.lint_inputs import LintedFile, lint_file

FORMATS = ("text", "json")
JSON_FORMAT = "fairbill.lint/1"


def _where(finding: Finding, policy_path: str) -> str:
    path = finding.path or policy_path
    return f"{path}:{finding.line}" if finding.line is not None else path


def finding_line(finding: Finding, policy_path: str, why: str | None = None) -> str:
    """``path:line: code clause: message`` (``[suppressed: why]`` before the message)."""
    note = f"[suppressed: {' '.join(why.split())}] " if why is not None else ""
    return (
        f"{_where(finding, policy_path)}: {finding.code} {finding.clause}: {note}{finding.message}"
    )


def _finding_json(finding: Finding, policy_path: str) -> dict[str, Any]:
    return {
        "code": finding.code.value,
        "severity": finding.severity.value,
        "clause": finding.clause,
        "path": finding.path or policy_path,
        "line": finding.line,
        "about": finding.about,
        "message": finding.message,
    }


def _suppressed_json(pair: tuple[Finding, Suppression], policy_path: str) -> dict[str, Any]:
    finding, suppression = pair
    return {**_finding_json(finding, policy_path), "why": suppression.why}


def _counts(linted: list[LintedFile]) -> dict[str, int]:
    counts = Counter(f.severity.value for item in linted for f in item.report.findings)
    summary = {s.value: counts.get(s.value, 0) for s in Severity}
    return {**summary, "suppressed": sum(len(item.report.suppressed) for item in linted)}


def _render_text(linted: list[LintedFile], show_suppressed: bool) -> None:
    for item in linted:
        for finding in item.report.findings:
            typer.echo(finding_line(finding, item.path))
        if show_suppressed:
            for finding, by in item.report.suppressed:
                typer.echo(finding_line(finding, item.path, by.why))
    counts = _counts(linted)
    hint = " (--show-suppressed lists them)" if counts["suppressed"] and not show_suppressed else ""
    Console(highlight=False, soft_wrap=True).print(
        Text(
            f"{len(linted)} {'policy' if len(linted) == 1 else 'policies'} linted: "
            f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}, "
            f"{counts['info']} info; "
            f"{counts['suppressed']} suppressed{hint}"
        )
    )


def _render_json(
    linted: list[LintedFile], invalid: list[tuple[str, list[str]]], show_suppressed: bool
) -> None:
    files = []
    for item in linted:
        entry: dict[str, Any] = {
            "path": item.path,
            "policy": item.policy.id,
            "findings": [_finding_json(f, item.path) for f in item.report.findings],
        }
        if show_suppressed:
            entry["suppressed"] = [_suppressed_json(p, item.path) for p in item.report.suppressed]
        files.append(entry)
    document = {
        "format": JSON_FORMAT,
        "files": files,
        "invalid": [{"path": ref, "problems": problems} for ref, problems in invalid],
        "summary": _counts(linted),
    }
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def run_lint(refs: list[str], text: Path | None, fmt: str, show_suppressed: bool) -> None:
    """Lint every ref (a file or a bundled id), render, and exit with the status."""
    if fmt not in FORMATS:
        typer.echo(f"--format: unknown format {fmt!r}: choose text or json", err=True)
        raise typer.Exit(2)
    if text is not None and not text.is_file():
        typer.echo(f"--text: no file at {text}", err=True)
        raise typer.Exit(2)
    linted: list[LintedFile] = []
    invalid: list[tuple[str, list[str]]] = []
    for ref in refs:
        try:
            linted.append(lint_file(ref, text))
        except PolicyError as exc:
            problems = [f"{location}: {message}" for location, message in exc.problems]
            invalid.append((ref, problems))
            for line in problems:
                typer.echo(line, err=True)
    if fmt == "json":
        _render_json(linted, invalid, show_suppressed)
    else:
        _render_text(linted, show_suppressed)
    if invalid:
        raise typer.Exit(2)
    if any(item.report.failed for item in linted):
        raise typer.Exit(1)
