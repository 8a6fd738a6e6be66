"""What changed between two rescorings of the same cases: the backtest of a candidate rule pack or
model before it goes live.

Compares this run's decisions with a previous output (matched on case_id) or with a baseline
pack / model run on the same rows: how many cases moved between tiers, which rules caused it,
by province, channel and agency, with the moved cases listed. Writes `summary.json`,
`report.html` (charts as inline SVG, no script) and `moved_cases.csv`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from api.batch_files import BatchFileError, file_format, made_with
from api.rescore_report_html import page
from engine.decision import TIERS

TOP_GROUPS = 15
GROUPS = ("province", "channel", "agency")
_RANK = {tier: rank for rank, tier in enumerate(TIERS)}
SCORE_ONLY = "(risk score only)"


@dataclass(frozen=True)
class Run:
    """One side of a comparison as the report names it: its pack and model, and for a previous
    output the file (`file`: its name, as given, and the SHA-256 of its bytes). `severities`:
    rule id -> severity, None where not known (a previous output that does not record them)."""

    label: str
    file: Mapping[str, str] | None = None
    severities: Mapping[str, str] | None = None


def previous_run(path: Path, name: str) -> Run:
    """A previous output named by `name` (its path as given, or the job that wrote it) and its
    SHA-256, so that two outputs of one name are told apart, after the pack and model that it
    records it was made with (a Parquet output; a CSV one cannot record them)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    except OSError as error:
        raise BatchFileError(f"{path.name}: cannot read it: {error.strerror}") from None
    sha256 = digest.hexdigest()
    made = made_with(path) or {}
    if isinstance(made.get("rule_pack"), str) and isinstance(made.get("model"), str):
        label = f"{made['rule_pack']} + {made['model']} ({name}, SHA-256 {sha256})"
    else:
        label = f"{name} (SHA-256 {sha256})"
    severities = made.get("severities")
    if not isinstance(severities, dict) or not all(
        isinstance(severity, str) for severity in severities.values()
    ):
        severities = None
    return Run(label, {"name": name, "sha256": sha256}, severities)


def compare_to_previous(details: Path, previous: Path) -> pd.DataFrame:
    """This run's decisions side by side with a previous output's, matched on case_id."""
    current = pq.read_table(details)
    before = _read_output(previous)
    _unique(current, "this run")
    _unique(before, previous.name)
    before = before.rename_columns(["case_id", "before_tier", "before_flags", "before_score"])
    joined = current.join(before, "case_id", join_type="full outer", coalesce_keys=True)
    return _frame(joined)


def compare_to_baseline(details: Path) -> pd.DataFrame:
    """This run's decisions side by side with the baseline pack / model's, row by row."""
    table = pq.read_table(details)
    table = table.rename_columns(
        [
            {"baseline_tier": "before_tier", "baseline_flags": "before_flags"}.get(
                name, "before_score" if name == "baseline_risk_score" else name
            )
            for name in table.schema.names
        ]
    )
    return _frame(table)


def _read_output(path: Path) -> pa.Table:
    columns = ["case_id", "tier", "flags", "risk_score"]
    try:
        if file_format(path) == "parquet":
            table = pq.read_table(path, columns=columns)
        else:
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={
                        "case_id": pa.string(),
                        "tier": pa.string(),
                        "flags": pa.string(),
                        "risk_score": pa.float64(),
                    },
                    strings_can_be_null=False,
                ),
            )
    except (OSError, pa.ArrowInvalid, KeyError) as error:
        raise BatchFileError(
            f"{path.name}: not a rescore output (columns {', '.join(columns)}): {error}"
        ) from None
    table = table.select(columns)
    return table.cast(
        pa.schema(
            [
                ("case_id", pa.string()),
                ("tier", pa.string()),
                ("flags", pa.string()),
                ("risk_score", pa.float64()),
            ]
        )
    )


def _unique(table: pa.Table, name: str) -> None:
    if pc.count_distinct(table["case_id"]).as_py() != table.num_rows:
        counts = pc.value_counts(table["case_id"])
        repeated = next(item["values"] for item in counts.to_pylist() if item["counts"] > 1)
        raise BatchFileError(
            f"{name}: case_id {repeated!r} appears more than once; comparing needs one row per case"
        )


