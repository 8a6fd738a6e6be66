"""A trained model on disk: the fitted estimator, and a manifest that vouches for it.

Pickles run code when they load, so the manifest records the file's SHA-256 and loading refuses
a file whose hash does not match. The manifest also records the library versions, the features
(a model is refused if the code's features differ from the ones it was trained on), the
thresholds derived from the reviewers' capacity, the training data, and the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from engine.decision import Thresholds
from engine.errors import LindungError
from engine.scoring import LOGIT_LIMIT, FrameScores
from models.features import FEATURES, Feature, encode
from models.risk_model import RiskModel

MODEL_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"
LIBRARIES = ("numpy", "scipy", "scikit-learn", "shap")


class ModelError(LindungError):
    """A model that cannot be loaded or used."""


class OutdatedModel(ModelError):
    """A model trained on features this version of Lindung no longer uses."""

    def __init__(self, problem: str, manifest: Mapping[str, Any]) -> None:
        super().__init__(problem)
        self.manifest = manifest

    @property
    def reference(self) -> bool:
        """Trained on the synthetic reference population (reproducible, so safe to retrain)."""
        return "sha256" not in self.manifest.get("training", {})


def _feature_spec(features: Sequence[Feature]) -> list[dict[str, Any]]:
    return [{"name": f.name, "categories": list(f.categories)} for f in features]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted RiskModel with its thresholds: what the screener scores with."""

    model: RiskModel
    thresholds: Thresholds
    version: str
    manifest: Mapping[str, Any] = field(default_factory=dict)

    # made once: every explanation reads them
    @cached_property
    def features(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.model.features)

    @cached_property
    def categories(self) -> tuple[tuple[str, ...], ...]:
        return tuple(feature.categories for feature in self.model.features)

    def __post_init__(self) -> None:
        # checked once here, not in score_frame: scikit-learn's check was a tenth of scoring
        # one desk's case
        try:
            check_is_fitted(self.model, "weights_")
        except NotFittedError:
            raise ModelError(f"model {self.version} was never fitted") from None

    def score_frame(self, facts: Mapping[str, np.ndarray]) -> FrameScores:
        codes = encode(facts, self.model.features)
        raw = self.model.fitted_logits(codes)
        logits = np.clip(raw, -LOGIT_LIMIT, LOGIT_LIMIT)
        return FrameScores(
            scores=1.0 / (1.0 + np.exp(-logits)),
            logits=logits,
            base=self._base,
            categories=codes,
            category_values=self._category_values,
            offsets=self.model.offsets_,
            limit=logits - raw,
        )

    @cached_property
    def _base(self) -> float:
        return self.model.base_

    @cached_property
    def _category_values(self) -> np.ndarray:
        return self.model.category_contributions()


def save(trained: TrainedModel, folder: Path, details: Mapping[str, Any]) -> Path:
    """Write the model and its manifest to `folder`; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(trained.model, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest()
    (folder / MODEL_FILE).write_bytes(payload)
    manifest = {
        "model": f"lindung-risk@{digest[:12]}",
        "sha256": digest,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "family": "logistic regression over feature categories, Platt-calibrated",
        "thresholds": {"review": trained.thresholds.review, "high": trained.thresholds.high},
        "features": _feature_spec(trained.model.features),
        **details,
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def load(
    folder: Path, features: Sequence[Feature] = FEATURES, expected_sha256: str | None = None
) -> TrainedModel:
    """Load a model, refusing one whose file does not match its manifest (or the SHA-256 the
    settings pin), or whose features differ from the code's. The hash is checked before anything
    is unpickled; a manifest beside the file catches corruption, a pinned hash also tampering."""
    manifest_path, model_path = folder / MANIFEST_FILE, folder / MODEL_FILE
    if not manifest_path.is_file() or not model_path.is_file():
        raise ModelError(f"no model in {folder} (expected {MANIFEST_FILE} and {MODEL_FILE})")
    manifest = _manifest(manifest_path)
    payload = model_path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.get("sha256"):
        raise ModelError(
            f"{model_path}: SHA-256 {digest[:12]}... does not match the manifest; refusing to "
            "load it (a pickle runs code when it loads)"
        )
    if expected_sha256 and digest != expected_sha256:
        raise ModelError(
            f"{model_path}: SHA-256 {digest[:12]}... is not the pinned LINDUNG_MODEL_SHA256 "
            f"{expected_sha256[:12]}...; refusing to load it"
        )
    if manifest.get("features") != _feature_spec(features):
        raise OutdatedModel(
            f"{folder}: the model was trained on other features than this version of Lindung "
            "uses; train it again (lindung model train)",
            manifest,
        )
    thresholds = manifest.get("thresholds")
    if (
        not isinstance(thresholds, dict)
        or not all(isinstance(thresholds.get(k), float) for k in ("review", "high"))
        or not 0 < thresholds["review"] <= thresholds["high"] < 1
    ):
        raise ModelError(f"{manifest_path}: thresholds must be 0 < review <= high < 1")
    try:
        model = pickle.loads(payload)
    except Exception as error:  # a damaged pickle can raise almost anything
        raise ModelError(f"{model_path}: not a readable model ({error!r})") from None
    if not isinstance(model, RiskModel):
        raise ModelError(f"{model_path}: not a Lindung risk model")
    return TrainedModel(model, Thresholds(**thresholds), str(manifest["model"]), manifest)


def _manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not a readable JSON manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("model"), str):
        raise ModelError(f"{path}: not a model manifest")
    return manifest


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in LIBRARIES}
