from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from models import artifact
from models.artifact import ModelError, TrainedModel


def copy_of(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_the_manifest_vouches_for_the_model(model_dir: Path, trained: TrainedModel) -> None:
    manifest = json.loads((model_dir / artifact.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert trained.version == manifest["model"] == f"lindung-risk@{manifest['sha256'][:12]}"
    assert set(manifest["libraries"]) == {"numpy", "scipy", "scikit-learn", "shap"}
    assert manifest["thresholds"]["review"] < manifest["thresholds"]["high"]
    assert manifest["capacity"] == {"review": 0.05, "high": 0.01}
    assert [f["name"] for f in manifest["features"]] == list(trained.features)


def test_a_changed_model_file_is_refused_before_it_is_unpickled(
    model_dir: Path, tmp_path: Path
) -> None:
    folder = copy_of(model_dir, tmp_path)
    pickled = folder / artifact.MODEL_FILE
    payload = bytearray(pickled.read_bytes())
    payload[-2] ^= 0xFF
    pickled.write_bytes(bytes(payload))
    with pytest.raises(ModelError, match="does not match the manifest; refusing to load it"):
        artifact.load(folder)


def test_a_model_trained_on_other_features_is_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["features"] = manifest["features"][:-1]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="trained on other features"):
        artifact.load(folder)


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model in"):
        artifact.load(tmp_path)
