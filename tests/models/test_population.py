"""The synthetic reference population, checked for what a user of the data would notice."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from api.settings import bundled
from engine.case import CASE_FIELDS
from engine.case_input import parse_case
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from engine.screening import Screener
from models import population
from models.population import LABEL, generate, to_records

Columns = dict[str, np.ndarray]
SEED = 1
IN_PROCESS = ("p3mi", "g2g", "g2p", "spsk", "self_placed")
PASAL_13 = population.PASAL_13
POPULATION_MD = Path(population.__file__).with_name("POPULATION.md")


@pytest.fixture(scope="module")
def cases() -> Columns:
    return generate(60_000, SEED)


@pytest.fixture(scope="module")
def many() -> Columns:
    """A larger population, for marginals that need precision (about 2 s to generate)."""
    return generate(200_000, 2)


def digest(columns: Columns) -> str:
    text = repr([columns[path].tolist() for path in sorted(columns)])
    return hashlib.sha256(text.encode()).hexdigest()


def known(column: np.ndarray) -> np.ndarray:
    if column.dtype == object:
        return np.not_equal(column, None)
    if column.dtype.kind == "M":
        return ~np.isnat(column)
    return ~np.isnan(column)


def procedural_workers(columns: Columns) -> np.ndarray:
    """What an analyst would count as placements: declared work, and not non-procedural."""
    return (columns["travel.declared_purpose"] == "work") & ~columns[LABEL]


# --- the same seed, the same people --------------------------------------------------------------


def test_the_same_seed_gives_identical_columns_and_another_seed_other_ones() -> None:
    first, again, other = generate(5_000, 7), generate(5_000, 7), generate(5_000, 8)
    assert digest(first) == digest(again)
    assert digest(first) != digest(other)
    assert first[LABEL].tolist() != other[LABEL].tolist()
    assert first["screened_at"].tolist() != other["screened_at"].tolist()


def test_the_same_seed_gives_the_same_columns_in_another_process() -> None:
    script = (
        "import hashlib, sys; from models.population import generate; "
        "c = generate(3000, 11); "
        "print(hashlib.sha256(repr([c[p].tolist() for p in sorted(c)]).encode()).hexdigest())"
    )
    root = Path(population.__file__).parents[1]
    found = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert found == {digest(generate(3_000, 11))}


def test_zero_rows_is_an_empty_population() -> None:
    empty = generate(0, SEED)
    assert set(empty) == {*CASE_FIELDS, LABEL}
    assert all(len(column) == 0 for column in empty.values())
    assert to_records(empty) == []


# --- columns as the rest of the code expects them ------------------------------------------------


def test_every_case_field_is_a_column_and_the_label_is_boolean(cases: Columns) -> None:
    assert set(cases) == {*CASE_FIELDS, LABEL}
    assert {len(column) for column in cases.values()} == {60_000}
    assert cases[LABEL].dtype == np.bool_


@pytest.mark.parametrize("path", list(CASE_FIELDS))
def test_each_column_follows_the_conventions_of_its_kind(cases: Columns, path: str) -> None:
    spec, column = CASE_FIELDS[path], cases[path]
    present = column[known(column)]
    assert len(present) > 0
    if path not in {"case_id", "channel", "screened_at", "person.sex"}:
        assert len(present) < len(column)  # "unknown" occurs in every other field
    if spec.kind in {"enum", "text", "country", "bool", "countries"}:
        assert column.dtype == object
    if spec.kind == "enum":
        assert set(present.tolist()) <= set(spec.values)
    elif spec.kind == "text":
        assert all(type(value) is str and value.strip() for value in present.tolist())
    elif spec.kind == "country":
        assert all(re.fullmatch(r"[A-Z]{2}", value) for value in present.tolist())
    elif spec.kind == "bool":
        assert {type(value) for value in present.tolist()} == {bool}
    elif spec.kind == "countries":
        assert all(
            type(value) is tuple and all(re.fullmatch(r"[A-Z]{2}", c) for c in value)
            for value in present.tolist()
        )
    elif spec.kind in {"int", "number"}:
        assert column.dtype == np.float64
        assert (present >= 0).all()
        assert np.array_equal(np.round(present, 2), present)
        if spec.kind == "int":
            assert np.array_equal(np.floor(present), present)
    elif spec.kind == "date":
        assert column.dtype == np.dtype("datetime64[D]")
    elif spec.kind == "datetime":
        assert column.dtype == np.dtype("datetime64[s]")


def test_ages_group_sizes_and_dates_are_plausible(cases: Columns) -> None:
    age = cases["person.age"][known(cases["person.age"])]
    assert age.min() >= 0
    assert age.max() <= 120
    assert (cases["travel.group_size"][known(cases["travel.group_size"])] >= 1).all()
    day = cases["screened_at"].astype("datetime64[D]")
    born = known(cases["person.birth_date"])
    assert (cases["person.birth_date"][born] <= day[born]).all()
    issued = known(cases["travel.passport_issued_on"])
    assert (cases["travel.passport_issued_on"][issued] <= day[issued]).all()
    both = np.flatnonzero(born & known(cases["person.age"]))[:500]
    ages = [
        _years(date.fromisoformat(str(b)), date.fromisoformat(str(d)))
        for b, d in zip(cases["person.birth_date"][both], day[both], strict=True)
    ]
    assert ages == cases["person.age"][both].astype(int).tolist()


def _years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def test_screenings_spread_over_2024_to_october_2026_in_screening_order(cases: Columns) -> None:
    at = cases["screened_at"]
    assert at.min() >= np.datetime64("2024-01-01T00:00:00")
    assert at.max() < np.datetime64("2026-11-01T00:00:00")
    assert (np.diff(at.astype(np.int64)) >= 0).all()
    months = set(at.astype("datetime64[M]").tolist())
    assert len(months) == 34  # every month from January 2024 to October 2026


def test_case_ids_are_unique_and_identifiers_are_invented(cases: Columns) -> None:
    ids = cases["case_id"].tolist()
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rf"SYN-{SEED}-\d+", case_id) for case_id in ids)
    patterns = {
        "person.full_name": r"Nama-\d+",
        "person.nik": rf"NIK-{SEED}-\d+",
        "person.passport_no": rf"PAS-{SEED}-\d+",
    }
    for path, pattern in patterns.items():
        values = cases[path][known(cases[path])].tolist()
        assert all(re.fullmatch(pattern, value) for value in values), path
        assert len(set(values)) == len(values), path


def test_records_validate_as_case_records_and_keep_every_value(cases: Columns) -> None:
    rows = range(0, 60_000, 20)  # 3,000 cases from the whole period
    records = to_records(cases, rows)
    json.dumps(records)  # JSON-ready as it is
    parsed = [parse_case(record) for record in records]
    for path in ("channel", "travel.visa_type", "travel.destination_country", "person.sex"):
        assert [case.value(path) for case in parsed] == cases[path][rows].tolist(), path
    fee = cases["recruitment.fee_paid_idr"][rows]
    assert [case.value("recruitment.fee_paid_idr") for case in parsed] == [
        None if np.isnan(value) else value for value in fee.tolist()
    ]
    transit = [case.value("travel.transit_countries") for case in parsed]
    assert transit == [
        None if value is None else list(value)
        for value in cases["travel.transit_countries"][rows].tolist()
    ]
    assert all(LABEL not in record for record in records)


def test_records_for_chosen_rows_come_in_the_order_asked(cases: Columns) -> None:
    records = to_records(cases, [7, 3])
    assert [record["case_id"] for record in records] == [
        cases["case_id"][7],
        cases["case_id"][3],
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", records[0]["screened_at"])


# --- calibration to the domain figures -----------------------------------------------------------


def test_prevalence_is_in_the_chosen_range(many: Columns) -> None:
    assert 0.08 <= many[LABEL].mean() <= 0.10


def test_about_62_percent_of_placed_workers_are_women(many: Columns) -> None:
    workers = procedural_workers(many)
    assert abs((many["person.sex"][workers] == "F").mean() - 0.62) <= 0.03


def test_placements_go_to_the_destinations_of_2023_in_the_same_order(many: Columns) -> None:
    destinations = Counter(many["travel.destination_country"][procedural_workers(many)].tolist())
    top = [country for country, _count in destinations.most_common(7)]
    assert top == ["TW", "MY", "HK", "KR", "JP", "SG", "SA"]


def test_placements_come_from_the_provinces_of_2023_in_the_same_order(many: Columns) -> None:
    origins = Counter(many["person.origin_province"][procedural_workers(many)].tolist())
    del origins[None]
    top = [province for province, _count in origins.most_common(5)]
    assert top == ["Jawa Timur", "Jawa Tengah", "Jawa Barat", "Nusa Tenggara Barat", "Lampung"]


def test_domestic_work_caregiving_and_plantations_lead_in_that_order(many: Columns) -> None:
    jobs = Counter(many["placement.occupation"][procedural_workers(many)].tolist())
    assert jobs["domestic_worker"] > jobs["caregiver"] > jobs["plantation_worker"]


def test_batam_sees_far_more_non_procedural_departures_than_karimun(many: Columns) -> None:
    exits = Counter(many["travel.exit_point"][many[LABEL]].tolist())
    assert exits["BTM"] > 5 * exits["TBK"]
    assert 0.5 < exits["BTM"] / exits["CGK"] < 2


# --- sex is for the fairness audit only ----------------------------------------------------------


def test_sex_is_generated_for_everyone_and_follows_the_occupation(many: Columns) -> None:
    sex, job = many["person.sex"], many["placement.occupation"]
    assert set(sex.tolist()) == {"F", "M"}
    assert (sex[job == "domestic_worker"] == "F").mean() > 0.9
    for male_job in ("construction", "fishing_crew", "plantation_worker"):
        assert (sex[job == male_job] == "M").mean() > 0.75, male_job


def test_the_label_does_not_depend_on_sex_within_an_occupation(many: Columns) -> None:
    sex, job, label = many["person.sex"], many["placement.occupation"], many[LABEL]
    for occupation in ("manufacturing", "plantation_worker", "hospitality", "caregiver"):
        women, men = (job == occupation) & (sex == "F"), (job == occupation) & (sex == "M")
        pooled = label[women | men].mean()
        error = np.sqrt(pooled * (1 - pooled) * (1 / women.sum() + 1 / men.sum()))
        assert abs(label[women].mean() - label[men].mean()) < 3 * error + 0.005, occupation


def test_women_and_men_with_the_same_job_and_record_are_equally_at_risk(many: Columns) -> None:
    """Mantel-Haenszel over occupation x twenty bands of the risk the record shows: sex adds
    nothing. (A label with +0.2 log-odds for women fails this at 200,000 rows.)"""
    sex, job, label = many["person.sex"], many["placement.occupation"], many[LABEL]
    risk = population.logit(many, np.zeros(len(label), dtype=bool))
    band = np.digitize(risk, np.quantile(risk, np.linspace(0, 1, 21)[1:-1]))
    excess = variance = together = apart = 0.0
    for occupation in CASE_FIELDS["placement.occupation"].values:
        rows = job == occupation
        level, woman, at_risk = band[rows], sex[rows] == "F", label[rows]

        def count(mask: np.ndarray, level: np.ndarray = level) -> np.ndarray:
            return np.bincount(level, weights=mask, minlength=20).astype(float)

        n_women, n_men = count(woman), count(~woman)
        women_at_risk, men_at_risk = count(woman & at_risk), count(~woman & at_risk)
        n, cases_at_risk = n_women + n_men, women_at_risk + men_at_risk
        both = (n_women > 0) & (n_men > 0)
        n_women, n_men, n = n_women[both], n_men[both], n[both]
        women_at_risk, men_at_risk = women_at_risk[both], men_at_risk[both]
        cases_at_risk = cases_at_risk[both]
        excess += np.sum(women_at_risk - n_women * cases_at_risk / n)
        variance += np.sum(
            n_women * n_men * cases_at_risk * (n - cases_at_risk) / (n * n * (n - 1))
        )
        together += np.sum(women_at_risk * (n_men - men_at_risk) / n)
        apart += np.sum((n_women - women_at_risk) * men_at_risk / n)
    assert abs(excess / np.sqrt(variance)) < 3
    assert 0.87 < together / apart < 1.15  # the common odds ratio, women to men


def test_neither_sex_nor_origin_moves_the_stated_log_odds(cases: Columns) -> None:
    rng = np.random.default_rng(0)
    ring = np.zeros(len(cases[LABEL]), dtype=bool)
    shuffled = dict(cases)
    for path in ("person.sex", "person.origin_province"):
        shuffled[path] = rng.permutation(cases[path])
    assert np.array_equal(population.logit(cases, ring), population.logit(shuffled, ring))


# --- risk signals --------------------------------------------------------------------------------


def test_sea_crossings_to_malaysia_to_work_without_a_work_visa_are_mostly_non_procedural(
    many: Columns,
) -> None:
    visa = many["travel.visa_type"]
    crossing = (
        (many["travel.mode"] == "sea")
        & (many["travel.destination_country"] == "MY")
        & (many["travel.declared_purpose"] == "work")
        & known(visa)
        & (visa != "work")
    )
    assert crossing.sum() > 200
    assert many[LABEL][crossing].mean() > max(0.6, 6 * many[LABEL].mean())


def test_fully_documented_placements_are_rarely_non_procedural(many: Columns) -> None:
    documented = (
        np.isin(many["placement.scheme"], IN_PROCESS)
        & (many["travel.visa_type"] == "work")
        & known(many["placement.job_order_no"])
        & np.all([many[path] == True for path in PASAL_13], axis=0)  # noqa: E712
        & (many["placement.documents.bpjs"] == True)  # noqa: E712
    )
    assert documented.sum() > 3_000
    assert many[LABEL][documented].mean() < many[LABEL].mean() / 10


def test_a_sparse_record_is_ordinary_and_hiding_says_little(many: Columns) -> None:
    label = many[LABEL]
    # fields every story records: whether they are unknown must not depend on the label
    for path in ("interview.reports_coercion", "person.prior_deportation", "travel.escort_present"):
        unknown = ~known(many[path])
        assert unknown[~label].mean() > 0.3, path  # desks skip whole sections, for everyone
        assert abs(unknown[label].mean() - unknown[~label].mean()) < 0.15, path
    paid_by = ~known(many["travel.ticket_paid_by"])
    assert abs(paid_by[label].mean() - paid_by[~label].mean()) < 0.05  # not recorded: no signal
    origin_unknown = ~known(many["person.origin_province"])
    assert abs(origin_unknown[label].mean() - origin_unknown[~label].mean()) < 0.02


def test_escorts_link_small_rings_of_non_procedural_travellers_and_some_tour_groups(
    cases: Columns,
) -> None:
    linked: dict[str, list[int]] = defaultdict(list)
    for row, escort in enumerate(cases["links.escort_ref"].tolist()):
        if escort is not None:
            linked[escort].append(row)
    shared = {escort: rows for escort, rows in linked.items() if len(rows) >= 3}
    assert len(shared) > 50
    tours, rings = [], []
    for rows in shared.values():
        at = cases["screened_at"][rows]
        if (cases["travel.group_size"][rows] >= 10).any():  # tour groups: 10 people or more
            tours.append(rows)
        else:
            rings.append(rows)
            assert len(rows) <= 8
            assert at.max() - at.min() <= np.timedelta64(4, "D")
    in_rings = np.concatenate(rings)
    assert cases[LABEL][in_rings].mean() > 0.8
    assert tours  # a guide's reference is sometimes recorded for a whole tour group
    assert cases[LABEL][np.concatenate(tours)].mean() < 0.2


def test_licences_come_from_the_sample_registry_and_match_the_story(
    cases: Columns, registry: AgencyRegistry
) -> None:
    with bundled("registry", "sample.csv").open(encoding="utf-8") as file:
        rows = [tuple(row.values()) for row in csv.DictReader(file)]
    assert rows == list(population.LICENCES)
    licence = cases["placement.agency_license_no"]
    day = cases["screened_at"].astype("datetime64[D]")

    def active_share(rows: np.ndarray) -> float:
        status = [
            registry.status_on(number, date.fromisoformat(str(on)))
            for number, on in zip(licence[rows], day[rows], strict=True)
        ]
        return status.count("active") / len(status)

    stated = known(licence)
    workers = np.flatnonzero(stated & procedural_workers(cases))
    non_procedural = np.flatnonzero(stated & cases[LABEL])
    assert active_share(workers) > 0.93
    assert active_share(non_procedural) < 0.6


# --- the rules and a score -----------------------------------------------------------------------


def test_the_rules_catch_many_non_procedural_departures_but_not_all(
    pack: RulePack, registry: AgencyRegistry
) -> None:
    columns = generate(5_000, 3)
    screener = Screener(
        pack, pseudonymiser=Pseudonymiser("test-key"), registry=registry, backend="reference"
    )
    tiers = np.array([screener.screen(parse_case(record)).tier for record in to_records(columns)])
    label = columns[LABEL]
    flagged = np.isin(tiers, ("high", "urgent"))
    recall = (flagged & label).sum() / label.sum()
    assert 0.5 < recall < 0.85
    assert label[flagged].mean() > 3 * label.mean()
    # a score that reads the same record, at the same number of reviews, finds more of them
    score = population.logit(columns, np.zeros(len(label), dtype=bool))
    top = np.argsort(-score, kind="stable")[: flagged.sum()]
    assert label[top].sum() > 1.1 * (flagged & label).sum()


def test_population_md_states_the_exact_log_odds() -> None:
    text = POPULATION_MD.read_text(encoding="utf-8")
    stated = {
        name: float(value)
        for name, value in re.findall(r"^\| `(\w+)` \| ([+-]?[0-9.]+) \|", text, re.MULTILINE)
    }
    assert stated == {"intercept": population.INTERCEPT, **population.WEIGHTS}
    shares = dict(zip(population.STORIES, population.STORY_SHARES, strict=True))
    for story, share in shares.items():
        assert re.search(rf"^\| {story} \| {share:.3f} \|", text, re.MULTILINE), story
