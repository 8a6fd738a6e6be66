from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import bundled
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from engine.screening import Screener
from models import artifact, training
from models.artifact import TrainedModel
from models.features import features_for

DEFAULT_PACK = bundled("default")
SAMPLE_REGISTRY = bundled("registry", "sample.csv")


@pytest.fixture(scope="session")
def pack() -> RulePack:
    return load_rule_pack(DEFAULT_PACK)


@pytest.fixture(scope="session")
def registry() -> AgencyRegistry:
    return AgencyRegistry.from_csv(SAMPLE_REGISTRY)


MODEL_ROWS = 40_000  # a small reference model: enough to learn the story, quick to train


@pytest.fixture(scope="session")
def model_dir(
    tmp_path_factory: pytest.TempPathFactory, pack: RulePack, registry: AgencyRegistry
) -> Path:
    """A reference model trained once for the whole test session (and its folder)."""
    folder = tmp_path_factory.mktemp("model")
    data = training.reference_data(MODEL_ROWS, training.REFERENCE_SEED, pack, registry)
    training.train_and_save(
        data,
        folder,
        capacity=training.Capacity(),
        pack=pack,
        source={"data": "synthetic reference population (tests)"},
    )
    return folder


@pytest.fixture(scope="session")
def trained(model_dir: Path, pack: RulePack) -> TrainedModel:
    return artifact.load(model_dir, features_for(pack))


@pytest.fixture
def screener(pack: RulePack, registry: AgencyRegistry) -> Screener:
    """A fresh rules-only screener: its case history starts empty."""
    return Screener(pack, pseudonymiser=Pseudonymiser("test-key"), registry=registry)


@pytest.fixture
def scored_screener(pack: RulePack, registry: AgencyRegistry, trained: TrainedModel) -> Screener:
    """A fresh screener with the reference model: rules and score together."""
    return Screener(
        pack, pseudonymiser=Pseudonymiser("test-key"), registry=registry, scorer=trained
    )


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the default pack, for tests that break it on purpose."""
    import shutil

    target = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, target)
    return target
