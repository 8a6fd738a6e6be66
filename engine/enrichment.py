"""Enrichment: the facts every rule and the scoring model read, computed once per case.

Enrichment works on columns (engine/frame.py): a million cases in batch and one case at a desk
(a one-row frame) take the same code. The result maps each fact name (a case field path or a
derived fact) to a column, None / NaN meaning unknown. `person.sex` is never a fact, and
identifiers appear only as keyed hashes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from engine.case import AUDIT_ONLY_FIELDS, CASE_FIELDS, IDENTIFIER_FIELDS, Case
from engine.frame import (
    FEW_ROWS,
    SCREENED_ON,
    Frame,
    column_from_codes,
    column_of,
    distinct_rows,
    equals,
    frame_from_cases,
    known,
    member,
    row_values,
    rows,
)
from engine.history import CaseHistory
from engine.pseudonym import Pseudonymiser
from engine.reference import ReferenceData
from engine.registry import AgencyRegistry
from engine.vocabulary import FactType

LICENCE_STATUSES = ("active", "expired", "not_yet_valid", "suspended", "revoked", "not_found")


@dataclass(frozen=True)
class DerivedFact:
    type: FactType
    ask: tuple[str, ...] = ()  # case fields to ask about when this fact is unknown
    quotes: tuple[str, ...] = ()  # facts a reason may quote when its rule reads this one


DERIVED: Mapping[str, DerivedFact] = {
    "age": DerivedFact(FactType("int"), ("person.birth_date",)),
    "work_intent": DerivedFact(FactType("bool"), ("travel.declared_purpose",)),
    "agency_involved": DerivedFact(FactType("bool")),
    "agency_licence_status": DerivedFact(
        FactType("enum", LICENCE_STATUSES),
        ("placement.agency_license_no",),
        ("placement.agency_license_no", "placement.agency_name"),
    ),
    "fee_idr": DerivedFact(
        FactType("number"), ("recruitment.fee_demanded_idr", "recruitment.fee_paid_idr")
    ),
    "fee_cap_idr": DerivedFact(FactType("number")),
    "fee_over_cap": DerivedFact(
        FactType("bool"),
        ("recruitment.fee_demanded_idr", "travel.destination_country", "placement.occupation"),
        ("fee_idr", "fee_cap_idr", "travel.destination_country", "placement.occupation"),
    ),
    "market_salary_usd": DerivedFact(
        FactType("number"), ("placement.occupation", "travel.destination_country")
    ),
    "pay_to_market_ratio": DerivedFact(
        FactType("number"),
        ("placement.offered_monthly_salary_usd", "placement.occupation"),
        (
            "placement.offered_monthly_salary_usd",
            "market_salary_usd",
            "placement.occupation",
            "travel.destination_country",
        ),
    ),
    "sea_route_to_neighbour": DerivedFact(
        FactType("bool"),
        ("travel.destination_country", "travel.mode"),
        ("travel.destination_country", "travel.exit_point"),
    ),
    "scam_hotspot_route": DerivedFact(
        FactType("bool"), ("travel.destination_country",), ("travel.destination_country",)
    ),
    "escort_travellers": DerivedFact(FactType("int"), ("links.escort_ref",)),
    "passport_age_days": DerivedFact(FactType("int"), ("travel.passport_issued_on",)),
}

# what `_derive_rows` reads of each case (screened_on always known: every frame builder refuses
# a case without screened_at), and what it writes, in `_derive_columns`' order
_DERIVED_FROM = (
    SCREENED_ON,
    "person.birth_date",
    "person.age",
    "travel.passport_issued_on",
    "travel.exit_point",
    "travel.exit_point_type",
    "travel.mode",
    "travel.destination_country",
    "travel.transit_countries",
    "travel.declared_purpose",
    "placement.agency_name",
    "placement.agency_license_no",
    "placement.scheme",
    "placement.job_order_no",
    "placement.occupation",
    "placement.offered_monthly_salary_usd",
    "recruitment.channel",
    "recruitment.fee_demanded_idr",
    "recruitment.fee_paid_idr",
)
_DERIVED_ORDER = (
    "age",
    "passport_age_days",
    "work_intent",
    "agency_involved",
    "agency_licence_status",
    "fee_idr",
    "fee_cap_idr",
    "fee_over_cap",
    "market_salary_usd",
    "pay_to_market_ratio",
    "sea_route_to_neighbour",
    "scam_hotspot_route",
)

SCALAR_FIELDS = tuple(
    path
    for path, spec in CASE_FIELDS.items()
    if spec.kind != "countries"
    and path not in AUDIT_ONLY_FIELDS
    and path not in {"case_id", "screened_at"}
)


def vocabulary() -> dict[str, FactType]:
    """Every name a condition may use, with its type."""
    names: dict[str, FactType] = {}
    for path in SCALAR_FIELDS:
        spec = CASE_FIELDS[path]
        names[path] = FactType(spec.kind, spec.values, presence_only=path in IDENTIFIER_FIELDS)
    names.update({name: fact.type for name, fact in DERIVED.items()})
    return names


@dataclass(frozen=True)
class Enrichment:
    """Known facts of one case, and the pseudonyms that link it to other cases."""

    facts: Mapping[str, Any]
    traveller: str | None  # pseudonym of the traveller, when linked to an escort
    escort: str | None  # pseudonym of the escort reference, when given
    columns: Frame  # the same facts as a one-row frame (what the model reads)


@dataclass(frozen=True)
class FrameEnrichment:
    """Fact columns of many cases, and the pseudonyms that link them to other cases."""

    facts: Frame
    travellers: np.ndarray  # object array of traveller pseudonyms
    escorts: np.ndarray  # object array of escort pseudonyms, None where not given


@dataclass(frozen=True)
class Enricher:
    """Everything enrichment consults: reference lists, the registry, the case history."""

    reference: ReferenceData
    registry: AgencyRegistry
    history: CaseHistory
    pseudonymiser: Pseudonymiser
    escort_window: timedelta

    def enrich(self, case: Case) -> Enrichment:
        """The known facts of one case (a one-row frame through `enrich_frame`)."""
        enriched = self.enrich_frame(frame_from_cases([case]))
        escort = enriched.escorts[0]
        facts = row_values(enriched.facts, 0)
        return Enrichment(facts, enriched.travellers[0], escort, enriched.facts)

    def enrich_frame(
        self,
        frame: Frame,
        escort_travellers: np.ndarray | None = None,
        sources: Sequence[str] | None = None,
    ) -> FrameEnrichment:
        """Fact columns for every case of `frame`; cases with an escort are linked into the
        case history in order of screening time, unless `escort_travellers` gives their counts
        already (batch rescoring counts them over the whole input first). `sources` names who
        screened each case, for `links`."""
        facts: Frame = {path: frame[path] for path in SCALAR_FIELDS}
        for path in IDENTIFIER_FIELDS:  # rules may only ask whether an identifier is known
            facts[path] = _object(known(frame[path]))  # always decided: yes or no
        facts.update(self._derive(frame))
        if escort_travellers is not None:
            facts["escort_travellers"] = escort_travellers
            empty = np.full(rows(frame), None, dtype=object)
            return FrameEnrichment(facts, empty, empty)
        travellers, escorts = self.links(frame, sources)
        facts["escort_travellers"] = self._link_escorts(frame, travellers, escorts)
        return FrameEnrichment(facts, travellers, escorts)

    def links(
        self, frame: Frame, sources: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pseudonyms of the traveller and of the escort of each case with an escort (None
        elsewhere): keyed hashes, so that cases link up without anyone reading who they are.

        A case naming no passport, NIK, or name and birth date is known only by its case_id,
        which is its source's own numbering: two desks' case 1 are two people, and a desk's
        case 1 screened again is one. With `sources` (who screened each case: over HTTP, the
        key's holder) the case_id counts within its source; without, within the cases linked
        into this history (a command's one run)."""
        token = self.pseudonymiser.token
        escorts = np.full(rows(frame), None, dtype=object)
        travellers = np.full(rows(frame), None, dtype=object)
        passports, niks = frame["person.passport_no"], frame["person.nik"]
        names, births = frame["person.full_name"], frame["person.birth_date"]
        for row in np.flatnonzero(known(frame["links.escort_ref"])):
            escorts[row] = token("escort_ref", str(frame["links.escort_ref"][row]))
            if passports[row] is not None:
                travellers[row] = token("passport_no", str(passports[row]))
            elif niks[row] is not None:
                travellers[row] = token("nik", str(niks[row]))
            elif names[row] is not None and not np.isnat(births[row]):
                travellers[row] = token("name_birth", f"{names[row]}|{births[row]}")
            elif sources is None:
                travellers[row] = token("case", str(frame["case_id"][row]))
            else:
                travellers[row] = _source_case(token, sources[int(row)], str(frame["case_id"][row]))
        return travellers, escorts

    def _link_escorts(
        self, frame: Frame, travellers: np.ndarray, escorts: np.ndarray
    ) -> np.ndarray:
        counts = np.full(rows(frame), np.nan)
        linked = np.flatnonzero(known(escorts))
        times = frame["screened_at"]
        for row in linked[np.argsort(times[linked], kind="stable")]:
            at = _utc(times[row])
            counts[row] = self.history.link(escorts[row], travellers[row], at, self.escort_window)
        return counts

    def _derive(self, frame: Frame) -> Frame:
        """The derived facts' columns: a desk's few cases one by one (each array call costs
        more than a case's facts do), more cases column by column. The two give the same
        columns, to the last bit."""
        if rows(frame) <= FEW_ROWS:
            return self._derive_rows(frame)
        return self._derive_columns(frame)

    def _derive_rows(self, frame: Frame) -> Frame:
        read = {path: frame[path].tolist() for path in _DERIVED_FROM}  # plain values
        derived = [
            self._derive_case({path: values[row] for path, values in read.items()})
            for row in range(rows(frame))
        ]
        return {
            name: column_of([facts[name] for facts in derived], DERIVED[name].type.kind)
            for name in _DERIVED_ORDER
        }

    def _derive_case(self, case: Mapping[str, Any]) -> dict[str, Any]:
        """One case's derived facts (plain values: None or NaN where unknown), as
        `_derive_columns` finds them."""
        on: date = case[SCREENED_ON]
        born, licence = case["person.birth_date"], case["placement.agency_license_no"]
        destination, occupation = case["travel.destination_country"], case["placement.occupation"]
        demanded, paid = case["recruitment.fee_demanded_idr"], case["recruitment.fee_paid_idr"]
        both_known = not math.isnan(demanded) and not math.isnan(paid)
        fee = _fee(demanded, paid, both_known)
        pair_known = destination is not None and occupation is not None
        cap = market = math.nan
        if pair_known:
            cap = _or_nan(self.reference.fee_cap(destination, occupation))
        if occupation is not None:
            market = _or_nan(self.reference.market_salary(occupation, destination))
        issued = case["travel.passport_issued_on"]
        over_cap: bool | None = None
        if not math.isnan(cap):
            if not math.isnan(fee) and (fee > cap or both_known):
                over_cap = fee > cap
        elif pair_known:
            over_cap = False  # no cap for this destination and occupation
        offered = case["placement.offered_monthly_salary_usd"]
        return {
            "age": (
                float(on.year - born.year - ((on.month, on.day) < (born.month, born.day)))
                if born is not None
                else case["person.age"]
            ),
            "passport_age_days": float((on - issued).days) if issued is not None else math.nan,
            "work_intent": _work_intent_of(case),
            "agency_involved": (
                case["placement.agency_name"] is not None
                or licence is not None
                or case["placement.scheme"] == "p3mi"
                or case["recruitment.channel"] == "licensed_agency"
            ),
            "agency_licence_status": (
                self.registry.status_on(licence, on) if licence is not None else None
            ),
            "fee_idr": fee,
            "fee_cap_idr": cap,
            "fee_over_cap": over_cap,
            "market_salary_usd": market,
            "pay_to_market_ratio": float(
                np.round(offered / (market if market > 0 else math.nan), 4)
            ),
            "sea_route_to_neighbour": self._sea_route_of(case),
            "scam_hotspot_route": self._scam_route_of(case),
        }

    def _sea_route_of(self, case: Mapping[str, Any]) -> bool | None:
        routes = self.reference.sea_routes
        exit_point, mode = case["travel.exit_point"], case["travel.mode"]
        kind, destination = case["travel.exit_point_type"], case["travel.destination_country"]
        by_sea = mode == "sea" or kind in ("ferry_terminal", "unofficial") or exit_point in routes
        not_by_sea = mode in ("air", "land") or kind in ("airport", "land_border")
        if destination is not None:
            if destination not in routes.get(exit_point, self.reference.sea_neighbours):
                return False  # a destination the route does not serve decides it
            if by_sea:
                return True
        return False if not by_sea and not_by_sea else None

    def _scam_route_of(self, case: Mapping[str, Any]) -> bool | None:
        hotspots, countries = self.reference.scam_hotspots, case["travel.transit_countries"]
        destination = case["travel.destination_country"]
        if countries is not None and any(country in hotspots for country in countries):
            return True
        if destination is None:
            return None
        return destination in hotspots

    def _derive_columns(self, frame: Frame) -> Frame:
        screened_on = frame[SCREENED_ON]
        travel = {
            name: frame[f"travel.{name}"]
            for name in (
                "exit_point",
                "exit_point_type",
                "mode",
                "destination_country",
                "transit_countries",
                "declared_purpose",
            )
        }
        licence = frame["placement.agency_license_no"]
        occupation, destination = frame["placement.occupation"], travel["destination_country"]
        demanded, paid = frame["recruitment.fee_demanded_idr"], frame["recruitment.fee_paid_idr"]
        fee = fee_idr(demanded, paid)
        cap = _cached(
            known(destination) & known(occupation),
            (destination, occupation),
            self.reference.fee_cap,
            number=True,
        )
        market = _cached(
            known(occupation),
            (occupation, destination),
            self.reference.market_salary,
            number=True,
        )
        offered = frame["placement.offered_monthly_salary_usd"]
        pair_known = known(destination) & known(occupation)
        fees_known = known(demanded) & known(paid)
        over_cap_decided = known(cap) & known(fee) & ((fee > cap) | fees_known)
        return {
            "age": age(frame["person.birth_date"], frame["person.age"], screened_on),
            "passport_age_days": _days_between(frame["travel.passport_issued_on"], screened_on),
            "work_intent": work_intent(frame),
            "agency_involved": _object(
                known(frame["placement.agency_name"])
                | known(licence)
                | equals(frame["placement.scheme"], "p3mi")
                | equals(frame["recruitment.channel"], "licensed_agency")
            ),
            "agency_licence_status": _cached(
                known(licence),
                (licence, screened_on),
                lambda number, day: self.registry.status_on(number, _day(day)),
                number=False,
            ),
            "fee_idr": fee,
            "fee_cap_idr": cap,
            "fee_over_cap": _three_valued(
                np.where(known(cap), fee > cap, False),
                (pair_known & ~known(cap)) | over_cap_decided,
            ),
            "market_salary_usd": market,
            "pay_to_market_ratio": np.round(offered / np.where(market > 0, market, np.nan), 4),
            "sea_route_to_neighbour": self._sea_route(travel),
            "scam_hotspot_route": self._scam_route(travel),
        }

    def _sea_route(self, travel: Mapping[str, np.ndarray]) -> np.ndarray:
        routes, neighbours = self.reference.sea_routes, self.reference.sea_neighbours
        exit_point, mode, kind = travel["exit_point"], travel["mode"], travel["exit_point_type"]
        destination = travel["destination_country"]
        by_sea = (
            equals(mode, "sea")
            | member(kind, ["ferry_terminal", "unofficial"])
            | member(exit_point, list(routes))
        )
        not_by_sea = member(mode, ["air", "land"]) | member(kind, ["airport", "land_border"])
        has_destination = known(destination)
        pairs = (destination, exit_point)
        if len(destination) <= FEW_ROWS:
            first, inverse = np.arange(len(destination)), np.arange(len(destination))
        else:  # a million rows hold a few hundred routes: each is looked up once
            first, inverse = distinct_rows(pairs)
        found = zip(destination[first], exit_point[first], strict=True)
        served = np.array([d in routes.get(e, neighbours) for d, e in found], dtype=bool)[inverse]
        # a destination the route does not serve decides it; otherwise going by sea does
        value = np.where(has_destination & ~served, False, by_sea)
        decided = (has_destination & ~served) | (by_sea & has_destination) | (~by_sea & not_by_sea)
        return _three_valued(value, decided)

    def _scam_route(self, travel: Mapping[str, np.ndarray]) -> np.ndarray:
        # An unknown transit list counts as no transit: the itinerary is on the ticket, and
        # asking every traveller for transit countries would bury the questions that matter.
        hotspots = self.reference.scam_hotspots
        countries = travel["transit_countries"]
        listed = np.flatnonzero(known(countries))  # most cases name no transit at all
        transit = np.zeros(len(countries), dtype=bool)
        transit[listed] = [any(c in hotspots for c in t) for t in countries[listed].tolist()]
        destination = travel["destination_country"]
        value = transit | member(destination, list(hotspots))
        return _three_valued(value, transit | known(destination))


