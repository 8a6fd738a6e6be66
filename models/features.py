"""Model features: each reads one fact column of the enriched frame and gives each case a
category (numbers are binned; "unknown" is always a category of its own).

The same code encodes one case at a desk and a million rows in batch: there is no second path.
`person.sex` is never a feature (it exists only for the fairness audit), and neither is the
province of origin: a home region must never raise the risk on its own.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from engine.case import AUDIT_ONLY_FIELDS, CASE_FIELDS, IDENTIFIER_FIELDS
from engine.frame import known, value_codes
from engine.rule_pack import RulePack
from engine.scoring import RULE_PREFIX

UNKNOWN = "unknown"
FEW = 32  # up to this many cases, categories are looked up one by one
EXCLUDED = AUDIT_ONLY_FIELDS | {"person.origin_province"}


@dataclass(frozen=True)
class Feature:
    """One model input: a fact and the categories its values fall into."""

    name: str  # the fact it reads (a case field or a derived fact)
    categories: tuple[str, ...]  # the last one is always "unknown"
    edges: tuple[float, ...] = ()  # for numbers: the lower edges of the bins after the first
    presence: bool = False  # identifiers and reference numbers: only whether one is given

    def encode(self, column: np.ndarray) -> np.ndarray:
        """The category of each case, as an index into `categories`."""
        unknown = len(self.categories) - 1
        if len(column) <= FEW:  # a desk's case: plain Python beats array set-up
            return np.array([self.code(value) for value in column], dtype=np.int16)
        if self.presence:
            return np.where(known(column), 1, 0).astype(np.int16)
        if self.edges:
            codes = np.digitize(np.nan_to_num(column, nan=-np.inf), self.edges)
            return np.where(known(column), codes, unknown).astype(np.int16)
        # hash each value once (None -> -1), then look up only the distinct values
        if column.dtype == object:
            codes, distinct = value_codes(column)
        else:
            codes, distinct = pd.factorize(column, use_na_sentinel=True)
        lookup = self._lookup
        table = np.array(
            [*(lookup.get(value, self._other) for value in distinct), unknown], np.int16
        )
        return np.asarray(table[codes])

    def code(self, value: object) -> int:
        """The category of one value (the same answer `encode` gives for a column)."""
        missing = value is None or (isinstance(value, float) and value != value)
        if self.presence:
            return 0 if missing else 1
        unknown = len(self.categories) - 1
        if missing:
            return unknown
        if self.edges:
            return bisect.bisect_right(self.edges, float(value))  # type: ignore[arg-type]
        return self._lookup.get(value, self._other)

    @cached_property
    def _other(self) -> int:
        return (
            self.categories.index("other")
            if "other" in self.categories
            else (len(self.categories) - 1)
        )

    @cached_property
    def _lookup(self) -> dict[object, int]:
        return {_python(value): code for code, value in enumerate(self.categories[:-1])}


def _python(value: str) -> object:
    return {"yes": True, "no": False}.get(value, value)


def categorical(name: str, values: Sequence[str] | None = None, *, other: bool = False) -> Feature:
    values = tuple(values if values is not None else CASE_FIELDS[name].values)
    return Feature(name, (*values, *(("other",) if other else ()), UNKNOWN))


def yes_no(name: str) -> Feature:
    return Feature(name, ("no", "yes", UNKNOWN))


def present(name: str) -> Feature:
    return Feature(name, ("not given", "given"), presence=True)


def binned(name: str, edges: Sequence[float]) -> Feature:
    """Bins of a number; the unit is in the fact's label (`age (years)`)."""
    bounds = [*edges]
    labels = [f"< {_n(bounds[0])}"]
    labels += [f"{_n(low)}-{_n(high)}" for low, high in itertools.pairwise(bounds)]
    labels.append(f">= {_n(bounds[-1])}")
    return Feature(name, (*labels, UNKNOWN), edges=tuple(float(edge) for edge in bounds))


