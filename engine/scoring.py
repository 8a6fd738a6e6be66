"""What the engine needs from a risk model, and how a score and its explanation read.

The engine never imports the model package: anything with this protocol can score cases. Scores
are calibrated probabilities that a departure is non-procedural; the explanation is additive in
log-odds: base + sum of contributions == logit(risk_score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from engine.decision import Thresholds
from engine.frame import FEW_ROWS, column_from_codes
from engine.wording import Labels, Text

TOP_FACTORS = 3
# Scores are capped at log-odds +-16 (probability 1 - 1e-7): beyond that a float's probability no
# longer gives its log-odds back to 1e-6, and no officer reads a difference. The cap is shown as a
# contribution of its own, so base + contributions == logit(risk_score) still holds exactly.
LOGIT_LIMIT = 16.0
LIMIT_LABEL = {"id": "batas skor", "en": "score limit"}
UNKNOWN_CATEGORY = "unknown"


@dataclass(frozen=True)
class FrameScores:
    """Scores and explanations of many cases."""

    scores: np.ndarray  # calibrated probability per case
    logits: np.ndarray  # log-odds per case
    base: float  # log-odds of the average reference case
    categories: np.ndarray  # cases x features: index of each case's category per feature
    # what each category of each feature contributes, in log-odds: the features' categories one
    # after another, each feature's from its offset (a case's contributions are a look-up)
    category_values: np.ndarray
    offsets: np.ndarray
    limit: np.ndarray  # per case: what capping the log-odds at +-LOGIT_LIMIT took off (or added)

    @cached_property
    def contributions(self) -> np.ndarray:
        """Cases x features, log-odds (made when first asked: a batch run reads only the
        categories and their values)."""
        return np.asarray(np.take(self.category_values, self.categories + self.offsets))


RULE_PREFIX = "rule."  # a scorer also reads each rule's outcome: the column rule.<id>


_NOT_FIRED_FIRED = np.array([None, True], dtype=object)


def with_rule_columns(
    facts: Mapping[str, np.ndarray], fired: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The enriched facts plus one column per rule: True where it fired, None where it did not
    (so a rule's outcome reads like any fact that is known or not)."""
    columns = dict(facts)
    if fired and len(next(iter(fired.values()))) <= FEW_ROWS:
        # a desk's few cases: two array calls for every rule together, not three each
        masks = np.array(list(fired.values()), dtype=np.intp).reshape(len(fired), -1)
        for rule_id, column in zip(fired, _NOT_FIRED_FIRED[masks], strict=True):
            columns[f"{RULE_PREFIX}{rule_id}"] = column
        return columns
    for rule_id, mask in fired.items():
        codes = mask.astype(np.int64) - 1  # fired: 0, the code of True; else -1, unknown
        columns[f"{RULE_PREFIX}{rule_id}"] = column_from_codes(codes, (True,))
    return columns


class Scorer(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def thresholds(self) -> Thresholds: ...

    @property
    def features(self) -> Sequence[str]:
        """The fact each feature reads."""
        ...

    @property
    def categories(self) -> Sequence[Sequence[str]]:
        """The categories of each feature."""
        ...

    def score_frame(self, facts: Mapping[str, np.ndarray]) -> FrameScores:
        """Scores and explanations for every case of an enriched frame."""
        ...


class Explainer:
    """Writes explanations for one scorer in one pack's words; labels are looked up once."""

    def __init__(
        self, scorer: Scorer, labels: Labels, titles: Mapping[str, Text] | None = None
    ) -> None:
        self.scorer = scorer
        titles = titles or {}
        self.labels = [
            titles[feature].as_dict()
            if feature in titles
            else {lang: labels.fact(feature, lang) for lang in ("id", "en")}
            for feature in scorer.features
        ]
        self.value_labels = [
            [
                {lang: _value(labels, feature, category, lang) for lang in ("id", "en")}
                for category in categories
            ]
            for feature, categories in zip(scorer.features, scorer.categories, strict=True)
        ]

    def explain(self, scored: FrameScores, row: int) -> dict[str, Any]:
        """The decision's explanation of one case: base, every feature's contribution (largest
        first) with its label in both languages, and the top factors in words."""
        features, categories = self.scorer.features, self.scorer.categories
        values = scored.contributions[row].tolist()  # plain floats: numpy scalars are slow
        codes = scored.categories[row].tolist()
        largest_first = sorted(range(len(values)), key=lambda index: -abs(values[index]))
        # The labels are shared by every explanation (read-only): copying them for each of
        # some seventy features was a third of a desk's screening.
        labels, value_labels = self.labels, self.value_labels
        contributions = [
            {
                "feature": features[index],
                "value": categories[index][codes[index]],
                "contribution": values[index],
                "label": labels[index],
                "value_label": value_labels[index][codes[index]],
            }
            for index in largest_first
        ]
        limit = float(scored.limit[row])
        if limit:
            contributions.append(
                {
                    "feature": "score_limit",
                    "value": "capped",
                    "contribution": limit,
                    "label": dict(LIMIT_LABEL),
                    "value_label": {"id": "skor dibatasi", "en": "score capped"},
                }
            )
        return {
            "base": scored.base,
            "contributions": contributions,
            "top_factors": _top_factors(contributions).as_dict(),
        }


_WORDS = {
    "given": {"id": "ada", "en": "given"},
    "not given": {"id": "tidak ada", "en": "not given"},
    "fired": {"id": "tanda muncul", "en": "flag raised"},
    "not fired": {"id": "tanda tidak muncul", "en": "no flag"},
}


def _value(labels: Labels, feature: str, category: str, language: str) -> str:
    if category in {"yes", "no"}:
        return labels.value(feature, category == "yes", language, "")
    if category in _WORDS:
        return _WORDS[category][language]
    if category[:1] in {"<", ">"} or category[:1].isdigit():  # a bin of a number
        return category.replace("M", " jt" if language == "id" else "M")
    if category == "unknown":
        return labels.value(feature, None, language, "")
    kind = "country" if feature == "travel.destination_country" and len(category) == 2 else ""
    return labels.value(feature, category, language, kind)


def _top_factors(contributions: list[dict[str, Any]]) -> Text:
    # an unknown fact is not a reason: it belongs under the questions, not the top factors
    raising = [
        c
        for c in contributions
        if c["contribution"] > 0 and c["value"] not in {UNKNOWN_CATEGORY, "capped"}
    ][:TOP_FACTORS]
    if not raising:
        return Text(
            id="Tidak ada faktor yang menaikkan skor risiko di atas rata-rata.",
            en="No factor raises the risk score above the average.",
        )

    def words(language: str) -> str:
        return "; ".join(
            f"{c['label'][language]}: {c['value_label'][language]} "
            f"(+{_number(c['contribution'], language)})"
            for c in raising
        )

    return Text(
        id=f"Faktor utama yang menaikkan skor risiko: {words('id')}.",
        en=f"Main factors raising the risk score: {words('en')}.",
    )


def _number(value: float, language: str) -> str:
    text = f"{value:.2f}"
    return text.replace(".", ",") if language == "id" else text


def logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))
