from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api import components
from api.settings import Settings
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from models import artifact


def settings_for(folder: Path) -> Settings:
    return Settings(model_dir=folder, training_rows=10_000)


def test_a_model_file_without_a_manifest_is_never_overwritten(
    tmp_path: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    (tmp_path / artifact.MODEL_FILE).write_bytes(b"someone's model")
    with pytest.raises(artifact.ModelError, match="no model in"):
        components.load_or_train_model(settings_for(tmp_path), pack, registry, notify=print)
    assert (tmp_path / artifact.MODEL_FILE).read_bytes() == b"someone's model"


def test_an_outdated_reference_model_is_trained_again(
    tmp_path: Path, model_dir: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["features"] = manifest["features"][:-1]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    said: list[str] = []
    model = components.load_or_train_model(settings_for(folder), pack, registry, notify=said.append)
    assert said
    assert "training it again" in said[0]
    assert model.manifest["training"]["rows"] == 10_000


def test_an_outdated_analyst_model_is_refused(
    tmp_path: Path, model_dir: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["features"] = manifest["features"][:-1]
    manifest["training"]["sha256"] = "ab" * 32
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(artifact.OutdatedModel):
        components.load_or_train_model(settings_for(folder), pack, registry, notify=print)
