from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from api.settings import bundled
from engine.decision import Thresholds
from engine.rule_pack import load_rule_pack
from models import artifact
from models.artifact import ModelError, TrainedModel
from models.features import features_for
from models.risk_model import RiskModel

FEATURES_OF_PACK = features_for(load_rule_pack(bundled("default")))


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
        artifact.load(folder, FEATURES_OF_PACK)


def test_a_damaged_pickle_the_manifest_vouches_for_is_a_model_error(
    model_dir: Path, tmp_path: Path
) -> None:
    folder = copy_of(model_dir, tmp_path)
    (folder / artifact.MODEL_FILE).write_bytes(b"garbage")
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["sha256"] = hashlib.sha256(b"garbage").hexdigest()
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="not a readable model"):
        artifact.load(folder, FEATURES_OF_PACK)


def test_a_model_trained_on_other_features_is_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["features"] = manifest["features"][:-1]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="trained on other features"):
        artifact.load(folder, FEATURES_OF_PACK)


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model in"):
        artifact.load(tmp_path, FEATURES_OF_PACK)


class _Planted:
    """A pickle that leaves a mark when it is unpickled."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.mkdir, (str(self.mark),))


def test_the_hash_is_checked_before_anything_is_unpickled(model_dir: Path, tmp_path: Path) -> None:
    import pickle

    folder = copy_of(model_dir, tmp_path)
    mark = tmp_path / "code-ran"
    (folder / artifact.MODEL_FILE).write_bytes(pickle.dumps(_Planted(mark)))
    with pytest.raises(ModelError, match="does not match the manifest"):
        artifact.load(folder, FEATURES_OF_PACK)
    assert not mark.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[]", "not a model manifest"),
        (b"\xff\xfe\x00", "not a readable JSON manifest"),
        (b'{"model": ', "not a readable JSON manifest"),
    ],
)
def test_a_broken_manifest_is_a_clear_error(
    model_dir: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    folder = copy_of(model_dir, tmp_path)
    (folder / artifact.MANIFEST_FILE).write_bytes(content)
    with pytest.raises(ModelError, match=message):
        artifact.load(folder, FEATURES_OF_PACK)


def test_inverted_thresholds_are_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(model_dir, tmp_path)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["thresholds"] = {"review": 0.9, "high": 0.1}
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="0 < review <= high < 1"):
        artifact.load(folder, FEATURES_OF_PACK)


def test_a_pinned_hash_refuses_any_other_model(model_dir: Path, trained: TrainedModel) -> None:
    features = trained.model.features
    assert artifact.load(model_dir, features, trained.manifest["sha256"]).version == trained.version
    with pytest.raises(ModelError, match="is not the pinned LINDUNG_MODEL_SHA256"):
        artifact.load(model_dir, features, "0" * 64)


def test_a_model_that_was_never_fitted_is_refused() -> None:
    with pytest.raises(ModelError, match="model unfitted was never fitted"):
        TrainedModel(RiskModel(features=FEATURES_OF_PACK), Thresholds(0.5, 0.9), "unfitted")