def _n(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    return f"{value:g}"


DESTINATIONS = (
    "MY",
    "TW",
    "HK",
    "SG",
    "KR",
    "JP",
    "SA",
    "AE",
    "QA",
    "KW",
    "OM",
    "KH",
    "MM",
    "LA",
    "TH",
    "PH",
    "BN",
    "TR",
)

FEATURES: tuple[Feature, ...] = (
    categorical("channel"),
    binned("age", [18, 21, 26, 36, 46]),
    categorical("person.education"),
    yes_no("person.prior_overseas_work"),
    yes_no("person.prior_postponed_departure"),
    yes_no("person.prior_deportation"),
    yes_no("person.prior_trafficking_victim"),
    categorical("travel.exit_point_type"),
    # no travel.mode: exit point type and the sea route say it, and a duplicate feature splits
    # one effect into two contributions of opposite sign that confuse an officer
    categorical("travel.destination_country", DESTINATIONS, other=True),
    yes_no("sea_route_to_neighbour"),
    yes_no("scam_hotspot_route"),
    categorical("travel.ticket"),
    categorical("travel.ticket_paid_by"),
    categorical("travel.declared_purpose"),
    categorical("travel.visa_type"),
    binned("passport_age_days", [30, 90, 365, 1825]),
    binned("travel.group_size", [2, 4, 8]),
    yes_no("travel.escort_present"),
    yes_no("travel.documents_held_by_other"),
    binned("escort_travellers", [2, 3, 5]),
    categorical("placement.scheme"),
    categorical(
        "agency_licence_status",
        ("active", "expired", "not_yet_valid", "suspended", "revoked", "not_found"),
    ),
    present("placement.job_order_no"),
    categorical("placement.employer_type"),
    categorical("placement.occupation"),
    binned("pay_to_market_ratio", [0.8, 1.25, 1.6, 2.5]),
    *(
        yes_no(f"placement.documents.{name}")
        for name in (
            "work_contract",
            "placement_agreement",
            "medical_certificate",
            "competency_certificate",
            "family_consent",
            "bpjs",
            "opp_completed",
            "e_pmi_id",
        )
    ),
    categorical("recruitment.channel"),
    binned("fee_idr", [1, 1_000_000, 5_000_000, 15_000_000]),
    categorical("recruitment.fee_payee"),
    yes_no("recruitment.debt_or_salary_deduction"),
    *(
        yes_no(f"interview.{name}")
        for name in (
            "can_explain_trip",
            "reports_deception",
            "reports_coercion",
            "wants_to_go_home",
            "visible_injury",
            "restricted_communication",
        )
    ),
)
assert not {f.name for f in FEATURES} & EXCLUDED, "sex and origin are never model inputs"
assert all(f.presence for f in FEATURES if f.name in IDENTIFIER_FIELDS)


def features_for(pack: RulePack) -> tuple[Feature, ...]:
    """The model's inputs with a rule pack: the facts above, and whether each rule (but the info
    ones) fired. Rules state interactions an additive model cannot learn from single facts
    (a declared job with a tourist visa), so their outcomes are inputs too."""
    return FEATURES + tuple(
        Feature(f"{RULE_PREFIX}{rule.id}", ("not fired", "fired"), presence=True)
        for rule in pack.rules
        if rule.severity != "info"
    )


def encode(facts: Mapping[str, np.ndarray], features: Sequence[Feature] = FEATURES) -> np.ndarray:
    """The category codes of every case (rows) for every feature (columns)."""
    columns = [facts[feature.name] for feature in features]
    if len(columns[0]) <= FEW:
        return np.array(
            [
                [f.code(c[row]) for f, c in zip(features, columns, strict=True)]
                for row in range(len(columns[0]))
            ],
            dtype=np.int16,
        ).reshape(len(columns[0]), len(features))
    # a feature's codes side by side (Fortran order): the model reads them feature by feature
    codes = np.empty((len(columns[0]), len(features)), dtype=np.int16, order="F")
    for index, (feature, column) in enumerate(zip(features, columns, strict=True)):
        codes[:, index] = feature.encode(column)
    return codes


def offsets(features: Sequence[Feature] = FEATURES) -> np.ndarray:
    """Where each feature's categories start in the one-hot layout."""
    sizes = [len(feature.categories) for feature in features]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
