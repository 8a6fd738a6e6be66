"""Enrichment: the facts every rule and the scoring model read, computed once per case.

The result is a flat mapping from fact name (a case field path or a derived fact) to its value,
holding only what is known: an absent name means "unknown". `person.sex` is never a fact, and
identifiers appear only as keyed hashes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from engine.case import AUDIT_ONLY_FIELDS, CASE_FIELDS, IDENTIFIER_FIELDS, Case
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
}

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
    traveller: str  # pseudonym of the traveller (passport, NIK, or name and birth date)
    escort: str | None  # pseudonym of the escort reference, when given


@dataclass(frozen=True)
class Enricher:
    """Everything enrichment consults: reference lists, the registry, the case history."""

    reference: ReferenceData
    registry: AgencyRegistry
    history: CaseHistory
    pseudonymiser: Pseudonymiser
    escort_window: timedelta

    def enrich(self, case: Case) -> Enrichment:
        facts: dict[str, Any] = {}
        for path in SCALAR_FIELDS:
            value = case.value(path)
            if value is not None:
                facts[path] = value
        escort, traveller = self._pseudonymise(case, facts)
        facts.update(self._derive(case, facts))
        if escort is not None:  # links this case into the history, across all desks
            facts["escort_travellers"] = self.history.link(
                escort, traveller, case.screened_at, self.escort_window
            )
        return Enrichment(facts, traveller, escort)

    def _pseudonymise(self, case: Case, facts: dict[str, Any]) -> tuple[str | None, str]:
        token = self.pseudonymiser.token
        for path in IDENTIFIER_FIELDS:
            if path in facts:
                facts[path] = token(path.rsplit(".", 1)[1], str(facts[path]))
        person = case.person
        if person.passport_no:
            traveller = facts["person.passport_no"]
        elif person.nik:
            traveller = facts["person.nik"]
        elif person.full_name and person.birth_date:
            traveller = token("name_birth", f"{person.full_name}|{person.birth_date}")
        else:
            traveller = token("case", case.case_id)
        return facts.get("links.escort_ref"), traveller

    def _derive(self, case: Case, facts: Mapping[str, Any]) -> dict[str, Any]:
        derived: dict[str, Any] = {}

        def put(name: str, value: Any) -> None:
            if value is not None:
                derived[name] = value

        travel, placement, recruitment = case.travel, case.placement, case.recruitment
        screened_on = case.screened_at.date()
        put(
            "age",
            _age(case.person.birth_date, screened_on)
            if case.person.birth_date
            else case.person.age,
        )
        put("work_intent", work_intent(case))
        put(
            "agency_involved",
            bool(
                placement.agency_name
                or placement.agency_license_no
                or placement.scheme == "p3mi"
                or recruitment.channel == "licensed_agency"
            ),
        )
        if placement.agency_license_no:
            put(
                "agency_licence_status",
                self.registry.status_on(placement.agency_license_no, screened_on),
            )
        fee = fee_idr(recruitment.fee_demanded_idr, recruitment.fee_paid_idr)
        put("fee_idr", fee)
        destination, occupation = travel.destination_country, placement.occupation
        if destination and occupation:
            cap = self.reference.fee_cap(destination, occupation)
            put("fee_cap_idr", cap)
            if cap is None:
                put("fee_over_cap", False)
            elif fee is not None and (fee > cap or _both_known(recruitment)):
                put("fee_over_cap", fee > cap)
        if occupation:
            market = self.reference.market_salary(occupation, destination)
            put("market_salary_usd", market)
            offered = placement.offered_monthly_salary_usd
            if market and offered is not None:
                put("pay_to_market_ratio", round(offered / market, 4))
        put("sea_route_to_neighbour", self._sea_route(case))
        put("scam_hotspot_route", self._scam_route(case))
        return derived

    def _sea_route(self, case: Case) -> bool | None:
        travel = case.travel
        exit_point = travel.exit_point or ""
        by_sea = (
            travel.mode == "sea"
            or travel.exit_point_type in {"ferry_terminal", "unofficial"}
            or exit_point in self.reference.sea_routes
        )
        not_by_sea = travel.mode in {"air", "land"} or travel.exit_point_type in {
            "airport",
            "land_border",
        }
        served = self.reference.sea_routes.get(exit_point, self.reference.sea_neighbours)
        if travel.destination_country and travel.destination_country not in served:
            return False
        if by_sea:
            return None if travel.destination_country is None else True
        return False if not_by_sea else None

    def _scam_route(self, case: Case) -> bool | None:
        # An unknown transit list counts as no transit: the itinerary is on the ticket, and
        # asking every traveller for transit countries would bury the questions that matter.
        hotspots = self.reference.scam_hotspots
        travel = case.travel
        if any(country in hotspots for country in travel.transit_countries or ()):
            return True
        if travel.destination_country is None:
            return None
        return travel.destination_country in hotspots


def work_intent(case: Case) -> bool | None:
    """Work intent as case-v1 defines it, in three values."""
    travel, placement, recruitment = case.travel, case.placement, case.recruitment
    signs = (
        travel.declared_purpose == "work",
        placement.scheme not in (None, "none"),
        bool(placement.agency_name or placement.agency_license_no or placement.job_order_no),
        placement.occupation is not None,
        bool(recruitment.fee_demanded_idr or recruitment.fee_paid_idr),
        recruitment.channel not in (None, "family_friend"),
    )
    if any(signs):
        return True
    return False if travel.declared_purpose is not None else None


def fee_idr(demanded: float | None, paid: float | None) -> float | None:
    """The larger of the fee demanded and the fee paid.

    With one amount unknown, a known positive amount is still a fee charged (the larger one is at
    least that much); a known zero says nothing about the other amount, so the fee stays unknown.
    """
    known = [fee for fee in (demanded, paid) if fee is not None]
    if len(known) == 2 or any(known):
        return max(known)
    return None


def _both_known(recruitment: Any) -> bool:
    return recruitment.fee_demanded_idr is not None and recruitment.fee_paid_idr is not None


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
