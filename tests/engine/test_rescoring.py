from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.case_input import parse_case
from engine.decision import Decision
from engine.examples import EXAMPLE_KEY
from engine.frame import Frame
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rescoring import (
    REASON_SEPARATOR,
    Rescored,
    Rescorer,
    _FactorWords,
    _Words,
    count_escorts,
)
from engine.rule import example_record
from engine.rule_pack import RulePack
from engine.scoring import RULE_PREFIX, UNKNOWN_CATEGORY, Explainer, FrameScores
from engine.screening import Screener
from engine.table_input import cases_from_table
from models.artifact import TrainedModel
from tests.factories import cases, documented_worker, merge, tourist

KEY = "test-key"


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _table(records: list[dict[str, Any]]) -> pa.Table:
    rows = [_flat(record) for record in records]
    names = sorted({name for row in rows for name in row})

    def cell(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, list):
            return ";".join(value)
        return str(value)

    return pa.table({n: pa.array([cell(row.get(n)) for row in rows], pa.string()) for n in names})


Columns = dict[str, list[Any]]


def rescore_records(rescorer: Rescorer, records: list[dict[str, Any]]) -> tuple[Columns, Frame]:
    """What a batch run does with one chunk: validate, count escorts over it, rescore."""
    checked = cases_from_table(_table(records), first_row=1)
    assert checked.rejects == []
    where, escorts, travellers = rescorer.links(checked.frame)
    counts = np.full(len(checked.rows), np.nan)
    counts[where] = count_escorts(
        checked.frame["screened_at"][where], escorts, travellers, rescorer.pack.escort_window
    )
    rescored: Rescored = rescorer.rescore(checked.frame, counts)
    return {name: column.to_pylist() for name, column in rescored.columns.items()}, checked.frame


def online(screener: Screener, records: list[dict[str, Any]]) -> list[Decision]:
    """Each case through the desk's path, one at a time, in order of screening time."""
    parsed = [parse_case(record) for record in records]
    order = sorted(range(len(parsed)), key=lambda i: parsed[i].screened_at)
    decisions: dict[int, Decision] = {}
    for index in order:
        decisions[index] = screener.screen(parsed[index])
    return [decisions[i] for i in range(len(parsed))]


@pytest.fixture
def rescorer(pack: RulePack, registry: AgencyRegistry, trained: TrainedModel) -> Rescorer:
    return Rescorer(pack, pseudonymiser=Pseudonymiser(KEY), registry=registry, scorer=trained)


def _screener(pack: RulePack, registry: AgencyRegistry, trained: TrainedModel) -> Screener:
    return Screener(pack, pseudonymiser=Pseudonymiser(KEY), registry=registry, scorer=trained)


def _same_as_online(columns: Columns, decisions: list[Decision]) -> None:
    for row, decision in enumerate(decisions):
        assert columns["case_id"][row] == decision.case_id
        assert columns["tier"][row] == decision.tier
        assert columns["flags"][row] == ";".join(flag.rule_id for flag in decision.flags)
        assert columns["risk_score"][row] == decision.risk_score
        for language in ("id", "en"):
            reasons = columns[f"reasons_{language}"][row].split(REASON_SEPARATOR)
            own = [getattr(flag.reason, language) for flag in decision.flags][:3]
            assert reasons[: len(own)] == own
            assert len(reasons) <= 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=1, max_size=25))
def test_batch_gives_every_case_the_online_tier_flags_score_and_reasons(
    pack: RulePack, registry: AgencyRegistry, trained: TrainedModel, records: list[dict[str, Any]]
) -> None:
    # one rescorer for every example: reasons it worded for earlier examples are remembered
    key = (id(pack), id(registry), id(trained))
    rescorer = _SHARED.setdefault(
        key, Rescorer(pack, pseudonymiser=Pseudonymiser(KEY), registry=registry, scorer=trained)
    )
    rescored, _ = rescore_records(rescorer, records)
    _same_as_online(rescored, online(_screener(pack, registry, trained), records))


_SHARED: dict[tuple[int, int, int], Rescorer] = {}


