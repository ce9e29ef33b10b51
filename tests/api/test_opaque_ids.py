"""Ids say nothing of volume: opaque, per merchant, and unguessable."""

from __future__ import annotations

import re

from .helpers import Api, Merchant

SHAPE = re.compile(r"^(sub|inv|pay|req|dec|gop|pv)_[0-9a-hjkmnp-tv-z]{13}$")


def _subscribed(api: Api, policy: str, count: int) -> tuple[Merchant, list[str]]:
    m = api.merchant(policy)
    m.plan("monthly", "10.00")
    ids = []
    for n in range(count):
        m.customer(f"cus_{n}")
        ids.append(m.subscribe(f"cus_{n}", "monthly"))
    return m, ids


def test_ids_are_opaque_and_do_not_count_rows(api: Api) -> None:
    _, first_ids = _subscribed(api, "kalenner", 3)
    _, second_ids = _subscribed(api, "kalenner", 3)
    every = first_ids + second_ids
    assert all(SHAPE.match(i) for i in every), every
    assert len(set(every)) == 6
    # That rows made one after the other get ids in no order is tests/test_ids.py's, under
    # a fixed key: here each merchant's key is random, and three ids fall in order by
    # chance one time in six (both merchants' one time in 36, a flaky test).
    assert not any(re.search(r"_[0-9]+$", i) for i in every)


def test_every_id_in_a_listing_is_opaque_and_numbers_stay_per_customer(api: Api) -> None:
    m, _ = _subscribed(api, "kalenner", 2)
    for path in ("/v1/subscriptions", "/v1/invoices", "/v1/payments"):
        for row in m.walk(path):
            assert SHAPE.match(row["id"]), (path, row["id"])
    numbers = [p["number"] for p in m.walk("/v1/payments")]
    assert numbers == [1, 1]  # each customer's first payment


def test_another_merchants_id_and_a_made_up_one_are_not_found(api: Api) -> None:
    _, first_ids = _subscribed(api, "kalenner", 1)
    second, _ = _subscribed(api, "kalenner", 1)
    for foreign in (first_ids[0], "sub_0000000000000", "sub_zzzzzzzzzzzzz"):
        response = second.get(f"/v1/subscriptions/{foreign}")
        assert response.status_code == 404, foreign
        assert response.json()["code"] == "not_found"


def test_cursors_are_opaque_too(api: Api) -> None:
    m, _ = _subscribed(api, "kalenner", 3)
    page = m.ok(m.get("/v1/subscriptions", limit=1))
    cursor = page["next_cursor"]
    assert re.match(r"^cur_[0-9a-hjkmnp-tv-z]{13}$", cursor)
    forged = m.get("/v1/subscriptions", limit=1, cursor="cur_0000000000000")
    assert forged.status_code == 422 and forged.json()["code"] == "invalid_cursor"
