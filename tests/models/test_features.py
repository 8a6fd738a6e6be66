from __future__ import annotations

import numpy as np

from engine.case_input import parse_case
from engine.enrichment import Enricher
from engine.frame import frame_from_cases
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from models.features import EXCLUDED, FEATURES, binned, encode
from tests.factories import documented_worker, tourist


def test_sex_and_origin_are_never_features() -> None:
    assert {"person.sex", "person.origin_province"} <= EXCLUDED
    assert not {feature.name for feature in FEATURES} & EXCLUDED


def test_every_feature_has_an_unknown_category_or_is_a_presence_test() -> None:
    for feature in FEATURES:
        assert feature.presence or feature.categories[-1] == "unknown", feature.name


def test_numbers_fall_into_labelled_bins() -> None:
    age = binned("age", [18, 21])
    codes = age.encode(np.array([17.0, 18.0, 20.0, 21.0, 60.0, np.nan]))
    assert [age.categories[c] for c in codes] == [
        "< 18",
        "18-21",
        "18-21",
        ">= 21",
        ">= 21",
        "unknown",
    ]


def test_one_case_encodes_exactly_as_in_a_batch(pack: RulePack, registry: AgencyRegistry) -> None:
    enricher = Enricher(
        pack.reference, registry, InMemoryCaseHistory(), Pseudonymiser("k"), pack.escort_window
    )
    cases = [
        parse_case(tourist()),
        parse_case(documented_worker()),
        parse_case(tourist(travel={"destination_country": "KH", "visa_type": None})),
    ]
    batch = encode(enricher.enrich_frame(frame_from_cases(cases)).facts)
    for row, case in enumerate(cases):
        alone = encode(enricher.enrich(case).columns)
        assert (alone[0] == batch[row]).all()


def test_categories_read_as_the_case_says(pack: RulePack, registry: AgencyRegistry) -> None:
    enricher = Enricher(
        pack.reference, registry, InMemoryCaseHistory(), Pseudonymiser("k"), pack.escort_window
    )
    codes = encode(enricher.enrich(parse_case(documented_worker())).columns)[0]
    read = {f.name: f.categories[c] for f, c in zip(FEATURES, codes, strict=True)}
    assert read["travel.visa_type"] == "work"
    assert read["agency_licence_status"] == "active"
    assert read["placement.documents.bpjs"] == "yes"
    assert read["placement.job_order_no"] == "given"
    assert read["fee_idr"] == "< 1"
    assert read["age"] == "26-36"
    assert read["interview.visible_injury"] == "no"


def test_a_few_cases_and_many_cases_get_the_same_categories() -> None:
    rng = np.random.default_rng(4)
    for feature in FEATURES:
        if feature.edges:
            pool: list[object] = [
                *feature.edges,
                feature.edges[0] - 1,
                feature.edges[-1] + 1,
                float("nan"),
            ]
            column = np.array([pool[i] for i in rng.integers(0, len(pool), 500)], dtype=float)
        else:
            values = [*feature.categories[:-1], "something else", None]
            python = {"yes": True, "no": False}
            pool = [python.get(v, v) if isinstance(v, str) else v for v in values]
            column = np.empty(500, dtype=object)
            column[:] = [pool[i] for i in rng.integers(0, len(pool), 500)]
        many = feature.encode(column)
        few = np.concatenate([feature.encode(column[i : i + 10]) for i in range(0, 500, 10)])
        assert (many == few).all(), feature.name