def test_escort_network_counts_across_the_whole_input_in_time_order(
    pack: RulePack, registry: AgencyRegistry, trained: TrainedModel, rescorer: Rescorer
) -> None:
    escort = {"links": {"escort_ref": "+62 812 5555 0101"}}
    records = [
        merge(
            tourist(),
            {
                **escort,
                "case_id": f"T{i}",
                "person": {"passport_no": f"X{i}"},
                "screened_at": f"2026-03-0{5 - i}T10:00:00+07:00",
            },
        )
        for i in range(3)
    ]  # the file lists them newest first: the first row is the third traveller in time
    rescored, _ = rescore_records(rescorer, records)
    decisions = online(_screener(pack, registry, trained), records)
    _same_as_online(rescored, decisions)
    assert "escort_network" in rescored["flags"][0].split(";")
    assert rescored["tier"][0] == "urgent"
    assert "3 different travellers" in rescored["reasons_en"][0]
    assert "escort_network" not in rescored["flags"][1]
    assert "escort_network" not in rescored["flags"][2]


def test_reasons_name_the_flags_first_then_what_raises_the_score(
    rescorer: Rescorer, pack: RulePack
) -> None:
    flagged = merge(documented_worker(), {"case_id": "W", "travel": {"visa_type": "tourist"}})
    rescored, _ = rescore_records(rescorer, [documented_worker(case_id="D"), flagged])
    clear_reasons = rescored["reasons_en"][0]
    assert rescored["flags"][0] == ""
    assert "There are signs" not in clear_reasons
    reasons = rescored["reasons_en"][1].split(REASON_SEPARATOR)
    assert rescored["flags"][1].split(";")[0] == "work_intent_without_work_visa"
    assert "tourist visa" in reasons[0]
    indonesian = rescored["reasons_id"][1].split(REASON_SEPARATOR)
    assert "visa turis" in indonesian[0]


def test_every_rule_example_fires_in_batch_as_it_does_online(pack: RulePack) -> None:
    """Each example (with its registry and the cases screened before it) rescored as a file."""
    failures = []
    for rule in pack.rules:
        for example in rule.examples:
            registry = (
                AgencyRegistry.from_rows(example.registry, source="example")
                if example.registry is not None
                else AgencyRegistry.empty()
            )
            rescorer = Rescorer(
                pack,
                pseudonymiser=Pseudonymiser(EXAMPLE_KEY),
                registry=registry,
                scorer=_NoScore(),
            )
            records = [
                example_record(case, pack.effective_date)
                for case in [*example.prior_cases, example.case]
            ]
            rescored, _ = rescore_records(rescorer, records)
            fired = rule.id in rescored["flags"][-1].split(";")
            if fired != example.fires:
                failures.append(f"{rule.id}: {example.note}")
    assert failures == []


