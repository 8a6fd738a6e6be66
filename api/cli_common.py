"""Helpers every command shares: settings with command-line overrides, loading a rule pack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from api.settings import Settings
from engine.errors import LindungError
from engine.rule_pack import RulePack, load_rule_pack


def settings_from_env(**overrides: Any) -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        raise click.ClickException(settings_problem(error)) from None
    changes = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=changes) if changes else settings


def settings_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"settings: {('LINDUNG_' + where.upper() + ': ') if where else ''}{first['msg']}"


def load_pack(path: Path) -> RulePack:
    try:
        return load_rule_pack(path)
    except LindungError as error:
        raise click.ClickException(f"rule pack: {error}") from None
