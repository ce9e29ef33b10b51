"""Authenticated API keys are remembered at most ``ttl`` seconds (``services.credential_cache``),
forgotten at once by the process that revokes them, and never remembered with ttl 0."""

from __future__ import annotations

from fairbill.services import credential_cache
from fairbill.services.credential_cache import CredentialCache
from fairbill.services.roles import Principal

WHO = Principal("key", "key:fb_1", 1, "admin")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_trusted_for_ttl_seconds_only() -> None:
    clock = Clock()
    cache = CredentialCache(1.0, clock)
    assert cache.get("fb_1.secret") is None
    cache.put("fb_1.secret", "fb_1", WHO)
    assert cache.get("fb_1.secret") == WHO
    clock.now += 0.99
    assert cache.get("fb_1.secret") == WHO
    clock.now += 0.01
    assert cache.get("fb_1.secret") is None  # read from the database again


def test_another_secret_of_the_same_prefix_does_not_match() -> None:
    cache = CredentialCache(1.0, Clock())
    cache.put("fb_1.secret", "fb_1", WHO)
    assert cache.get("fb_1.secreT") is None
    assert cache.get("fb_1") is None


def test_a_revoked_prefix_is_forgotten_in_every_cache_of_the_process() -> None:
    one, two = CredentialCache(60.0, Clock()), CredentialCache(60.0, Clock())
    for cache in (one, two):
        cache.put("fb_1.secret", "fb_1", WHO)
        cache.put("fb_2.secret", "fb_2", WHO)
    credential_cache.forget("fb_1")
    assert one.get("fb_1.secret") is None and two.get("fb_1.secret") is None
    assert one.get("fb_2.secret") == WHO and two.get("fb_2.secret") == WHO


def test_ttl_0_remembers_nothing() -> None:
    cache = CredentialCache()
    cache.put("fb_1.secret", "fb_1", WHO)
    assert cache.get("fb_1.secret") is None


def test_a_full_cache_starts_over() -> None:
    cache = CredentialCache(60.0, Clock())
    for n in range(credential_cache.MAX_ENTRIES + 1):
        cache.put(f"fb_{n}.s", f"fb_{n}", WHO)
    assert len(cache._entries) == 1
