"""With the credential cache on (as ``fairbill serve`` runs it), a revoked API key is
refused at once when this process revoked it, and within the cache's ttl when the
revocation came from elsewhere (another process, the database)."""

from __future__ import annotations

from sqlalchemy import update

from fairbill.services.credential_cache import CredentialCache
from fairbill.store.tables import ApiKeyRow

from .helpers import Api


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_key_revoked_elsewhere_is_refused_once_its_entry_is_a_second_old(api: Api) -> None:
    clock = Clock()
    api.runtime.credentials = CredentialCache(1.0, clock)
    m = api.merchant("kalenner")
    key = m.keys["support"]
    assert m.get("/v1/plans", token=key).status_code == 200
    with api.runtime.sessions() as session:  # as another process would
        prefix = key.split(".", 1)[0]
        session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.prefix == prefix)
            .values(revoked_at=api.runtime.clock.now())
        )
        session.commit()
    assert m.get("/v1/plans", token=key).status_code == 200  # the entry is fresh
    clock.now += 1.0
    assert m.get("/v1/plans", token=key).status_code == 401
    assert m.post("/v1/plans", {"id": "p"}, token=key).status_code == 401


def test_a_key_revoked_through_the_api_is_refused_at_once(api: Api) -> None:
    api.runtime.credentials = CredentialCache(60.0, Clock())
    m = api.merchant("kalenner")
    key = m.ok(m.post("/v1/api_keys", {"role": "support"}), 201)
    assert m.get("/v1/plans", token=key["key"]).status_code == 200  # now cached
    m.ok(m.post(f"/v1/api_keys/{key['prefix']}/revoke"))
    assert m.get("/v1/plans", token=key["key"]).status_code == 401
