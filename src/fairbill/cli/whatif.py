"""``fairbill policy diff OLD NEW`` and ``fairbill whatif --policy NEW SCENARIO_OR_DB...``.

Adapters only: ``policy.diff`` finds the changes, ``services.audit`` decides stored
decisions again, ``services.whatif`` sums them up; this module renders (plain lines, so
nothing is cut when the output goes to a file or a pipe; JSON with ``--format json``; PNG
plots with matplotlib). Exit status: 0 a report (differences are not a failure), 2 a usage
or input error (unknown policy, invalid file, unreadable database).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fairbill.errors import FairbillError, InputError
from fairbill.money import Money, minor_units
from fairbill.policy.diff import Change, diff_policies
from fairbill.policy.model import Policy
from fairbill.services import audit
from fairbill.services.whatif import Report, combine, summarize

err = Console(stderr=True, highlight=False, soft_wrap=True)

_VERSION_ID = re.compile(r"^pv_[0-9a-z]{13}$")  # a public id (``fairbill.ids``)
LANGUAGES = ("en", "fr")
FORMATS = ("text", "json")


def register(app: typer.Typer, policy_app: typer.Typer) -> None:
    app.command("whatif")(whatif_command)
    policy_app.command("diff")(diff_command)


def _fail(*lines: str) -> typer.Exit:
    for line in lines:
        err.print(line, markup=False)
    return typer.Exit(2)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(f"{name}: unknown value {value!r}: choose {' or '.join(choices)}")


# -- policies: a bundled id, a file, or a stored version (pv_N) --------------------------------
def _policy(ref: str, database_url: str | None) -> tuple[Policy, str]:
    """The policy ``ref`` names, and how to show where it came from; exit 2 if it cannot
    be had."""
    match = _VERSION_ID.match(ref)
    if match is None:
        from fairbill.cli.policy import _load  # the same messages as the other commands

        return _load(ref), ref
    if database_url is None:
        raise _fail(f"{ref}: a stored policy version needs --database-url")
    from fairbill.services import policies

    with _session(database_url) as session:
        version_id = policies.named(session, ref)
        if version_id is None:
            raise _fail(f"{ref}: no such policy version in {database_url}")
        try:
            return policies.policy_of(session, version_id), ref
        except FairbillError as exc:
            raise _fail(f"{ref}: {exc}") from exc


def _session(url: str) -> Any:
    """A read-only session on ``url``; exit 2 for a malformed URL or a missing file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from fairbill.store.db import make_engine, reader_engine, session_factory

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise _fail(f"{url}: not a database URL (e.g. sqlite:///fairbill.db)") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_file():
            raise _fail(f"{url}: no such database file")
    try:
        engine = reader_engine(make_engine(url))
    except Exception as exc:  # an unknown dialect, a driver that is not installed
        raise _fail(f"{url}: cannot open the database: {exc}") from exc
    return _Closing(engine, session_factory(engine)())


class _Closing:
    def __init__(self, engine: Any, session: Any) -> None:
        self.engine, self.session = engine, session

    def __enter__(self) -> Any:
        return self.session

    def __exit__(self, *exc: object) -> None:
        self.session.close()
        self.engine.dispose()


# -- fairbill policy diff ----------------------------------------------------------------------
def diff_command(
    old_ref: Annotated[str, typer.Argument(metavar="OLD", help="A bundled id, a file or pv_N.")],
    new_ref: Annotated[str, typer.Argument(metavar="NEW", help="A bundled id, a file or pv_N.")],
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", metavar="URL", help="Where pv_N versions are stored."),
    ] = None,
) -> None:
    """What changed from OLD to NEW, clause by clause, in words.

    Exit 0 whether or not they differ (the report says so; "material" is false when only
    the quoted source words changed); 2 when a policy cannot be read.
    """
    _choice("--format", fmt, FORMATS)
    old, old_name = _policy(old_ref, database_url)
    new, new_name = _policy(new_ref, database_url)
    changes = diff_policies(old, new)
    material = any(c.material for c in changes)
    if fmt == "json":
        data = {
            "old": {"ref": old_name, "id": old.id, "version": old.version},
            "new": {"ref": new_name, "id": new.id, "version": new.version},
            "material": material,
            "changes": [_change_json(c) for c in changes],
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    head = f"{old.id} {old.version} ({old_name}) → {new.id} {new.version} ({new_name})"
    if not changes:
        typer.echo(f"{head}: no differences")
        return
    kinds = "material" if material else "only the quoted words changed"
    typer.echo(f"{head}: {_count(len(changes), 'change')} ({kinds})")
    for change in changes:
        mark = "" if change.material else " (words only)"
        typer.echo(f"  {change.words}{mark}")


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "kind": str(c.kind),
        "clause": c.clause,
        "material": c.material,
        "words": c.words,
        "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields],
    }


