from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api import components
from api.settings import Settings
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from models import artifact
from models.features import features_for
from tests.conftest import DEFAULT_PACK


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


def pack_with_another_rule(tmp_path: Path) -> RulePack:
    """A new version of the default pack with one more non-info rule (one more model input)."""
    folder = tmp_path / "candidate"
    shutil.copytree(DEFAULT_PACK, folder)
    text = (folder / "rules" / "unlicensed_agency.yaml").read_text(encoding="utf-8")
    again = text.replace("id: unlicensed_agency", "id: unlicensed_agency_again", 1)
    (folder / "rules" / "unlicensed_agency_again.yaml").write_text(again, encoding="utf-8")
    manifest = folder / "pack.yaml"
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace('"2026.11.2"', '"2026.12.0"'),
        encoding="utf-8",
    )
    return load_rule_pack(folder)


def test_the_reference_model_is_never_trained_again_for_another_pack(
    tmp_path: Path, model_dir: Path, registry: AgencyRegistry
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    before = (folder / artifact.MANIFEST_FILE).read_bytes()
    candidate = pack_with_another_rule(tmp_path)
    said: list[str] = []
    with pytest.raises(artifact.OutdatedModel) as refused:
        components.load_or_train_model(
            settings_for(folder), candidate, registry, notify=said.append
        )
    assert said == []
    assert (folder / artifact.MANIFEST_FILE).read_bytes() == before
    assert candidate.label in str(refused.value)
    assert "lindung model train --out" in str(refused.value)


def test_on_first_use_the_reference_model_is_trained_for_the_settings_pack_only(
    tmp_path: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    candidate = pack_with_another_rule(tmp_path)
    folder = tmp_path / "model"
    with pytest.raises(artifact.OutdatedModel, match=candidate.label):
        components.load_or_train_model(settings_for(folder), candidate, registry, notify=print)
    assert artifact.load(folder, features_for(pack)).manifest["training"]["rows"] == 10_000
