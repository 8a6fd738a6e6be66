from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import bundled
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack, load_rule_pack
from engine.screening import Screener

DEFAULT_PACK = bundled("default")
SAMPLE_REGISTRY = bundled("registry", "sample.csv")


@pytest.fixture(scope="session")
def pack() -> RulePack:
    return load_rule_pack(DEFAULT_PACK)


@pytest.fixture(scope="session")
def registry() -> AgencyRegistry:
    return AgencyRegistry.from_csv(SAMPLE_REGISTRY)


@pytest.fixture
def screener(pack: RulePack, registry: AgencyRegistry) -> Screener:
    """A fresh screener: its case history starts empty."""
    return Screener(pack, pseudonymiser=Pseudonymiser("test-key"), registry=registry)


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the default pack, for tests that break it on purpose."""
    import shutil

    target = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, target)
    return target
