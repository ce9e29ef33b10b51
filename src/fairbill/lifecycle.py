"""Lifecycles: the states of every status field and the moves allowed between them.

Modelled on Lago's invoice state machine: each lifecycle is a ``StrEnum`` and one table,
right under it, maps every state to the states it may go to. ``advance(current, new)``
(or ``current.to(new)``) returns ``new`` when the table allows the move and raises
``IllegalTransition`` otherwise, so a state changes only along its table.

Invariants (``tests/test_lifecycle.py`` checks them):

* every state of a lifecycle is a key of its table, final ones with no moves;
* a final state has no way out, not even to itself;
* a state goes to itself only where an event repeats without changing it (another failed
  payment of a past-due subscription, an appeal of a request still in review); a
  redundant write of the same state is not a move and is not listed;
* members compare equal to their stored strings (``StrEnum``), so rows keep plain text.

Initial states are not moves: a row is created in one of its lifecycle's ``INITIAL``
states (a subscription ``trialing`` or ``active``, an invoice ``open`` or, when nothing is
due, ``paid``, ...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Self, TypeVar, cast

from fairbill.errors import IllegalTransition


class Lifecycle(StrEnum):
    """Base of the lifecycle enums; no members of its own. A state's moves come from its
    lifecycle's table in ``TRANSITIONS``."""

    @property
    def successors(self) -> frozenset[Self]:
        """The states this one may go to; empty for a final state."""
        return cast(frozenset[Self], TRANSITIONS[type(self)][self])

    @property
    def is_final(self) -> bool:
        return not self.successors

    def to(self, new: Self) -> Self:
        """``new``, if this state may go there; otherwise ``IllegalTransition``."""
        return advance(self, new)


L = TypeVar("L", bound=Lifecycle)


def _table(lifecycle: type[L], moves: Mapping[L, Collection[L]]) -> Mapping[L, frozenset[L]]:
    """The frozen table of ``lifecycle``. Every state must be listed, so a state added to
    the enum without deciding its moves fails at import rather than being silently final."""
    missing = [state.value for state in lifecycle if state not in moves]
    if missing:
        raise ValueError(f"{lifecycle.__name__}: no moves listed for {missing}")
    return MappingProxyType({state: frozenset(moves[state]) for state in lifecycle})


# -- subscriptions ----------------------------------------------------------------------
class SubscriptionStatus(Lifecycle):
    """``SubscriptionRow.status``. Ended states (canceled, expired, terminated) are final:
    a customer who comes back gets a new subscription."""

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a payment failed; retries are scheduled
    SUSPENDED = "suspended"  # service stopped, not billed; a payment reactivates it
    CANCELED = "canceled"
    EXPIRED = "expired"  # a trial that did not convert
    TERMINATED = "terminated"  # ended by the merchant for a violation


_Sub = SubscriptionStatus
_SUBSCRIPTION = _table(
    SubscriptionStatus,
    {
        # A trial may also go past due: a prorated upgrade charged during it can fail.
        _Sub.TRIALING: {
            _Sub.ACTIVE,
            _Sub.PAST_DUE,
            _Sub.SUSPENDED,
            _Sub.CANCELED,
            _Sub.EXPIRED,
            _Sub.TERMINATED,
        },
        _Sub.ACTIVE: {_Sub.PAST_DUE, _Sub.SUSPENDED, _Sub.CANCELED, _Sub.TERMINATED},
        # past_due → past_due: another attempt failed.
        _Sub.PAST_DUE: {
            _Sub.PAST_DUE,
            _Sub.ACTIVE,
            _Sub.SUSPENDED,
            _Sub.CANCELED,
            _Sub.TERMINATED,
        },
        # suspended → suspended: suspended again for another cause (a chargeback, a
        # violation, the last retry); a suspended subscription is never "past due" again.
        _Sub.SUSPENDED: {_Sub.SUSPENDED, _Sub.ACTIVE, _Sub.CANCELED, _Sub.TERMINATED},
        _Sub.CANCELED: set(),
        _Sub.EXPIRED: set(),
        _Sub.TERMINATED: set(),
    },
)

# Service continues (or may resume on payment): the subscription still has due work.
LIVE: Final = frozenset({_Sub.TRIALING, _Sub.ACTIVE, _Sub.PAST_DUE, _Sub.SUSPENDED})
# Renewed at its period end: live and not suspended (a suspended one is not billed).
BILLED: Final = frozenset({_Sub.TRIALING, _Sub.ACTIVE, _Sub.PAST_DUE})
# Service is over for good: exactly the final states.
ENDED: Final = frozenset({_Sub.CANCELED, _Sub.EXPIRED, _Sub.TERMINATED})


