"""`lindung model ...` as an analyst runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from models import artifact
from tests.api.test_cli import run
from tests.factories import tourist


def test_train_writes_a_model_with_its_manifest(tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = run("model", "train", "--rows", "20000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("lindung-risk@")
    assert "trained on 20,000 cases" in result.stdout
    manifest = json.loads((out / artifact.MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["training"]["rows"] == 20_000
    assert manifest["capacity"] == {"review": 0.05, "high": 0.01}


def test_training_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        assert run("model", "train", "--rows", "20000", "--out", str(folder)).returncode == 0
    digest = [
        json.loads((f / artifact.MANIFEST_FILE).read_text())["sha256"] for f in (first, second)
    ]
    assert digest[0] == digest[1]


def test_evaluate_compares_rules_model_and_both(model_dir: Path) -> None:
    result = run("model", "evaluate", "--rows", "20000", "--format", "json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    recall = metrics["recall_at_capacity"]
    assert recall["combined"] > recall["rules"]
    assert 0.5 < metrics["auc"] <= 1
    text = run("model", "evaluate", "--rows", "20000").stdout
    assert "recall at 5% review capacity: rules alone" in text


def test_card_writes_markdown_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "card"
    # 5,000 held-out rows fill every table of the card (20,000 took 7 s more)
    result = run("model", "card", "--rows", "5000", "--bootstrap", "10", "--out", str(out))
    assert result.returncode == 0, result.stderr
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    for heading in (
        "## Intended use",
        "## Metrics (held-out)",
        "## Why this model",
        "## Explanations",
        "## Fairness",
        "### By person.sex",
        "### By person.origin_province",
        "association in the data, not cause",
    ):
        assert heading in card
    for plot in ("calibration.png", "roc_pr.png", "importance.png", "fairness.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tampered_model_stops_screening_with_a_clear_error(
    model_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (folder / artifact.MODEL_FILE).write_bytes(b"not the model")
    result = run("screen", stdin=json.dumps(tourist()), env={"LINDUNG_MODEL_DIR": str(folder)})
    assert result.returncode != 0
    assert "does not match the manifest" in result.stderr
    assert "Traceback" not in result.stderr


def test_first_screening_trains_the_reference_model(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    result = run(
        "screen",
        stdin=json.dumps(tourist()),
        env={"LINDUNG_MODEL_DIR": str(folder), "LINDUNG_TRAINING_ROWS": "20000"},
    )
    assert result.returncode == 0, result.stderr
    assert "training the reference model" in result.stderr
    assert (folder / artifact.MANIFEST_FILE).exists()
    assert json.loads(result.stdout)["versions"]["model"].startswith("lindung-risk@")