def _frame(table: pa.Table) -> pd.DataFrame:
    """Only the rows a report needs in memory: those that changed or are on one side only."""
    for name in ("flags", "before_flags"):
        table = table.set_column(table.schema.get_field_index(name), name, _as_set(table[name]))
    tier, before = table["tier"], table["before_tier"]
    changed = pc.or_kleene(
        pc.or_kleene(
            pc.not_equal(tier, before), pc.not_equal(table["flags"], table["before_flags"])
        ),
        pc.or_kleene(pc.is_null(tier), pc.is_null(before)),
    )
    counts = _transitions(table)
    kept = table.filter(pc.fill_null(changed, True)).to_pandas()
    kept.attrs["transitions"] = counts
    kept.attrs["compared"] = int(
        pc.sum(pc.and_(pc.is_valid(tier), pc.is_valid(before))).as_py() or 0
    )
    return kept


def _as_set(flags: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each case's flags as a set: its rule ids in one order. The same flags listed otherwise (a
    pack that ranks a rule higher, an output sorted in a spreadsheet) are no change."""
    distinct = pc.unique(flags)  # a few flag combinations repeat over many cases
    ordered = [
        None if value is None else ";".join(sorted(set(value.split(";")) - {""}))
        for value in distinct.to_pylist()
    ]
    return pc.take(pa.array(ordered, pa.string()), pc.index_in(flags, value_set=distinct))


def _transitions(table: pa.Table) -> dict[str, dict[str, int]]:
    both = table.filter(pc.and_(pc.is_valid(table["tier"]), pc.is_valid(table["before_tier"])))
    pairs = pc.binary_join_element_wise(both["before_tier"], both["tier"], ">")
    counted = {item["values"]: item["counts"] for item in pc.value_counts(pairs).to_pylist()}
    return {
        before: {after: int(counted.get(f"{before}>{after}", 0)) for after in TIERS}
        for before in TIERS
    }


def summarise(
    changes: pd.DataFrame, rule_ids: Sequence[str], current: Run, previous: Run
) -> dict[str, Any]:
    """The JSON summary of a comparison of the `current` run with a `previous` one."""
    both = changes[changes["tier"].notna() & changes["before_tier"].notna()]
    rank_now = both["tier"].map(_RANK).astype(float)
    rank_before = both["before_tier"].map(_RANK).astype(float)
    moved = both[rank_now != rank_before]
    up = moved[rank_now[moved.index] > rank_before[moved.index]]
    causes = _causes(moved, rule_ids, _severity_changes(current, previous))
    compared: dict[str, Any] = {"current": current.label, "previous": previous.label}
    if previous.file is not None:
        compared["previous_file"] = dict(previous.file)
    summary = {
        "compared": compared,
        "cases": {
            "compared": changes.attrs["compared"],
            "moved": len(moved),
            "moved_up": len(up),
            "moved_down": len(moved) - len(up),
            "flags_changed_same_tier": int(
                ((rank_now == rank_before) & (both["flags"] != both["before_flags"])).sum()
            ),
            "only_in_current": int(changes["before_tier"].isna().sum()),
            "only_in_previous": int(changes["tier"].isna().sum()),
        },
        "transitions": changes.attrs["transitions"],
        "rules": causes,
        "by": {group: _by_group(moved, up, group) for group in GROUPS if group in moved},
    }
    return summary


def _flag_sets(column: pd.Series) -> list[set[str]]:
    return [set(value.split(";")) - {""} if isinstance(value, str) else set() for value in column]


def _severity_changes(current: Run, previous: Run) -> dict[str, tuple[str, str]]:
    """Rule id -> (its previous severity, its current one), for the rules of both runs whose
    severity differs (none known if either run's severities are not)."""
    if current.severities is None or previous.severities is None:
        return {}
    was = previous.severities
    return {
        rule: (was[rule], severity)
        for rule, severity in current.severities.items()
        if was.get(rule, severity) != severity
    }


def _causes(
    moved: pd.DataFrame, rule_ids: Sequence[str], severities: Mapping[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    """Per rule: the moved cases where it newly fired or stopped firing, or fired in both runs
    with another severity (`severities`: rule -> previous, current). A case whose flags and
    their severities did not change moved on the risk score alone (a model change, or a
    threshold)."""
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    shifted: Counter[str] = Counter()
    score_only = 0
    for now, before in zip(
        _flag_sets(moved["flags"]), _flag_sets(moved["before_flags"]), strict=True
    ):
        added.update(now - before)
        removed.update(before - now)
        ranked_otherwise = (now & before) & severities.keys()
        shifted.update(ranked_otherwise)
        score_only += now == before and not ranked_otherwise
    order = {rule: index for index, rule in enumerate(rule_ids)}
    rules = sorted(
        set(added) | set(removed) | set(shifted),
        key=lambda r: (-added[r] - removed[r] - shifted[r], order.get(r, 0)),
    )
    rows: list[dict[str, Any]] = []
    for rule in rules:
        row: dict[str, Any] = {
            "rule": rule,
            "newly_fired": added[rule],
            "no_longer_fired": removed[rule],
            "moved": 0,
        }
        if rule in severities:
            previous, current = severities[rule]
            row["severity"] = {"previous": previous, "current": current}
            row["severity_changed"] = shifted[rule]
        rows.append(row)
    if score_only:
        rows.append(
            {"rule": SCORE_ONLY, "newly_fired": 0, "no_longer_fired": 0, "moved": score_only}
        )
    return rows


def _by_group(moved: pd.DataFrame, up: pd.DataFrame, group: str) -> list[dict[str, Any]]:
    names = moved[group].fillna("(not recorded)")
    counts = pd.DataFrame(
        {
            "moved": names.value_counts(),
            "moved_up": up[group].fillna("(not recorded)").value_counts(),
        }
    ).fillna(0)
    counts = counts.rename_axis("name").reset_index()
    # most moves first; equal counts by name, so that every run of the same input reads the same
    # (the rows arrive from a join, in no set order)
    counts = counts.sort_values(
        ["moved", "moved_up", "name"], ascending=[False, False, True], kind="stable"
    ).head(TOP_GROUPS)
    return [
        {
            group: str(row.name),
            "moved": int(row.moved),
            "moved_up": int(row.moved_up),
            "moved_down": int(row.moved - row.moved_up),
        }
        for row in counts.itertuples(index=False)
    ]


def moved_cases(
    changes: pd.DataFrame, severities: Mapping[str, tuple[str, str]] | None = None
) -> pd.DataFrame:
    """The moved cases, most severe move first: ids, tiers, scores and the rules that changed
    (`severities`: rule -> previous, current severity, for the rules whose severity did)."""
    severities = severities or {}
    both = changes[changes["tier"].notna() & changes["before_tier"].notna()].copy()
    both = both[both["tier"] != both["before_tier"]]
    now, before = _flag_sets(both["flags"]), _flag_sets(both["before_flags"])
    both["rules_added"] = [";".join(sorted(a - b)) for a, b in zip(now, before, strict=True)]
    both["rules_removed"] = [";".join(sorted(b - a)) for a, b in zip(now, before, strict=True)]
    both["severity_changed"] = [
        ";".join(
            f"{rule} ({severities[rule][0]} → {severities[rule][1]})"
            for rule in sorted(a & b & severities.keys())
        )
        for a, b in zip(now, before, strict=True)
    ]
    both["step"] = both["tier"].map(_RANK).astype(float) - both["before_tier"].map(_RANK).astype(
        float
    )
    both = both.sort_values(["step", "case_id"], ascending=[False, True], kind="stable")
    wanted = [
        "case_id",
        "before_tier",
        "tier",
        "before_score",
        "risk_score",
        "rules_added",
        "rules_removed",
        *[g for g in GROUPS if g in both],
        "severity_changed",  # last: the columns before it kept their places
    ]
    return both[wanted].rename(
        columns={"tier": "tier_now", "risk_score": "score_now", "before_score": "score_before"}
    )


def write_report(
    folder: Path, changes: pd.DataFrame, rule_ids: Sequence[str], current: Run, previous: Run
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(changes, rule_ids, current, previous)
    listed = moved_cases(changes, _severity_changes(current, previous))
    listed.to_csv(folder / "moved_cases.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    unknown = previous.severities is None
    (folder / "report.html").write_text(page(summary, listed, unknown), encoding="utf-8")
    return summary