# -- fairbill whatif ---------------------------------------------------------------------------
def whatif_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SCENARIO_OR_DB...",
            help="Scenario files or folders, or database URLs (sqlite:///fairbill.db).",
        ),
    ] = None,
    policy_ref: Annotated[
        str,
        typer.Option(
            "--policy", metavar="NEW", help="The version to decide under (id, file, pv_N)."
        ),
    ] = "",
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", metavar="URL", help="Re-decide a database's decisions."),
    ] = None,
    merchant_id: Annotated[
        int | None,
        typer.Option("--merchant", metavar="ID", help="Only this merchant of the database."),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", metavar="DIR", help="Write PNG plots into DIR."),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="Money in the report: en or fr.")] = "en",
    fmt: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    show: Annotated[
        int, typer.Option("--show", metavar="N", help="Changed decisions listed (20).")
    ] = 20,
    jobs: Annotated[
        int,
        typer.Option("--jobs", metavar="N", help="Processes for a database (default: CPUs)."),
    ] = 0,
) -> None:
    """Replay past decisions under another policy version and report what would change.

    Scenario files are replayed in memory, then every decision they stored is decided
    again under NEW; a database's stored decisions are decided again from the facts they
    recorded (its merchants running NEW's policy, or --merchant). Reports the decisions
    compared and changed, the refunds before and after in total, per clause, per action
    and per customer; --plots writes refunds-per-month.png and change-per-customer.png.
    Exit 0 with a report (changes are not a failure), 2 on an input error.
    """
    _choice("--lang", lang, LANGUAGES)
    _choice("--format", fmt, FORMATS)
    if not policy_ref:
        raise _fail("--policy: give the version to decide under (a bundled id, a file, pv_N)")
    urls = [s for s in sources or [] if "://" in s]
    files = [Path(s) for s in sources or [] if "://" not in s]
    if database_url:
        urls.insert(0, database_url)
    if not urls and not files:
        raise _fail("give scenario files, folders or a database URL to replay")
    new, new_name = _policy(policy_ref, urls[0] if urls else None)
    reports: list[Report] = []
    described: list[str] = []
    if files:
        found, skipped = _scenarios(files, new)
        reports.extend(found)
        described.append(_count(len(found), "scenario file"))
        if skipped:
            others = ", ".join(f"{n} {policy}" for policy, n in sorted(skipped.items()))
            err.print(
                f"skipped {_count(sum(skipped.values()), 'scenario file')} of other "
                f"policies ({others})",
                markup=False,
            )
    if urls:
        from fairbill.services.whatif_db import Workers

        # The worker processes start first: before any connection or progress bar.
        with Workers(jobs or os.cpu_count() or 1) as workers:
            for url in urls:
                merchants = _database(url, new, merchant_id, workers, reports)
                described.append(f"{_count(merchants, 'merchant')} of {_shown(url)}")
    if not any(r.compared for r in reports):
        raise _fail("no stored decision to compare (nothing ran under this policy's id)")
    report = combine(reports)
    paths = _plots(report, plots, new) if plots is not None else []
    if fmt == "json":
        data = _report_json(report, new, new_name, described, paths)
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    for line in _report_lines(report, new, new_name, described, lang, show):
        typer.echo(line)
    for path in paths:
        typer.echo(f"wrote {path}")


def _scenarios(files: list[Path], new: Policy) -> tuple[list[Report], dict[str, int]]:
    """Each file whose policy has NEW's id, replayed and decided again; the others are
    counted by policy id."""
    from fairbill.cli.simulate import _files
    from fairbill.simulator.run import replayed
    from fairbill.simulator.scenario import load_scenario

    paths = _files(files)
    if not paths:
        raise _fail("no scenario files found")
    scenarios = []
    problems: list[str] = []
    for path in paths:
        try:
            scenarios.append((path, load_scenario(path)))
        except InputError as exc:
            problems.extend(f"{where}: {message}" for where, message in exc.problems)
    if problems:
        raise _fail(*problems)
    reports: list[Report] = []
    skipped: dict[str, int] = {}
    with _progress(len(scenarios), "replaying") as bar:
        for path, scenario in scenarios:
            if scenario.policy.id != new.id:
                skipped[scenario.policy.id] = skipped.get(scenario.policy.id, 0) + 1
            else:
                try:
                    with replayed(scenario) as (ctx, customer):
                        rows = audit.redecide(ctx.session, ctx.merchant_row, under=new)
                        reports.append(
                            summarize(
                                rows,
                                source=path.name,
                                currency=ctx.merchant_row.currency,
                                customers={customer.id: customer.code},
                            )
                        )
                except InputError as exc:
                    raise _fail(*(f"{w}: {m}" for w, m in exc.problems)) from exc
            if bar is not None:
                bar.advance(1)
    return reports, skipped