# -- customers --------------------------------------------------------------------------
class CustomerStatus(Lifecycle):
    """``CustomerRow.status``. Closed and terminated accounts take no new business; their
    data is kept only for the policy's retention period."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"  # closed by the customer
    TERMINATED = "terminated"  # closed by the merchant for a violation


_Cus = CustomerStatus
_CUSTOMER = _table(
    CustomerStatus,
    {
        _Cus.ACTIVE: {_Cus.SUSPENDED, _Cus.CLOSED, _Cus.TERMINATED},
        _Cus.SUSPENDED: {_Cus.ACTIVE, _Cus.CLOSED, _Cus.TERMINATED},
        # A violation found after closing still terminates (its own retention period).
        _Cus.CLOSED: {_Cus.TERMINATED},
        _Cus.TERMINATED: set(),
    },
)

# No new purchases or subscriptions; never active again.
CUSTOMER_ENDED: Final = frozenset({_Cus.CLOSED, _Cus.TERMINATED})


# -- invoices ---------------------------------------------------------------------------
class InvoiceStatus(Lifecycle):
    """``InvoiceRow.status``. Nothing voids an invoice today: refunds and credit notes
    leave it as it is."""

    OPEN = "open"
    PAID = "paid"


_INVOICE = _table(
    InvoiceStatus, {InvoiceStatus.OPEN: {InvoiceStatus.PAID}, InvoiceStatus.PAID: set()}
)


# -- payments (derived) -----------------------------------------------------------------
class PaymentStatus(Lifecycle):
    """A payment's status, derived from its amount and what was refunded of it, never
    stored. Refunds only add up, so the status only moves forward."""

    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


_Pay = PaymentStatus
_PAYMENT = _table(
    PaymentStatus,
    {
        _Pay.SUCCEEDED: {_Pay.PARTIALLY_REFUNDED, _Pay.REFUNDED},
        # Another partial refund that still leaves something.
        _Pay.PARTIALLY_REFUNDED: {_Pay.PARTIALLY_REFUNDED, _Pay.REFUNDED},
        _Pay.REFUNDED: set(),
    },
)


def payment_status(amount_minor: int, refunded_minor: int) -> PaymentStatus:
    """The status of a payment of ``amount_minor`` of which ``refunded_minor`` was given
    back (both in the payment's own currency, as on ``PaymentRow``). A payment is never
    refunded below zero or beyond itself: ``ValueError`` then."""
    if not 0 <= refunded_minor <= amount_minor:
        raise ValueError(f"refunded {refunded_minor} of a payment of {amount_minor}")
    if refunded_minor == 0:
        return PaymentStatus.SUCCEEDED
    if refunded_minor < amount_minor:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.REFUNDED


# -- refunds ----------------------------------------------------------------------------
class RefundStatus(Lifecycle):
    """``RefundRow.status``. A refund to a card is pending until the gateway paid it; a
    refund to the wallet is created succeeded. A failed one may be retried."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_Ref = RefundStatus
_REFUND = _table(
    RefundStatus,
    {
        _Ref.PENDING: {_Ref.SUCCEEDED, _Ref.FAILED},
        _Ref.FAILED: {_Ref.PENDING},  # retried
        _Ref.SUCCEEDED: set(),
    },
)


# -- refund requests --------------------------------------------------------------------
class RequestStatus(Lifecycle):
    """``RequestRow.status``: a refund request waits for a reviewer, is decided (nothing
    to pay, or not yet), or is paid. A paid request is final: an appeal leaves it."""

    IN_REVIEW = "in_review"
    DECIDED = "decided"
    PAID = "paid"


_Req = RequestStatus
_REQUEST = _table(
    RequestStatus,
    {
        # in_review → in_review: appealed again while still waiting for a reviewer.
        _Req.IN_REVIEW: {_Req.IN_REVIEW, _Req.DECIDED, _Req.PAID},
        # decided → in_review: an appeal sends it back to a reviewer.
        _Req.DECIDED: {_Req.IN_REVIEW, _Req.PAID},
        _Req.PAID: set(),
    },
)


# -- gateway operations -----------------------------------------------------------------
class OperationKind(StrEnum):
    """``GatewayOperationRow.kind``: what the operation asks of the gateway."""

    CHARGE = "charge"
    REFUND = "refund"


class OperationStatus(Lifecycle):
    """``GatewayOperationRow.status``. Committed pending before the gateway is called;
    unknown when no answer came back (the money may or may not have moved), and asked
    again under the same key until the gateway says succeeded or failed."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


_Op = OperationStatus
_OPERATION = _table(
    OperationStatus,
    {
        # → pending: a refund the gateway definitely refused (no money moved) is tried
        # again later, under a key of its own (``operations``).
        _Op.PENDING: {_Op.PENDING, _Op.SUCCEEDED, _Op.FAILED, _Op.UNKNOWN},
        # unknown → unknown: asked again, still no answer.
        _Op.UNKNOWN: {_Op.PENDING, _Op.SUCCEEDED, _Op.FAILED, _Op.UNKNOWN},
        _Op.SUCCEEDED: set(),
        _Op.FAILED: set(),
    },
)


# -- credit packs -----------------------------------------------------------------------
class CreditPackStatus(Lifecycle):
    """``CreditPackRow.status``. Only an active pack is spent, expires or is forfeited."""

    ACTIVE = "active"
    USED = "used"  # nothing left
    EXPIRED = "expired"
    FORFEITED = "forfeited"


_Pack = CreditPackStatus
_CREDIT_PACK = _table(
    CreditPackStatus,
    {
        _Pack.ACTIVE: {_Pack.USED, _Pack.EXPIRED, _Pack.FORFEITED},
        # Credits spent on a delivery that failed may be given back.
        _Pack.USED: {_Pack.ACTIVE},
        _Pack.EXPIRED: set(),
        _Pack.FORFEITED: set(),
    },
)


# -- disputes ---------------------------------------------------------------------------
class DisputeStatus(Lifecycle):
    """``PaymentRow.disputed`` (NULL: never disputed). A lost dispute returned what was
    left of the payment, so there is nothing left to dispute again."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


_Dis = DisputeStatus
_DISPUTE = _table(
    DisputeStatus,
    {
        _Dis.OPEN: {_Dis.WON, _Dis.LOST},
        _Dis.WON: {_Dis.OPEN},  # the cardholder disputes the payment again
        _Dis.LOST: set(),
    },
)


# -- policy versions --------------------------------------------------------------------
class PolicyVersionStatus(Lifecycle):
    """``PolicyVersionRow.status``. A version's content never changes (its id is a hash of
    it); a draft is published once, and a published version stays: decisions it took are
    explained by it for ever. The merchant's current version is its newest published one."""

    DRAFT = "draft"
    PUBLISHED = "published"


_PV = PolicyVersionStatus
_POLICY_VERSION = _table(PolicyVersionStatus, {_PV.DRAFT: {_PV.PUBLISHED}, _PV.PUBLISHED: set()})


# -- the registry -----------------------------------------------------------------------
# Keys are the lifecycles; values their tables (typed loosely: a Mapping is invariant in
# its key, so a table of SubscriptionStatus is not a table of Lifecycle).
TRANSITIONS: Final[Mapping[type[Lifecycle], Mapping[Any, frozenset[Any]]]] = MappingProxyType(
    {
        SubscriptionStatus: _SUBSCRIPTION,
        CustomerStatus: _CUSTOMER,
        InvoiceStatus: _INVOICE,
        PaymentStatus: _PAYMENT,
        RefundStatus: _REFUND,
        RequestStatus: _REQUEST,
        OperationStatus: _OPERATION,
        CreditPackStatus: _CREDIT_PACK,
        DisputeStatus: _DISPUTE,
        PolicyVersionStatus: _POLICY_VERSION,
    }
)

# The states a row of each lifecycle is created in.
INITIAL: Final[Mapping[type[Lifecycle], frozenset[Any]]] = MappingProxyType(
    {
        SubscriptionStatus: frozenset({_Sub.TRIALING, _Sub.ACTIVE}),
        CustomerStatus: frozenset({_Cus.ACTIVE}),
        InvoiceStatus: frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID}),
        PaymentStatus: frozenset({_Pay.SUCCEEDED}),
        RefundStatus: frozenset({_Ref.PENDING, _Ref.SUCCEEDED}),
        RequestStatus: frozenset({_Req.IN_REVIEW, _Req.DECIDED}),
        OperationStatus: frozenset({_Op.PENDING}),
        CreditPackStatus: frozenset({_Pack.ACTIVE}),
        DisputeStatus: frozenset({_Dis.OPEN}),
        PolicyVersionStatus: frozenset({_PV.DRAFT, _PV.PUBLISHED}),
    }
)


def advance(current: str, new: L) -> L:
    """``new``, if ``new``'s lifecycle allows the move from ``current``; otherwise
    ``IllegalTransition``.

    ``current`` may be the stored text (``sub.status``): it is read as a state of
    ``new``'s lifecycle. Text that is not one of its states raises ``ValueError`` (a
    corrupt row, not a conflict); a member of another lifecycle raises ``TypeError``
    (``CustomerStatus.ACTIVE`` for a subscription: a programming mistake)."""
    lifecycle = type(new)
    if isinstance(current, Lifecycle) and not isinstance(current, lifecycle):
        raise TypeError(f"{current!r} is not a {lifecycle.__name__}")
    state = lifecycle(current)
    if new not in TRANSITIONS[lifecycle][state]:
        raise IllegalTransition(lifecycle.__name__, state.value, new.value)
    return new
