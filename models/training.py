"""Training: reference data (or an analyst's labelled cases) -> enriched frame -> fitted model.

The model reads the facts enrichment computes for the rules, through the same code as online
screening; thresholds come from the reviewers' capacity (the share of departures they can review)
applied to the reference score distribution, and are stored with the model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends.columnar import ColumnarBackend
from engine.decision import Thresholds
from engine.enrichment import Enricher
from engine.frame import SCREENED_ON, Frame
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from engine.scoring import with_rule_columns
from models import artifact
from models.dataset import read_labelled
from models.features import encode, features_for
from models.population import generate
from models.risk_model import RiskModel

REFERENCE_SEED = 20_261_123
HOLDOUT_SEED_OFFSET = 1  # held-out reference data: the next seed, never seen in training
HOLDOUT_SHARE = 0.2  # of an analyst's labelled file: kept back for evaluation
SPLIT_SEED = 0


@dataclass(frozen=True)
class Capacity:
    """Shares of departures reviewers can handle: any review, and high-priority review."""

    review: float = 0.05
    high: float = 0.01


@dataclass(frozen=True)
class Labelled:
    """Cases (raw columns and enriched facts) with the label `non_procedural`."""

    columns: Frame
    facts: Frame
    labels: np.ndarray


def with_screening_dates(columns: Mapping[str, np.ndarray]) -> Frame:
    """Columns with the desk's calendar date; for data without one, the UTC date."""
    frame = dict(columns)
    if SCREENED_ON not in frame:
        frame[SCREENED_ON] = frame["screened_at"].astype("datetime64[D]")
    return frame


def enrich(columns: Mapping[str, np.ndarray], pack: RulePack, registry: AgencyRegistry) -> Frame:
    """Facts for training and evaluation, linking escorts within the data set only."""
    enricher = Enricher(
        pack.reference,
        registry,
        InMemoryCaseHistory(),
        Pseudonymiser("training"),
        pack.escort_window,
    )
    facts = enricher.enrich_frame(with_screening_dates(columns)).facts
    return with_rule_columns(facts, ColumnarBackend(pack).fired_frame(facts))


def reference_data(rows: int, seed: int, pack: RulePack, registry: AgencyRegistry) -> Labelled:
    columns = generate(rows, seed)
    labels = np.asarray(columns.pop("non_procedural"), dtype=bool)
    return Labelled(columns, enrich(columns, pack, registry), labels)


def split(
    data: Labelled, share: float = HOLDOUT_SHARE, seed: int = SPLIT_SEED
) -> tuple[Labelled, Labelled]:
    """(training part, held-out part), stratified by the label, the same for the same seed."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(data.labels), dtype=bool)
    for value in (False, True):
        rows = np.flatnonzero(data.labels == value)
        held[rng.permutation(rows)[: round(share * len(rows))]] = True

    def part(mask: np.ndarray) -> Labelled:
        return Labelled(
            {k: v[mask] for k, v in data.columns.items()},
            {k: v[mask] for k, v in data.facts.items()},
            data.labels[mask],
        )

    return part(~held), part(held)


def labelled_file(path: Path, label: str, pack: RulePack, registry: AgencyRegistry) -> Labelled:
    columns, labels = read_labelled(path, label)
    return Labelled(columns, enrich(columns, pack, registry), labels)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def held_out(
    trained: artifact.TrainedModel, pack: RulePack, registry: AgencyRegistry, rows: int
) -> Labelled:
    """Data the model never saw: the next reference seed after the one it trained on, or the
    held-out part of the analyst's file it trained on (checked to be the same file)."""
    source = trained.manifest.get("training", {})
    if "sha256" in source:
        path = Path(source["data"])
        if not path.is_file() or file_digest(path) != source["sha256"]:
            raise artifact.ModelError(
                f"{path}: the labelled file this model trained on is missing or has changed; "
                "evaluate with --data on another labelled file"
            )
        return split(
            labelled_file(path, source["label"], pack, registry),
            source["holdout_share"],
            source["split_seed"],
        )[1]
    seed = int(source.get("seed", REFERENCE_SEED)) + HOLDOUT_SEED_OFFSET
    return reference_data(rows, seed, pack, registry)


def training_part(
    trained: artifact.TrainedModel, pack: RulePack, registry: AgencyRegistry, rows: int
) -> Labelled:
    """The data (or a part of it) the model trained on, for comparisons in the card."""
    source = trained.manifest.get("training", {})
    if "sha256" in source:
        return split(
            labelled_file(Path(source["data"]), source["label"], pack, registry),
            source["holdout_share"],
            source["split_seed"],
        )[0]
    return reference_data(rows, int(source.get("seed", REFERENCE_SEED)), pack, registry)


def fit(data: Labelled, capacity: Capacity, pack: RulePack, seed: int = 0) -> artifact.TrainedModel:
    """A calibrated model and its capacity thresholds."""
    features = features_for(pack)
    codes = encode(data.facts, features)
    model = RiskModel(features=features, random_state=seed).fit(codes, data.labels)
    scores = model.predict_proba(codes)[:, 1]
    thresholds = Thresholds(
        review=float(np.quantile(scores, 1 - capacity.review)),
        high=float(np.quantile(scores, 1 - capacity.high)),
    )
    return artifact.TrainedModel(model, thresholds, version="(not saved)")


def train_and_save(
    data: Labelled,
    folder: Path,
    *,
    capacity: Capacity,
    source: Mapping[str, Any],
    pack: RulePack,
    seed: int = 0,
) -> artifact.TrainedModel:
    """Fit, save with a manifest, and load back (so what is returned is what was vouched for)."""
    started = time.perf_counter()
    trained = fit(data, capacity, pack, seed)
    seconds = time.perf_counter() - started
    details = {
        "training": {
            **source,
            "rows": len(data.labels),
            "positives": int(data.labels.sum()),
            "seconds": round(seconds, 1),
            "rule_pack": pack.label,
        },
        "capacity": {"review": capacity.review, "high": capacity.high},
    }
    artifact.save(trained, folder, details)
    return artifact.load(folder, trained.model.features)
