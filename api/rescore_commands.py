"""`lindung rescore`: rescore a case file in batch, and see what a new pack or model changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import click

from api import components, in_use
from api.batch_files import BatchFileError, count_rows, file_format
from api.cli_common import command_errors, load_pack, settings_from_env
from api.rescore import (
    CHUNK_ROWS,
    DaskEngine,
    Engine,
    InlineEngine,
    LocalEngine,
    Progress,
    Rescorers,
    RunFiles,
    details_path,
    rescore_file,
    severities,
)
from api.rescore_report import (
    Run,
    compare_to_baseline,
    compare_to_previous,
    previous_run,
    write_report,
)
from api.settings import Settings
from engine.errors import LindungError
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rescoring import Rescorer
from engine.rule_pack import RulePack
from models import artifact
from models.features import features_for

_FILE = click.Path(path_type=Path, dir_okay=False)
_FOLDER = click.Path(path_type=Path, file_okay=False)


@click.command()
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--out", required=True, type=_FILE, help="Decisions: a .parquet or .csv file.")
@click.option(
    "--rule-pack",
    type=_FOLDER,
    help="Rule pack folder (default: the one activated in the service, else LINDUNG_RULE_PACK).",
)
@click.option(
    "--model",
    "model_dir",
    type=_FOLDER,
    help="Model folder (default: the one activated with the service's pack, else "
    "LINDUNG_MODEL_DIR; with --rule-pack, LINDUNG_MODEL_DIR).",
)
@click.option(
    "--registry",
    type=_FILE,
    help="Agency registry CSV (default: the one uploaded to the service, else LINDUNG_REGISTRY).",
)
@click.option(
    "--on-error",
    type=click.Choice(["stop", "skip"]),
    default="stop",
    show_default=True,
    help="A bad row stops the run, or is skipped into the rejects file.",
)
@click.option("--rejects", type=_FILE, help="Where skipped rows go (default: OUT.rejects.csv).")
@click.option("--compare-to", type=_FILE, help="A previous output to compare with (what changed).")
@click.option(
    "--compare-to-name",
    hidden=True,
    help="How the report names the previous output (default: its path as given).",
)
@click.option(
    "--baseline-rule-pack", type=_FOLDER, help="Compare with this pack on the same input."
)
@click.option("--baseline-model", type=_FOLDER, help="Compare with this model on the same input.")
@click.option("--report", type=_FOLDER, help="Report folder (default: OUT's name + '-report').")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786), for --engine dask.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Local worker processes (default: every core)."
)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=CHUNK_ROWS, show_default=True)
@click.option(
    "--progress/--no-progress", default=None, help="A progress bar (default: on a terminal)."
)
@click.option("--progress-json", is_flag=True, hidden=True, help="Progress as JSON lines.")
def rescore(
    source: Path,
    out: Path,
    rule_pack: Path | None,
    model_dir: Path | None,
    registry: Path | None,
    on_error: str,
    rejects: Path | None,
    compare_to: Path | None,
    compare_to_name: str | None,
    baseline_rule_pack: Path | None,
    baseline_model: Path | None,
    report: Path | None,
    engine: str,
    scheduler: str | None,
    workers: int | None,
    chunk_rows: int,
    progress: bool | None,
    progress_json: bool,
) -> None:
    """Rescore the cases of SOURCE (CSV or Parquet, flat dotted columns as in case v1).

    Writes case_id, tier, risk_score, flags and the top three reasons (id, en) for every valid
    row, and prints a summary as JSON. With --compare-to or a baseline pack / model it also
    writes a what-changed report (report.html, summary.json, moved_cases.csv).
    """
    try:
        file_format(source), file_format(out)
    except BatchFileError as error:
        raise click.UsageError(str(error)) from None
    if engine == "dask" and not scheduler:
        raise click.UsageError("--engine dask needs --scheduler ADDRESS")
    if compare_to and (baseline_rule_pack or baseline_model):
        raise click.UsageError("compare with a previous output or with a baseline, not both")
    settings = settings_from_env()
    with command_errors():  # what the service uses (LINDUNG_DATABASE_URL), unless chosen here
        needed = rule_pack is None or registry is None
        chosen = in_use.stored_choice(settings) if needed else in_use.NOTHING_CHOSEN
        pack = rule_pack or chosen.pack_folder(settings)
        model = model_dir or (settings.model_dir if rule_pack else chosen.model_folder(settings))
        agencies = AgencyRegistry.from_csv(registry) if registry else chosen.registry(settings)
    pinned = in_use.NOTHING_CHOSEN if rule_pack else chosen  # the service's pack: as pinned
    current = _rescorer(settings, pack, model, agencies, pinned)
    baseline = None
    if baseline_rule_pack or baseline_model:
        before = (baseline_rule_pack or pack, baseline_model or model)
        baseline = _rescorer(
            settings, *before, agencies, in_use.NOTHING_CHOSEN if baseline_rule_pack else pinned
        )
    work = Rescorers(current, baseline)
    comparing = bool(compare_to or baseline)
    files = RunFiles(
        source,
        out,
        rejects=(rejects or out.with_name(out.name + ".rejects.csv"))
        if on_error == "skip"
        else None,
        details=details_path() if comparing else None,
    )
    show = sys.stderr.isatty() if progress is None else progress
    bar: Progress | None = _json_progress if progress_json else _Bar() if show else None
    try:
        summary = _run(files, work, engine, scheduler, workers, chunk_rows, bar)
        result: dict[str, Any] = summary.as_dict()
        result["out"] = str(out)
        if files.rejects:
            result["rejects_file"] = str(files.rejects)
        if comparing and files.details is not None:
            folder = report or out.with_name(out.stem + "-report")
            now = Run(
                f"{current.pack.label} + {current.scorer.version}",
                severities=severities(current),
            )
            if compare_to:
                changes = compare_to_previous(files.details, compare_to)
                was = previous_run(compare_to, compare_to_name or str(compare_to))
            else:
                assert baseline is not None
                changes = compare_to_baseline(files.details)
                was = Run(
                    f"{baseline.pack.label} + {baseline.scorer.version}",
                    severities=severities(baseline),
                )
            rule_ids = [rule.id for rule in current.pack.rules]
            moves = write_report(folder, changes, rule_ids, now, was)["cases"]
            result["report"] = {"folder": str(folder), **moves}
    except LindungError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if files.details is not None:
            files.details.unlink(missing_ok=True)
    click.echo(json.dumps(result, ensure_ascii=False))


def _run(
    files: RunFiles,
    work: Rescorers,
    engine: str,
    scheduler: str | None,
    workers: int | None,
    chunk_rows: int,
    bar: Progress | None,
) -> Any:
    runner: Engine
    if engine == "dask":
        assert scheduler is not None
        try:
            runner = DaskEngine(work, scheduler)
        except (OSError, TimeoutError) as error:
            raise click.ClickException(f"dask: cannot reach {scheduler}: {error}") from None
    elif workers == 1 or count_rows(files.source) <= chunk_rows:
        runner = InlineEngine(work)  # one chunk: workers would only add their start-up
    else:
        runner = LocalEngine(work, workers)
    try:
        return rescore_file(files, runner, work, bar or (lambda *_: None), chunk_rows)
    finally:
        runner.close()
        if isinstance(bar, _Bar):
            bar.close()


def _json_progress(stage: str, done: int, total: int) -> None:
    sys.stderr.write(json.dumps({"stage": stage, "done": done, "total": total}) + "\n")
    sys.stderr.flush()


class _Bar:
    """A progress bar on stderr, a line a stage: `rescoring [#####     ] 45% 45,000 / 100,000`."""

    WIDTH = 30

    def __init__(self, stream: IO[str] = sys.stderr) -> None:
        self._stream = stream
        self._stage = ""
        self._shown = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._shown = stage, -1
        percent = min(100, done * 100 // max(total, 1))
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + " " * (self.WIDTH - filled)
        self._stream.write(f"\r{stage:<16} [{bar}] {percent:3d}% {done:,} / {total:,} rows")
        self._stream.flush()

    def close(self) -> None:
        if self._stage:
            self._stream.write("\n")
            self._stream.flush()
            self._stage = ""


def _rescorer(
    settings: Settings,
    pack_dir: Path,
    model_dir: Path,
    registry: AgencyRegistry,
    chosen: in_use.Choice,
) -> Rescorer:
    """The rescorer of a pack and model; a pack whose label `chosen` pinned to other content
    is refused, as the service refuses it."""
    pack: RulePack = load_pack(pack_dir)
    with command_errors():
        in_use.refuse_changed_in_place(chosen, pack)
        try:
            if model_dir == settings.model_dir:  # the service's: trained for its own pack only
                model = components.load_or_train_model(settings, pack, registry)
            else:
                model = artifact.load(model_dir, features_for(pack), settings.model_sha256)
        except artifact.OutdatedModel as error:
            version = str(error.manifest.get("model", "?"))
            raise click.ClickException(
                f"model: {model_dir}: {components.unfit(version, pack)}: pass --model a model "
                "trained for it (lindung model train --out DIR, with LINDUNG_RULE_PACK set to "
                "the pack's folder)"
            ) from None
    return Rescorer(
        pack,
        pseudonymiser=Pseudonymiser(settings.pseudonym_key.get_secret_value()),
        registry=registry,
        scorer=model,
    )
