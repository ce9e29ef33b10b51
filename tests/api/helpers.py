"""A small client for the API tests: a merchant's calls carry its API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi.testclient import TestClient

from fairbill.api.settings import Runtime

ADMIN_TOKEN = "adm_test_platform_token"
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Merchant:
    client: TestClient
    id: int
    keys: dict[str, str]

    def headers(self, role: str = "admin", token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.keys[role]}"}

    def get(
        self, path: str, role: str = "admin", token: str | None = None, **params: Any
    ) -> httpx.Response:
        response: httpx.Response = self.client.get(
            path, params=params, headers=self.headers(role, token)
        )
        return response

    def post(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        role: str = "admin",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        response: httpx.Response = self.client.post(
            path, json=body or {}, headers=self.headers(role, token) | (headers or {})
        )
        return response

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    # -- set-up shortcuts through the API ----------------------------------------------
    def plan(self, plan_id: str, price: str, interval_months: int = 1) -> None:
        body = {"id": plan_id, "price": price, "interval_months": interval_months}
        self.ok(self.post("/v1/plans", body), 201)

    def customer(self, code: str, **extra: Any) -> None:
        body = {"id": code, "payment_methods": [{"id": "card_1"}]} | extra
        self.ok(self.post("/v1/customers", body), 201)

    def subscribe(self, customer: str, plan: str) -> str:
        body = {"customer": customer, "plan": plan, "payment_method": "card_1"}
        sub: str = self.ok(self.post("/v1/subscriptions", body), 201)["id"]
        return sub

    def portal_token(self, customer: str) -> str:
        token: str = self.ok(self.post(f"/v1/customers/{customer}/portal_tokens"), 201)["token"]
        return token

    def walk(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a list endpoint, one page of ``limit`` rows at a time."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = params | ({"cursor": cursor} if cursor else {})
            body = self.ok(self.get(path, **query))
            rows.extend(body["data"])
            cursor = body["next_cursor"]
            assert (cursor is not None) == body["has_more"]
            if cursor is None:
                return rows


@dataclass
class Api:
    client: TestClient
    runtime: Runtime

    def merchant(self, policy: str, name: str | None = None) -> Merchant:
        response = self.client.post(
            "/v1/merchants",
            json={"name": name or f"{policy} test", "policy": policy},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Merchant(self.client, body["id"], body["api_keys"])

    def advance(self, to: str) -> None:
        response = self.client.post(
            "/v1/test_clock/advance",
            params={"to": to},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 200, response.text
