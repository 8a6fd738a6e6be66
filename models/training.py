"""Training: reference data (or an analyst's labelled cases) -> enriched frame -> fitted model.

The model reads the facts enrichment computes for the rules, through the same code as online
screening; thresholds come from the reviewers' capacity (the share of departures they can review)
applied to the reference score distribution, and are stored with the model.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.decision import Thresholds
from engine.enrichment import Enricher
from engine.frame import SCREENED_ON, Frame
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from models import artifact
from models.features import encode
from models.population import generate
from models.risk_model import RiskModel

REFERENCE_SEED = 20_261_123
HOLDOUT_SEED_OFFSET = 1  # held-out reference data: the next seed, never seen in training


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
    return enricher.enrich_frame(with_screening_dates(columns)).facts


def reference_data(rows: int, seed: int, pack: RulePack, registry: AgencyRegistry) -> Labelled:
    columns = generate(rows, seed)
    labels = np.asarray(columns.pop("non_procedural"), dtype=bool)
    return Labelled(columns, enrich(columns, pack, registry), labels)


def fit(data: Labelled, capacity: Capacity, seed: int = 0) -> artifact.TrainedModel:
    """A calibrated model and its capacity thresholds."""
    model = RiskModel(random_state=seed).fit(encode(data.facts), data.labels)
    scores = model.predict_proba(encode(data.facts))[:, 1]
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
    trained = fit(data, capacity, seed)
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
    return artifact.load(folder)
