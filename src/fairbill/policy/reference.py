"""The policy language reference, generated from the pydantic models.

Everything the reference says comes from ``fairbill.policy.model``: the clause kinds are the
members of the ``Clause`` union, in its order; each kind's text is its class docstring; each
field's type, default, constraints and allowed values come from its annotation and
``Field``; its unit from an explicit ``json_schema_extra={"unit": ...}`` or else the field
name (``_days``, ``business_days``, ``_hours``, ``_months``). Which bundled policies use a
kind is read from the policies passed in.

Pure: ``build_reference(policies)`` returns the Markdown; ``bundled_reference()`` is the
same for the bundled policies. ``docs/policy-language.md`` is ``bundled_reference()``, and a
test fails when the committed file drifts (``fairbill policy docs`` rewrites it).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fairbill.policy import model
from fairbill.policy.model import ClauseBase, NotAutomated, Policy

# Fields every clause has: documented once, not in each kind's table.
COMMON_FIELDS = ("id", "kind", "source", "reading")
EXAMPLE_POLICY_ID = "example"

# Unit suffixes of field names, the longest first ("review_business_days" is business days).
_UNIT_SUFFIXES = (
    ("business_days", "business days"),
    ("_days", "days"),
    ("_hours", "hours"),
    ("_months", "months"),
)
_UNIT_TEXT = {
    "amount": "amount in the policy's currency",
    "percent": "percent",
}
_PLURALS = {"choice": "choices", "clause": "clauses", "integer": "integers"}
# A sample for a required number, by unit (then raised to satisfy gt/ge).
_SAMPLES = {"days": 14, "business days": 5, "hours": 24, "months": 12}


# -- reading the models ----------------------------------------------------------------------
def clause_kinds() -> tuple[type[ClauseBase], ...]:
    """The clause classes of the ``Clause`` union, in its order."""
    union = typing.get_args(model.Clause)[0]
    return tuple(typing.get_args(union))


def kind_of(cls: type[ClauseBase]) -> str:
    """The ``kind`` tag of a clause class (the single value of its ``kind`` Literal)."""
    (tag,) = typing.get_args(cls.model_fields["kind"].annotation)
    return str(tag)


def own_fields(cls: type[ClauseBase]) -> dict[str, FieldInfo]:
    """A kind's parameters: its fields other than the common ones."""
    return {n: f for n, f in cls.model_fields.items() if n not in COMMON_FIELDS}


