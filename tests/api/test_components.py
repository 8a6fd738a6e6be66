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


def outdated_copy(model_dir: Path, tmp_path: Path, *, trained_on_a_file: bool = False) -> Path:
    """A copy of the session's model whose manifest lists other features."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["features"] = manifest["features"][:-1]
    if trained_on_a_file:
        manifest["training"]["sha256"] = "ab" * 32
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return folder


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
    folder = outdated_copy(model_dir, tmp_path)
    said: list[str] = []
    model = components.load_or_train_model(settings_for(folder), pack, registry, notify=said.append)
    assert said
    assert "training it again" in said[0]
    assert model.manifest["training"]["rows"] == 10_000


def test_an_outdated_analyst_model_is_refused(
    tmp_path: Path, model_dir: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    folder = outdated_copy(model_dir, tmp_path, trained_on_a_file=True)
    with pytest.raises(artifact.OutdatedModel):
        components.load_or_train_model(settings_for(folder), pack, registry, notify=print)
