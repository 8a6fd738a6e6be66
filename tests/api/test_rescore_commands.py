"""`lindung rescore` as an analyst runs it: the installed console script on real files."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.api.servers import alive, wait_for
from tests.api.test_cli import LINDUNG, environment, run
from tests.conftest import DEFAULT_PACK

DESTINATIONS = ["MY", "SG", "KH", "SA", "TW"]
VISAS = ["work", "tourist", "visa_on_arrival", None]
EXITS = [
    ("BTM", "ferry_terminal", "sea"),
    ("CGK", "airport", "air"),
    ("DUM", "ferry_terminal", "sea"),
]


def case_rows(count: int) -> list[dict[str, str | None]]:
    """Varied departures as CSV cells: tourists and workers, some escorted by the same people."""
    rows = []
    for n in range(count):
        worker = n % 2 == 0
        exit_point, kind, mode = EXITS[n % 3] if worker else EXITS[1]
        rows.append(
            {
                "case_id": f"C-{n:04d}",
                "channel": ["port_desk", "immigration_desk", "ltsa_counter"][n % 3],
                "screened_at": f"2026-03-{1 + n % 28:02d}T{8 + n % 10:02d}:{n % 60:02d}:00+07:00",
                "person.passport_no": f"X{n:07d}",
                "person.age": str(16 + n % 40),
                "person.origin_province": ["NTB", "NTT", "Jawa Timur"][n % 3],
                "travel.exit_point": exit_point,
                "travel.exit_point_type": kind,
                "travel.mode": mode,
                "travel.destination_country": DESTINATIONS[n % 5],
                "travel.declared_purpose": "work" if worker else "tourism",
                "travel.visa_type": VISAS[n % 4] if worker else "tourist",
                "travel.ticket": ["return", "one_way"][n % 4 // 2] if worker else "return",
                "placement.occupation": "domestic_worker" if worker and n % 3 == 0 else None,
                "placement.agency_name": f"PT Agensi {n % 4}" if worker else None,
                "recruitment.channel": "individual_broker" if n % 7 == 0 else None,
                "recruitment.fee_paid_idr": str(n % 5 * 5_000_000) if worker else None,
                "links.escort_ref": f"+62 812 000{n % 9}" if n % 4 == 0 else None,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    names = list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, names)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    names = list(rows[0])
    pq.write_table(pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in names}), path)
    return path


def read_output(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=False, column_types={"flags": pa.string(), "case_id": pa.string()}
        ),
    )


def rescore(*args: str) -> dict[str, Any]:
    result = run("rescore", *args)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.fixture
def cases_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "cases.csv", case_rows(600))


@pytest.fixture
def candidate_pack(tmp_path: Path) -> Path:
    """The default pack with a stricter escort rule: two travellers with one escort suffice."""
    folder = tmp_path / "candidate"
    shutil.copytree(DEFAULT_PACK, folder)
    rule = folder / "rules" / "escort_network.yaml"
    rule.write_text(rule.read_text().replace("escort_travellers >= 3", "escort_travellers >= 2"))
    pack = folder / "pack.yaml"
    pack.write_text(pack.read_text().replace('version: "2026.11.2"', 'version: "2026.12.0"'))
    return folder


def test_csv_and_parquet_in_and_out_give_the_same_decisions(tmp_path: Path) -> None:
    rows = case_rows(600)
    source_csv = write_csv(tmp_path / "in.csv", rows)
    source_parquet = write_parquet(tmp_path / "in.parquet", rows)
    summary = rescore(
        str(source_csv), "--out", str(tmp_path / "out.parquet"), "--chunk-rows", "128"
    )
    rescore(str(source_parquet), "--out", str(tmp_path / "out.csv"), "--workers", "1")
    first, second = read_output(tmp_path / "out.parquet"), read_output(tmp_path / "out.csv")
    assert first.schema.names == [
        "case_id",
        "tier",
        "risk_score",
        "flags",
        "reasons_id",
        "reasons_en",
    ]
    assert first.column("case_id").to_pylist() == [row["case_id"] for row in rows]
    for name in first.schema.names:
        assert first.column(name).to_pylist() == second.column(name).to_pylist(), name
    assert summary["rows"] == summary["rescored"] == 600
    assert summary["rejected"] == 0
    assert sum(summary["tiers"].values()) == 600
    tiers = first.column("tier").to_pylist()
    assert {"clear", "urgent"} <= set(tiers)
    urgent = tiers.index("urgent")
    assert first.column("reasons_en")[urgent].as_py()
    assert first.column("reasons_id")[urgent].as_py() != first.column("reasons_en")[urgent].as_py()


def test_workers_reading_parquet_row_groups_themselves_give_what_one_process_gives(
    tmp_path: Path,
) -> None:
    """Workers read a Parquet file's row groups themselves, in chunks within each group: the
    decisions, escort links and rejected rows are those of the same rows read as CSV."""
    rows = case_rows(600)
    rows[75]["person.age"] = "-4"  # in the second row group
    rows[430]["travel.destination_country"] = "Malaysia"
    names = list(rows[0])
    table = pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in names})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=70)
    assert pq.ParquetFile(tmp_path / "in.parquet").metadata.num_row_groups == 9
    source_csv = write_csv(tmp_path / "in.csv", rows)
    by_groups = rescore(
        str(tmp_path / "in.parquet"),
        *("--out", str(tmp_path / "groups.parquet"), "--workers", "2", "--chunk-rows", "50"),
        *("--on-error", "skip", "--rejects", str(tmp_path / "groups-rejects.csv")),
    )
    one = rescore(
        str(source_csv),
        *("--out", str(tmp_path / "one.parquet"), "--workers", "1", "--on-error", "skip"),
        *("--rejects", str(tmp_path / "one-rejects.csv")),
    )
    assert by_groups["workers"] == 2
    assert one["workers"] == 1
    assert by_groups["rescored"] == one["rescored"] == 598
    first, second = read_output(tmp_path / "groups.parquet"), read_output(tmp_path / "one.parquet")
    assert first.to_pylist() == second.to_pylist()
    assert "C-0075" not in first.column("case_id").to_pylist()
    assert any("escort_network" in flags for flags in first.column("flags").to_pylist())
    rejects = [(tmp_path / f"{name}-rejects.csv").read_text() for name in ("groups", "one")]
    assert rejects[0] == rejects[1]
    assert "76,person.age" in rejects[0]
    assert "431,travel.destination_country" in rejects[0]


def test_every_case_gets_the_decision_lindung_screen_gives_it(tmp_path: Path) -> None:
    """The same cases one by one through the online engine (durable-rules), in order of
    screening time as desks would have seen them, and in batch: the same tier, flags, score."""
    rows = case_rows(300)
    source = write_csv(tmp_path / "in.csv", rows)
    rescore(str(source), "--out", str(tmp_path / "out.parquet"), "--chunk-rows", "70")
    batch = read_output(tmp_path / "out.parquet").to_pylist()
    in_time_order = sorted(rows, key=lambda row: str(row["screened_at"]))
    lines = "\n".join(
        json.dumps({k: v for k, v in r.items() if v is not None}) for r in in_time_order
    )
    result = run("screen", "-", stdin=lines)
    assert result.returncode == 0, result.stderr
    online = {d["case_id"]: d for d in map(json.loads, result.stdout.splitlines())}
    assert len(online) == len(batch) == 300
    for decided in batch:
        alone = online[decided["case_id"]]
        assert decided["tier"] == alone["tier"], decided["case_id"]
        assert decided["flags"] == ";".join(f["rule_id"] for f in alone["flags"])
        assert decided["risk_score"] == alone["risk_score"]
    assert {d["tier"] for d in batch} >= {"clear", "urgent"}
    assert any("escort_network" in d["flags"] for d in batch)


def test_a_bad_row_stops_the_run_and_leaves_no_output(tmp_path: Path) -> None:
    rows = case_rows(300)
    rows[200]["travel.visa_type"] = "tourst"
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.parquet"
    result = run("rescore", str(source), "--out", str(out), "--chunk-rows", "64")
    assert result.returncode == 1
    assert "row 201: travel.visa_type: 'tourst' is not allowed" in result.stderr
    assert "did you mean tourist?" in result.stderr
    assert list(tmp_path.iterdir()) == [source]


def test_bad_rows_are_skipped_into_the_rejects_file_never_dropped(tmp_path: Path) -> None:
    rows = case_rows(300)
    rows[10]["person.age"] = "-4"
    rows[250]["screened_at"] = None
    rows[251]["travel.destination_country"] = "Malaysia"
    source = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    summary = rescore(str(source), "--out", str(out), "--on-error", "skip", "--chunk-rows", "100")
    assert summary["rescored"] == 297
    assert summary["rejected"] == 3
    with Path(summary["rejects_file"]).open(newline="") as stream:
        rejects = list(csv.DictReader(stream))
    assert [(r["row"], r["column"]) for r in rejects] == [
        ("11", "person.age"),
        ("251", "screened_at"),
        ("252", "travel.destination_country"),
    ]
    assert rejects[0]["problem"] == "must be at least 0, got '-4'"
    kept = read_output(out).column("case_id").to_pylist()
    assert len(kept) == 297
    assert "C-0010" not in kept


def test_unknown_columns_and_files_are_refused_before_any_work(tmp_path: Path) -> None:
    rows = [{**row, "travel.visa_typ": "work"} for row in case_rows(3)]
    result = run(
        "rescore", str(write_csv(tmp_path / "in.csv", rows)), "--out", str(tmp_path / "o.csv")
    )
    assert result.returncode == 1
    assert "travel.visa_typ: unknown field, did you mean travel.visa_type?" in result.stderr
    twice = tmp_path / "twice.csv"
    twice.write_text("case_id,channel,screened_at,channel\nC-1,port_desk,,port_desk\n")
    result = run("rescore", str(twice), "--out", str(tmp_path / "o.csv"))
    assert result.returncode == 1
    assert "Error: twice.csv: channel: column appears more than once" in result.stderr
    result = run("rescore", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.xlsx"))
    assert result.returncode == 2
    assert "expected a .csv or .parquet file" in result.stderr


def test_a_file_with_a_byte_order_mark_is_read_as_without(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "plain.csv", case_rows(3))
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    rescore(str(plain), "--out", str(tmp_path / "plain.parquet"))
    rescore(str(marked), "--out", str(tmp_path / "marked.parquet"))
    assert read_output(tmp_path / "marked.parquet").equals(read_output(tmp_path / "plain.parquet"))


def test_a_file_that_is_not_utf8_is_refused_naming_the_encoding(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        "case_id,channel,screened_at\nC-1,port_desk,Selasa pagi é\n".encode("cp1252")
    )
    result = run("rescore", str(source), "--out", str(tmp_path / "o.csv"))
    assert result.returncode == 1
    assert "Error: in.csv: not UTF-8 text (save the CSV as UTF-8)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_progress_bar_shows_each_stage(tmp_path: Path, cases_csv: Path) -> None:
    result = run(
        "rescore",
        str(cases_csv),
        "--out",
        str(tmp_path / "o.parquet"),
        "--progress",
        "--chunk-rows",
        "100",
    )
    assert result.returncode == 0, result.stderr
    assert "linking escorts" in result.stderr
    assert "rescoring" in result.stderr
    assert "100%" in result.stderr


def _moves(before: pa.Table, after: pa.Table) -> int:
    old = dict(zip(before["case_id"].to_pylist(), before["tier"].to_pylist(), strict=True))
    return sum(
        old[case] != tier
        for case, tier in zip(after["case_id"].to_pylist(), after["tier"].to_pylist(), strict=True)
    )


def test_compare_to_a_previous_output_reports_what_moved_and_why(
    tmp_path: Path, cases_csv: Path, candidate_pack: Path
) -> None:
    previous = tmp_path / "live.parquet"
    rescore(str(cases_csv), "--out", str(previous))
    out = tmp_path / "candidate.parquet"
    summary = rescore(
        str(cases_csv),
        "--out",
        str(out),
        "--rule-pack",
        str(candidate_pack),
        "--compare-to",
        str(previous),
    )
    moved = _moves(read_output(previous), read_output(out))
    assert moved > 0
    report = Path(summary["report"]["folder"])
    assert report == tmp_path / "candidate-report"
    figures = json.loads((report / "summary.json").read_text())
    assert figures["cases"]["compared"] == 600
    assert figures["cases"]["moved"] == moved == figures["cases"]["moved_up"]
    assert figures["rules"][0] == {
        "rule": "escort_network",
        "newly_fired": moved,
        "no_longer_fired": 0,
        "moved": 0,
    }
    assert (
        sum(figures["transitions"][tier]["urgent"] for tier in ("clear", "review", "high")) == moved
    )
    assert sum(row["moved"] for row in figures["by"]["channel"]) == moved
    with (report / "moved_cases.csv").open(newline="") as stream:
        listed = list(csv.DictReader(stream))
    assert len(listed) == moved
    assert all(
        row["tier_now"] == "urgent" and row["rules_added"] == "escort_network" for row in listed
    )
    page = (report / "report.html").read_text()
    assert "Perpindahan tingkat / Tier transitions" in page
    assert "<svg" in page
    assert listed[0]["case_id"] in page


def test_the_same_flags_listed_in_another_order_are_no_change(
    tmp_path: Path, cases_csv: Path
) -> None:
    """Flags are a set of rules: a previous output that lists a case's flags in another order
    (sorted in a spreadsheet, or by a pack that ranks a rule otherwise) did not change them."""
    previous = tmp_path / "live.csv"
    rescore(str(cases_csv), "--out", str(previous))
    with previous.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    listed = [{**row, "flags": ";".join(sorted(row["flags"].split(";")))} for row in rows]
    assert sum(a["flags"] != b["flags"] for a, b in zip(rows, listed, strict=True)) > 100
    # and one case whose flags did change, in the same tier: the previous run lacked one
    changed = next(
        row for row in listed if row["tier"] == "high" and len(row["flags"].split(";")) > 1
    )
    changed["flags"] = changed["flags"].split(";", 1)[1]
    summary = rescore(
        str(cases_csv),
        *("--out", str(tmp_path / "again.csv")),
        *("--compare-to", str(write_csv(tmp_path / "sorted.csv", listed))),
    )
    report = Path(summary["report"]["folder"])
    figures = json.loads((report / "summary.json").read_text())
    assert figures["cases"]["moved"] == 0
    assert figures["cases"]["flags_changed_same_tier"] == 1
    assert summary["report"]["flags_changed_same_tier"] == 1
    page = (report / "report.html").read_text()
    assert "<th>Tanda berubah, tingkat sama / flags changed, same tier</th><td>1</td>" in page


def test_a_previous_output_is_named_so_that_an_analyst_can_find_it(
    tmp_path: Path, cases_csv: Path, candidate_pack: Path
) -> None:
    """Two previous outputs of one name (March's out.csv, April's) are told apart: by the path
    given and the SHA-256 of the file; a Parquet output also by the pack and model it was made
    with, as the report names this run."""
    march, april = tmp_path / "march" / "out.csv", tmp_path / "april" / "out.csv"
    for folder in (march.parent, april.parent):
        folder.mkdir()
    rescore(str(cases_csv), "--out", str(march))
    rescore(str(cases_csv), "--out", str(april), "--rule-pack", str(candidate_pack))
    named = set()
    for previous in (march, april):
        summary = rescore(
            str(cases_csv), "--out", str(tmp_path / "now.csv"), "--compare-to", str(previous)
        )
        report = Path(summary["report"]["folder"])
        figures = json.loads((report / "summary.json").read_text())
        sha256 = hashlib.sha256(previous.read_bytes()).hexdigest()
        assert figures["compared"]["previous"] == f"{previous} (SHA-256 {sha256})"
        assert figures["compared"]["previous_file"] == {"name": str(previous), "sha256": sha256}
        page = (report / "report.html").read_text()
        assert f"compared with {previous} (SHA-256 {sha256})" in page
        named.add(figures["compared"]["previous"])
    assert len(named) == 2

    live = tmp_path / "live.parquet"
    rescore(str(cases_csv), "--out", str(live))
    summary = rescore(
        str(cases_csv),
        *("--out", str(tmp_path / "candidate.csv"), "--rule-pack", str(candidate_pack)),
        *("--compare-to", str(live)),
    )
    figures = json.loads((Path(summary["report"]["folder"]) / "summary.json").read_text())
    pack, model = figures["compared"]["current"].split(" + ")
    assert pack == "lindung-default@2026.12.0"
    sha256 = hashlib.sha256(live.read_bytes()).hexdigest()
    assert figures["compared"]["previous"] == (
        f"lindung-default@2026.11.2 + {model} ({live}, SHA-256 {sha256})"
    )


def test_a_report_from_parquet_row_groups_is_the_report_from_csv(
    tmp_path: Path, candidate_pack: Path
) -> None:
    """Workers that read row groups in several chunks send each part back as one, with the
    details the report reads: the same report as one process reading CSV."""
    rows = case_rows(600)
    names = list(rows[0])
    table = pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in names})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=150)
    source_csv = write_csv(tmp_path / "in.csv", rows)
    previous = tmp_path / "live.parquet"
    rescore(str(source_csv), "--out", str(previous), "--workers", "1")
    figures = []
    for source, out, extra in (
        (tmp_path / "in.parquet", tmp_path / "groups.parquet", ("--chunk-rows", "40")),
        (source_csv, tmp_path / "one.parquet", ("--workers", "1")),
    ):
        summary = rescore(
            str(source),
            *("--out", str(out), "--rule-pack", str(candidate_pack)),
            *("--compare-to", str(previous), *extra),
        )
        figures.append(json.loads((Path(summary["report"]["folder"]) / "summary.json").read_text()))
    assert figures[0]["cases"]["moved"] > 0
    assert figures[0] == figures[1]


def test_a_baseline_pack_on_the_same_input_reports_the_same_moves(
    tmp_path: Path, cases_csv: Path, candidate_pack: Path
) -> None:
    previous = tmp_path / "live.parquet"
    rescore(str(cases_csv), "--out", str(previous))
    summary = rescore(
        str(cases_csv),
        "--out",
        str(tmp_path / "candidate.csv"),
        "--rule-pack",
        str(candidate_pack),
        "--baseline-rule-pack",
        str(DEFAULT_PACK),
        "--report",
        str(tmp_path / "backtest"),
    )
    figures = json.loads((tmp_path / "backtest" / "summary.json").read_text())
    moved = _moves(read_output(previous), read_output(tmp_path / "candidate.csv"))
    assert figures["cases"]["moved"] == moved == summary["report"]["moved"]
    assert "2026.11.2" in figures["compared"]["previous"]
    assert "2026.12.0" in figures["compared"]["current"]


LOWERED = "work_intent_without_work_visa"


def test_a_rule_firing_with_another_severity_is_named_as_the_cause(
    tmp_path: Path, cases_csv: Path, model_dir: Path
) -> None:
    """A pack edit lowers a rule's severity (high to warning): the cases it flags move down with
    the same flags. The report names the rule and both severities, compared with a previous
    Parquet output (which records them) or with the baseline pack, and counts none of those
    moves as the risk score's."""
    candidate = tmp_path / "candidate"
    shutil.copytree(DEFAULT_PACK, candidate)
    rule = candidate / "rules" / f"{LOWERED}.yaml"
    rule.write_text(rule.read_text().replace("severity: high", "severity: warning", 1))
    pack = candidate / "pack.yaml"
    pack.write_text(pack.read_text().replace('version: "2026.11.2"', 'version: "2026.12.0"'))
    # non-info rules are model inputs in order of severity: the pack needs a model of its own
    model = tmp_path / "model"
    env = {"LINDUNG_RULE_PACK": str(candidate)}
    trained = run("model", "train", "--out", str(model), "--rows", "10000", env=env)
    assert trained.returncode == 0, trained.stderr
    live = tmp_path / "live.parquet"
    rescore(str(cases_csv), "--out", str(live))
    candidate_run = ("--rule-pack", str(candidate), "--model", str(model))
    out = tmp_path / "candidate.parquet"
    compared = rescore(str(cases_csv), "--out", str(out), *candidate_run, "--compare-to", str(live))
    rescore(
        str(cases_csv),
        *("--out", str(tmp_path / "backtest.parquet"), *candidate_run),
        *("--baseline-rule-pack", str(DEFAULT_PACK), "--baseline-model", str(model_dir)),
    )

    before = {row["case_id"]: row for row in read_output(live).to_pylist()}
    moved = {
        row["case_id"]: (
            set(before[row["case_id"]]["flags"].split(";")),
            set(row["flags"].split(";")),
        )
        for row in read_output(out).to_pylist()
        if row["tier"] != before[row["case_id"]]["tier"]
    }
    lowered = {case for case, (was, now) in moved.items() if LOWERED in was & now}
    same_flags = {case for case, (was, now) in moved.items() if was == now} - lowered
    assert len(lowered) > 50
    found = []
    for report in (Path(compared["report"]["folder"]), tmp_path / "backtest-report"):
        figures = json.loads((report / "summary.json").read_text())
        [row] = [row for row in figures["rules"] if row["rule"] == LOWERED]
        assert row["severity"] == {"previous": "high", "current": "warning"}
        assert row["severity_changed"] == len(lowered)
        score_only = [r["moved"] for r in figures["rules"] if r["rule"] == "(risk score only)"]
        assert sum(score_only) == len(same_flags)
        with (report / "moved_cases.csv").open(newline="") as stream:
            listed = {row["case_id"]: row for row in csv.DictReader(stream)}
        assert {case for case, row in listed.items() if row["severity_changed"]} == lowered
        assert listed[min(lowered)]["severity_changed"] == f"{LOWERED} (high → warning)"
        page = (report / "report.html").read_text()
        assert f"<td>{LOWERED}</td>" in page
        assert f"high → warning: {len(lowered)}" in page
        assert "does not record its rules' severities" not in page
        found.append(figures["rules"])
    assert found[0] == found[1]

    # a CSV file cannot record them: the report says that it cannot tell
    live_csv = tmp_path / "live.csv"
    rescore(str(cases_csv), "--out", str(live_csv))
    unknown = rescore(
        str(cases_csv),
        *("--out", str(tmp_path / "again.csv"), *candidate_run, "--compare-to", str(live_csv)),
    )
    page = (Path(unknown["report"]["folder"]) / "report.html").read_text()
    assert "does not record its rules' severities" in page


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A local Dask cluster of two worker processes."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield str(cluster.scheduler_address)


