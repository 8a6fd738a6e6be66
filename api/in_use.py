"""The rule pack, model and agency registry the service screens with: the newest activation and
registry upload in the database, else the settings' own.

The server builds its screener from them, and `lindung screen` and `lindung rescore` take them
as their defaults, so that the command line decides as the service does after an admin uploaded
a registry or activated a pack and model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from api import components, library
from api.problems import Conflict, Unavailable
from api.settings import Settings
from api.storage import activation, database
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from models import artifact
from models.features import features_for


@dataclass(frozen=True)
class Choice:
    """What admins chose, as the database holds it: None where the settings' own is used."""

    activation: dict[str, Any] | None  # rule_pack (a label) and model (a version)
    uploaded_registry: tuple[str, dict[str, Any]] | None  # the CSV and its summary

    def pack_folder(self, settings: Settings) -> Path:
        if self.activation is None:
            return settings.rule_pack
        return library.pack_folder(settings, self.activation["rule_pack"])

    def model_folder(self, settings: Settings) -> Path:
        if self.activation is None:
            return settings.model_dir
        return library.model_folder(settings, self.activation["model"])

    def registry(self, settings: Settings) -> AgencyRegistry:
        if self.uploaded_registry is None:
            return AgencyRegistry.from_csv(settings.registry)
        # read as it was accepted, whatever checks uploads have gained since
        return AgencyRegistry.from_text(self.uploaded_registry[0], source="(uploaded)", stored=True)


NOTHING_CHOSEN = Choice(None, None)


def choice(connection: Connection) -> Choice:
    return Choice(activation.current(connection), activation.newest_registry(connection))


def stored_choice(settings: Settings) -> Choice:
    """The choice in LINDUNG_DATABASE_URL."""
    with _stored(settings) as connection:
        return NOTHING_CHOSEN if connection is None else choice(connection)


@contextmanager
def _stored(settings: Settings) -> Iterator[Connection | None]:
    """A reading transaction on LINDUNG_DATABASE_URL (migrated first, as every command does);
    None where that is an SQLite file not yet made (nothing was chosen there, and no file is
    made)."""
    if database.missing_sqlite_file(settings.database_url):
        yield None
        return
    engine = database.connect(settings.database_url)
    try:
        database.upgrade(engine)
        with database.reading(engine) as connection:
            yield connection
    finally:
        engine.dispose()


@dataclass(frozen=True)
class InUse:
    parts: components.Components
    registry: dict[str, Any]  # where the registry comes from, as GET /v1/registry tells


def build(
    settings: Settings,
    connection: Connection,
    *,
    rule_pack: Path | None = None,
    registry: Path | None = None,
) -> InUse:
    """The components in use. `rule_pack` (with the settings' model) and `registry` stand in for
    the database's choices: the command line's --rule-pack and --registry."""
    chosen = choice(connection)
    if registry is not None:
        agencies = AgencyRegistry.from_csv(registry)
        summary: dict[str, Any] = {"source": "file", "licences": len(agencies)}
    else:
        agencies = chosen.registry(settings)
        summary = (
            {"source": "uploaded", **chosen.uploaded_registry[1]}
            if chosen.uploaded_registry
            else {"source": "settings", "licences": len(agencies)}
        )
    if rule_pack is None and chosen.activation is not None:
        pack = load_rule_pack(chosen.pack_folder(settings))
        model = activated_model(settings, pack, chosen.activation["model"])
    else:
        pack = load_rule_pack(rule_pack or settings.rule_pack)
        model = components.load_or_train_model(settings, pack, agencies)
    pinned = None if rule_pack else activation.pinned(connection, pack.label)
    if pinned is not None and pinned != pack.digest:  # this process's copy is not the one
        raise Unavailable(activation.changed_in_place(pack, pinned), "rule_pack")
    return InUse(components.assemble(settings, pack, agencies, model), summary)


def activated_model(settings: Settings, pack: RulePack, version: str) -> artifact.TrainedModel:
    """A model of the library (LINDUNG_MODEL_LIBRARY), to be used with `pack`."""
    folder = library.model_folder(settings, version)
    try:
        return artifact.load(folder, features_for(pack), settings.model_sha256)
    except artifact.OutdatedModel:
        raise Conflict(
            f"model {version} was trained on other features than rule pack {pack.label} "
            "gives it (each non-info rule is a model input); train a model for this pack "
            "with lindung model train --out and activate the two together",
            "model",
        ) from None


def from_database(
    settings: Settings, *, rule_pack: Path | None = None, registry: Path | None = None
) -> components.Components:
    """The components in use, read from LINDUNG_DATABASE_URL (`_stored`)."""
    with _stored(settings) as connection:
        if connection is not None:
            return build(settings, connection, rule_pack=rule_pack, registry=registry).parts
    overrides = {"rule_pack": rule_pack, "registry": registry}
    changes = {key: value for key, value in overrides.items() if value is not None}
    return components.build(settings.model_copy(update=changes))
