"""The parts a screening needs, built once from the settings: the rule pack, the registry, the
risk model and the screener. The command line and the service both start here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from api.settings import Settings
from engine.errors import LindungError
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from engine.screening import Screener
from models import artifact, training
from models.features import features_for


class ReferralHoursError(LindungError):
    """LINDUNG_REFERRAL_HOURS naming an agency the rule pack does not know."""


@dataclass(frozen=True)
class Components:
    settings: Settings
    pack: RulePack
    registry: AgencyRegistry
    model: artifact.TrainedModel
    screener: Screener


def capacity(settings: Settings) -> training.Capacity:
    return training.Capacity(review=settings.review_capacity, high=settings.high_capacity)


def train_reference_model(
    settings: Settings,
    pack: RulePack,
    registry: AgencyRegistry,
    rows: int | None = None,
    seed: int = training.REFERENCE_SEED,
) -> artifact.TrainedModel:
    rows = rows or settings.training_rows
    data = training.reference_data(rows, seed, pack, registry)
    return training.train_and_save(
        data,
        settings.model_dir,
        capacity=capacity(settings),
        pack=pack,
        source={"data": "synthetic reference population (models/POPULATION.md)", "seed": seed},
    )


def load_or_train_model(
    settings: Settings,
    pack: RulePack,
    registry: AgencyRegistry,
    notify: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> artifact.TrainedModel:
    """The model in LINDUNG_MODEL_DIR. The reference model is trained there on first use, and
    again when this version's features changed; nothing else is ever overwritten."""
    folder = settings.model_dir
    if (
        not (folder / artifact.MANIFEST_FILE).exists()
        and not (folder / artifact.MODEL_FILE).exists()
    ):
        notify(
            f"No model in {folder}: training the reference model on "
            f"{settings.training_rows:,} synthetic cases (first use only)..."
        )
        return train_reference_model(settings, pack, registry)
    try:
        return artifact.load(folder, features_for(pack), settings.model_sha256)
    except artifact.OutdatedModel as error:
        if not error.reference or settings.model_sha256:
            raise
        notify(
            f"The reference model in {folder} predates this version's features: "
            "training it again..."
        )
        return train_reference_model(settings, pack, registry)


def build(settings: Settings) -> Components:
    pack = load_rule_pack(settings.rule_pack)
    registry = AgencyRegistry.from_csv(settings.registry)
    model = load_or_train_model(settings, pack, registry)
    return assemble(settings, pack, registry, model)


def assemble(
    settings: Settings, pack: RulePack, registry: AgencyRegistry, model: artifact.TrainedModel
) -> Components:
    """The screener for one pack, registry and model, with the settings' referral deadlines."""
    pack = with_referral_hours(pack, settings.referral_hours)
    screener = Screener(
        pack,
        pseudonymiser=Pseudonymiser(settings.pseudonym_key.get_secret_value()),
        registry=registry,
        backend=settings.rule_backend,
        scorer=model,
    )
    return Components(settings, pack, registry, model, screener)


def with_referral_hours(pack: RulePack, hours: Mapping[str, float]) -> RulePack:
    """The pack with referral deadlines overridden by the settings (LINDUNG_REFERRAL_HOURS)."""
    unknown = set(hours) - set(pack.agencies)
    if unknown:
        raise ReferralHoursError(
            f"LINDUNG_REFERRAL_HOURS names agencies the pack does not know: {sorted(unknown)} "
            f"(known: {sorted(pack.agencies)})"
        )
    if not hours:
        return pack
    agencies = {
        key: replace(agency, deadline_hours=hours.get(key, agency.deadline_hours))
        for key, agency in pack.agencies.items()
    }
    return replace(pack, agencies=agencies)
