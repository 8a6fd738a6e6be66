"""The rule pack, model and agency registry the service screens with: the newest activation and
registry upload in the database, else the settings' own.

The server builds its screener from them, and `lindung screen` and `lindung rescore` take them
as their defaults, so that the command line decides as the service does after an admin uploaded
a registry or activated a pack and model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from api import components, library
from api.problems import Conflict, Problem, Unavailable
from api.settings import Settings
from api.storage import activation, database, tables
from engine.errors import LindungError, RegistryError
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from models import artifact
from models.features import features_for


@dataclass(frozen=True)
class Choice:
    """What admins chose, as the database holds it: None where the settings' own is used."""

    activation: dict[str, Any] | None  # rule_pack (a label) and model (a version)
    uploaded_registry: tuple[str, dict[str, Any]] | None  # the CSV and its summary
    pins: dict[str, str] = field(default_factory=dict)  # pack label: its files' SHA-256

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

    def registry_summary(self, registry: AgencyRegistry) -> dict[str, Any]:
        """Where the registry comes from, as GET /v1/registry tells."""
        if self.uploaded_registry is None:
            return {"source": "settings", "licences": len(registry)}
        return {"source": "uploaded", **self.uploaded_registry[1]}


NOTHING_CHOSEN = Choice(None, None)


def choice(connection: Connection) -> Choice:
    p = tables.rule_packs.c
    pins = {row.label: row.sha256 for row in connection.execute(select(p.label, p.sha256))}
    return Choice(activation.current(connection), activation.newest_registry(connection), pins)


def stored_choice(
    settings: Settings, notify: Callable[[str], None] = lambda text: print(text, file=sys.stderr)
) -> Choice:
    """The choice in LINDUNG_DATABASE_URL, read without changing it. A database not made yet, or
    made without Lindung's tables, holds none (and is neither made nor migrated): `notify` is
    told, since a command run elsewhere than the server, or with other settings, lands here."""
    try:
        engine = database.existing(settings.database_url)
    except database.NoDatabase as error:
        said = str(error)
        notify(f"{said[:1].upper()}{said[1:]}: {_NONE_CHOSEN}")
        return NOTHING_CHOSEN
    try:
        with database.reading(engine) as connection:
            return choice(connection)
    finally:
        engine.dispose()


_NONE_CHOSEN = "no pack, model or registry an admin uploaded or activated applies."


@dataclass(frozen=True)
class InUse:
    parts: components.Components
    registry_summary: dict[str, Any]


def build(
    settings: Settings,
    chosen: Choice,
    *,
    rule_pack: Path | None = None,
    registry: Path | None = None,
) -> InUse:
    """The components in use. `rule_pack` (with the settings' model) and `registry` stand in for
    the admins' choices: the command line's --rule-pack and --registry."""
    if registry is not None:
        agencies = AgencyRegistry.from_csv(registry)
        summary: dict[str, Any] = {"source": "file", "licences": len(agencies)}
    else:
        try:
            agencies = chosen.registry(settings)
        except RegistryError as error:  # the settings' file, changed or removed since start-up
            raise Unavailable(str(error), "registry") from None
        summary = chosen.registry_summary(agencies)
    if rule_pack is None and chosen.activation is not None:
        pack = load_rule_pack(chosen.pack_folder(settings))
        model = activated_model(settings, pack, chosen.activation["model"])
    else:
        pack = load_rule_pack(rule_pack or settings.rule_pack)
        model = components.load_or_train_model(settings, pack, agencies)
    if rule_pack is None:  # the service's pack, as its label was pinned
        refuse_changed_in_place(chosen, pack)
    return InUse(components.assemble(settings, pack, agencies, model), summary)


def refuse_changed_in_place(
    chosen: Choice, pack: RulePack, problem: type[Problem] = Unavailable
) -> None:
    """Refuse `pack` (a `problem` naming rule_pack) if its label is pinned to other content: this
    copy was changed in place, and would decide otherwise than the service under its label."""
    pinned = chosen.pins.get(pack.label)
    if pinned is not None and pinned != pack.digest:
        raise problem(activation.changed_in_place(pack, pinned), "rule_pack")


def rescoring_pack(settings: Settings, chosen: Choice, label: str | None) -> RulePack:
    """The pack a rescore job runs: `label` of the library, else the service's, read from its
    folder as the job will read it. A pack that does not load, or whose label is pinned to
    other content, is a Conflict naming rule_pack."""
    folder = library.pack_folder(settings, label) if label else chosen.pack_folder(settings)
    try:
        pack = load_rule_pack(folder)
    except LindungError as error:
        named = label or (chosen.activation or {}).get("rule_pack", "of LINDUNG_RULE_PACK")
        raise Conflict(f"rule pack {named} does not load: {error}", "rule_pack") from None
    refuse_changed_in_place(chosen, pack, Conflict)
    return pack


def activated_model(
    settings: Settings,
    pack: RulePack,
    version: str,
    remedy: str = "train a model for this pack with lindung model train --out and activate the "
    "two together",
) -> artifact.TrainedModel:
    """A model of the library (LINDUNG_MODEL_LIBRARY), to be used with `pack`: one trained on
    other features is a Conflict naming model, which says `remedy`."""
    folder = library.model_folder(settings, version)
    try:
        return artifact.load(folder, features_for(pack), settings.model_sha256)
    except artifact.OutdatedModel:
        raise Conflict(f"{components.unfit(version, pack)}; {remedy}", "model") from None


def rescoring_model(
    settings: Settings, chosen: Choice, pack: RulePack, version: str | None
) -> artifact.TrainedModel:
    """The model a rescore job runs with `pack`: `version` of the library, else the service's.
    One that does not load or fit the pack is a Conflict naming model, as for an activation."""
    if version is None:
        version = chosen.activation["model"] if chosen.activation else _version(settings)
    try:
        return activated_model(
            settings,
            pack,
            version,
            "choose a model trained for it (model, from GET /v1/models), or another pack",
        )
    except artifact.ModelError as error:
        raise Conflict(f"model {version} does not load: {error}", "model") from None


def _version(settings: Settings) -> str:
    """The version of LINDUNG_MODEL_DIR's model, as the library lists it."""
    for version, found in library.models(settings).items():
        if found["folder"] == settings.model_dir:
            return version
    raise Conflict(f"no model in {settings.model_dir}", "model")


def from_database(
    settings: Settings, *, rule_pack: Path | None = None, registry: Path | None = None
) -> components.Components:
    """The components in use, the admins' choice read from LINDUNG_DATABASE_URL (`stored_choice`)
    unless `rule_pack` and `registry` stand in for all of it."""
    chosen = NOTHING_CHOSEN if rule_pack and registry else stored_choice(settings)
    return build(settings, chosen, rule_pack=rule_pack, registry=registry).parts
