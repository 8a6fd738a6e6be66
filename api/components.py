"""The parts a screening needs, built once from the settings: the rule pack, the registry, the
risk model and the screener. The command line and the service both start here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from api.settings import Settings
from engine.errors import LindungError
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from engine.screening import Screener
from models import artifact, training
from models.features import Feature, features_for


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
    """The model in LINDUNG_MODEL_DIR, to score with `pack`. The reference model there is the
    service's: it is trained for the settings' pack (LINDUNG_RULE_PACK) on first use, and again
    when this version changed that pack's features. It is never trained for another pack, and
    nothing else is ever overwritten: a model that does not fit `pack` is an OutdatedModel."""
    folder = settings.model_dir
    features = features_for(pack)
    if (
        not (folder / artifact.MANIFEST_FILE).exists()
        and not (folder / artifact.MODEL_FILE).exists()
    ):
        notify(
            f"No model in {folder}: training the reference model on "
            f"{settings.training_rows:,} synthetic cases (first use only)..."
        )
        served = _served_pack(settings, pack)
        trained = train_reference_model(settings, served, registry)
        if served is pack:
            return trained
        return _for_pack(settings, pack, features)
    try:
        return artifact.load(folder, features, settings.model_sha256)
    except artifact.OutdatedModel as error:
        if not error.reference or settings.model_sha256:
            raise
        if _served_pack(settings, pack) is not pack:
            raise _unfit(folder, error, pack) from None
        notify(
            f"The reference model in {folder} predates this version's features: "
            "training it again..."
        )
        return train_reference_model(settings, pack, registry)


def unfit(model: str, pack: RulePack) -> str:
    """Why `model` cannot score with `pack` (its features are the pack's non-info rules)."""
    return (
        f"model {model} was trained on other features than rule pack {pack.label} gives it "
        "(each non-info rule is a model input)"
    )


def _served_pack(settings: Settings, pack: RulePack) -> RulePack:
    """`pack` if it is the settings' own pack (the one the reference model is trained for),
    else the settings' pack."""
    if Path(pack.folder).resolve() == settings.rule_pack.resolve():
        return pack
    served = load_rule_pack(settings.rule_pack)
    return pack if served.digest == pack.digest else served


def _for_pack(
    settings: Settings, pack: RulePack, features: tuple[Feature, ...]
) -> artifact.TrainedModel:
    try:
        return artifact.load(settings.model_dir, features, settings.model_sha256)
    except artifact.OutdatedModel as error:
        raise _unfit(settings.model_dir, error, pack) from None


def _unfit(folder: Path, error: artifact.OutdatedModel, pack: RulePack) -> artifact.OutdatedModel:
    model = str(error.manifest.get("model", "?"))
    return artifact.OutdatedModel(
        f"{folder}: {unfit(model, pack)}, and is trained again only for LINDUNG_RULE_PACK's "
        "pack: set LINDUNG_RULE_PACK to this pack's folder and LINDUNG_MODEL_DIR to a model "
        "trained for it (lindung model train --out DIR)",
        error.manifest,
    )


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
