"""A deterministic stream of realistic desk cases for the benchmarks (not for training)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

DESTINATIONS = ["MY", "TW", "HK", "SG", "SA", "KH", "JP", "KR", "AE", "TH"]
OCCUPATIONS = [
    "domestic_worker",
    "caregiver",
    "plantation_worker",
    "manufacturing",
    "it_customer_service",
    "construction",
    "fishing_crew",
    "hospitality",
]
PURPOSES = ["work", "tourism", "religious", "family_visit", "business"]
VISAS = ["work", "tourist", "visa_on_arrival", "visa_free", "umrah"]
EXITS = [
    ("CGK", "airport", "air"),
    ("SUB", "airport", "air"),
    ("BTM", "ferry_terminal", "sea"),
    ("NNX", "ferry_terminal", "sea"),
    ("DUM", "ferry_terminal", "sea"),
    ("JETTY", "unofficial", "sea"),
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def desk_cases(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)

    def maybe(value: Any, known: float = 0.8) -> Any:
        return value if rng.random() < known else None

    for number in range(count):
        exit_point, exit_type, mode = rng.choice(EXITS)
        worker = rng.random() < 0.5
        case: dict[str, Any] = {
            "case_id": f"B-{number}",
            "channel": rng.choice(["immigration_desk", "port_desk", "ltsa_counter"]),
            "screened_at": (START + timedelta(minutes=number)).isoformat(),
            "person": {
                "passport_no": f"C{rng.randrange(10**7):07d}",
                "age": rng.randint(15, 55),
                "sex": rng.choice(["F", "M"]),
                "origin_province": rng.choice(["NTB", "NTT", "Jawa Timur", "Jawa Barat"]),
                "prior_postponed_departure": maybe(rng.random() < 0.05),
            },
            "travel": {
                "exit_point": exit_point,
                "exit_point_type": exit_type,
                "mode": mode,
                "destination_country": rng.choice(DESTINATIONS),
                "ticket": maybe(rng.choice(["return", "one_way"])),
                "ticket_paid_by": maybe(rng.choice(["self", "family", "agency", "sponsor"])),
                "declared_purpose": "work" if worker else rng.choice(PURPOSES),
                "visa_type": maybe(rng.choice(VISAS)),
                "documents_held_by_other": maybe(rng.random() < 0.03),
            },
            "interview": {"can_explain_trip": maybe(rng.random() < 0.9, 0.6)},
        }
        if worker:
            case["placement"] = {
                "scheme": maybe(rng.choice(["p3mi", "self_placed", "none"])),
                "agency_license_no": maybe(f"SIP3MI-{rng.randint(1, 30):04d}-2021", 0.5),
                "occupation": rng.choice(OCCUPATIONS),
                "offered_monthly_salary_usd": maybe(rng.choice([400, 700, 1500, 3000])),
                "documents": {
                    "work_contract": maybe(rng.random() < 0.7),
                    "bpjs": maybe(rng.random() < 0.7),
                },
            }
            case["recruitment"] = {
                "channel": maybe(
                    rng.choice(["licensed_agency", "individual_broker", "social_media"])
                ),
                "fee_paid_idr": maybe(rng.choice([0, 0, 5_000_000, 15_000_000])),
            }
        if rng.random() < 0.1:
            case["links"] = {"escort_ref": f"+62 812 {rng.randrange(200):04d}"}
        yield case


def sent_once(body: bytes, serial: object) -> bytes:
    """`body` (the JSON of desk cases) with case_ids of its own for this send, `B-<serial>-N`.
    A desk's case sent again with its case_id and screened_at is a retry, answered from storage
    rather than screened (README, Retries): a benchmark cycling through its cases would measure
    that instead."""
    for before in (b'"case_id":"B-', b'"case_id": "B-'):
        body = body.replace(before, before + f"{serial}-".encode())
    return body
