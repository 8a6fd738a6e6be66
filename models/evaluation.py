"""Evaluation on held-out data: how well the score ranks and is calibrated, and how many
non-procedural departures reviewers catch at their capacity with rules alone, the model alone,
and both together (the decision's tier, then the score)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from engine.backends.columnar import ColumnarBackend
from engine.rule import SEVERITY_RANK
from engine.rule_pack import RulePack
from models.artifact import TrainedModel
from models.features import encode
from models.training import Capacity, Labelled

TIER_RANK = {"clear": 0, "review": 1, "high": 2, "urgent": 3}


def rule_severity(pack: RulePack, facts: Mapping[str, np.ndarray]) -> np.ndarray:
    """The most severe flag of each case: -1 none or info only, 1 warning, 2 high, 3 urgent."""
    fired = ColumnarBackend(pack).fired_frame(facts)
    count = len(next(iter(fired.values())))
    worst = np.full(count, -1)
    for rule in pack.rules:
        if rule.severity != "info":
            worst = np.where(fired[rule.id], np.maximum(worst, SEVERITY_RANK[rule.severity]), worst)
    return worst


def tiers(severity: np.ndarray, scores: np.ndarray, trained: TrainedModel) -> np.ndarray:
    """The contract's tier of each case as a rank (0 clear .. 3 urgent)."""
    by_rules = np.maximum(severity, 0)  # warning -> 1 review, high -> 2, urgent -> 3
    by_score = np.where(
        scores >= trained.thresholds.high, 2, np.where(scores >= trained.thresholds.review, 1, 0)
    )
    return np.where(severity == 3, 3, np.maximum(by_rules, by_score))


def recall_at(priority: np.ndarray, labels: np.ndarray, share: float, seed: int = 0) -> float:
    """Share of positives among the top `share` of cases by priority (ties in random order)."""
    capacity = max(1, math.ceil(share * len(labels)))
    tie_break = np.random.default_rng(seed).random(len(labels))
    order = np.lexsort((tie_break, -priority))
    return float(labels[order[:capacity]].sum() / max(1, labels.sum()))


def calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width score bins."""
    which = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += abs(scores[inside].mean() - labels[inside].mean()) * inside.mean()
    return float(error)


def evaluate(
    trained: TrainedModel, data: Labelled, pack: RulePack, capacity: Capacity
) -> dict[str, Any]:
    """Metrics on held-out data, as the model card and `lindung model evaluate` report them."""
    labels = data.labels.astype(int)
    scores = trained.score_frame(data.facts).scores
    severity = rule_severity(pack, data.facts)
    tier = tiers(severity, scores, trained)
    share = capacity.review
    rules_priority = np.maximum(severity, 0).astype(float)
    combined_priority = tier + scores  # tier first, then the score within a tier
    return {
        "rows": len(labels),
        "positives": int(labels.sum()),
        "auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "brier": float(brier_score_loss(labels, scores)),
        "calibration_error": calibration_error(scores, labels),
        "review_capacity": share,
        "recall_at_capacity": {
            "rules": recall_at(rules_priority, labels, share),
            "model": recall_at(scores, labels, share),
            "combined": recall_at(combined_priority, labels, share),
        },
        "flagged_by_rules": float((severity >= 1).mean()),
        "tier_shares": {name: float((tier == rank).mean()) for name, rank in TIER_RANK.items()},
    }


def compare_gradient_boosting(
    trained: TrainedModel,
    train: Labelled,
    test: Labelled,
    *,
    rows: int = 200_000,
    explain_rows: int = 500,
) -> dict[str, Any]:
    """A gradient-boosted reference on the same features: its AUC, and what explaining it costs
    (TreeSHAP on one-hot inputs; shap's values are wrong on native categorical splits, #3436)."""
    import shap
    from sklearn.ensemble import HistGradientBoostingClassifier

    from models.risk_model import one_hot

    features = trained.model.features
    x_train = one_hot(encode(train.facts, features)[:rows], features).toarray()
    x_test = one_hot(encode(test.facts, features), features).toarray()
    started = time.perf_counter()
    booster = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    booster.fit(x_train, train.labels[:rows])
    fit_seconds = time.perf_counter() - started
    scores = booster.predict_proba(x_test)[:, 1]
    explainer = shap.TreeExplainer(booster)
    started = time.perf_counter()
    explainer.shap_values(x_test[:explain_rows])
    per_row = (time.perf_counter() - started) / explain_rows
    return {
        "auc": float(roc_auc_score(test.labels, scores)),
        "training_rows": int(min(rows, len(train.labels))),
        "fit_seconds": round(fit_seconds, 1),
        "explain_ms_per_case": round(per_row * 1000, 3),
    }