def _database(
    url: str, new: Policy, merchant_id: int | None, workers: Any, reports: list[Report]
) -> int:
    """Each chosen merchant's stored decisions decided again under ``new`` (by
    ``workers``, a ``whatif_db.Workers``); returns how many merchants."""
    from sqlalchemy import select

    from fairbill.services.whatif_db import redecide_merchant, scope
    from fairbill.store.tables import MerchantRow

    with _session(url) as session:
        query = select(MerchantRow).order_by(MerchantRow.id)
        if merchant_id is not None:
            query = query.where(MerchantRow.id == merchant_id)
        else:
            query = query.where(MerchantRow.policy_id == new.id)
        try:
            merchants = list(session.scalars(query))
        except Exception as exc:  # not a fairbill database, unreachable server
            raise _fail(f"{_shown(url)}: cannot read merchants: {exc}") from exc
        if not merchants:
            which = f"merchant {merchant_id}" if merchant_id is not None else "merchant"
            raise _fail(f"{_shown(url)}: no {which} running policy {new.id}")
        for merchant in merchants:
            if merchant.policy_id != new.id:
                err.print(
                    f"merchant {merchant.id} runs policy {merchant.policy_id}, not {new.id}: "
                    "its decisions name clauses NEW does not have",
                    markup=False,
                )
            total = scope(session, merchant).count
            with _progress(total, f"merchant {merchant.id}") as bar:
                reports.append(
                    redecide_merchant(
                        url,
                        session,
                        merchant,
                        new,
                        workers=workers,
                        on_progress=bar.advance if bar is not None else None,
                    )
                )
        return len(merchants)


def _progress(total: int, what: str) -> Any:
    """A Rich progress bar on stderr when it is a terminal, else nothing (None)."""
    if not err.is_terminal:
        return nullcontext(None)
    progress = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    return _Bar(progress, total)


class _Bar:
    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total = progress, total

    def __enter__(self) -> _Bar:
        self.progress.start()
        self.task = self.progress.add_task("", total=self.total)
        return self

    def advance(self, count: int) -> None:
        self.progress.advance(self.task, count)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# -- rendering ---------------------------------------------------------------------------------
def _money(minor: int, currency: str | None, lang: str, signed: bool = False) -> str:
    if currency is None:
        return f"{minor:+d}" if signed else str(minor)
    text = Money.from_minor(minor, currency).format(lang)
    return f"+{text}" if signed and minor > 0 else text


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _report_lines(
    r: Report, new: Policy, new_name: str, described: list[str], lang: str, show: int
) -> Iterator[str]:
    cur = r.currency

    def money(minor: int, signed: bool = False) -> str:
        return _money(minor, cur, lang, signed)

    yield (
        f"What if {new.id} {new.version} ({new_name}) had taken every decision "
        f"({', '.join(described)}):"
    )
    share = f" ({r.changed / r.compared:.1%})" if r.compared else ""
    yield (
        f"  {_count(r.compared, 'decision')} compared, {r.changed:,} would change{share}; "
        f"{len(r.changed_customers):,} of {_count(len(r.by_customer), 'customer')} affected"
    )
    yield (
        f"  refunds: {money(r.refunded_before_minor)} as decided, "
        f"{money(r.refunded_after_minor)} under {new.version}: {money(r.delta_minor, True)}"
    )
    if cur is None:
        yield "  (amounts in minor units: the decisions are in more than one currency)"
    if r.by_clause:
        yield ""
        yield "By clause (a changed decision counts under every clause of its old and new version):"
        width = max(len(t.clause) for t in r.by_clause)
        yield f"  {'clause':<{width}}  {'changed':>8}  refunds moved"
        for t in r.by_clause:
            yield f"  {t.clause:<{width}}  {t.changed:>8,}  {money(t.delta_minor, True)}"
    yield ""
    yield "By action:"
    width = max((len(a) for a in r.by_action), default=6)
    yield f"  {'action':<{width}}  {'compared':>9}  {'changed':>8}"
    for action, (n, k) in r.by_action.items():
        yield f"  {action:<{width}}  {n:>9,}  {k:>8,}"
    moved = sorted(
        ((c, d) for c, d in r.by_customer.items() if d), key=lambda cd: (-abs(cd[1]), cd[0])
    )
    if moved:
        yield ""
        yield f"By customer (refunds moved; {_count(len(moved), 'customer')}, largest first):"
        for customer, delta in moved[:10]:
            yield f"  {customer}  {money(delta, True)}"
        if len(moved) > 10:
            yield f"  … and {len(moved) - 10:,} more"
    if r.changes and show > 0:
        yield ""
        yield f"Changed decisions (the first {min(show, len(r.changes))} of {r.changed:,}):"
        for c in r.changes[:show]:
            clauses = ", ".join(c.clauses) or "no clause"
            again = ", ".join(c.again_clauses) or "no clause"
            yield (
                f"  {c.customer}  {c.at[:10]}  {c.action}: {c.outcome} "
                f"{money(c.amount_minor)} → {c.again_outcome} {money(c.again_minor)}"
                f"  [{clauses} → {again}]  changed: {', '.join(c.fields)}"
            )


