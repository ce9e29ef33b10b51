"""What changed between two versions of a policy, clause by clause, in words.

Pure. Clauses are matched by id; a clause whose id changed is a removal and an addition.
``source`` and ``reading`` changes are reported (the published words changed) apart from
changes of what the engine decides (every other field): only the latter are material.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fairbill.policy.model import Policy

__all__ = ["Change", "ChangeKind", "FieldChange", "diff_policies"]

_WORDS_ONLY = frozenset({"source", "reading"})
_HEAD = ("id", "name", "version", "effective", "language", "currency", "timezone", "country")


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    @property
    def words(self) -> str:
        return f"{self.field}: {_show(self.old)} → {_show(self.new)}"


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    clause: str  # a clause id, or "policy" for the policy's own fields
    fields: tuple[FieldChange, ...] = ()

    @property
    def material(self) -> bool:
        """A change of what is decided (not only of the quoted words)."""
        return self.kind != ChangeKind.CHANGED or any(
            f.field not in _WORDS_ONLY for f in self.fields
        )

    @property
    def words(self) -> str:
        if self.kind == ChangeKind.ADDED:
            return f"added {self.clause}"
        if self.kind == ChangeKind.REMOVED:
            return f"removed {self.clause}"
        return f"changed {self.clause}: " + "; ".join(f.words for f in self.fields)


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every difference, the policy's own fields first, then clauses in ``new``'s order
    (removed ones last, in ``old``'s order)."""
    changes: list[Change] = []
    head = _fields(_head(old), _head(new))
    if head:
        changes.append(Change(ChangeKind.CHANGED, "policy", head))
    before = {c.id: c.model_dump(mode="json") for c in old.clauses}
    after = {c.id: c.model_dump(mode="json") for c in new.clauses}
    for clause_id, data in after.items():
        if clause_id not in before:
            changes.append(Change(ChangeKind.ADDED, clause_id))
            continue
        fields = _fields(before[clause_id], data)
        if fields:
            changes.append(Change(ChangeKind.CHANGED, clause_id, fields))
    changes.extend(Change(ChangeKind.REMOVED, c) for c in before if c not in after)
    return changes


def _head(policy: Policy) -> dict[str, Any]:
    data = policy.model_dump(mode="json", exclude={"clauses"})
    ordered = {k: data[k] for k in _HEAD if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    return ordered


def _fields(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    keys = list(old) + [k for k in new if k not in old]
    return tuple(FieldChange(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return str(value)
