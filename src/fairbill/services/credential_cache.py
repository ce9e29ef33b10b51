"""Authenticated API keys remembered for a short while (``ttl`` seconds), so that a
request does not look its key up in the database every time.

Invariant: a key revoked in the database is refused by every process within ``ttl``
seconds of the revocation's commit (an entry is trusted only that long after it was read
from the database), and at once by the process that revoked it (``forget``, called by
``merchants.revoke_key``). Only successes are remembered: an unknown or wrong key is
looked up every time (and counted by the throttle). Entries are keyed by a hash of the
whole key (prefix and secret), so a mistyped secret never matches an entry. A cache with
``ttl`` 0 remembers nothing: what a ``Runtime`` built in code gets (tests revoke keys
behind the API's back); ``fairbill serve`` uses ``SERVE_TTL``.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Callable

from fairbill.services.roles import Principal

SERVE_TTL = 1.0  # float-ok: seconds a revoked key may still be accepted by another process
MAX_ENTRIES = 10_000

_CACHES: weakref.WeakSet[CredentialCache] = weakref.WeakSet()
_CACHES_LOCK = threading.Lock()


class CredentialCache:
    def __init__(
        self,
        ttl: float = 0.0,  # float-ok: seconds
        clock: Callable[[], float] = time.monotonic,  # float-ok: seconds
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[float, str, Principal]] = {}  # float-ok: expiry
        self._lock = threading.Lock()
        with _CACHES_LOCK:
            _CACHES.add(self)

    def get(self, token: str) -> Principal | None:
        """The principal ``token`` authenticated as, if read from the database less than
        ``ttl`` seconds ago."""
        if self.ttl <= 0:
            return None
        found = self._entries.get(_digest(token))
        if found is None or self._clock() - found[0] >= self.ttl:
            return None
        return found[2]

    def put(self, token: str, prefix: str, principal: Principal) -> None:
        """Remember what ``token`` (of key ``prefix``) authenticated as, read just now."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # rare: more live keys than this in ``ttl`` seconds
            self._entries[_digest(token)] = (self._clock(), prefix, principal)

    def forget_prefix(self, prefix: str) -> None:
        with self._lock:
            for digest in [d for d, (_, p, _) in self._entries.items() if p == prefix]:
                del self._entries[digest]


def forget(prefix: str) -> None:
    """Drop the key ``prefix`` from every cache of this process (it is being revoked)."""
    with _CACHES_LOCK:
        caches = list(_CACHES)
    for cache in caches:
        cache.forget_prefix(prefix)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