def test_dask_gives_the_same_output_as_the_local_run(
    tmp_path: Path, cases_csv: Path, dask_scheduler: str
) -> None:
    local = rescore(str(cases_csv), "--out", str(tmp_path / "local.parquet"), "--chunk-rows", "97")
    remote = rescore(
        str(cases_csv),
        "--out",
        str(tmp_path / "dask.parquet"),
        "--chunk-rows",
        "97",
        "--engine",
        "dask",
        "--scheduler",
        dask_scheduler,
    )
    assert remote["engine"] == "dask"
    assert remote["workers"] == 2
    assert remote["tiers"] == local["tiers"]
    assert read_output(tmp_path / "dask.parquet").equals(read_output(tmp_path / "local.parquet"))


def test_dask_without_a_scheduler_is_a_usage_error(tmp_path: Path, cases_csv: Path) -> None:
    result = run("rescore", str(cases_csv), "--out", str(tmp_path / "o.csv"), "--engine", "dask")
    assert result.returncode == 2
    assert "--engine dask needs --scheduler" in result.stderr


def with_another_rule(folder: Path) -> Path:
    """`folder`'s pack with one more non-info rule: one more model input than the model knows."""
    text = (folder / "rules" / "unlicensed_agency.yaml").read_text(encoding="utf-8")
    again = text.replace("id: unlicensed_agency", "id: unlicensed_agency_again", 1)
    (folder / "rules" / "unlicensed_agency_again.yaml").write_text(again, encoding="utf-8")
    return folder


