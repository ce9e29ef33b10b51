"""Clocks: services never read the system time themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TestClock:
    """A clock that only moves when told to, and never backwards."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the test clock needs an aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance_to(self, instant: datetime) -> None:
        if instant < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {instant}")
        self._now = instant
