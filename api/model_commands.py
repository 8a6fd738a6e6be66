"""`lindung model`: train, evaluate, and write the model card."""

from __future__ import annotations

import json
from pathlib import Path

import click

from api import components
from api.cli_common import load_pack, settings_from_env
from api.settings import Settings
from engine.errors import LindungError
from engine.registry import AgencyRegistry
from models import training
from models.evaluation import evaluate

EVALUATION_ROWS = 100_000


@click.group()
def model() -> None:
    """Train, evaluate and document the risk model."""


@model.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labelled cases (CSV or Parquet, flat dotted columns); default: the "
    "synthetic reference population.",
)
@click.option(
    "--label",
    default="non_procedural",
    show_default=True,
    help="The label column of --data (true = non-procedural).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the model (default: LINDUNG_MODEL_DIR).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=10_000),
    help="Reference rows to generate (default: LINDUNG_TRAINING_ROWS).",
)
@click.option(
    "--seed",
    type=int,
    default=training.REFERENCE_SEED,
    show_default=True,
    help="Seed of the reference population.",
)
def train(data: Path | None, label: str, out: Path | None, rows: int | None, seed: int) -> None:
    """Train the model and save it with its manifest and capacity thresholds."""
    settings = settings_from_env(model_dir=out)
    pack = load_pack(settings.rule_pack)
    try:
        registry = AgencyRegistry.from_csv(settings.registry)
        if data is None:
            trained = components.train_reference_model(settings, pack, registry, rows, seed)
        else:
            labelled = training.labelled_file(data, label, pack, registry)
            train_part, _held = training.split(labelled)
            trained = training.train_and_save(
                train_part,
                settings.model_dir,
                capacity=components.capacity(settings),
                pack=pack,
                source={
                    "data": str(data.resolve()),
                    "sha256": training.file_digest(data),
                    "label": label,
                    "holdout_share": training.HOLDOUT_SHARE,
                    "split_seed": training.SPLIT_SEED,
                    "rows_in_file": len(labelled.labels),
                },
            )
    except LindungError as error:
        raise click.ClickException(str(error)) from None
    info = trained.manifest["training"]
    click.echo(
        f"{trained.version}: trained on {info['rows']:,} cases ({info['positives']:,} "
        f"non-procedural) in {info['seconds']} s; review threshold "
        f"{trained.thresholds.review:.3f}, high {trained.thresholds.high:.3f}; "
        f"saved in {settings.model_dir}"
    )


@model.command("evaluate")
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labelled cases to evaluate on; default: data the model never saw.",
)
@click.option(
    "--label", default="non_procedural", show_default=True, help="The label column of --data."
)
@click.option(
    "--rows",
    type=click.IntRange(min=1_000),
    default=EVALUATION_ROWS,
    show_default=True,
    help="Held-out reference rows.",
)
@click.option(
    "--format", "output", type=click.Choice(["json", "text"]), default="text", show_default=True
)
def evaluate_command(rows: int, output: str, data: Path | None, label: str) -> None:
    """AUC, calibration error and recall at the review capacity, on held-out reference data:
    rules alone, model alone, and combined."""
    settings = settings_from_env()
    built = _built(settings)
    try:
        held_out = (
            training.labelled_file(data, label, built.pack, built.registry)
            if data is not None
            else training.held_out(built.model, built.pack, built.registry, rows)
        )
    except LindungError as error:
        raise click.ClickException(str(error)) from None
    metrics = evaluate(built.model, held_out, built.pack, components.capacity(settings))
    metrics["model"] = built.model.version
    if output == "json":
        click.echo(json.dumps(metrics))
        return
    recall = metrics["recall_at_capacity"]
    click.echo(
        f"{built.model.version} on {metrics['rows']:,} held-out cases "
        f"({metrics['positives']:,} non-procedural)\n"
        f"  AUC {metrics['auc']:.3f}   average precision {metrics['average_precision']:.3f}   "
        f"calibration error {metrics['calibration_error']:.4f}\n"
        f"  recall at {metrics['review_capacity']:.0%} review capacity: rules alone "
        f"{recall['rules']:.1%}, model alone {recall['model']:.1%}, combined "
        f"{recall['combined']:.1%}"
    )


@model.command("card")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for MODEL_CARD.md and its plots (default: the model folder).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1_000),
    default=EVALUATION_ROWS,
    show_default=True,
    help="Held-out reference rows to evaluate on.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=10),
    default=100,
    show_default=True,
    help="Bootstrap resamples for the fairness intervals.",
)
def card(out: Path | None, rows: int, bootstrap: int) -> None:
    """Write the model card (Markdown and PNG plots)."""
    from models.card import write_card  # matplotlib and fairlearn: not for every command

    settings = settings_from_env()
    built = _built(settings)
    path = write_card(
        built.model,
        built.pack,
        built.registry,
        out or settings.model_dir,
        capacity=components.capacity(settings),
        rows=rows,
        bootstrap=bootstrap,
    )
    click.echo(f"model card written to {path}")


def _built(settings: Settings) -> components.Components:
    try:
        return components.build(settings)
    except LindungError as error:
        raise click.ClickException(str(error)) from None
