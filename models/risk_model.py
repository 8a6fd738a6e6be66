"""The risk model: calibrated logistic regression over feature categories, explained exactly.

Each feature adds one weight per category to the log-odds, so the model is a sum over case-record
fields. Its SHAP values (interventional, against the full reference mean) are therefore exact and
cost a table lookup: a field's contribution is its category's weight minus that weight's mean
over the reference data. Calibration is a sigmoid (Platt) map of the log-odds, an affine change
that keeps explanations exact: base + sum(contributions) == logit(score).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from models.features import FEATURES, FEW, Feature, offsets


def one_hot(codes: np.ndarray, features: Sequence[Feature] = FEATURES) -> sparse.csr_matrix:
    """The sparse one-hot layout of category codes (the design matrix the regression sees)."""
    rows, width = codes.shape
    columns = (codes.astype(np.int64) + offsets(features)).ravel()
    size = sum(len(feature.categories) for feature in features)
    data = np.ones(rows * width, dtype=np.float64)
    pointers = np.arange(0, rows * width + 1, width, dtype=np.int64)
    return sparse.csr_matrix((data, columns, pointers), shape=(rows, size))


class RiskModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Probability that a departure is non-procedural, with an exact additive explanation.

    Fit on category codes (`models.features.encode`) and a 0/1 label. Learned attributes:
    `weights_` (log-odds per one-hot column), `intercept_`, `means_` (each feature's mean weight
    over the reference data), `calibration_` (slope and intercept of the Platt map).
    """

    def __init__(
        self,
        *,
        features: tuple[Feature, ...] = FEATURES,
        regularisation: float = 1.0,
        calibration_share: float = 0.2,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.regularisation = regularisation
        self.calibration_share = calibration_share
        self.random_state = random_state

    def fit(self, codes: np.ndarray, labels: np.ndarray) -> RiskModel:
        codes = np.asarray(codes)
        labels = np.asarray(labels, dtype=int)
        fit_codes, calibration_codes, fit_labels, calibration_labels = train_test_split(
            codes,
            labels,
            test_size=self.calibration_share,
            random_state=self.random_state,
            stratify=labels,
        )
        regression = LogisticRegression(C=self.regularisation, max_iter=2_000)
        regression.fit(one_hot(fit_codes, self.features), fit_labels)
        self.regression_ = regression
        self.weights_ = regression.coef_[0].astype(np.float64)
        self.intercept_ = float(regression.intercept_[0])
        self.offsets_ = offsets(self.features)
        frequencies = np.asarray(one_hot(codes, self.features).mean(axis=0)).ravel()
        self.reference_mean_ = frequencies  # the full mean, not a sample of 100 rows
        self.means_ = np.array(
            [
                float(
                    self.weights_[start : start + len(feature.categories)]
                    @ frequencies[start : start + len(feature.categories)]
                )
                for feature, start in zip(self.features, self.offsets_, strict=True)
            ]
        )
        raw = self._raw_logit(calibration_codes)
        platt = LogisticRegression(C=1e6, max_iter=1_000)
        platt.fit(raw.reshape(-1, 1), calibration_labels)
        self.calibration_ = (float(platt.coef_[0][0]), float(platt.intercept_[0]))
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = codes.shape[1]
        return self

    def _raw_logit(self, codes: np.ndarray) -> np.ndarray:
        """The intercept plus each case's category weights, added feature by feature in order
        (the same sum, to the last bit, whether a case comes alone or among millions)."""
        codes = np.asarray(codes)
        if len(codes) <= FEW:  # a desk's case: a Python loop beats 67 array calls
            picked = np.take(self.weights_, codes.astype(np.int64) + self.offsets_).tolist()
            logits = []
            for weights in picked:
                logit = float(self.intercept_)
                for weight in weights:
                    logit += weight
                logits.append(logit)
            return np.array(logits, dtype=np.float64).reshape(len(codes))
        totals = np.full(len(codes), self.intercept_)
        for start, stop, column in zip(self.offsets_, self._stops, codes.T, strict=True):
            totals += self.weights_[start:stop].take(column)  # a column of a few categories
        return totals

    @property
    def _stops(self) -> np.ndarray:
        return np.append(self.offsets_[1:], len(self.weights_))

    def category_contributions(self) -> np.ndarray:
        """Each category's contribution to the calibrated log-odds (one-hot layout): what
        `explain` gives a case for a feature in that category."""
        check_is_fitted(self, "weights_")
        slope, _ = self.calibration_
        means = np.repeat(self.means_, self._stops - self.offsets_)  # each category's feature
        return np.asarray(slope * (self.weights_ - means))

    def decision_function(self, codes: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of each case."""
        check_is_fitted(self, "weights_")
        return self.fitted_logits(codes)

    def fitted_logits(self, codes: np.ndarray) -> np.ndarray:
        """`decision_function` without scikit-learn's check that the model is fitted (a
        `TrainedModel` checks once)."""
        slope, shift = self.calibration_
        return np.asarray(slope * self._raw_logit(np.asarray(codes)) + shift)

    def predict_proba(self, codes: np.ndarray) -> np.ndarray:
        score = 1.0 / (1.0 + np.exp(-self.decision_function(codes)))
        return np.column_stack([1.0 - score, score])

    def predict(self, codes: np.ndarray) -> np.ndarray:
        return (self.predict_proba(codes)[:, 1] >= 0.5).astype(int)

    @property
    def base_(self) -> float:
        """The calibrated log-odds of the average reference case: where explanations start."""
        check_is_fitted(self, "weights_")
        slope, shift = self.calibration_
        return float(slope * (self.intercept_ + self.means_.sum()) + shift)

    def explain(self, codes: np.ndarray) -> np.ndarray:
        """Each feature's contribution to each case's calibrated log-odds (rows x features);
        `base_ + explain(codes).sum(axis=1) == decision_function(codes)`."""
        at = np.asarray(codes).astype(np.int64) + self.offsets_
        return np.asarray(np.take(self.category_contributions(), at))

    def shap_reference(self, codes: np.ndarray) -> np.ndarray:
        """The same contributions as computed by shap's LinearExplainer, summed per feature
        (slow; for checking `explain` and for the model card)."""
        import shap

        explainer = shap.LinearExplainer(
            self.regression_, (self.reference_mean_, np.zeros(len(self.reference_mean_)))
        )
        values = np.asarray(
            explainer.shap_values(one_hot(np.asarray(codes), self.features).toarray())
        )
        slope, _ = self.calibration_
        per_feature = np.add.reduceat(values, self.offsets_, axis=1)
        return np.asarray(slope * per_feature)
