"""Tests for ``fairbill.lifecycle``: the tables, ``advance``, the groupings and the
derived payment status.

The expected moves are written out here, not read back from the module, so the
exhaustive check over every pair of states pins each table: a changed table fails until
this file is changed with it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbill import errors
from fairbill.api.problems import from_error
from fairbill.errors import Conflict, FairbillError, IllegalTransition
from fairbill.lifecycle import (
    BILLED,
    CUSTOMER_ENDED,
    ENDED,
    INITIAL,
    LIVE,
    TRANSITIONS,
    CreditPackStatus,
    CustomerStatus,
    DisputeStatus,
    InvoiceStatus,
    Lifecycle,
    OperationKind,
    OperationStatus,
    PaymentStatus,
    PolicyVersionStatus,
    RefundStatus,
    RequestStatus,
    SubscriptionStatus,
    advance,
    payment_status,
)

# Each lifecycle: "state -> the states it may go to" (nothing after the arrow: final).
EXPECTED: dict[type[Lifecycle], str] = {
    SubscriptionStatus: """
        trialing -> active past_due suspended canceled expired terminated
        active -> past_due suspended canceled terminated
        past_due -> past_due active suspended canceled terminated
        suspended -> suspended active canceled terminated
        canceled ->
        expired ->
        terminated ->
    """,
    CustomerStatus: """
        active -> suspended closed terminated
        suspended -> active closed terminated
        closed -> terminated
        terminated ->
    """,
    InvoiceStatus: """
        open -> paid
        paid ->
    """,
    PaymentStatus: """
        succeeded -> partially_refunded refunded
        partially_refunded -> partially_refunded refunded
        refunded ->
    """,
    RefundStatus: """
        pending -> succeeded failed
        failed -> pending
        succeeded ->
    """,
    RequestStatus: """
        in_review -> in_review decided paid
        decided -> in_review paid
        paid ->
    """,
    OperationStatus: """
        pending -> pending succeeded failed unknown
        unknown -> pending succeeded failed unknown
        succeeded ->
        failed ->
    """,
    CreditPackStatus: """
        active -> used expired forfeited
        used -> active
        expired ->
        forfeited ->
    """,
    DisputeStatus: """
        open -> won lost
        won -> open
        lost ->
    """,
    PolicyVersionStatus: """
        draft -> published
        published ->
    """,
}

LIFECYCLES = sorted(TRANSITIONS, key=lambda lifecycle: lifecycle.__name__)


def _expected(lifecycle: type[Lifecycle]) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    for line in EXPECTED[lifecycle].strip().splitlines():
        state, _, moves = line.partition("->")
        table[state.strip()] = set(moves.split())
    return table


def _pairs() -> list[object]:
    """Every (lifecycle, a, b): the full cartesian product of each lifecycle's states."""
    return [
        pytest.param(lifecycle, a, b, id=f"{lifecycle.__name__}:{a}->{b}")
        for lifecycle in LIFECYCLES
        for a in lifecycle
        for b in lifecycle
    ]


def _by_value(states: frozenset[Lifecycle]) -> list[Lifecycle]:
    return sorted(states, key=lambda state: state.value)


# -- the tables -------------------------------------------------------------------------
def test_every_lifecycle_has_a_table_and_an_expected_one() -> None:
    assert set(TRANSITIONS) == set(Lifecycle.__subclasses__()) == set(EXPECTED)


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.__name__)
def test_every_state_is_listed_once_in_the_expected_table(lifecycle: type[Lifecycle]) -> None:
    lines = EXPECTED[lifecycle].strip().splitlines()
    assert sorted(line.split("->")[0].strip() for line in lines) == sorted(lifecycle)


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.__name__)
def test_a_table_is_total_and_stays_within_its_lifecycle(lifecycle: type[Lifecycle]) -> None:
    table = TRANSITIONS[lifecycle]
    assert set(table) == set(lifecycle)
    for moves in table.values():
        assert moves <= set(lifecycle)


@pytest.mark.parametrize(("lifecycle", "a", "b"), _pairs())
def test_a_move_is_allowed_exactly_when_the_table_lists_it(
    lifecycle: type[Lifecycle], a: Lifecycle, b: Lifecycle
) -> None:
    if b.value in _expected(lifecycle)[a.value]:
        assert advance(a, b) is b
        assert a.to(b) is b
        assert advance(a.value, b) is b  # the stored text works as well
        assert b in a.successors
    else:
        with pytest.raises(IllegalTransition) as refused:
            advance(a, b)
        assert (refused.value.lifecycle, refused.value.current, refused.value.new) == (
            lifecycle.__name__,
            a.value,
            b.value,
        )
        with pytest.raises(IllegalTransition):
            a.to(b)
        assert b not in a.successors


