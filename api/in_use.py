"""The rule pack, model and agency registry the service screens with: the newest activation and
registry upload in the database, else the settings' own.

The server builds its screener from them, and so does `lindung screen`, so that the command line
gives the decision the service gives after an admin uploaded a registry or activated a pack.
"""

from __future__ import annotations

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
    uploaded = None if registry else activation.newest_registry(connection)
    if uploaded:
        agencies = AgencyRegistry.from_text(uploaded[0], source="(uploaded)", stored=True)
        summary = {"source": "uploaded", **uploaded[1]}
    else:
        agencies = AgencyRegistry.from_csv(registry or settings.registry)
        summary = {"source": "file" if registry else "settings", "licences": len(agencies)}
    chosen = None if rule_pack else activation.current(connection)
    if chosen is None:
        pack = load_rule_pack(rule_pack or settings.rule_pack)
        model = components.load_or_train_model(settings, pack, agencies)
    else:
        pack = load_rule_pack(library.pack_folder(settings, chosen["rule_pack"]))
        model = activated_model(settings, pack, chosen["model"])
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
    """The components in use, read from LINDUNG_DATABASE_URL (migrated first, as every command
    does). Where that is an SQLite file not yet made, nothing was uploaded or activated: the
    settings' own are used and no file is made."""
    url = settings.database_url
    if database.missing_sqlite_file(url):
        overrides = {"rule_pack": rule_pack, "registry": registry}
        changes = {key: value for key, value in overrides.items() if value is not None}
        return components.build(settings.model_copy(update=changes))
    engine = database.connect(url)
    try:
        database.upgrade(engine)
        with database.reading(engine) as connection:
            return build(settings, connection, rule_pack=rule_pack, registry=registry).parts
    finally:
        engine.dispose()