def work_intent(frame: Mapping[str, np.ndarray]) -> np.ndarray:
    """Work intent as case-v1 defines it, in three values (True, False, None)."""
    purpose, scheme = frame["travel.declared_purpose"], frame["placement.scheme"]
    channel = frame["recruitment.channel"]
    with np.errstate(invalid="ignore"):
        fee = (frame["recruitment.fee_demanded_idr"] > 0) | (frame["recruitment.fee_paid_idr"] > 0)
    signs = (
        equals(purpose, "work")
        | (known(scheme) & ~equals(scheme, "none"))
        | known(frame["placement.agency_name"])
        | known(frame["placement.agency_license_no"])
        | known(frame["placement.job_order_no"])
        | known(frame["placement.occupation"])
        | fee
        | (known(channel) & ~equals(channel, "family_friend"))
    )
    return _three_valued(signs, signs | known(purpose))


def _work_intent_of(case: Mapping[str, Any]) -> bool | None:
    """`work_intent` of one case (plain values)."""
    purpose, scheme, channel = (
        case["travel.declared_purpose"],
        case["placement.scheme"],
        case["recruitment.channel"],
    )
    signs = (
        purpose == "work"
        or scheme not in (None, "none")
        or case["placement.agency_name"] is not None
        or case["placement.agency_license_no"] is not None
        or case["placement.job_order_no"] is not None
        or case["placement.occupation"] is not None
        or case["recruitment.fee_demanded_idr"] > 0  # False for NaN (unknown)
        or case["recruitment.fee_paid_idr"] > 0
        or channel not in (None, "family_friend")
    )
    return True if signs else (False if purpose is not None else None)


