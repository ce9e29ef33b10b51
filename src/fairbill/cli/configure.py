"""The settings of a long-running command (``fairbill serve``, ``fairbill worker``):
``--config FILE`` (or ``FAIRBILL_CONFIG``), then ``fairbill.config.load``. Wrong settings
are an input error: one line per problem on stderr and exit status 2, before anything
is opened or printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fairbill.config import CONFIG_ENV, Settings, SettingsError, load

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar=CONFIG_ENV,
        dir_okay=False,
        help="Settings file (TOML, or YAML by its suffix); the environment overrides it, "
        "options override both. See docs/configuration.md.",
    ),
]


def settings_or_exit(config_file: Path | None, **given: Any) -> Settings:
    """The settings, with ``given`` (options; None: not given) over everything else."""
    try:
        return load(config_file, **given)
    except SettingsError as exc:
        for line in exc.problems:
            typer.echo(f"settings: {line}", err=True)
        raise typer.Exit(2) from exc