def test_a_candidate_the_service_model_does_not_fit_is_refused_never_trained_for(
    tmp_path: Path, model_dir: Path, candidate_pack: Path
) -> None:
    """LINDUNG_MODEL_DIR holds the service's reference model: a candidate pack with other model
    inputs gets an error that says what to do, and the service's model is left as it was."""
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    kept = {path.name: path.read_bytes() for path in model.iterdir()}
    candidate = with_another_rule(candidate_pack)
    env = {"LINDUNG_MODEL_DIR": str(model), "LINDUNG_TRAINING_ROWS": "10000"}
    source = write_csv(tmp_path / "cases.csv", case_rows(20))
    out = tmp_path / "out.csv"
    refused = run("rescore", str(source), "--out", str(out), "--rule-pack", str(candidate), env=env)
    assert refused.returncode == 1, refused.stderr
    assert "training" not in refused.stderr
    [said] = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert said.startswith(f"Error: model: {model}: "), said
    assert "lindung-default@2026.12.0" in said
    assert "pass --model a model trained for it" in said
    assert "lindung model train --out" in said
    assert not out.exists()
    screened = run("screen", "--rule-pack", str(candidate), stdin="{}", env=env)
    assert screened.returncode == 1
    assert "lindung-default@2026.12.0" in screened.stderr
    assert {path.name: path.read_bytes() for path in model.iterdir()} == kept

    own = tmp_path / "candidate-model"
    train = ("model", "train", "--out", str(own), "--rows", "10000")
    trained = run(*train, env={"LINDUNG_RULE_PACK": str(candidate)})
    assert trained.returncode == 0, trained.stderr
    summary = rescore(
        str(source), "--out", str(out), "--rule-pack", str(candidate), "--model", str(own)
    )
    assert summary["rescored"] == 20
    assert {path.name: path.read_bytes() for path in model.iterdir()} == kept


