"""Every kind of mistake in a policy file is reported with its file, line and field."""

from __future__ import annotations

import pytest

from fairbill.errors import PolicyError
from fairbill.policy.load import parse_policy

# Lines 1-9; the first clause starts on line 10.
HEAD = """\
id: demo
name: Demo
version: "1"
effective: 2026-01-01
seed: demo.txt
currency: EUR
timezone: Europe/Paris
country: FR
clauses:
"""

# Lines 10-13 when it is the first clause.
APPEALS = """\
  - id: demo/appeals
    kind: appeals
    source: ["Our decision is final"]
    allowed: false
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    """(line, field, message) of each problem ``parse_policy`` reports for ``text``."""
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "bad.yaml")
    assert all(location.path == "bad.yaml" for location, _ in info.value.problems)
    return [(loc.line, loc.field, message) for loc, message in info.value.problems]


def only(text: str) -> tuple[int | None, str, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_policy_parses() -> None:
    policy = parse_policy(HEAD + APPEALS, "good.yaml")
    assert [c.id for c in policy.clauses] == ["demo/appeals"]


def test_yaml_syntax_error_names_the_line() -> None:
    text = HEAD + (
        "  - id: demo/appeals\n"  # 10
        "    kind: appeals\n"  # 11
        "   source: [x]\n"  # 12: indented one space short
        "    allowed: false\n"  # 13
    )
    line, field, message = only(text)
    assert line == 12
    assert field == ""
    assert message.startswith("not valid YAML")


def test_yaml_syntax_error_on_the_first_line() -> None:
    line, _, message = only("id: demo\nname: Demo: Two\n")
    assert line == 2
    assert "not valid YAML" in message


def test_unknown_clause_kind() -> None:
    text = HEAD + (
        "  - id: demo/magic\n"  # 10
        "    kind: refund_magic\n"  # 11
        "    source: [x]\n"  # 12
    )
    line, field, message = only(text)
    assert (line, field) == (10, "clauses.0")
    assert "refund_magic" in message


def test_unknown_field_in_a_clause() -> None:
    line, field, message = only(HEAD + APPEALS + "    colour: blue\n")  # line 14
    assert (line, field) == (14, "clauses.0.colour")
    assert "Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("ground", "items"), [("on_go_funds", ""), ("no_reason", "    items: [message_credits]\n")]
)
def test_on_go_funds_and_only_it_lists_the_purchases(ground: str, items: str) -> None:
    """A ground for "on go" funds says which purchases they are; no other ground does."""
    text = HEAD + (
        "  - id: demo/decline\n"  # 10
        "    kind: decline_ground\n"  # 11
        "    source: [x]\n"  # 12
        f"    ground: {ground}\n"  # 13
    )
    line, field, message = only(text + items)
    assert (line, field) == (10, "clauses.0")
    assert "items lists the on-go purchases, for ground on_go_funds only" in message


def test_unknown_top_level_field() -> None:
    line, field, _ = only(HEAD.replace("country: FR\n", "country: FR\nowner: me\n") + APPEALS)
    assert (line, field) == (9, "owner")


def test_missing_required_field_names_the_clause_line() -> None:
    text = HEAD + (
        "  - id: demo/appeals\n"  # 10
        "    kind: appeals\n"  # 11
        "    source: [x]\n"  # 12  (allowed: is missing)
    )
    line, field, message = only(text)
    assert (line, field) == (10, "clauses.0.allowed")
    assert message == "Field required"


def test_missing_top_level_field() -> None:
    line, field, message = only(HEAD.replace("currency: EUR\n", "") + APPEALS)
    assert field == "currency"
    assert line == 1  # the policy mapping itself: the field has no line of its own
    assert message == "Field required"


def test_wrong_type() -> None:
    text = HEAD + (
        "  - id: demo/guarantee\n"  # 10
        "    kind: money_back_guarantee\n"  # 11
        "    source: [x]\n"  # 12
        '    window_days: "abc"\n'  # 13
        "    refund: full\n"  # 14
        "    via: request\n"  # 15
    )
    line, field, message = only(text)
    assert (line, field) == (13, "clauses.0.window_days")
    assert "valid integer" in message


def test_money_written_as_a_yaml_number() -> None:
    text = HEAD + (
        "  - id: demo/cooling-off\n"  # 10
        "    kind: cooling_off\n"  # 11
        "    source: [x]\n"  # 12
        "    business_days: 5\n"  # 13
        "    max_amount: 1000000\n"  # 14
        "    refund: full\n"  # 15
    )
    line, field, message = only(text)
    assert (line, field) == (14, "clauses.0.max_amount")
    assert "quoted strings" in message


def test_percentage_written_as_a_yaml_number_in_a_later_clause() -> None:
    text = (
        HEAD
        + APPEALS
        + (
            "  - id: demo/fees\n"  # 14
            "    kind: fees\n"  # 15
            "    source: [x]\n"  # 16
            "    flat_fee_max_percent: 18\n"  # 17
        )
    )
    line, field, _ = only(text)
    assert (line, field) == (17, "clauses.1.flat_fee_max_percent")


def test_money_with_a_comma_is_rejected() -> None:
    text = HEAD + (
        "  - id: demo/cooling-off\n"  # 10
        "    kind: cooling_off\n"  # 11
        "    source: [x]\n"  # 12
        "    business_days: 5\n"  # 13
        '    max_amount: "1,000,000"\n'  # 14
        "    refund: full\n"  # 15
    )
    line, field, _ = only(text)
    assert (line, field) == (14, "clauses.0.max_amount")


def test_duplicate_clause_id_is_reported() -> None:
    _, _, message = only(HEAD + APPEALS + APPEALS)  # the second copy is on line 14
    assert "'demo/appeals' is used twice" in message


def test_clause_id_with_the_wrong_prefix_is_reported() -> None:
    text = HEAD + APPEALS.replace("demo/appeals", "other/appeals")
    _, _, message = only(text)
    assert "must start with 'demo/'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + APPEALS + APPEALS, (14, "clauses.1.id")),
        (HEAD + APPEALS.replace("demo/appeals", "other/appeals"), (10, "clauses.0.id")),
    ],
    ids=["duplicate", "prefix"],
)
def test_clause_id_errors_name_the_clause_line(text: str, expected: tuple[int, str]) -> None:
    line, field, _ = only(text)
    assert (line, field) == expected


def test_clause_id_with_a_bad_shape() -> None:
    line, field, _ = only(HEAD + APPEALS.replace("demo/appeals", "demo/Appeals!"))
    assert (line, field) == (10, "clauses.0.id")


def test_unknown_timezone() -> None:
    line, field, message = only(HEAD.replace("Europe/Paris", "Mars/Olympus") + APPEALS)
    assert (line, field) == (7, "timezone")
    assert "unknown timezone 'Mars/Olympus'" in message


def test_bad_currency() -> None:
    line, field, message = only(HEAD.replace("currency: EUR", "currency: euro") + APPEALS)
    assert (line, field) == (6, "currency")
    assert "ISO 4217" in message


def test_bad_date() -> None:
    line, field, _ = only(HEAD.replace("2026-01-01", "2026-02-30") + APPEALS)
    assert (line, field) == (4, "effective")


def test_several_problems_are_all_reported() -> None:
    text = HEAD.replace("currency: EUR", "currency: euro") + APPEALS + "    colour: blue\n"
    found = problems(text)
    assert {(line, field) for line, field, _ in found} == {
        (6, "currency"),
        (14, "clauses.0.colour"),
    }


def test_a_file_that_is_not_a_mapping() -> None:
    line, field, message = only("- just\n- a list\n")
    assert (line, field) == (1, "")
    assert "mapping" in message


def test_problems_render_as_path_line_field() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(HEAD.replace("Europe/Paris", "Mars/Olympus") + APPEALS, "bad.yaml")
    assert str(info.value).startswith("bad.yaml:7: timezone: ")


def test_a_repeated_key_is_an_error() -> None:
    line, _, message = only(HEAD + APPEALS + "    allowed: true\n")  # line 14 repeats line 13
    assert line == 14
    assert "duplicate key" in message
