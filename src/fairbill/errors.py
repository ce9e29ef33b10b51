"""fairbill's exceptions: misuse and operational failures only.

Business refusals (a declined refund, a cancellation that waits for the period end) are
values — ``Decision`` objects — never exceptions.

    FairbillError
    ├── InputError                 bad input from a person or a file; carries where it is
    │   ├── PolicyError            a policy file that does not validate
    │   └── ScenarioError          a scenario file that breaks the contract
    ├── MoneyError
    │   ├── InvalidAmount          text or value that is not an exact amount
    │   └── CurrencyMismatch       two currencies combined
    ├── LedgerError
    │   └── UnbalancedTransaction  a journal transaction whose legs do not sum to zero
    ├── NotFound                   a referenced object does not exist
    ├── Conflict                   the state does not allow the operation (double apply, ...)
    │   ├── IllegalTransition      a lifecycle move its state table does not allow
    │   └── AlreadyDisputed        a chargeback on a payment that has one open already
    └── GatewayError               the payment gateway failed (not a decline: declines are values)
        └── GatewayUncertain       no answer: the money may or may not have moved
            ├── GatewayTimeout     the call was sent; its answer did not come back
            └── GatewayUnreachable the connection failed (nothing may have been sent)
"""

from __future__ import annotations

from dataclasses import dataclass


class FairbillError(Exception):
    """Base of every fairbill exception."""


@dataclass(frozen=True)
class Location:
    """Where in an input file a problem is: path, 1-based line, and dotted field."""

    path: str
    line: int | None
    field: str

    def __str__(self) -> str:
        line = f":{self.line}" if self.line is not None else ""
        return f"{self.path}{line}: {self.field}" if self.field else f"{self.path}{line}"


class InputError(FairbillError):
    """Bad input; ``problems`` lists each (location, message)."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{loc}: {msg}" for loc, msg in problems))


class PolicyError(InputError):
    pass


class ScenarioError(InputError):
    pass


class MoneyError(FairbillError, ValueError):
    pass


class InvalidAmount(MoneyError):
    pass


class CurrencyMismatch(MoneyError):
    pass


class LedgerError(FairbillError):
    pass


class UnbalancedTransaction(LedgerError):
    pass


class NotFound(FairbillError, LookupError):
    pass


class Conflict(FairbillError):
    pass


class IllegalTransition(Conflict):
    """A move between two states of one lifecycle that its table (``fairbill.lifecycle``)
    does not allow. ``lifecycle`` names the enum; ``current`` and ``new`` are the states,
    as their stored values."""

    def __init__(self, lifecycle: str, current: str, new: str) -> None:
        self.lifecycle, self.current, self.new = lifecycle, current, new
        super().__init__(f"{lifecycle}: no transition from {current!r} to {new!r}")


class AlreadyDisputed(Conflict):
    """A second chargeback on one payment. Its own class (the API's ``already_disputed``)
    because the loser of two concurrent disputes finds the winner's only once it holds
    the customer's lock, inside the service."""


class GatewayError(FairbillError):
    pass


class GatewayUncertain(GatewayError):
    """The outcome is unknown: the operation is asked again later under the same key."""


class GatewayTimeout(GatewayUncertain):
    pass


class GatewayUnreachable(GatewayUncertain):
    pass
