"""Fixtures for the tests from the outside.

``api`` (with ``runtime`` and ``database_url``) comes from ``tests/api``: the app in
process on in-memory SQLite and on a fresh PostgreSQL database, for the regression tests
of what the fuzzing found. The end-to-end test starts a real server (see
``test_end_to_end.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.conftest import api, database_url, runtime  # noqa: F401  (the same fixtures)

# -- a real ``fairbill serve`` on loopback -------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A ``fairbill serve`` subprocess: its base URL, admin token and log file."""

    url: str
    admin_token: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    db_url: str, log: Path, admin_token: str, *extra: str, timeout: float = 60.0
) -> Server:
    """Start ``python -m fairbill.cli.main serve`` on a free loopback port and wait until
    ``/openapi.json`` answers; raise with the server's output if it does not."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRBILL_SMTP")}
    env["FAIRBILL_ADMIN_TOKEN"] = admin_token
    command = [
        sys.executable,
        "-m",
        "fairbill.cli.main",
        "serve",
        "--database-url",
        db_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", admin_token, log, process)
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"fairbill serve exited {process.returncode}:\n{server.output()}"
                )
            try:
                if client.get(f"{server.url}/openapi.json").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"fairbill serve did not answer in {timeout:.0f} s:\n{server.output()}")


def stop_server(server: Server) -> None:
    """SIGTERM (uvicorn shuts down cleanly), then SIGKILL after 10 s."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)


@pytest.fixture(scope="module")
def e2e_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``fairbill serve`` on a fresh SQLite file with a test clock at ``E2E_START``; the
    background tick is an hour apart, so only ``/v1/test_clock/advance`` runs due work."""
    from .test_end_to_end import E2E_START

    folder = tmp_path_factory.mktemp("e2e")
    server = start_server(
        f"sqlite:///{folder / 'e2e.db'}",
        folder / "server.log",
        "adm_e2e_token",
        "--test-clock",
        E2E_START,
        "--tick-seconds",
        "3600",
    )
    try:
        yield server
    finally:
        stop_server(server)
