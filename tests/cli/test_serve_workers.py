"""``fairbill serve --workers N``: the parent hands its settings down to the workers
(secrets included, the SMTP password not), each worker's app is built from them alone
and skips the start-up work (the parent did it once); a test clock needs one worker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from fairbill.cli import serve_workers
from fairbill.cli.main import app
from fairbill.config import Settings
from fairbill.store.migrate import upgrade


def settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_the_settings_handed_down_are_the_parents(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = settings(
        database_url="sqlite:///x.db",
        log_level="WARNING",
        metrics_token="m-secret",
        smtp_host="mail.example",
        smtp_password="smtp-secret",
    )
    text = serve_workers.hand_down(parent, "adm_made_here")
    assert "smtp-secret" not in text
    monkeypatch.setenv("FAIRBILL_LOG_LEVEL", "DEBUG")  # the environment is not read again
    child = serve_workers.settings_handed_down(text)
    assert child.database_url == "sqlite:///x.db" and child.log_level == "WARNING"
    assert child.admin_token == SecretStr("adm_made_here")
    assert child.metrics_token == SecretStr("m-secret")
    assert child.smtp_host == "mail.example" and child.smtp_password is None


def test_a_workers_app_serves_with_the_settings_handed_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    parent = settings(database_url=url, log_format="console")
    monkeypatch.setenv(serve_workers.CHILD_ENV, serve_workers.hand_down(parent, "adm_w"))
    served = serve_workers.app()
    assert served.state.runtime.credentials.ttl > 0  # served: keys are cached
    with TestClient(served) as client:
        r = client.post(
            "/v1/merchants",
            json={"name": "W", "policy": "kalenner"},
            headers={"Authorization": "Bearer adm_w"},
        )
        assert r.status_code == 201, r.text
    served.state.runtime.close()


def test_a_test_clock_needs_one_worker(tmp_path: Path) -> None:
    db = tmp_path / "fb.db"
    with socket.socket() as sock:  # a port free now (it is never bound: refused before)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--database-url",
            f"sqlite:///{db}",
            "--port",
            str(port),
            "--workers",
            "2",
            "--test-clock",
            "2026-03-01T09:00:00+00:00",
        ],
    )
    assert result.exit_code == 2
    assert "--test-clock needs one worker" in result.output
    assert not db.exists()
