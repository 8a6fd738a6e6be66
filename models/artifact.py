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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from engine.decision import Thresholds
from engine.errors import LindungError
from engine.scoring import FrameScores
from models.features import FEATURES, encode
from models.risk_model import RiskModel

MODEL_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"
LIBRARIES = ("numpy", "scipy", "scikit-learn", "shap")


FEATURE_NAMES = tuple(feature.name for feature in FEATURES)
FEATURE_CATEGORIES = tuple(feature.categories for feature in FEATURES)


class ModelError(LindungError):
    """A model that cannot be loaded or used."""


def _feature_spec() -> list[dict[str, Any]]:
    return [{"name": f.name, "categories": list(f.categories)} for f in FEATURES]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted RiskModel with its thresholds: what the screener scores with."""

    model: RiskModel
    thresholds: Thresholds
    version: str
    manifest: Mapping[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    @property
    def categories(self) -> tuple[tuple[str, ...], ...]:
        return FEATURE_CATEGORIES

    def score_frame(self, facts: Mapping[str, np.ndarray]) -> FrameScores:
        codes = encode(facts)
        logits = self.model.decision_function(codes)
        return FrameScores(
            scores=1.0 / (1.0 + np.exp(-logits)),
            logits=logits,
            base=self.model.base_,
            contributions=self.model.explain(codes),
            categories=codes,
        )


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
        "features": _feature_spec(),
        **details,
    }
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def load(folder: Path) -> TrainedModel:
    """Load a model, refusing one whose file does not match its manifest or whose features
    differ from the code's."""
    manifest_path, model_path = folder / MANIFEST_FILE, folder / MODEL_FILE
    if not manifest_path.is_file() or not model_path.is_file():
        raise ModelError(f"no model in {folder} (expected {MANIFEST_FILE} and {MODEL_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelError(f"{manifest_path}: not valid JSON ({error.msg})") from None
    payload = model_path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.get("sha256"):
        raise ModelError(
            f"{model_path}: SHA-256 {digest[:12]}... does not match the manifest; refusing to "
            "load it (a pickle runs code when it loads)"
        )
    if manifest.get("features") != _feature_spec():
        raise ModelError(
            f"{folder}: the model was trained on other features than this version of Lindung "
            "uses; train it again (lindung model train)"
        )
    model = pickle.loads(payload)
    if not isinstance(model, RiskModel):
        raise ModelError(f"{model_path}: not a Lindung risk model")
    thresholds = Thresholds(**manifest["thresholds"])
    return TrainedModel(model, thresholds, manifest["model"], manifest)


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in LIBRARIES}
