"""The policy language reference: generated from the models, committed, never drifting."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from fairbill.policy.load import BUNDLED_IDS, bundled_policy, parse_policy
from fairbill.policy.model import ClauseBase, Policy
from fairbill.policy.reference import (
    build_reference,
    bundled_reference,
    clause_kinds,
    example_clause,
    example_policy,
    kind_of,
    own_fields,
    summary,
    unit_of,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy-language.md"
KINDS = clause_kinds()


@pytest.fixture(scope="module")
def reference() -> str:
    return bundled_reference()


def section(reference: str, kind: str) -> str:
    match = re.search(rf"^### `{kind}`\n(.*?)(?=^### |\Z)", reference, re.M | re.S)
    assert match, f"no section for {kind}"
    return match.group(1)


def test_the_committed_reference_is_what_the_models_generate(reference: str) -> None:
    committed = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if committed != reference:
        # A short diff of our own: pytest's diff of two long strings is slow and long.
        diff = difflib.unified_diff(
            committed.splitlines(), reference.splitlines(), "committed", "generated", lineterm=""
        )
        pytest.fail(
            "docs/policy-language.md is out of date with src/fairbill/policy/model.py: "
            "run `fairbill policy docs` and commit the result.\n" + "\n".join(list(diff)[:40]),
            pytrace=False,
        )


def test_every_kind_of_the_union_is_documented_once(reference: str) -> None:
    assert len(KINDS) == 27
    headings = re.findall(r"^### `([a-z_]+)`$", reference, re.M)
    assert headings == [kind_of(c) for c in KINDS]


@pytest.mark.parametrize("cls", KINDS, ids=kind_of)
def test_every_kind_says_what_it_decides(cls: type[ClauseBase]) -> None:
    assert len(summary(cls)) > 30, f"{cls.__name__} needs a docstring of its own"


@pytest.mark.parametrize("cls", KINDS, ids=kind_of)
def test_every_example_parses_as_a_clause_of_a_policy(cls: type[ClauseBase]) -> None:
    policy = parse_policy(example_policy(example_clause(cls)), f"{kind_of(cls)}.yaml")
    (clause,) = policy.clauses
    assert type(clause) is cls
    # Minimal: only the required parameters are written.
    written = {line.split(":")[0].strip() for line in example_clause(cls).splitlines()[4:]}
    assert written == {n for n, f in own_fields(cls).items() if f.is_required()}


def test_the_documented_examples_are_the_generated_ones(reference: str) -> None:
    for cls in KINDS:
        assert example_clause(cls).rstrip("\n") in section(reference, kind_of(cls))


@pytest.mark.parametrize("cls", KINDS, ids=kind_of)
def test_every_field_is_in_its_kind_table(cls: type[ClauseBase], reference: str) -> None:
    text = section(reference, kind_of(cls))
    for name in own_fields(cls):
        assert re.search(rf"^\| `{name}` \|", text, re.M), f"{kind_of(cls)}.{name}"


def test_numbers_carry_their_unit(reference: str) -> None:
    assert unit_of("window_days", ClauseBase.model_fields["id"]) == "days"
    assert unit_of("review_business_days", ClauseBase.model_fields["id"]) == "business days"
    assert unit_of("business_days", ClauseBase.model_fields["id"]) == "business days"
    assert unit_of("min_duration_hours", ClauseBase.model_fields["id"]) == "hours"
    rows = {
        ("money_back_guarantee", "window_days"): "days",
        ("cooling_off", "business_days"): "business days",
        ("cooling_off", "max_amount"): "amount in the policy's currency",
        ("deadlines", "review_business_days"): "business days",
        ("outage_compensation", "min_duration_hours"): "hours",
        ("fees", "flat_fee_max_percent"): "percent",
        ("disputes", "fee"): "amount in the policy's currency",
        ("dunning", "retry_offsets_days"): "days",
    }
    for (kind, name), unit in rows.items():
        row = re.search(rf"^\| `{name}` \|[^|]*\| ([^|]*) \|", section(reference, kind), re.M)
        assert row and row.group(1) == unit, (kind, name)


def test_every_decimal_field_says_whether_it_is_money_or_a_percentage() -> None:
    for cls in KINDS:
        for name, field in own_fields(cls).items():
            if "Decimal" in repr(field.annotation):
                assert unit_of(name, field) in ("amount", "percent"), f"{cls.__name__}.{name}"


def test_defaults_constraints_and_choices_are_shown(reference: str) -> None:
    guarantee = section(reference, "money_back_guarantee")
    assert "| `window_days` | integer | days | required | > 0 |" in guarantee
    assert "| `window_from` | choice | — | `payment` | `initial_subscription`, `payment` |" in (
        guarantee
    )
    assert "`cancel`, `request`" in guarantee
    credits = section(reference, "prepaid_credits")
    assert "keys: `platform`, `third_party`" in credits
    assert "values: `return`, `review`, `none`" in credits
    assert "at least 1 item" in section(reference, "non_refundable")
    assert "≥ 0" in section(reference, "data_retention")


def test_bundled_usage_names_the_clause_ids(reference: str) -> None:
    for policy_id in BUNDLED_IDS:
        for clause in bundled_policy(policy_id).clauses:
            text = section(reference, str(getattr(clause, "kind")))  # noqa: B009
            assert f"- `{policy_id}`: " in text
            assert f"`{clause.id}`" in text


def test_usage_comes_from_the_policies_given() -> None:
    alone = build_reference([bundled_policy("kalenner")])
    assert "`kalenner/guarantee`" in alone
    assert "`emailconsul/money-back-guarantee`" not in alone
    assert "Used by none of the bundled policies." in section(alone, "cooling_off")


def test_top_level_fields_are_documented(reference: str) -> None:
    top = reference.split("## A policy file", 1)[1].split("\n## ", 1)[0]
    for name, field in Policy.model_fields.items():
        assert re.search(rf"^\| `{name}` \|", top, re.M), name
        assert field.description, f"Policy.{name} needs a description"
    for name in ("id", "source", "reading"):
        assert f"| `{name}` |" in reference.split("## Every clause", 1)[1]
    skeleton = re.search(r"```yaml\n(id: example\n.*?)```", top, re.S)
    assert skeleton
    assert parse_policy(skeleton.group(1), "skeleton.yaml").id == "example"