def unit_of(name: str, field: FieldInfo) -> str | None:
    """``json_schema_extra["unit"]`` when given, else the unit the field name ends with."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("unit"), str):
        return str(extra["unit"])
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix) or name == suffix.lstrip("_"):
            return unit
    return None


def _strip_optional(annotation: Any) -> Any:
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union


def _choices(annotation: Any) -> list[str] | None:
    """The allowed values of a Literal or an enum, else None."""
    if typing.get_origin(annotation) is Literal:
        return [_value_text(v) for v in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [_value_text(member) for member in annotation]
    return None


def _is_clause_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Annotated


def _type_text(annotation: Any) -> str:
    """A reader's name for a field type ("integer", "list of choices", …)."""
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if _is_clause_union(annotation):
        return "clause"
    if origin in (list, tuple):
        inner = _type_text(args[0])
        if inner.startswith("mapping ("):
            return "list of mappings" + inner.removeprefix("mapping")
        return f"list of {_PLURALS.get(inner, inner)}"
    if origin is dict:
        return f"mapping of {_type_text(args[0])} to {_type_text(args[1])}"
    if _choices(annotation) is not None:
        return "choice"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (" + ", ".join(f"`{n}`" for n in annotation.model_fields) + ")"
    names: dict[Any, str] = {
        bool: "boolean",
        int: "integer",
        Decimal: "decimal string",
        str: "text",
        date: "date (YYYY-MM-DD)",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _allowed_text(annotation: Any, field: FieldInfo) -> str:
    """Allowed values and constraints, e.g. "`full`, `unused_days`; at least 1 item"."""
    parts: list[str] = []
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        keys, values = _choices(args[0]), _choices(args[1])
        if keys:
            parts.append("keys: " + _code_list(keys))
        if values:
            parts.append("values: " + _code_list(values))
    else:
        inner = args[0] if origin in (list, tuple) else annotation
        found = _choices(inner)
        if found:
            parts.append(("each of " if origin in (list, tuple) else "") + _code_list(found))
    parts.extend(_constraints(field))
    return "; ".join(parts)


def _constraints(field: FieldInfo) -> list[str]:
    out: list[str] = []
    is_text = _strip_optional(field.annotation) is str
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            out.append(f"> {meta.gt}")
        elif isinstance(meta, annotated_types.Ge):
            out.append(f"≥ {meta.ge}")
        elif isinstance(meta, annotated_types.MinLen) and is_text:
            out.append("not empty")
        elif isinstance(meta, annotated_types.MinLen):
            noun = "item" if meta.min_length == 1 else "items"
            out.append(f"at least {meta.min_length} {noun}")
        elif getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    return out


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    return "unset" if value is None else f"`{_value_text(value)}`"


def _value_text(value: Any) -> str:
    """A value as it is written in a policy file (YAML flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, BaseModel):
        return _value_text(value.model_dump(mode="json"))
    if isinstance(value, Decimal):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_value_text(k)}: {_value_text(v)}" for k, v in value.items()) + "}"
        )
    return str(value)


def _code_list(values: Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def prose(doc: str | None) -> str:
    """A docstring as Markdown: paragraphs joined into lines, ``x`` as `x`."""
    if not doc:
        return ""
    text = inspect.cleandoc(doc).replace("``", "`")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def summary(cls: type) -> str:
    """A class's own docstring as Markdown ("" when it has none of its own)."""
    return prose(cls.__dict__.get("__doc__"))


# -- examples -------------------------------------------------------------------------------
def _sample(name: str, annotation: Any, field: FieldInfo) -> Any:
    """A valid value for a required field: the first choice, or a number within bounds."""
    annotation = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return [_sample(name, typing.get_args(annotation)[0], FieldInfo())]
    found = _choices(annotation)
    if found is not None:
        return _Plain(found[0])
    if annotation is bool:
        return False
    if annotation is Decimal:
        return Decimal("10.00")
    if annotation is int:
        number = _SAMPLES.get(unit_of(name, field) or "", 1)
        for meta in field.metadata:
            if isinstance(meta, annotated_types.Gt):
                number = max(number, typing.cast(int, meta.gt) + 1)
            elif isinstance(meta, annotated_types.Ge):
                number = max(number, typing.cast(int, meta.ge))
        return number
    raise TypeError(f"no sample value for {name}: {annotation!r}")  # a new field type


class _Plain(str):
    """A choice value: written unquoted (choices are snake_case words)."""


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    if isinstance(value, _Plain):
        return str(value)
    return _value_text(value)


def example_clause(cls: type[ClauseBase], policy_id: str = EXAMPLE_POLICY_ID) -> str:
    """A minimal valid clause of ``cls`` as a YAML list item (to go under ``clauses:``):
    the common fields plus every required parameter, nothing optional."""
    kind = kind_of(cls)
    lines = [
        f"  - id: {policy_id}/{kind.replace('_', '-')}",
        f"    kind: {kind}",
        "    source:",
        '      - "The sentence of your published policy this clause implements."',
    ]
    for name, field in own_fields(cls).items():
        if field.is_required():
            lines.append(f"    {name}: {_yaml_scalar(_sample(name, field.annotation, field))}")
    return "\n".join(lines) + "\n"


def example_policy(clauses_yaml: str, policy_id: str = EXAMPLE_POLICY_ID) -> str:
    """A whole policy file around ``clauses_yaml`` (list items as ``example_clause`` gives)."""
    return (
        f"id: {policy_id}\n"
        "name: Example Ltd\n"
        'version: "2026-01-15"\n'
        "effective: 2026-01-15\n"
        "seed: our-refund-policy.txt\n"
        "language: en\n"
        "currency: EUR\n"
        "timezone: Europe/Paris\n"
        "country: FR\n"
        "rounding: half_up\n"
        "\n"
        "clauses:\n"
        f"{clauses_yaml}"
        "\n"
        "not_automated:\n"
        '  - source: "Email us at billing@example.com."\n'
        "    why: Contact address, not a billing rule.\n"
    )


# -- the document ---------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _field_rows(fields: dict[str, FieldInfo], *, with_unit: bool) -> list[str]:
    """A Markdown table of ``fields``; the meaning column only when some field has one."""
    with_meaning = any(f.description for f in fields.values())
    head = ["field", "type"] + (["unit"] if with_unit else []) + ["default", "allowed"]
    head += ["meaning"] if with_meaning else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, field in fields.items():
        unit = unit_of(name, field)
        cells = [f"`{name}`", _type_text(field.annotation)]
        if with_unit:
            cells.append(_UNIT_TEXT.get(unit or "", unit or ""))
        cells += [_default_text(field), _allowed_text(field.annotation, field)]
        cells += [field.description or ""] if with_meaning else []
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _usage(kind: str, policies: Sequence[Policy]) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for policy in policies:
        ids = [c.id for c in policy.clauses if getattr(c, "kind", None) == kind]
        if ids:
            used[policy.id] = ids
    return used


def _kind_section(cls: type[ClauseBase], policies: Sequence[Policy]) -> list[str]:
    kind = kind_of(cls)
    out = [f"### `{kind}`", "", summary(cls), ""]
    fields = own_fields(cls)
    if fields:
        out += _field_rows(fields, with_unit=True)
    else:
        out.append("No parameters.")
    out += [
        "",
        "A minimal clause (an item of `clauses:`):",
        "",
        "```yaml",
        example_clause(cls).rstrip("\n"),
        "```",
        "",
    ]
    used = _usage(kind, policies)
    if used:
        out.append("Used by the bundled policies:")
        out.append("")
        out += [f"- `{pid}`: {_code_list(ids)}" for pid, ids in used.items()]
    else:
        out.append("Used by none of the bundled policies.")
    return [*out, ""]


def _enums() -> list[type[StrEnum]]:
    """The StrEnums clause fields and policy fields draw their values from, by name."""
    found: dict[str, type[StrEnum]] = {}

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, StrEnum):
            found[annotation.__name__] = annotation
        elif typing.get_origin(annotation) is Literal:
            for value in typing.get_args(annotation):
                if isinstance(value, StrEnum):
                    found[type(value).__name__] = type(value)
        elif not _is_clause_union(annotation):
            for arg in typing.get_args(annotation):
                walk(arg)

    models: tuple[type[BaseModel], ...] = (Policy, *clause_kinds())
    for cls in models:
        for field in cls.model_fields.values():
            walk(field.annotation)
    return [found[name] for name in sorted(found)]


