from __future__ import annotations

import numpy as np

from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from models import training
from models.artifact import TrainedModel
from models.evaluation import calibration_error, evaluate, recall_at


def test_combined_catches_more_than_rules_alone_at_the_same_capacity(
    trained: TrainedModel, pack: RulePack, registry: AgencyRegistry
) -> None:
    held_out = training.reference_data(
        30_000, training.REFERENCE_SEED + training.HOLDOUT_SEED_OFFSET, pack, registry
    )
    metrics = evaluate(trained, held_out, pack, training.Capacity())
    recall = metrics["recall_at_capacity"]
    assert recall["combined"] > recall["rules"]
    assert metrics["auc"] > 0.75
    assert metrics["calibration_error"] < 0.03


def test_recall_at_capacity_counts_only_the_top_share() -> None:
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    priority = np.array([9, 8, 0, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    assert recall_at(priority, labels, 0.1) == 0.5
    assert recall_at(priority, labels, 0.2) == 0.5


def test_calibration_error_is_zero_for_a_calibrated_score() -> None:
    scores = np.array([0.25] * 4 + [0.75] * 4)
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert calibration_error(scores, labels) == 0.0


def test_column_tiers_are_the_contract_tiers() -> None:
    from engine.decision import Thresholds, tier_for
    from models.evaluation import tiers

    class Model:
        thresholds = Thresholds(review=0.6, high=0.9)

    rng = np.random.default_rng(2)
    severity = rng.choice([-1, 1, 2, 3], 2_000)
    scores = rng.random(2_000)
    names = {-1: [], 1: ["warning"], 2: ["high"], 3: ["urgent"]}
    found = tiers(severity, scores, Model())  # type: ignore[arg-type]
    for rank, level, score in zip(found, severity, scores, strict=True):
        expected = tier_for(names[int(level)], float(score), Model.thresholds)
        assert ["clear", "review", "high", "urgent"][rank] == expected
