from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from api.settings import bundled
from engine.rule_pack import load_rule_pack
from engine.scoring import LOGIT_LIMIT
from models.artifact import TrainedModel
from models.features import FEATURES, features_for
from models.risk_model import RiskModel

PACK_FEATURES = features_for(load_rule_pack(bundled("default")))
codes_strategy = st.lists(
    st.tuples(*(st.integers(0, len(f.categories) - 1) for f in PACK_FEATURES)),
    min_size=1,
    max_size=20,
).map(lambda rows: np.array(rows, dtype=np.int16))


def test_follows_the_scikit_learn_contract() -> None:
    model = RiskModel(regularisation=0.5, random_state=3)
    assert model.get_params() == {
        "features": FEATURES,
        "regularisation": 0.5,
        "calibration_share": 0.2,
        "random_state": 3,
    }
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(np.zeros((1, len(FEATURES)), dtype=np.int16))


@settings(max_examples=60, deadline=None)
@given(codes_strategy)
def test_explanations_are_exact_and_equal_to_shap(trained: TrainedModel, codes: np.ndarray) -> None:
    model = trained.model
    contributions = model.explain(codes)
    logits = model.decision_function(codes)
    assert np.abs(model.base_ + contributions.sum(axis=1) - logits).max() < 1e-9
    assert np.abs(model.shap_reference(codes) - contributions).max() < 1e-9
    # a float probability gives its log-odds back only up to about +-20: scores are capped there
    inside = np.abs(logits) <= LOGIT_LIMIT
    score = model.predict_proba(codes)[:, 1]
    assert (
        np.abs(np.log(score[inside] / (1 - score[inside])) - logits[inside]).max(initial=0) < 1e-6
    )


@settings(max_examples=30, deadline=None)
@given(codes_strategy)
def test_a_case_scores_the_same_to_the_last_bit_alone_or_among_many(
    trained: TrainedModel, codes: np.ndarray
) -> None:
    """A desk's case (summed in Python) and the same case in a batch run (summed by numpy,
    feature by feature) get the same log-odds and the same contributions, bit for bit."""
    model = trained.model
    many = np.asfortranarray(np.tile(codes, (100 // len(codes) + 1, 1)))  # past models' FEW
    alone = np.concatenate([model.decision_function(row[None, :]) for row in many])
    assert np.array_equal(model.decision_function(many), alone)
    slope, _ = model.calibration_
    picked = np.take(model.weights_, many.astype(np.int64) + model.offsets_)
    assert np.array_equal(model.explain(many), slope * (picked - model.means_))


def test_training_is_reproducible(trained: TrainedModel) -> None:
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, len(f.categories), 4_000) for f in FEATURES])
    labels = rng.random(4_000) < 0.1 + 0.3 * (codes[:, 5] == 1)
    first = RiskModel(random_state=1).fit(codes, labels)
    again = RiskModel(random_state=1).fit(codes, labels)
    assert np.array_equal(first.predict_proba(codes), again.predict_proba(codes))
    assert first.fit(codes, labels) is first
