"""Throttling of failed authentications, per client.

Invariants:
- a client (its address) with ``limit`` failed authentications in the last ``window``
  seconds is refused (429 ``too_many_failures`` with ``Retry-After``) before its
  credentials are looked at, until the oldest of those failures is ``window`` old;
- refusals are not failures: a client that waits out ``Retry-After`` may try again;
- a success does not clear failures (valid credentials for one key must not buy more
  guesses at another);
- memory is bounded: at most ``limit`` times per client, at most ``max_clients`` clients.

The times are the process's monotonic clock unless ``now`` is given (tests pass their
own). Each process counts its own failures: with N server processes a client gets up to
N × ``limit`` guesses a window, still far from guessing a 24-byte secret.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURE_LIMIT = 30  # a person who mistypes a key does not fail 30 times a minute
WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000


@dataclass
class Throttle:
    limit: int = FAILURE_LIMIT
    window: float = WINDOW_SECONDS  # float-ok: seconds
    now: Callable[[], float] = time.monotonic
    max_clients: int = MAX_CLIENTS
    _failures: dict[str, deque[float]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def retry_after(self, client: str) -> int:
        """Whole seconds before ``client`` may authenticate again; 0: now."""
        with self._lock:
            now = self.now()
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return 0
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        """Count one failed authentication of ``client``."""
        with self._lock:
            now = self.now()
            times = self._recent(client, now)
            if times is None:
                if len(self._failures) >= self.max_clients:
                    self._sweep(now)
                times = self._failures[client] = deque()
            times.append(now)
            while len(times) > self.limit:  # only the newest ``limit`` ever matter
                times.popleft()

    def _recent(self, client: str, now: float) -> deque[float] | None:  # float-ok: seconds
        """The client's failures still inside the window (older ones dropped)."""
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def _sweep(self, now: float) -> None:  # float-ok: monotonic seconds
        """Make room for a new client: forget those whose failures all left the window,
        then, if that is not enough (many addresses failing at once), the oldest."""
        for client in list(self._failures):
            self._recent(client, now)
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]
