"""Helpers every command shares: settings with command-line overrides, loading a rule pack,
building the screener."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from api import components
from api.problems import Problem
from api.settings import Settings
from api.storage import database
from engine.errors import LindungError, RegistryError, RulePackError
from engine.rule_pack import RulePack, load_rule_pack
from models.artifact import ModelError


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


def components_in_use(
    settings: Settings, *, rule_pack: Path | None = None, registry: Path | None = None
) -> components.Components:
    """What the service screens with (`api.in_use`: the database's activated pack and model and
    its uploaded registry, else the settings' own), `rule_pack` and `registry` standing in for
    the database's; or the first problem as a command's error."""
    from api import in_use  # reads the database: not for every command

    with command_errors():
        return in_use.from_database(settings, rule_pack=rule_pack, registry=registry)


def components_from(settings: Settings) -> components.Components:
    """The settings' pack, registry and model built into a screener, or the first problem as
    a command's error."""
    with command_errors():
        return components.build(settings)


@contextmanager
def command_errors() -> Iterator[None]:
    """A problem with the settings, the rule pack, the registry, the model or the database,
    as a command's one-line error naming it."""
    try:
        yield
    except Problem as error:
        where = f"{error.field.replace('_', ' ')}: " if error.field else ""
        raise click.ClickException(f"{where}{error.detail}") from None
    except LindungError as error:
        raise click.ClickException(f"{_part(error)}{error}") from None
    except SQLAlchemyError as error:  # the database cannot be reached or read
        cause = getattr(error, "orig", None) or error
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise click.ClickException(f"database: {reason}") from None


def _part(error: LindungError) -> str:
    for kind, part in (
        (components.ReferralHoursError, "settings"),
        (database.DatabaseProblem, "database"),
        (RegistryError, "registry"),
        (RulePackError, "rule pack"),
        (ModelError, "model"),
    ):
        if isinstance(error, kind):
            return f"{part}: "
    return ""
