"""Settings: the environment's names, a TOML or YAML file under them, options over both;
wrong values name the variable; every setting is in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairbill.config import Settings, SettingsError, defaults, env_name, load

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [k for k in os.environ if k.startswith("FAIRBILL_")]:
        monkeypatch.delenv(name)


def test_the_environment_names_of_before_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "FAIRBILL_PORT": "8123",
        "FAIRBILL_HOST": "0.0.0.0",
        "FAIRBILL_ADMIN_TOKEN": "adm_secret",
        "FAIRBILL_SESSION_SECRET": "s" * 32,
        "FAIRBILL_SMTP_HOST": "smtp.example.org",
        "FAIRBILL_SMTP_PORT": "587",
        "FAIRBILL_SMTP_STARTTLS": "yes",
        "FAIRBILL_SMTP_PASSWORD": "pw",
        "FAIRBILL_SMTP_USERNAME": "",  # empty: not set, as before
        "FAIRBILL_SOMETHING_ELSE": "ignored",  # tests' own variables are not settings
    }.items():
        monkeypatch.setenv(name, value)
    settings = load()
    assert (settings.port, settings.host) == (8123, "0.0.0.0")
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "adm_secret"
    assert "adm_secret" not in repr(settings) and "pw" not in repr(settings.smtp())
    smtp = settings.smtp()
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username, smtp.password) == (
        "smtp.example.org",
        587,
        True,
        None,
        "pw",
    )


def test_a_file_under_the_environment_under_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "fairbill.toml"
    toml.write_text('database_url = "sqlite:///from-file.db"\nport = 7000\nlog_level = "debug"\n')
    yaml = tmp_path / "fairbill.yaml"
    yaml.write_text("port: 7001\nexpect_worker: true\n")
    assert load(toml).database_url == "sqlite:///from-file.db"
    assert load(toml).log_level == "DEBUG"
    assert (load(yaml).port, load(yaml).expect_worker) == (7001, True)
    monkeypatch.setenv("FAIRBILL_PORT", "7002")
    assert load(toml).port == 7002
    assert load(toml, port=7003, host=None).port == 7003  # None: the option was not given
    assert load().smtp() is None
    assert defaults() == Settings.model_construct()


def test_wrong_settings_name_the_variable_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "fairbill.toml"
    path.write_text('prot = 1\ndatabase_url = "nope"\ntick_seconds = 0\n')
    with pytest.raises(SettingsError) as caught:
        load(path)
    assert caught.value.problems == [
        f"database_url (FAIRBILL_DATABASE_URL or database_url in {path}): not a database URL "
        "(e.g. sqlite:///fairbill.db or postgresql+psycopg://user@host:5432/db)",
        f"tick_seconds (FAIRBILL_TICK_SECONDS or tick_seconds in {path}): "
        "Input should be greater than 0",
        f"{path}: unknown setting 'prot'",
    ]
    path.write_text("port = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load(path)
    with pytest.raises(SettingsError, match="cannot read"):
        load(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match=r"FAIRBILL_PORT\): Input should be less than"):
        load(port=70000)


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [f for f in Settings.model_fields if f"`{env_name(f)}`" not in text]
    assert missing == []
