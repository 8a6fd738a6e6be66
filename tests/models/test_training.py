from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from models import training
from models.artifact import TrainedModel
from models.dataset import DatasetError, read_labelled
from models.population import generate, to_records


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = ";".join(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = sorted({key for row in rows for key in row})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def test_thresholds_follow_the_reviewers_capacity(
    trained: TrainedModel, pack: RulePack, registry: AgencyRegistry
) -> None:
    data = training.reference_data(20_000, training.REFERENCE_SEED, pack, registry)
    scores = trained.score_frame(data.facts).scores
    assert (scores >= trained.thresholds.review).mean() == pytest.approx(0.05, abs=0.01)
    assert (scores >= trained.thresholds.high).mean() == pytest.approx(0.01, abs=0.005)


def test_an_analysts_labelled_csv_trains_a_model(
    tmp_path: Path, pack: RulePack, registry: AgencyRegistry
) -> None:
    columns = generate(12_000, seed=5)
    labels = columns["non_procedural"]
    rows = [
        flat(record) | {"outcome": "non_procedural" if label else "procedural"}
        for record, label in zip(to_records(columns), labels, strict=True)
    ]
    path = tmp_path / "outcomes.csv"
    write_csv(path, rows)
    frame, read_labels = read_labelled(path, "outcome")
    assert np.array_equal(read_labels, labels.astype(bool))
    data = training.Labelled(frame, training.enrich(frame, pack, registry), read_labels)
    model = training.train_and_save(
        data,
        tmp_path / "model",
        capacity=training.Capacity(),
        pack=pack,
        source={"data": str(path), "label": "outcome"},
    )
    assert model.manifest["training"]["rows"] == 12_000
    assert model.manifest["training"]["label"] == "outcome"


def test_bad_rows_refuse_the_whole_file_naming_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    write_csv(
        path,
        [
            {"channel": "batch", "travel.visa_type": "tourist", "outcome": "procedural"},
            {"channel": "batch", "travel.visa_typ": "tourist", "outcome": "procedural"},
            {"channel": "batch", "outcome": "maybe"},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        read_labelled(path, "outcome")
    message = str(caught.value)
    assert "row 3: travel.visa_typ: unknown field, did you mean travel.visa_type?" in message
    assert "row 4: outcome: 'maybe' is not a label" in message
