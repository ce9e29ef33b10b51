"""``fairbill serve`` before it serves: a busy port is one clear line and exit 2 (nothing
migrated, no keys printed); the port comes from --port or FAIRBILL_PORT; an admin token
set in the environment is never echoed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbill.cli.main import app
from fairbill.cli.serve import admin_token_line

runner = CliRunner()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_port_is_exit_2_with_a_message_before_anything_is_done(
    busy_port: int, tmp_path: Path
) -> None:
    db = tmp_path / "fb.db"
    for args, env in (
        (["--port", str(busy_port)], {}),
        ([], {"FAIRBILL_PORT": str(busy_port)}),
    ):
        result = runner.invoke(
            app, ["serve", "--demo", "--database-url", f"sqlite:///{db}", *args], env=env
        )
        assert result.exit_code == 2, result.output
        assert f"port {busy_port} on 127.0.0.1 is already in use" in result.output
        assert "Traceback" not in result.output
        assert "export " not in result.output  # no demo keys
        assert not db.exists()  # nothing migrated


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = runner.invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2


def test_an_admin_token_from_the_environment_is_never_echoed() -> None:
    secret = "adm_from_the_environment_0123456789"
    assert secret not in admin_token_line(secret, secret)
    assert "FAIRBILL_ADMIN_TOKEN" in admin_token_line(secret, secret)
    made = "adm_made_here"
    assert made in admin_token_line(None, made)  # shown once: the only way to learn it


def test_the_demo_prints_the_keys_the_portal_links_and_the_back_office_sign_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fairbill.api.settings import Runtime
    from fairbill.cli.serve import _seed_demo
    from fairbill.store.db import create_schema, make_engine

    engine = make_engine("sqlite://")
    create_schema(engine)
    runtime = Runtime(engine)
    try:
        _seed_demo(runtime, "http://127.0.0.1:8123")
    finally:
        runtime.close()
    out = capsys.readouterr().out
    for role in ("KEY", "FINANCE_KEY", "SUPPORT_KEY", "PORTAL_TOKEN"):
        assert f"export EMAILCONSUL_{role}=" in out
    assert "http://127.0.0.1:8123/portal/enter?token=cpt_" in out
    assert "# back office: http://127.0.0.1:8123/app/sign-in" in out
