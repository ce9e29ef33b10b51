"""Profile: where one API request's server CPU goes, in this process, no network.

Builds the app on a fresh SQLite file (as ``fairbill serve`` does, test clock aside),
seeds one EmailConsul merchant and ``--customers`` subscribers through the API, then runs
``--requests`` requests of one ``--kind`` (subscribe, preview, refund, get) through
Starlette's TestClient, profiling every thread the app runs in (cProfile), and prints the
CPU per request and the top functions, cumulative and own. ``bench/api.py`` measures
throughput; this says why.

    .venv/bin/python bench/api_profile.py --kind subscribe --requests 300
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ADMIN = "adm_bench_profile"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=["subscribe", "preview", "refund", "get"], default="subscribe")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--top", type=int, default=25)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from fastapi.testclient import TestClient

    from fairbill.api.app import create_app
    from fairbill.api.settings import Runtime
    from fairbill.store.db import make_engine
    from fairbill.store.migrate import upgrade

    # The app runs in other threads (the test client's event loop, the thread pool of
    # sync routes): each thread started from here on profiles itself.
    profiles: list[cProfile.Profile] = []

    def profile_this_thread(*_: Any) -> None:
        sys.setprofile(None)  # this thread's hook only; cProfile installs its own
        mine = cProfile.Profile()
        profiles.append(mine)
        mine.enable()

    threading.setprofile(profile_this_thread)
    folder = tempfile.mkdtemp(prefix="fairbill-profile-")
    url = f"sqlite:///{folder}/profile.db"
    upgrade(url)
    runtime = Runtime(make_engine(url), admin_token=ADMIN)
    with TestClient(create_app(runtime)) as client:
        key, subs, pays = seed(client, args.customers)
        send = request_of(args.kind, client, key, subs, pays)
        for i in range(20):  # warm caches (compiled statements, templates, policies)
            send(i)
        for other in profiles:  # what the seeding and the warm-up cost is not counted
            other.clear()
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(args.requests):
            send(20 + i)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    threading.setprofile(None)
    print(f"{args.requests} × {args.kind}: {cpu / args.requests * 1000:.2f} ms CPU a request")
    print(f"(wall {wall / args.requests * 1000:.2f} ms; client and server share this process)\n")
    merged: pstats.Stats | None = None
    for other in profiles:
        try:
            stats = pstats.Stats(other)
        except TypeError:  # a thread that recorded nothing
            continue
        merged = stats if merged is None else merged.add(stats)
    if merged is None:
        raise SystemExit("no thread recorded anything")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        merged.stream = out  # type: ignore[attr-defined]
        merged.sort_stats(order).print_stats(args.top)
        print(out.getvalue())


def post(client: Any, key: str, path: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
    response = client.post(path, json=body, headers=headers)
    if response.status_code >= 300:
        raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return response.json()


def seed(client: Any, customers: int) -> tuple[str, list[str], list[tuple[str, str]]]:
    made = post(client, ADMIN, "/v1/merchants", {"name": "Profile", "policy": "emailconsul"})
    key = made["api_keys"]["admin"]
    post(client, key, "/v1/plans", {"id": "pro-monthly", "interval_months": 1, "price": "30.00"})
    subs, pays = [], []
    for n in range(customers):
        code = f"seed_{n}"
        post(client, key, "/v1/customers", {"id": code, "payment_methods": [{"id": "card_1"}]})
        body = {"customer": code, "plan": "pro-monthly", "payment_method": "card_1"}
        subs.append(post(client, key, "/v1/subscriptions", body)["id"])
        paid = client.get(
            "/v1/payments", params={"customer": code}, headers={"Authorization": f"Bearer {key}"}
        ).json()["data"][0]["id"]
        pays.append((code, paid))
    return key, subs, pays


def request_of(
    kind: str, client: Any, key: str, subs: list[str], pays: list[tuple[str, str]]
) -> Any:
    def subscribe(i: int) -> None:
        code = f"new_{i}"
        post(client, key, "/v1/customers", {"id": code, "payment_methods": [{"id": "card_1"}]})
        body = {"customer": code, "plan": "pro-monthly", "payment_method": "card_1"}
        post(client, key, "/v1/subscriptions", body)

    def preview(i: int) -> None:
        post(client, key, f"/v1/subscriptions/{subs[i % len(subs)]}/preview", {"action": "cancel"})

    def refund(i: int) -> None:
        code, paid = pays[i % len(pays)]
        body = {"customer": code, "kind": "money_back", "payment": paid, "reason": "profile"}
        post(client, key, "/v1/refund_requests", body)

    def get(i: int) -> None:
        client.get(
            f"/v1/subscriptions/{subs[i % len(subs)]}", headers={"Authorization": f"Bearer {key}"}
        ).raise_for_status()

    return {"subscribe": subscribe, "preview": preview, "refund": refund, "get": get}[kind]


if __name__ == "__main__":
    main()
