"""The screening service behind the HTTP API: the active components and the database.

One `Service` per server process. It screens inside one transaction per request (escort links,
decisions, audit entries and referrals are stored together or not at all) and follows the
admins' activations and registry uploads made through any process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from api import components, library
from api.problems import Conflict
from api.settings import Settings
from api.storage import activation, database, decisions
from api.storage.case_history import DatabaseCaseHistory
from api.storage.keys import Caller
from engine.case import Case
from engine.decision import Decision
from engine.errors import LindungError
from engine.pseudonym import Pseudonymiser, pseudonymised_record
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from models import artifact
from models.features import features_for


def now() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value())
        self._lock = threading.Lock()
        self._generation: activation.Generation | None = None
        self._parts: components.Components | None = None
        self.registry_summary: dict[str, Any] = {}

    def start(self) -> None:
        """Bring the schema up to date and load the active components (training the reference
        model on first use)."""
        database.upgrade(self.engine)
        with database.transaction(self.engine) as connection:
            self.active(connection)

    @property
    def parts(self) -> components.Components:
        if self._parts is None:
            raise RuntimeError("the service has not started")
        return self._parts

    def current(self) -> components.Components:
        """The active components, as every process sees them now."""
        with self.engine.connect() as connection:
            return self.active(connection)

    def active(self, connection: Connection) -> components.Components:
        """The components of the newest activation and registry, rebuilt when either changed."""
        seen = activation.generation(connection)
        if seen == self._generation and self._parts is not None:
            return self._parts
        with self._lock:
            if seen != self._generation or self._parts is None:
                self._parts = self._build(connection)
                self._generation = seen
        return self._parts

    def _build(self, connection: Connection) -> components.Components:
        settings = self.settings
        uploaded = activation.newest_registry(connection)
        if uploaded:
            registry = AgencyRegistry.from_text(uploaded[0], source="(uploaded)")
            self.registry_summary = {"source": "uploaded", **uploaded[1]}
        else:
            registry = AgencyRegistry.from_csv(settings.registry)
            self.registry_summary = {"source": "settings", "licences": len(registry)}
        chosen = activation.current(connection)
        if chosen is None:
            pack = load_rule_pack(settings.rule_pack)
            model = components.load_or_train_model(settings, pack, registry)
        else:
            pack = load_rule_pack(library.pack_folder(settings, chosen["rule_pack"]))
            model = self.load_model(pack, chosen["model"])
        return components.assemble(settings, pack, registry, model)

    def load_model(self, pack: RulePack, version: str) -> artifact.TrainedModel:
        folder = library.model_folder(self.settings, version)
        try:
            return artifact.load(folder, features_for(pack), self.settings.model_sha256)
        except artifact.OutdatedModel:
            raise Conflict(
                f"model {version} was trained on other features than rule pack {pack.label} "
                "gives it (each non-info rule is a model input); train a model for this pack "
                "with lindung model train --out and activate the two together",
                "model",
            ) from None

    def activate(self, rule_pack: str, model: str, caller: Caller) -> dict[str, Any]:
        """Check that the pack loads, its examples pass and the model fits it; then record it."""
        folder = library.pack_folder(self.settings, rule_pack)  # 404 if it is not there
        try:
            pack = load_rule_pack(folder)
        except LindungError as error:
            raise Conflict(f"rule pack {rule_pack} does not load: {error}", "rule_pack") from None
        self.load_model(pack, model)
        at = now()
        with database.transaction(self.engine) as connection:
            activation.activate(connection, pack.label, model, caller, at)
            self.active(connection)
            return activation.current(connection) or {}

    def screen(self, cases: Sequence[Case], caller: Caller) -> list[Decision]:
        """Screen and store `cases` in one transaction, in order of screening time (so escort
        counts follow the clock); decisions come back in the order of `cases`."""
        at = now()
        order = sorted(range(len(cases)), key=lambda i: cases[i].screened_at)
        made: list[Decision | None] = [None] * len(cases)
        with database.transaction(self.engine) as connection:
            screener = self.active(connection).screener
            history = DatabaseCaseHistory(connection)
            history.lock(
                self.pseudonymiser.token("escort_ref", str(case.links.escort_ref))
                for case in cases
                if case.links.escort_ref is not None
            )
            for index in order:
                made[index] = screener.screen(cases[index], history)
            screened = [
                decisions.Screened(decision, pseudonymised_record(case, self.pseudonymiser))
                for case, decision in zip(cases, made, strict=True)
                if decision is not None
            ]
            decisions.store(connection, screened, caller, at)
        return [item.decision for item in screened]