def _fee(demanded: float, paid: float, both_known: bool) -> float:
    """`fee_idr` of one case (NaN where unknown)."""
    if both_known:
        return max(demanded, paid) + 0.0  # a zero fee is +0.0, as `fee_idr` makes it
    one = paid if math.isnan(demanded) else demanded  # NaN if neither is known
    return one if one > 0 else math.nan


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def fee_idr(demanded: np.ndarray, paid: np.ndarray) -> np.ndarray:
    """The larger of the fee demanded and the fee paid.

    With one amount unknown, a known positive amount is still a fee charged (the larger one is at
    least that much); a known zero says nothing about the other amount, so the fee stays unknown.
    """
    # + 0.0: a zero fee is +0.0 whichever amount was -0.0 (fmax leaves that to the vector loop)
    larger = np.fmax(demanded, paid) + 0.0
    with np.errstate(invalid="ignore"):
        return np.where((known(demanded) & known(paid)) | (larger > 0), larger, np.nan)


def age(born: np.ndarray, stated: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Whole years on the screening date; a birth date wins over a stated age."""
    birth_year = born.astype("datetime64[Y]").astype(np.int64)
    year = on.astype("datetime64[Y]").astype(np.int64)
    birthday_passed = _day_of_year_key(on) >= _day_of_year_key(born)
    years = (year - birth_year - (~birthday_passed).astype(np.int64)).astype(float)
    return np.where(known(born) & known(on), years, stated)


def _days_between(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    days = (end - start).astype("timedelta64[D]").astype(float)
    return np.where(known(start), days, np.nan)


def _day_of_year_key(days: np.ndarray) -> np.ndarray:
    month = days.astype("datetime64[M]")
    key: np.ndarray = (month.astype(np.int64) % 12) * 100 + (days - month).astype(np.int64)
    return key


def _three_valued(value: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """An object column: True/False where decided, None where not."""
    codes = np.where(decided, np.asarray(value, dtype=np.int64), -1)
    return column_from_codes(codes, _TRUTHS)


def _object(value: np.ndarray) -> np.ndarray:
    return column_from_codes(np.asarray(value, dtype=np.int64), _TRUTHS)


_TRUTHS = (False, True)  # a yes/no column's values, in the order of their codes


def _cached(where: np.ndarray, key: Any, value: Any, *, number: bool) -> np.ndarray:
    """value(*key) for each row where `where` holds, computed once per distinct key.

    `key` is a tuple of columns; the distinct combinations are found without a loop over rows
    (a million rows hold a few hundred of them)."""
    out = np.full(len(where), np.nan) if number else np.full(len(where), None, dtype=object)
    rows_in = np.flatnonzero(where)
    if not len(rows_in):
        return out
    if len(rows_in) <= FEW_ROWS:  # a desk's case or a small group: finding repeats costs more
        for row in rows_in.tolist():
            found = value(*(column[row] for column in key))
            if found is not None:
                out[row] = found
        return out
    first, inverse = distinct_rows(key, rows_in)
    computed = np.full(len(first), np.nan) if number else np.full(len(first), None, object)
    for index, row in enumerate(rows_in[first].tolist()):
        found = value(*(column[row] for column in key))
        if found is not None:
            computed[index] = found
    out[rows_in] = computed[inverse]
    return out


def _day(value: np.datetime64) -> date:
    return date.fromisoformat(str(value.astype("datetime64[D]")))


def _source_case(token: Callable[[str, str], str], source: str, case_id: str) -> str:
    """The pseudonym of a case_id within its source: the source's own keyed hash (of a fixed
    length, so that no source and case_id run into another's) joined to the case_id, hashed."""
    scope = token("source", source).rpartition(":")[2]
    return token("source_case", f"{scope}|{case_id}")


def _utc(value: np.datetime64) -> datetime:
    return datetime.fromisoformat(str(value.astype("datetime64[s]"))).replace(tzinfo=UTC)
