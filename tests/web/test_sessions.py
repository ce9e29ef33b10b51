"""The signed session cookie: what it admits, when it ends."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from fairbill.web.sessions import ABSOLUTE, IDLE, WebSession, refreshed, seal, start, unseal

SECRET = b"k" * 32
NOW = 1_800_000_000


def a_session(limit: int = NOW + 30 * 86400) -> WebSession:
    return start("portal", 7, "cpt_0123456789ab", NOW, limit, customer_id=42)


def test_a_sealed_session_comes_back_until_it_expires() -> None:
    session = a_session()
    text = seal(session, SECRET)
    assert unseal(text, SECRET, NOW) == session
    assert unseal(text, SECRET, NOW + IDLE - 1) == session
    assert unseal(text, SECRET, NOW + IDLE) is None  # idle too long


def test_another_secret_or_a_changed_byte_is_no_session() -> None:
    text = seal(a_session(), SECRET)
    assert unseal(text, b"other" * 8, NOW) is None
    body, mac = text.split(".")
    forged = seal(replace(a_session(), customer_id=43), b"other" * 8).split(".")[0]
    assert unseal(f"{forged}.{mac}", SECRET, NOW) is None
    for broken in ("", ".", "x", f"{body}.", f"{body}.{mac}.x", f"{body}x.{mac}", "é.é"):
        assert unseal(broken, SECRET, NOW) is None


def test_refreshing_never_passes_the_absolute_end_nor_the_credentials_own() -> None:
    session = a_session()
    later = refreshed(session, NOW + ABSOLUTE - 60)
    assert later.expires == NOW + ABSOLUTE
    short = a_session(limit=NOW + 600)
    assert short.expires == NOW + 600
    assert refreshed(short, NOW + 500).expires == NOW + 600


def test_each_session_has_its_own_csrf_token_and_no_secret() -> None:
    one, two = a_session(), a_session()
    assert one.csrf != two.csrf and len(one.csrf) >= 40
    assert one.actor == "portal:cpt_0123456789ab"


@given(st.text(max_size=200))
def test_any_text_is_a_session_or_none_never_an_error(text: str) -> None:
    assert unseal(text, SECRET, NOW) is None
