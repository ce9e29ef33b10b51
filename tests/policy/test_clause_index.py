"""``Policy.clauses_of`` / ``first`` keep a per-kind index on the instance: it must never
show clauses of another list, nor change what a policy equals or dumps to."""

from __future__ import annotations

import copy
import pickle

from fairbill.policy.load import bundled_policy, bundled_policy_text, parse_policy
from fairbill.policy.model import CancellationRefund, MoneyBackGuarantee, RefundDestination


def test_the_index_answers_like_a_scan() -> None:
    policy = bundled_policy("kalenner")
    for kind in (CancellationRefund, MoneyBackGuarantee, RefundDestination):
        scan = [c for c in policy.clauses if isinstance(c, kind)]
        assert policy.clauses_of(kind) == scan
        assert policy.clauses_of(kind) == scan  # from the index this time
        assert policy.first(kind) == (scan[0] if scan else None)


def test_a_copy_with_other_clauses_builds_its_own_index() -> None:
    policy = bundled_policy("kalenner")
    assert policy.first(MoneyBackGuarantee) is not None
    without = policy.model_copy(
        update={"clauses": [c for c in policy.clauses if not isinstance(c, MoneyBackGuarantee)]}
    )
    assert without.first(MoneyBackGuarantee) is None
    assert without.clauses_of(MoneyBackGuarantee) == []
    assert policy.first(MoneyBackGuarantee) is not None


def test_the_index_changes_no_equality_dump_or_pickle() -> None:
    text = bundled_policy_text("kalenner")
    fresh, used = parse_policy(text, "a"), parse_policy(text, "b")
    assert fresh is not used
    dumped = fresh.model_dump(mode="json")
    used.clauses_of(CancellationRefund)
    assert used == fresh and fresh == used
    assert used.model_dump(mode="json") == dumped
    assert pickle.loads(pickle.dumps(used)) == fresh
    deep = copy.deepcopy(used)
    assert deep.clauses_of(CancellationRefund) == fresh.clauses_of(CancellationRefund)
    returned = used.clauses_of(CancellationRefund)
    returned.clear()  # a caller's list is its own
    assert used.clauses_of(CancellationRefund)
