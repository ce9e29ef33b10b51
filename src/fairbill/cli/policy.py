"""``fairbill policy ...``: list, show, check and explain policies.

Adapter only: policies are loaded by ``fairbill.policy.load``; this module renders them.
Errors (unknown id, unreadable file, invalid policy) go to stderr with exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from fairbill.cli.console import print_table
from fairbill.errors import PolicyError
from fairbill.policy.load import BUNDLED_IDS, bundled_policy, load_policy_file, resolve_policy
from fairbill.policy.model import ClauseBase, Policy

app = typer.Typer(help="Read, check and explain policies.", no_args_is_help=True)

# Fields every clause has; the rest of a clause's fields are its parameters.
_COMMON_FIELDS = frozenset({"id", "kind", "source", "reading"})


def _console() -> Console:
    # Built per command so that the terminal width (COLUMNS) is read at run time.
    return Console(highlight=False)


def _fail(problems: list[str]) -> typer.Exit:
    for line in problems:
        typer.echo(line, err=True)
    return typer.Exit(2)


def _problem_lines(exc: PolicyError) -> list[str]:
    """``path:line: field: message`` for each problem (line and field when known)."""
    return [f"{location}: {message}" for location, message in exc.problems]


def _load(ref: str) -> Policy:
    """A bundled id or a path to a policy file; exits with status 2 on any error."""
    if ref not in BUNDLED_IDS and not Path(ref).exists():
        known = ", ".join(BUNDLED_IDS)
        raise _fail([f"{ref}: unknown policy: not a bundled id ({known}) nor a file"])
    try:
        return resolve_policy(ref)
    except PolicyError as exc:
        raise _fail(_problem_lines(exc)) from exc


def _indent(text: Text, width: int) -> Padding:
    return Padding(text, (0, 0, 0, width), expand=False)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def parameters(clause: ClauseBase) -> list[str]:
    """The clause's parameters as ``key=value`` (unset optional ones left out)."""
    data = clause.model_dump(mode="json", exclude=set(_COMMON_FIELDS))
    return [f"{key}={_format_value(value)}" for key, value in data.items() if value is not None]


def _kind(clause: ClauseBase) -> str:
    return str(getattr(clause, "kind", type(clause).__name__))


