"""Helpers every command shares: settings with command-line overrides, loading a rule pack,
building the screener.

The rule engine and the model's libraries (pandas, scikit-learn, shap: a second to import) are
imported by the helpers that use them, so that a command needing none (`lindung keys list`,
`lindung audit verify`) starts without them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import SQLAlchemyError

from api.problems import Problem
from api.settings import Settings
from api.storage import database
from engine.errors import LindungError, RegistryError, RulePackError

if TYPE_CHECKING:
    from api import components
    from engine.rule_pack import RulePack


class LazyGroup(click.Group):
    """A group whose commands in `lazy` (name: "module:attribute") are imported only when one is
    run or listed (--help), not with the group."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, name = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as error:  # click suggests from the loaded commands alone
            raise click.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


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
    from engine.rule_pack import load_rule_pack

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
    from api import components

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
    parts: list[tuple[type[LindungError], str]] = [
        (database.DatabaseProblem, "database"),
        (RegistryError, "registry"),
        (RulePackError, "rule pack"),
    ]
    if not any(isinstance(error, kind) for kind, _ in parts):
        # raised only by a command that built a screener, so its modules are loaded already
        from api.components import ReferralHoursError
        from models.artifact import ModelError

        parts += [(ReferralHoursError, "settings"), (ModelError, "model")]
    return next((f"{part}: " for kind, part in parts if isinstance(error, kind)), "")
