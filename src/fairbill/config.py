"""fairbill's settings: one validated class for every process (``fairbill serve``, the
worker), read from ``FAIRBILL_*`` environment variables and an optional file.

Precedence, highest first: options given on the command line, environment variables, the
file named by ``--config`` or ``FAIRBILL_CONFIG`` (TOML, or YAML by its suffix), the
defaults below. A variable set to the empty string counts as not set (as it always did for
the SMTP variables). An unknown key in the file, or a value that does not validate, is an
error naming the variable and the key (``problems``); secrets are ``SecretStr`` so that
they never show in a repr or a log line.

Every field is listed in ``docs/configuration.md`` (a test checks it). The names are the
ones the environment always used: ``FAIRBILL_PORT``, ``FAIRBILL_ADMIN_TOKEN``,
``FAIRBILL_SMTP_HOST`` … A file's keys are the same names, lower case and without the
prefix (``smtp_host = "mail.example.org"``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fairbill.notify.smtp import SmtpSettings
from fairbill.store.db import DEFAULT_URL

ENV_PREFIX = "FAIRBILL_"
CONFIG_ENV = "FAIRBILL_CONFIG"  # the file, when ``--config`` is not given


class SettingsError(Exception):
    """The settings do not validate: ``problems`` has one line per wrong value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """What an operator sets. Frozen: a process reads its settings once, at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid", frozen=True
    )

    # -- the database and the server ----------------------------------------------------
    database_url: str = DEFAULT_URL
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    admin_token: SecretStr | None = None
    session_secret: SecretStr | None = None
    tick_seconds: float = Field(30.0, gt=0)  # float-ok: seconds between runs of due work
    # -- logs -----------------------------------------------------------------------------
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # -- /metrics and /readyz ------------------------------------------------------------------
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
    expect_worker: bool = False
    worker_stale_seconds: float = Field(120.0, gt=0)  # float-ok: seconds
    # -- email (the outbox) --------------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "billing@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(10.0, gt=0)  # float-ok: seconds

    @field_validator("database_url")
    @classmethod
    def _a_database_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError as exc:
            raise ValueError(
                "not a database URL (e.g. sqlite:///fairbill.db or "
                "postgresql+psycopg://user@host:5432/db)"
            ) from exc
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def smtp(self) -> SmtpSettings | None:
        """The outbox's SMTP server; None when ``smtp_host`` is not set (messages wait)."""
        if not self.smtp_host:
            return None
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.smtp_sender,
            starttls=self.smtp_starttls,
            username=self.smtp_username,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            timeout=self.smtp_timeout,
        )


def defaults() -> Settings:
    """The defaults alone, with nothing read from the environment (a ``Runtime`` built in
    code, as the tests build theirs)."""
    return Settings.model_construct()


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load(config_file: Path | None = None, **given: Any) -> Settings:
    """The settings: ``given`` (command-line options; a None value is "not given"), over
    the environment, over ``config_file``. ``SettingsError`` if any value is wrong, or the
    file cannot be read."""
    overrides = {k: v for k, v in given.items() if v is not None}
    from_file = _read(config_file) if config_file is not None else {}
    try:
        return _with_file(from_file)(**overrides)
    except ValidationError as exc:
        raise SettingsError(problems(exc, config_file)) from exc


def problems(exc: ValidationError, config_file: Path | None = None) -> list[str]:
    """One line per error, naming the variable (and the file's key): what to fix."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            lines.append(f"{config_file or 'settings'}: unknown setting {field!r}")
            continue
        where = env_name(field) + (f" or {field} in {config_file}" if config_file else "")
        lines.append(f"{field} ({where}): {error['msg'].removeprefix('Value error, ')}")
    return lines


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError([f"{path}: not valid {_kind(path)}: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([f"{path}: expected a table of settings, not {type(data).__name__}"])
    return data


def _kind(path: Path) -> str:
    return "YAML" if path.suffix in (".yaml", ".yml") else "TOML"


def _with_file(values: dict[str, Any]) -> type[Settings]:
    """``Settings`` whose lowest source (above the defaults) is ``values``, a file's."""

    class _FileSource(PydanticBaseSettingsSource):
        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return values.get(field_name), field_name, False

        def __call__(self) -> dict[str, Any]:
            return dict(values)

    class FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _FileSource(settings_cls)

    return FileSettings