class _NoScore:
    """A model that scores everyone at the average: examples are about rules."""

    version = "none"
    features: tuple[str, ...] = ()
    categories: tuple[tuple[str, ...], ...] = ()

    @property
    def thresholds(self) -> Any:
        from engine.decision import Thresholds

        return Thresholds(review=1.0, high=1.0)

    def score_frame(self, facts: Any) -> Any:
        from engine.scoring import FrameScores

        count = len(next(iter(facts.values())))
        return FrameScores(
            scores=np.full(count, 0.5),
            logits=np.zeros(count),
            base=0.0,
            categories=np.zeros((count, 0), dtype=np.int16),
            category_values=np.zeros(0),
            offsets=np.zeros(0, dtype=np.int64),
            limit=np.zeros(count),
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3), st.integers(0, 4), st.integers(0, 60).map(lambda h: h * 43_200)
        ),
        max_size=60,
    ),
    st.integers(1, 10),
)
def test_escort_counts_are_what_the_online_history_answers(
    links: list[tuple[int, int, int]], days: int
) -> None:
    """Links (escort, traveller, second) in any order, counted as the cases would arrive at
    the desks: in order of time, the input's order among equal times."""
    window = timedelta(days=days)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = np.array(
        [np.datetime64(start.replace(tzinfo=None) + timedelta(seconds=s), "s") for *_, s in links],
        dtype="datetime64[s]",
    )
    escorts = [f"e{e}" for e, *_ in links]
    travellers = [f"t{t}" for _, t, _ in links]
    # every window counted at once (few=64), every escort walked (few=0), and a mix (few=1)
    counts = {few: count_escorts(times, escorts, travellers, window, few=few) for few in (64, 0, 1)}
    history = InMemoryCaseHistory()
    expected = np.zeros(len(links))
    for index in sorted(range(len(links)), key=lambda i: links[i][2]):
        at = start + timedelta(seconds=links[index][2])
        expected[index] = history.link(escorts[index], travellers[index], at, window)
    for found in counts.values():
        assert found.tolist() == expected.tolist()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_top_factors_are_the_largest_raising_contributions_ties_in_feature_order(
    pack: RulePack, trained: TrainedModel, seed: int
) -> None:
    """The batch's choice of factors (ranked categories) against the plain one: per case, the
    features whose known category raises the score, largest first, equals in feature order.
    Contributions are drawn from a few values, so that ties are common."""
    rng = np.random.default_rng(seed)
    sizes = [len(categories) for categories in trained.categories]
    values = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0], sum(sizes))
    rows = 80  # past the frame's FEW_ROWS
    categories = np.asfortranarray(
        np.column_stack([rng.integers(0, size, rows) for size in sizes]).astype(np.int16)
    )
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    scored = FrameScores(
        scores=np.zeros(rows),
        logits=np.zeros(rows),
        base=0.0,
        categories=categories,
        category_values=values,
        offsets=offsets,
        limit=np.zeros(rows),
    )
    factors = _FactorWords(Explainer(trained, pack.labels), trained)
    expected = []
    for row in range(rows):
        raising = [
            (-values[offsets[f] + c], f, offsets[f] + c)
            for f, c in enumerate(categories[row].tolist())
            if not trained.features[f].startswith(RULE_PREFIX)
            and trained.categories[f][c] != UNKNOWN_CATEGORY
            and values[offsets[f] + c] > 0
        ]
        chosen = [code for *_, code in sorted(raising)[:3]]
        expected.append(chosen + [-1] * (3 - len(chosen)))
    assert factors.codes(scored).tolist() == expected


def test_reasons_join_flags_then_factors_and_none_is_an_empty_text() -> None:
    words = _Words({"id": ["f0", "f1", "f2"], "en": ["F0", "F1", "F2"]})
    [flag_a, flag_b] = words.add([("a", "A"), ("b", "B")])
    none = -1
    own = np.array(
        [
            [none] * 3,
            [none] * 3,
            [flag_a, none, none],
            [flag_a, flag_b, none],
            [flag_b, flag_a, none],
        ]
    )
    factors = np.array([[none] * 3, [2, 0, 1], [1, none, none], [0, 1, 2], [none] * 3])
    joined = words.joined(own, factors)
    assert joined["en"].to_pylist() == ["", "F2 | F0 | F1", "A | F1", "A | B | F0", "B | A"]
    assert joined["id"].to_pylist() == ["", "f2 | f0 | f1", "a | f1", "a | b | f0", "b | a"]


def test_escort_counts_with_a_window_longer_than_any_key_can_hold() -> None:
    """150,000 escorts, a window of a billion days: every earlier link is inside it."""
    escorts = np.repeat(np.arange(150_000).astype(str), 2)
    travellers = np.arange(300_000).astype(str)
    start = np.datetime64("2026-01-01T00:00:00", "s")
    times = start + np.tile([0, 3_600], 150_000).astype("timedelta64[s]")
    counts = count_escorts(times, escorts, travellers, timedelta(days=999_999_999))
    assert counts.tolist() == [1.0, 2.0] * 150_000


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=1, max_size=10))
def test_batch_past_few_rows_gives_every_case_the_online_decision(
    pack: RulePack, registry: AgencyRegistry, trained: TrainedModel, records: list[dict[str, Any]]
) -> None:
    """The same cases, repeated past the frame's FEW_ROWS, so the batch takes its large-frame
    ways (column memos, per-feature sums, ranked factors) and the desk its own."""
    many = [
        merge(record, {"case_id": f"{record.get('case_id', 'c')}-{copy}"})
        for copy in range(70 // len(records) + 1)
        for record in records
    ]
    rescorer = Rescorer(pack, pseudonymiser=Pseudonymiser(KEY), registry=registry, scorer=trained)
    rescored, _ = rescore_records(rescorer, many)
    _same_as_online(rescored, online(_screener(pack, registry, trained), many))
