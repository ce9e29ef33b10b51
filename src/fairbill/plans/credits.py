"""Prepaid credits, planned: a pack granted, credits spent (oldest-expiring first) and
given back after a failed delivery, a pack expired, every pack forfeited.

Pure: the packs' facts in, changes to their rows out (``plans.effects``). A pack's status
moves through ``lifecycle.advance``: active → used when emptied (and back to active when
credits are returned), active → expired or forfeited with what was left.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from fairbill.lifecycle import CreditPackStatus, advance
from fairbill.plans.effects import Plan, Rows


class Pack(NamedTuple):
    """A credit pack as read now (spendable ones come in the order to spend them)."""

    id: int
    kind: str
    remaining: int
    forfeited: int
    status: CreditPackStatus


def plan_pack(
    plan: Plan,
    customer_id: int,
    kind: str,
    quantity: int,
    at: datetime,
    expires_at: datetime | None,
) -> None:
    """The credits a paid purchase brings, spendable until ``expires_at`` (None: ever)."""
    plan.insert(
        Rows.CREDIT_PACKS,
        {
            "customer_id": customer_id,
            "kind": kind,
            "quantity": quantity,
            "remaining": quantity,
            "purchased_at": at,
            "expires_at": expires_at,
            "status": str(CreditPackStatus.ACTIVE),
        },
    )


def plan_spend(plan: Plan, packs: list[Pack], quantity: int) -> list[tuple[Pack, int]]:
    """Take up to ``quantity`` credits from ``packs`` in their order; returns each pack
    spent from with what was taken from it (their sum is what was available, at most
    ``quantity``). A pack emptied is ``used``."""
    left = quantity
    spent: list[tuple[Pack, int]] = []
    for pack in packs:
        if left == 0:
            break
        take = min(pack.remaining, left)
        left -= take
        spent.append((pack, take))
        remaining = pack.remaining - take
        if remaining == 0:
            status = advance(pack.status, CreditPackStatus.USED)
            plan.change(Rows.CREDIT_PACKS, pack.id, remaining=0, status=str(status))
        else:
            plan.change(Rows.CREDIT_PACKS, pack.id, remaining=remaining)
    return spent


def plan_give_back(plan: Plan, spent: list[tuple[Pack, int]], returned: int) -> None:
    """Return ``returned`` of the credits ``plan_spend`` took, to the packs they came
    from, in the same order (a pack emptied is spendable again). Planned after
    ``plan_spend`` in the same plan: its values win."""
    for pack, take in spent:
        back = min(take, returned)
        if not back:
            continue
        returned -= back
        values: dict[str, object] = {"remaining": pack.remaining - take + back}
        if pack.remaining == take:  # emptied by the spend: used → active
            used = advance(pack.status, CreditPackStatus.USED)
            values["status"] = str(advance(used, CreditPackStatus.ACTIVE))
        plan.change(Rows.CREDIT_PACKS, pack.id, **values)


def plan_forfeit(plan: Plan, packs: list[Pack], to: CreditPackStatus) -> int:
    """End ``packs`` (``expired`` or ``forfeited``) with what they had left, which is
    kept as forfeited; returns how many credits that was."""
    total = 0
    for pack in packs:
        total += pack.remaining
        plan.change(
            Rows.CREDIT_PACKS,
            pack.id,
            remaining=0,
            forfeited=pack.forfeited + pack.remaining,
            status=str(advance(pack.status, to)),
        )
    return total