def _report_json(
    r: Report, new: Policy, new_name: str, described: list[str], plots: list[Path]
) -> dict[str, Any]:
    def amount(minor: int) -> str:
        return Money.from_minor(minor, r.currency).text() if r.currency else str(minor)

    return {
        "policy": {"ref": new_name, "id": new.id, "version": new.version},
        "sources": described,
        "currency": r.currency,
        "compared": r.compared,
        "changed": r.changed,
        "refunded_before": amount(r.refunded_before_minor),
        "refunded_after": amount(r.refunded_after_minor),
        "delta": amount(r.delta_minor),
        "by_clause": [
            {"clause": t.clause, "changed": t.changed, "delta": amount(t.delta_minor)}
            for t in r.by_clause
        ],
        "by_action": {a: {"compared": n, "changed": k} for a, (n, k) in r.by_action.items()},
        "by_customer": {c: amount(d) for c, d in sorted(r.by_customer.items())},
        "changed_customers": sorted(r.changed_customers),
        "by_month": {
            m: {"before": amount(b), "after": amount(a)} for m, (b, a) in r.by_month.items()
        },
        "changes": [
            {
                "source": c.source,
                "decision": c.decision_id,
                "customer": c.customer,
                "action": c.action,
                "at": c.at,
                "before": {"outcome": c.outcome, "amount": amount(c.amount_minor),
                           "clauses": list(c.clauses)},
                "after": {"outcome": c.again_outcome, "amount": amount(c.again_minor),
                          "clauses": list(c.again_clauses)},
                "fields": list(c.fields),
                "delta": amount(c.refund_delta_minor),
            }
            for c in r.changes
        ],
        "plots": [str(p) for p in plots],
    }  # fmt: skip


def _plots(r: Report, folder: Path, new: Policy) -> list[Path]:
    """refunds-per-month.png and change-per-customer.png in ``folder`` (created)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"{folder}: cannot create the folder: {exc.strerror}") from exc
    unit = 10 ** minor_units(r.currency) if r.currency else 1
    label = r.currency or "minor units"
    paths: list[Path] = []

    months = _month_range(list(r.by_month))
    before = [r.by_month.get(m, (0, 0))[0] / unit for m in months]  # float-ok: bar heights
    after = [r.by_month.get(m, (0, 0))[1] / unit for m in months]  # float-ok: bar heights
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(months) + 2), 4.0))
    x = range(len(months))
    ax.bar([i - 0.2 for i in x], before, width=0.4, label="as decided")
    ax.bar([i + 0.2 for i in x], after, width=0.4, label=f"under {new.id} {new.version}")
    ax.set_xticks(list(x), months, rotation=45, ha="right")
    ax.set_ylabel(f"refunded ({label})")
    ax.set_title("Refunds per month")
    if not months:
        ax.text(0.5, 0.5, "no refund paid", ha="center", va="center", transform=ax.transAxes)
    ax.legend()
    fig.tight_layout()
    paths.append(_save(fig, folder / "refunds-per-month.png"))
    plt.close(fig)

    deltas = [r.by_customer[c] / unit for c in sorted(r.changed_customers)]  # float-ok: plot
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    if deltas:
        ax.hist(deltas, bins=min(30, max(5, len(set(deltas)))))
    else:
        ax.text(0.5, 0.5, "no customer's decisions change", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlabel(f"change in refunds per customer ({label})")
    ax.set_ylabel("customers")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        f"{len(r.changed_customers):,} of {len(r.by_customer):,} customers affected "
        "(unaffected not shown)"
    )
    fig.tight_layout()
    paths.append(_save(fig, folder / "change-per-customer.png"))
    plt.close(fig)
    return paths


def _month_range(months: list[str]) -> list[str]:
    """Every month from the first to the last of ``months`` ("YYYY-MM", sorted), so that
    the bars stand on a time axis; the months themselves when the span is over 20 years."""
    if not months:
        return []
    first, last = (int(m[:4]) * 12 + int(m[5:7]) - 1 for m in (months[0], months[-1]))
    if last - first > 240:
        return months
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, last + 1)]


def _save(fig: Any, path: Path) -> Path:
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise _fail(f"{path}: cannot write: {exc.strerror}") from exc
    return path
