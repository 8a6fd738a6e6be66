from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def model_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands use the session's reference model instead of training one on first use."""
    monkeypatch.setenv("LINDUNG_MODEL_DIR", str(model_dir))
    return