# -- final states -----------------------------------------------------------------------
@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.__name__)
def test_final_states_have_no_way_out(lifecycle: type[Lifecycle]) -> None:
    finals = [state for state in lifecycle if state.is_final]
    assert finals, "every lifecycle ends somewhere"
    for state in finals:
        assert state.successors == frozenset()
        for new in lifecycle:
            with pytest.raises(IllegalTransition):
                advance(state, new)


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.__name__)
def test_a_final_state_is_reachable_from_every_state(lifecycle: type[Lifecycle]) -> None:
    """No state is stuck in a loop that can never end (used ↔ active, won ↔ open)."""
    for state in lifecycle:
        seen, todo = {state}, [state]
        while todo:
            for new in todo.pop().successors - seen:
                seen.add(new)
                todo.append(new)
        assert any(s.is_final for s in seen), state


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.__name__)
def test_every_state_is_reachable_from_an_initial_one(lifecycle: type[Lifecycle]) -> None:
    initial = INITIAL[lifecycle]
    assert initial and initial <= set(lifecycle)
    seen, todo = set(initial), list(initial)
    while todo:
        for new in todo.pop().successors - seen:
            seen.add(new)
            todo.append(new)
    assert seen == set(lifecycle)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_walk_never_leaves_a_final_state(data: st.DataObject) -> None:
    """Ask for any moves, allowed or not: only allowed ones happen, and once a final
    state is reached every later request is refused and the state stays."""
    lifecycle = data.draw(st.sampled_from(LIFECYCLES))
    state = data.draw(st.sampled_from(_by_value(INITIAL[lifecycle])))
    ended = state.is_final
    for new in data.draw(st.lists(st.sampled_from(list(lifecycle)), max_size=30)):
        try:
            state = advance(state, new)
        except IllegalTransition:
            assert new not in state.successors
            continue
        assert not ended, f"left a final state for {new}"
        ended = state.is_final
    assert ended == state.is_final


# -- the groupings ----------------------------------------------------------------------
def test_subscription_groupings_are_consistent() -> None:
    everything = set(SubscriptionStatus)
    assert everything == LIVE | ENDED
    assert not LIVE & ENDED
    assert {s for s in SubscriptionStatus if s.is_final} == ENDED
    assert LIVE - {SubscriptionStatus.SUSPENDED} == BILLED
    assert INITIAL[SubscriptionStatus] <= BILLED
    for state in LIVE:
        assert not state.is_final
        assert state.successors & ENDED, f"{state} can always end"


def test_customer_ended_never_comes_back() -> None:
    assert {CustomerStatus.CLOSED, CustomerStatus.TERMINATED} == CUSTOMER_ENDED
    for state in CUSTOMER_ENDED:
        assert state.successors <= CUSTOMER_ENDED
    assert not CUSTOMER_ENDED & INITIAL[CustomerStatus]


def test_groupings_hold_members_that_equal_the_stored_text() -> None:
    assert "past_due" in LIVE and "suspended" not in BILLED and "expired" in ENDED
    assert "closed" in CUSTOMER_ENDED


# -- advance on stored text -------------------------------------------------------------
def test_members_are_their_stored_text() -> None:
    assert SubscriptionStatus.PAST_DUE == "past_due"
    assert str(SubscriptionStatus.PAST_DUE) == "past_due"
    assert f"{RequestStatus.IN_REVIEW}" == "in_review"
    assert SubscriptionStatus("active") is SubscriptionStatus.ACTIVE
    assert [str(kind) for kind in OperationKind] == ["charge", "refund"]


def test_text_that_is_no_state_is_a_value_error_not_a_conflict() -> None:
    with pytest.raises(ValueError, match="not a valid SubscriptionStatus"):
        advance("cancelled", SubscriptionStatus.ACTIVE)


def test_a_member_of_another_lifecycle_is_a_type_error() -> None:
    # Both are "active" as text; mixing them is a mistake in the code, not in the data.
    with pytest.raises(TypeError):
        advance(CustomerStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


# -- the error and its problem ----------------------------------------------------------
def test_illegal_transition_is_a_conflict_in_the_tree() -> None:
    assert issubclass(IllegalTransition, Conflict)
    assert issubclass(IllegalTransition, FairbillError)
    assert errors.__doc__ is not None and "IllegalTransition" in errors.__doc__


def test_illegal_transition_is_a_409_with_its_own_code() -> None:
    with pytest.raises(IllegalTransition) as refused:
        advance(InvoiceStatus.PAID, InvoiceStatus.OPEN)
    problem = from_error(refused.value)
    assert (problem.status, problem.code) == (409, "illegal_transition")
    assert "'paid'" in problem.detail and "'open'" in problem.detail
    assert from_error(Conflict("x")).code == "conflict"  # its base keeps its own code


# -- payment status (derived) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "refunded", "status"),
    [
        (1000, 0, PaymentStatus.SUCCEEDED),
        (1000, 1, PaymentStatus.PARTIALLY_REFUNDED),
        (1000, 999, PaymentStatus.PARTIALLY_REFUNDED),
        (1000, 1000, PaymentStatus.REFUNDED),
        (0, 0, PaymentStatus.SUCCEEDED),  # nothing was refunded of nothing
    ],
)
def test_payment_status(amount: int, refunded: int, status: PaymentStatus) -> None:
    assert payment_status(amount, refunded) is status


@pytest.mark.parametrize(("amount", "refunded"), [(1000, -1), (1000, 1001), (0, 1)])
def test_a_payment_is_never_refunded_beyond_itself(amount: int, refunded: int) -> None:
    with pytest.raises(ValueError):
        payment_status(amount, refunded)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10**9).flatmap(
        lambda amount: st.tuples(
            st.just(amount), st.lists(st.integers(0, amount), min_size=1, max_size=10)
        )
    )
)
def test_refunds_adding_up_move_the_payment_status_along_its_table(
    case: tuple[int, list[int]],
) -> None:
    amount, refunded = case[0], sorted(case[1])
    status = payment_status(amount, 0)
    assert status in INITIAL[PaymentStatus]
    for total in refunded:
        new = payment_status(amount, total)
        if new is not status:  # the same status again is no move
            status = advance(status, new)
    assert status is payment_status(amount, refunded[-1])
