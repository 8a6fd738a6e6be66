"""Helpers every command shares: settings with command-line overrides, loading a rule pack,
building the screener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api import components
from api.settings import Settings
from engine.errors import LindungError, RulePackError
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack


def settings_from_env(**overrides: Any) -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        raise click.ClickException(settings_problem(error)) from None
    except SettingsError as error:  # a value that is not JSON where JSON is expected
        raise click.ClickException(f"settings: {error}") from None
    changes = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=changes) if changes else settings


def settings_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    if not first["loc"]:
        return f"settings: {first['msg']}"
    variable, *inside = (str(part) for part in first["loc"])  # LINDUNG_X, then keys as given
    where = ".".join(["LINDUNG_" + variable.upper(), *inside])
    return f"settings: {where}: {first['msg']}"


def load_pack(path: Path) -> RulePack:
    try:
        return load_rule_pack(path)
    except LindungError as error:
        raise click.ClickException(f"rule pack: {error}") from None


def components_from(settings: Settings) -> components.Components:
    """The settings' pack, registry and model built into a screener, or the first problem as
    a command's error."""
    load_pack(settings.rule_pack)  # a broken pack is reported as one
    try:
        AgencyRegistry.from_csv(settings.registry)
    except LindungError as error:
        raise click.ClickException(f"registry: {error}") from None
    try:
        return components.build(settings)
    except RulePackError as error:  # the pack loaded: it is the settings' referral hours
        raise click.ClickException(f"settings: {error}") from None
    except LindungError as error:
        raise click.ClickException(f"model: {error}") from None
