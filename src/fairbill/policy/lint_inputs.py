"""Gather what ``policy.lint`` needs from files: the policy with its lines, its published
text and the legal floors. The lint itself stays pure; this is its imperative shell.

Where the published text is looked for (the first file found wins):

1. the ``--text`` file, when given;
2. ``$FAIRBILL_SEED_PATH``: folders separated by ``os.pathsep``, each holding ``<seed>``;
3. next to the policy file: ``<dir>/<seed>``, then ``<dir>/seeds/<seed>``;
4. up from the policy file's folder, in each parent: ``seeds/<seed>`` and
   ``tests/data/seeds/<seed>`` (how the bundled policies find their texts in a checkout).

``<seed>`` is the policy's ``seed`` field (a file name, or a path relative to those
folders). When nothing is found the text checks are skipped with an info finding.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fairbill.errors import Location, PolicyError
from fairbill.policy.floors import Floor, bundled_floors
from fairbill.policy.lint import LintContext, LintReport, PublishedText, lint
from fairbill.policy.load import BUNDLED_IDS, parse_policy_located
from fairbill.policy.model import Policy
from fairbill.yamlfile import LineMap

SEED_PATH_ENV = "FAIRBILL_SEED_PATH"


@dataclass(frozen=True, slots=True)
class LintedFile:
    path: str
    policy: Policy
    report: LintReport


def policy_path(ref: str) -> Path:
    """A bundled id's file, or ``ref`` itself as a path."""
    if ref in BUNDLED_IDS and not Path(ref).exists():
        return Path(str(resources.files("fairbill") / "policies" / f"{ref}.yaml"))
    return Path(ref)


def load_located(path: Path) -> tuple[Policy, LineMap]:
    """The policy in ``path`` and its lines; ``PolicyError`` (file:line: field) if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            [(Location(str(path), None, ""), f"cannot read: {exc.strerror}")]
        ) from exc
    return parse_policy_located(text, str(path))


def _candidates(seed: str, near: Path) -> Iterator[Path]:
    for entry in os.environ.get(SEED_PATH_ENV, "").split(os.pathsep):
        if entry:
            yield Path(entry) / seed
    folder = near.resolve().parent
    yield folder / seed
    yield folder / "seeds" / seed
    for parent in (folder, *folder.parents):
        yield parent / "seeds" / seed
        yield parent / "tests" / "data" / "seeds" / seed


def find_text(
    policy: Policy, path: Path, explicit: Path | None = None
) -> tuple[PublishedText | None, tuple[str, ...]]:
    """The published text and, when it is not found, every place looked in."""
    looked: list[str] = []
    for candidate in [explicit] if explicit is not None else _candidates(policy.seed, path):
        if candidate.is_file():
            return PublishedText(_shown(candidate), candidate.read_text(encoding="utf-8")), ()
        looked.append(_shown(candidate))
    return None, tuple(dict.fromkeys(looked))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (shorter output)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def lint_file(
    ref: str, text: Path | None = None, floors: tuple[Floor, ...] | None = None
) -> LintedFile:
    """Lint one policy (a file or a bundled id); ``PolicyError`` if it does not load."""
    path = policy_path(ref)
    if not path.exists():
        known = ", ".join(BUNDLED_IDS)
        raise PolicyError(
            [(Location(ref, None, ""), f"unknown policy: not a bundled id ({known}) nor a file")]
        )
    policy, lines = load_located(path)
    found, searched = find_text(policy, path, text)
    ctx = LintContext(lines, found, searched, bundled_floors() if floors is None else floors)
    return LintedFile(_shown(path) if ref in BUNDLED_IDS else ref, policy, lint(policy, ctx))