@app.command("list")
def list_policies() -> None:
    """List the bundled policies."""
    table = Table(title="Bundled policies", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("name", ratio=1)
    for column in ("version", "effective", "currency", "timezone", "country"):
        table.add_column(column, no_wrap=True)
    table.add_column("clauses", justify="right", no_wrap=True)
    for policy_id in BUNDLED_IDS:
        try:
            policy = bundled_policy(policy_id)
        except PolicyError as exc:
            raise _fail(_problem_lines(exc)) from exc
        table.add_row(
            *(
                Text(value)
                for value in (
                    policy.id,
                    policy.name,
                    policy.version,
                    policy.effective.isoformat(),
                    policy.currency,
                    policy.timezone,
                    policy.country,
                    str(len(policy.clauses)),
                )
            )
        )
    print_table(_console(), table)


@app.command("show")
def show(
    policy_ref: Annotated[str, typer.Argument(metavar="ID", help="A bundled id or a file.")],
) -> None:
    """Show a policy's clauses as a table."""
    policy = _load(policy_ref)
    console = _console()
    console.print(
        Text(
            f"{policy.name} ({policy.id}) version {policy.version}, effective "
            f"{policy.effective.isoformat()}; {policy.currency}, {policy.timezone}, "
            f"{policy.country}, language {policy.language}, rounding {policy.rounding.value}"
        )
    )
    table = Table(show_lines=True)
    table.add_column("id", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("parameters")
    for clause in policy.clauses:
        table.add_row(Text(clause.id), Text(_kind(clause)), Text("\n".join(parameters(clause))))
    print_table(console, table)
    if policy.not_automated:
        console.print(Text(f"{len(policy.not_automated)} sentences not automated (see explain)"))


@app.command("check")
def check(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Policy files.")],
) -> None:
    """Validate policy files; exit 2 if any is invalid."""
    invalid = False
    for file in files:
        try:
            policy = load_policy_file(file)
        except PolicyError as exc:
            invalid = True
            for line in _problem_lines(exc):
                typer.echo(line, err=True)
            continue
        typer.echo(f"{file}: ok ({len(policy.clauses)} clauses)")
    if invalid:
        raise typer.Exit(2)


@app.command("explain")
def explain(
    policy_ref: Annotated[str, typer.Argument(metavar="ID", help="A bundled id or a file.")],
) -> None:
    """Every clause with the sentences it implements and the reading taken."""
    policy = _load(policy_ref)
    console = _console()
    console.print(
        Text(
            f"{policy.name} ({policy.id}) version {policy.version}, effective "
            f"{policy.effective.isoformat()}; seed {policy.seed} ({policy.language})",
            style="bold",
        )
    )
    for clause in policy.clauses:
        console.print()
        console.print(Text(f"{clause.id}  [{_kind(clause)}]", style="bold"))
        params = parameters(clause)
        if params:
            console.print(_indent(Text("  ".join(params)), 2))
        for sentence in clause.source:
            console.print(_indent(Text(f"“{sentence}”", style="italic"), 2))
        if clause.reading:
            console.print(_indent(Text(f"reading: {clause.reading}"), 2))
    if policy.not_automated:
        console.print()
        console.print(Text("Not automated", style="bold"))
        for item in policy.not_automated:
            console.print(_indent(Text(f"“{item.source}”", style="italic"), 2))
            console.print(_indent(Text(f"why: {item.why}"), 4))


# -- docs and render: the language reference and the customer document ------------------------
# An appended section: its imports stay with it.
from fairbill.policy.reference import bundled_reference  # noqa: E402
from fairbill.policy.render import (  # noqa: E402
    FORMATS,
    LANGUAGES,
    default_language,
    render_policy,
)

DOCS_PATH = "docs/policy-language.md"


def _write_out(text: str, output: str) -> None:
    """``text`` to stdout (``-``) or to the file ``output``; exit 2 if it cannot be written."""
    if output == "-":
        typer.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail([f"{output}: cannot write: {exc.strerror}"]) from exc
    typer.echo(f"wrote {output}")


@app.command("docs")
def docs(
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="PATH", help="A file, or - for stdout.")
    ] = DOCS_PATH,
) -> None:
    """Write the policy language reference, generated from the clause models."""
    try:
        text = bundled_reference()
    except PolicyError as exc:
        raise _fail(_problem_lines(exc)) from exc
    _write_out(text, output)


@app.command("render")
def render(
    policy_ref: Annotated[
        str, typer.Argument(metavar="ID|FILE", help="A bundled id or a policy file.")
    ],
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="en or fr; default: the policy's own language."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md or html.")] = "md",
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="PATH", help="A file, or - for stdout.")
    ] = "-",
) -> None:
    """The customer-facing terms: each rule in plain words, with the sentences it implements."""
    if lang is not None and lang not in LANGUAGES:
        raise _fail([f"--lang: unknown language {lang!r}: choose {' or '.join(LANGUAGES)}"])
    if fmt not in FORMATS:
        raise _fail([f"--format: unknown format {fmt!r}: choose {' or '.join(FORMATS)}"])
    policy = _load(policy_ref)
    language = lang or default_language(policy)
    if lang is None and not policy.language.lower().startswith(language):
        typer.echo(f"no {policy.language!r} wording: rendering in {language}", err=True)
    _write_out(render_policy(policy, language, fmt), output)


@app.command("lint")
def lint(
    refs: Annotated[
        list[str], typer.Argument(metavar="FILE_OR_ID...", help="Policy files or bundled ids.")
    ],
    text: Annotated[
        Path | None,
        typer.Option("--text", metavar="PATH", help="The published text (default: the seed)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    show_suppressed: Annotated[
        bool, typer.Option("--show-suppressed", help="Also list suppressed findings.")
    ] = False,
) -> None:
    """Find contradictions, unreachable clauses, window gaps, refunds above what was paid,
    fees above the cap, untraced sentences and consumer rights below the law.

    Exit 0 clean, 1 a warning or error, 2 an invalid file. Codes: docs/policy-lint.md.
    """
    # Imported here so that this command stays one block appended to the module.
    from fairbill.cli.policy_lint import run_lint

    run_lint(refs, text, fmt, show_suppressed)