def _enum_section(enum: type[StrEnum]) -> list[str]:
    text = summary(enum)
    return [
        f"- **{enum.__name__}**: {_code_list(m.value for m in enum)}"
        + (f". {text}" if text else "")
    ]


def build_reference(policies: Sequence[Policy]) -> str:
    """The Markdown reference of the policy language; ``policies`` fill "used by"."""
    kinds = clause_kinds()
    common = {n: ClauseBase.model_fields[n] for n in ("id", "source", "reading")}
    skeleton = example_policy(example_clause(kinds[0]))
    out = [
        "# The policy language",
        "",
        "<!-- Generated by `fairbill policy docs` from src/fairbill/policy/model.py: "
        "edit the models, not this file. -->",
        "",
        # The model's docstring, less its title line and its note to developers.
        prose(model.__doc__).split("\n\n")[1],
        "",
        "Check a file with `fairbill policy check FILE`; see `docs/writing-a-policy.md` for a "
        "walk from a published text to a policy file.",
        "",
        "## A policy file",
        "",
        summary(Policy),
        "",
        *_field_rows(dict(Policy.model_fields), with_unit=False),
        "",
        "```yaml",
        skeleton.rstrip("\n"),
        "```",
        "",
        "## Every clause",
        "",
        summary(ClauseBase) + " `kind` names the clause kind (one of those below).",
        "",
        *_field_rows(common, with_unit=False),
        "",
        'Amounts and percentages are quoted decimal strings (`"18"`, `"1000000.00"`), never '
        "bare numbers. Days are calendar days in the policy's timezone; business days skip "
        "weekends and the public holidays of the policy's `country`.",
        "",
        "## Not automated",
        "",
        summary(NotAutomated),
        "",
        *_field_rows(dict(NotAutomated.model_fields), with_unit=False),
        "",
        "## Shared values",
        "",
        *[line for enum in _enums() for line in _enum_section(enum)],
        "",
        f"## Clause kinds ({len(kinds)})",
        "",
        *[f"- [`{kind_of(c)}`](#{kind_of(c)}): {_first_sentence(summary(c))}" for c in kinds],
        "",
    ]
    for cls in kinds:
        out += _kind_section(cls, policies)
    return _tidy("\n".join(out))


def _first_sentence(text: str) -> str:
    first = text.split("\n\n", 1)[0]
    match = re.match(r"(.+?\.)(\s|$)", first)
    return match.group(1) if match else first


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def bundled_reference() -> str:
    """``build_reference`` for the bundled policies: the text of docs/policy-language.md."""
    from fairbill.policy.load import BUNDLED_IDS, bundled_policy

    return build_reference([bundled_policy(pid) for pid in BUNDLED_IDS])
