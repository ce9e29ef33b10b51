"""docs/reason-codes.md documents every ``Reason`` code, and only those; codes are unique
snake_case strings."""

from __future__ import annotations

import re
from pathlib import Path

from fairbill.decisions.reasons import Reason

DOC = Path(__file__).resolve().parents[1] / "docs" / "reason-codes.md"
ROW = re.compile(r"^\| `([^`]+)` \|(.+)\|(.+)\|\s*$")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def documented_rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            code, when, where = match.groups()
            rows.append((code, when.strip(), where.strip()))
    return rows


def test_every_reason_is_documented_and_nothing_else() -> None:
    documented = [code for code, _, _ in documented_rows()]
    assert len(documented) == len(set(documented)), "a code has two rows"
    assert set(documented) == {r.value for r in Reason}


def test_every_row_says_when_and_where() -> None:
    for code, when, where in documented_rows():
        assert len(when) > 30, code
        reserved = when.startswith("**Reserved.**")
        assert (where == "—") == reserved, code
        if not reserved:
            assert re.search(r"[a-z_]+\.(decide_[a-z_]+|[a-z_]+)", where), code


def test_codes_are_unique_snake_case() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    for value in values:
        assert SNAKE.match(value), value


def test_member_names_match_their_codes() -> None:
    for member in Reason:
        assert member.name.lower() == member.value
