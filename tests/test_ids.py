"""Opaque public ids: reversible under their key, meaningless without it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairbill.ids import MAX_ID, Ids, Prefix, new_key

KEY = "3f1c0a9e5b7d4c2a8e6f1b3d5c7a9e0f"
SHAPE = re.compile(r"^[a-z]+_[0-9a-hjkmnp-tv-z]{13}$")


@given(st.integers(1, MAX_ID), st.sampled_from(list(Prefix)))
def test_every_row_id_round_trips_and_has_the_public_shape(row_id: int, prefix: Prefix) -> None:
    ids = Ids(KEY)
    text = ids.public(prefix, row_id)
    assert SHAPE.match(text) and text.startswith(f"{prefix}_")
    assert ids.private(prefix, text) == row_id


@given(st.integers(1, MAX_ID))
def test_an_id_is_nothing_under_another_prefix_or_another_merchants_key(row_id: int) -> None:
    ours, theirs = Ids(KEY), Ids("0" * 31 + "1")
    text = ours.public(Prefix.PAYMENT, row_id)
    assert theirs.private(Prefix.PAYMENT, text) != row_id
    assert ours.private(Prefix.INVOICE, "inv" + text.removeprefix("pay")) != row_id


@pytest.mark.parametrize(
    "text",
    [
        "sub_1",
        "sub_",
        "sub",
        "",
        "sub_0123456789ab",
        "sub_0123456789abcd",
        "sub_0123456789abI",
        "sub_0123456789abu",
        "pay_0123456789abc",
        "sub_0123456789ABC",
        "sub_٠١٢٣٤٥٦٧٨٩abc",
    ],
)
def test_malformed_or_foreign_text_names_no_row(text: str) -> None:
    assert Ids(KEY).private(Prefix.SUBSCRIPTION, text) is None


def test_made_up_ids_almost_never_name_a_row() -> None:
    """A well-formed id we did not issue decodes above ``MAX_ID`` but for a chance of
    about 2^-33 each: guessing ids finds nothing."""
    ids = Ids(KEY)
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    made_up = [
        f"sub_{''.join(alphabet[(i * 7 + j * 13) % 32] for j in range(13))}" for i in range(2000)
    ]
    assert sum(ids.private(Prefix.SUBSCRIPTION, t) is not None for t in made_up) == 0


def test_consecutive_rows_get_unrelated_ids() -> None:
    """Volume does not show: the ids of rows 1..200 are not in order and share no
    common beginning beyond what chance gives."""
    ids = Ids(new_key())
    texts = [ids.public(Prefix.SUBSCRIPTION, n) for n in range(1, 201)]
    assert texts != sorted(texts)
    assert len({t[4:6] for t in texts}) > 100  # 1,024 two-character beginnings


def test_keys_are_random_and_row_ids_are_bounded() -> None:
    assert new_key() != new_key() and len(new_key()) == 32
    for bad in (0, -1, MAX_ID + 1):
        with pytest.raises(ValueError):
            Ids(KEY).public(Prefix.SUBSCRIPTION, bad)