def children(pid: int) -> set[int]:
    return {
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    }


def test_a_killed_rescore_leaves_no_worker_behind(tmp_path: Path) -> None:
    """Killed (a scheduler's timeout, kill -9), the command cannot stop its worker processes:
    they notice and end, rather than live on, idle, each holding a model."""
    cases = write_csv(tmp_path / "cases.csv", case_rows(20_000))
    out, command = tmp_path / "out.csv", [LINDUNG, "rescore", str(cases), "--workers", "2"]
    with subprocess.Popen(
        [*command, "--chunk-rows", "100", "--out", str(out)],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as rescoring:
        deadline = time.monotonic() + 120
        while not (workers := children(rescoring.pid)):
            assert rescoring.poll() is None, "it ended before its workers were seen"
            assert time.monotonic() < deadline, "no worker process started"
            time.sleep(0.01)
        os.kill(rescoring.pid, signal.SIGSTOP)  # it can neither finish nor stop its workers
        os.kill(rescoring.pid, signal.SIGKILL)
        assert rescoring.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while left := [pid for pid in workers if alive(pid)]:
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"worker processes {left} outlived their command by 30 s")
        time.sleep(0.1)
    assert not out.exists()


# A command that starts a worker and ends before the worker has set itself up (killed): the
# worker's parent is already the process that adopted it when it looks.
ENDED_BEFORE_SET_UP = """
import os, sys, time
from api import rescore
command = os.getpid()
worker = os.fork()
if worker == 0:
    while os.getppid() == command:
        time.sleep(0.01)
    rescore._install(None, command)
    time.sleep(60)
    os._exit(0)
print(worker, flush=True)
"""


def test_a_worker_whose_command_was_killed_before_it_set_itself_up_ends_too() -> None:
    """Under load, a worker can be slower to start than its command is to be killed (seen in
    a loaded run: a worker lived on past the test above)."""
    ran = subprocess.run(
        [sys.executable, "-c", ENDED_BEFORE_SET_UP],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=30,  # the answer ends when the worker does: it holds the same pipes
        check=True,
    )
    assert not ran.stderr  # such as the worker failing to set itself up
    worker = int(ran.stdout)
    try:
        wait_for(lambda: not alive(worker), seconds=20)
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)
