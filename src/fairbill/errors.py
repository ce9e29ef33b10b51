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
    └── GatewayError               the payment gateway failed (not a decline: declines are values)
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


class GatewayError(FairbillError):
    pass
