"""A synthetic reference population of screening cases, for training and testing the scoring model.

No public labelled data of departures exists, so this module invents one, deterministically from a
seed, following the generative story of `models/POPULATION.md`:

1. each case comes from one of seven stories (a genuine trip, a procedural placement, or one of
   five irregular routes), and the story shapes the complete record;
2. the label `non_procedural` is drawn from the stated log-odds of that complete record
   (`INTERCEPT` plus `WEIGHTS` times `signals`): the story itself never enters it, nor do sex or
   the province of origin;
3. fields are then hidden, at random and more often among non-procedural travellers.

Sex is drawn from the occupation alone. Nothing here is real data or describes a real person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.case import CASE_FIELDS

Column = NDArray[Any]
Columns = dict[str, Column]
Table = Mapping[Any, float]
_NONE: Any = None  # compared elementwise with object arrays

LABEL = "non_procedural"
START = np.datetime64("2024-01-01T00:00:00", "s")
END = np.datetime64("2026-11-01T00:00:00", "s")  # exclusive: the last screening is on 2026-10-31
WIB = np.timedelta64(7, "h")  # desk clocks are read as UTC+7 throughout
NEW_PASSPORT_DAYS = 60

STORIES = ("genuine", "procedural", "sea_route", "scam_compound", "gulf_domestic", "air_overstay",
           "unlicensed_placement")  # fmt: skip
GENUINE, PROCEDURAL, SEA, SCAM, GULF, OVERSTAY, UNLICENSED = range(len(STORIES))
STORY_SHARES = (0.600, 0.295, 0.052, 0.018, 0.017, 0.011, 0.007)

# fmt: off
# --- the synthetic world, frozen here so that a seed always gives the same population ----------

ASEAN = ("MY", "SG", "TH", "VN", "KH", "PH", "LA", "MM", "BN")
SCAM_HOTSPOTS = ("KH", "MM", "LA", "TH", "PH")  # rules/default/reference/scam_hotspots.yaml
MORATORIUM = ("SA", "DZ", "BH", "IQ", "KW", "LB", "LY", "MA", "MR", "EG", "OM", "PS", "QA", "SD",
              "SY", "TN", "AE", "YE", "JO")  # Kepmenaker 260/2015
DOMESTIC = ("domestic_worker", "baby_carer", "elderly_carer", "child_carer", "cook",
            "family_driver", "gardener", "cleaner")
ZERO_COST = (*DOMESTIC, "plantation_worker", "fishing_crew")  # Perban BP2MI 9/2020
NON_WORK_VISAS = ("tourist", "visa_on_arrival", "visa_free", "umrah", "ziarah", "internship",
                  "none")
SHORT_VISITS = ("tourism", "religious", "family_visit", "business", "internship", "other")
IN_PROCESS = ("p3mi", "g2g", "g2p", "spsk", "self_placed")
SEA_PORTS = {"BTM": ("SG", "MY"), "TPG": ("SG", "MY"), "TBK": ("SG", "MY"), "DUM": ("MY",),
             "NNX": ("MY",)}  # rules/default/reference/neighbour_sea_routes.yaml
EID_AL_FITR = np.array(["2024-04-10", "2025-03-31", "2026-03-20"], dtype="datetime64[D]")
PASAL_13 = tuple(f"placement.documents.{name}" for name in (
    "work_contract", "placement_agreement", "medical_certificate", "competency_certificate",
    "family_consent"))
INTERVIEW_INDICATORS = tuple(f"interview.{name}" for name in (
    "reports_deception", "reports_coercion", "wants_to_go_home", "visible_injury",
    "restricted_communication"))

# Market pay, USD a month, and fee caps, IDR: rules/default/reference as of pack 2026.11.2.
MARKET_PAY = {"domestic_worker": 450, "baby_carer": 450, "elderly_carer": 500, "child_carer": 450,
              "cook": 500, "family_driver": 550, "gardener": 400, "cleaner": 400,
              "plantation_worker": 350, "fishing_crew": 450, "caregiver": 550,
              "manufacturing": 700, "construction": 650, "hospitality": 600, "nurse": 1200,
              "it_customer_service": 600, "entertainment": 500, "other": 500}
MARKET_PAY_BY_DESTINATION = {
    "TW": {"domestic_worker": 620, "caregiver": 620, "plantation_worker": 900,
           "manufacturing": 900, "it_customer_service": 1100},
    "MY": {"domestic_worker": 350, "caregiver": 380, "plantation_worker": 380,
           "manufacturing": 420, "it_customer_service": 700},
    "HK": {"domestic_worker": 640, "caregiver": 640, "manufacturing": 1500,
           "it_customer_service": 1800},
    "SG": {"domestic_worker": 550, "caregiver": 600, "manufacturing": 1200,
           "it_customer_service": 2000},
    "KR": {"domestic_worker": 1500, "caregiver": 1600, "plantation_worker": 1500,
           "manufacturing": 1600, "it_customer_service": 2200},
    "JP": {"domestic_worker": 1400, "caregiver": 1400, "plantation_worker": 1300,
           "manufacturing": 1400, "it_customer_service": 1900},
    "SA": {"domestic_worker": 400, "caregiver": 500, "plantation_worker": 400,
           "manufacturing": 600, "it_customer_service": 900},
}
FEE_CAPS = {("TW", ""): 30e6, ("TW", "domestic_worker"): 20e6, ("TW", "caregiver"): 20e6,
            ("TW", "elderly_carer"): 20e6, ("HK", ""): 15e6, ("KR", ""): 8e6, ("JP", ""): 25e6}

# The fictional sample registry, rules/registry/sample.csv (a test checks they agree).
SAMPLE_REGISTRY = """\
SIP3MI-0001-2021,PT Contoh Karya Mandiri (fiktif),active,2021-03-01,2027-02-28
SIP3MI-0002-2021,PT Contoh Anugerah Jaya (fiktif),active,2021-04-12,2028-04-11
SIP3MI-0003-2021,PT Contoh Borneo Sejahtera (fiktif),active,2021-06-01,2028-05-31
SIP3MI-0004-2022,PT Contoh Bina Tenaga Nusantara (fiktif),active,2022-01-17,2027-01-16
SIP3MI-0005-2022,PT Contoh Cahaya Insani (fiktif),active,2022-03-08,2027-03-07
SIP3MI-0006-2022,PT Contoh Duta Mitra Abadi (fiktif),active,2022-07-20,2027-07-19
SIP3MI-0007-2023,PT Contoh Eka Sumber Rezeki (fiktif),active,2023-02-01,2028-01-31
SIP3MI-0008-2023,PT Contoh Gemilang Pekerja (fiktif),active,2023-05-15,2028-05-14
SIP3MI-0009-2020,PT Contoh Bahari Insani (fiktif),active,2020-05-01,2025-04-30
SIP3MI-0010-2020,PT Contoh Harapan Bangsa (fiktif),active,2020-09-14,2025-09-13
SIP3MI-0011-2020,PT Contoh Intan Permata Kerja (fiktif),active,2020-11-02,2025-11-01
SIP3MI-0012-2023,PT Contoh Jaya Samudera (fiktif),active,2023-08-21,2028-08-20
SIP3MI-0013-2024,PT Contoh Kencana Mulia (fiktif),active,2024-01-10,2029-01-09
SIP3MI-0014-2020,PT Contoh Tenaga Sentosa (fiktif),suspended,2020-08-10,2027-08-09
SIP3MI-0015-2021,PT Contoh Lestari Abadi (fiktif),suspended,2021-10-04,2026-12-31
SIP3MI-0016-2019,PT Contoh Makmur Sejati (fiktif),revoked,2019-12-02,2026-12-01
SIP3MI-0017-2022,PT Contoh Nusa Indah Raya (fiktif),revoked,2022-02-14,2027-02-13
SIP3MI-0018-2024,PT Contoh Obor Harapan (fiktif),active,2024-06-03,2029-06-02
SIP3MI-0019-2024,PT Contoh Pelita Kerja Mandiri (fiktif),active,2024-09-16,2029-09-15
SIP3MI-0020-2025,PT Contoh Rezeki Barokah (fiktif),active,2025-02-03,2030-02-02
SIP3MI-0021-2026,PT Contoh Sinar Timur (fiktif),active,2026-12-01,2031-11-30
SIP3MI-0022-2021,PT Contoh Tunas Bangsa (fiktif),active,2021-01-25,2026-01-24
SIP3MI-0023-2022,PT Contoh Utama Karya (fiktif),active,2022-11-07,2027-11-06
SIP3MI-0024-2023,PT Contoh Wahana Prima (fiktif),active,2023-03-27,2028-03-26
SIP3MI-0025-2022,PT Contoh Zamrud Khatulistiwa (fiktif),revoked,2022-05-09,2027-05-08
"""
LICENCES = tuple(tuple(line.split(",")) for line in SAMPLE_REGISTRY.splitlines())
# what a case's agency licence looks like, before the number is chosen on the screening date
NO_AGENCY, VALID_LICENCE, BAD_LICENCE, UNKNOWN_LICENCE, MISUSED_LICENCE, NAME_ONLY = range(6)

ORIGINS: dict[Any, Table] = {
    "genuine": {"DKI Jakarta": 18, "Jawa Barat": 16, "Jawa Timur": 13, "Jawa Tengah": 9,
                "Banten": 7, "Sumatera Utara": 6, "Kepulauan Riau": 5, "Bali": 4,
                "Sulawesi Selatan": 4, "DI Yogyakarta": 3, "Riau": 3, "Sumatera Barat": 3,
                "Kalimantan Timur": 2, "Lampung": 2, "Nusa Tenggara Barat": 1.5,
                "Kalimantan Barat": 1.5, "Nusa Tenggara Timur": 1, "Aceh": 1},
    # 2023 placements by origin, thousands (domain.md); NTT is the 9th origin
    "procedural": {"Jawa Timur": 68.1, "Jawa Tengah": 59.0, "Jawa Barat": 53.0,
                   "Nusa Tenggara Barat": 33.9, "Lampung": 21.5, "Sumatera Utara": 10.6,
                   "Bali": 9.4, "Banten": 7.0, "Nusa Tenggara Timur": 5.5, "DI Yogyakarta": 4.5,
                   "Sulawesi Selatan": 4.0, "Kalimantan Barat": 3.0, "Sumatera Selatan": 2.5,
                   "Sulawesi Tenggara": 2.0, "Aceh": 2.0, "Jambi": 1.5},
    # NTT has the most problem cases abroad; NTB, Sulawesi and Kalimantan feed the sea routes
    "irregular": {"Jawa Timur": 15, "Nusa Tenggara Barat": 15, "Jawa Barat": 14,
                  "Nusa Tenggara Timur": 14, "Jawa Tengah": 10, "Sulawesi Selatan": 7,
                  "Sumatera Utara": 6, "Lampung": 5, "Kalimantan Barat": 3, "Banten": 3,
                  "Sulawesi Tenggara": 3, "Riau": 2, "Aceh": 2, "Kepulauan Riau": 1},
}
AIRPORTS: dict[Any, Table] = {
    "DKI Jakarta": {"CGK": 1}, "Banten": {"CGK": 1}, "Lampung": {"CGK": 1},
    "Jawa Barat": {"CGK": 85, "KJT": 15}, "Jawa Timur": {"SUB": 75, "CGK": 20, "DPS": 5},
    "Jawa Tengah": {"CGK": 45, "SRG": 20, "SOC": 15, "YIA": 20},
    "DI Yogyakarta": {"YIA": 80, "CGK": 20}, "Sumatera Utara": {"KNO": 90, "CGK": 10},
    "Aceh": {"KNO": 60, "BTJ": 20, "CGK": 20}, "Bali": {"DPS": 1},
    "Nusa Tenggara Barat": {"LOP": 55, "SUB": 20, "CGK": 25},
    "Nusa Tenggara Timur": {"DPS": 40, "SUB": 30, "CGK": 30},
    "Sulawesi Selatan": {"UPG": 60, "CGK": 40}, "Sulawesi Tenggara": {"UPG": 60, "CGK": 40},
    "Kepulauan Riau": {"BTH": 50, "CGK": 50}, "Riau": {"PKU": 50, "CGK": 50},
}
OTHER_AIRPORTS = {"CGK": 80, "SUB": 10, "KNO": 10}
FERRIES: dict[Any, Table] = {"SG": {"BTM": 60, "TPG": 25, "TBK": 15},
                             "MY": {"BTM": 35, "TPG": 10, "TBK": 10, "DUM": 20, "NNX": 25}}
# irregular sea departures: Batam about 10 times Karimun (postponements in 2023)
SEA_PORT_BY_ORIGIN: dict[Any, Table] = {
    "east": {"NNX": 55, "BTM": 32, "TPG": 5, "TBK": 3, "DUM": 5},
    "sumatra": {"DUM": 45, "BTM": 35, "TBK": 10, "TPG": 10},
    "other": {"BTM": 60, "TPG": 13, "TBK": 4, "DUM": 9, "NNX": 14},
}
EASTERN = ("Sulawesi Selatan", "Sulawesi Tenggara", "Nusa Tenggara Timur", "Kalimantan Timur")
SUMATRAN = ("Sumatera Utara", "Aceh", "Riau", "Sumatera Barat", "Lampung", "Jambi")
SMUGGLER_FEES = {"BTM": (13e6, 18e6), "DUM": (4.5e6, 11e6), "TBK": (6.5e6, 9e6),
                 "TPG": (8e6, 15e6), "NNX": (3.2e6, 3.8e6)}  # domain.md; TPG unverified
HUBS: dict[Any, Table] = {"asean": {"SG": 40, "MY": 40, "TH": 20},
        "east_asia": {"SG": 30, "MY": 20, "HK": 25, "TH": 10, "TW": 15},
        "west": {"QA": 35, "AE": 35, "SG": 10, "MY": 10, "TR": 10},
        "far": {"SG": 40, "HK": 20, "JP": 20, "MY": 20}}
REGIONS = {**dict.fromkeys(ASEAN, "asean"),
           **dict.fromkeys(("CN", "HK", "TW", "JP", "KR"), "east_asia"),
           **dict.fromkeys(("AU", "NZ", "US", "PG", "TL"), "far")}

# P(woman | occupation): the only place sex comes from (62% of 2023 placements were women).
WOMEN_SHARE = {"domestic_worker": 0.97, "baby_carer": 0.98, "elderly_carer": 0.93,
               "child_carer": 0.97, "cook": 0.75, "family_driver": 0.03, "gardener": 0.1,
               "cleaner": 0.75, "plantation_worker": 0.15, "fishing_crew": 0.01, "caregiver": 0.9,
               "manufacturing": 0.35, "construction": 0.04, "hospitality": 0.55, "nurse": 0.85,
               "it_customer_service": 0.45, "entertainment": 0.75, "other": 0.45, None: 0.52}
EDUCATION: dict[str, Table] = {  # none, primary, junior / senior secondary, tertiary
    story: dict(zip(CASE_FIELDS["person.education"].values, weights, strict=True))
    for story, weights in (("genuine", (1, 7, 12, 45, 35)), ("procedural", (2, 23, 35, 33, 7)),
                           ("irregular", (6, 42, 34, 16, 2)), ("scam", (0, 5, 20, 50, 25)))
}
AIRPORT_HOURS = {4: 2, 5: 5, 6: 7, 7: 7, 8: 7, 9: 7, 10: 7, 11: 6, 12: 6, 13: 6, 14: 6, 15: 6,
                 16: 6, 17: 6, 18: 6, 19: 6, 20: 5, 21: 5, 22: 4, 23: 3, 0: 2, 1: 1}
FERRY_HOURS = dict.fromkeys(range(7, 19), 6)
EARLY_FERRY_HOURS = {5: 12, 6: 14, **FERRY_HOURS}  # irregular travellers take the first boats
NIGHT_HOURS = dict.fromkeys((20, 21, 22, 23, 0, 1, 2, 3, 4, 5), 1)

# --- 1. genuine travellers ----------------------------------------------------------------------
GENUINE_PURPOSE = {"tourism": 55, "religious": 16, "family_visit": 12, "business": 8, "study": 6,
                   "internship": 1, "other": 2}
GENUINE_DESTINATION: dict[Any, Table] = {
    "tourism": {"MY": 22, "SG": 18, "TH": 10, "JP": 7, "KR": 6, "CN": 5, "HK": 4, "AU": 4, "VN": 3,
                "TR": 3, "KH": 2, "TW": 2, "NL": 2, "AE": 2, "US": 2, "PH": 1, "SA": 1, "IN": 1,
                "MM": 0.5, "LA": 0.5},
    "religious": {"SA": 88, "IT": 3, "IQ": 3, "JO": 2, "IN": 2, "TR": 2},
    "family_visit": {"MY": 35, "SG": 12, "SA": 8, "TW": 8, "HK": 7, "NL": 5, "US": 5, "AU": 5,
                     "JP": 5, "KR": 4, "AE": 3, "QA": 3},
    "business": {"SG": 25, "MY": 20, "CN": 20, "JP": 8, "KR": 6, "HK": 6, "AE": 5, "TH": 5,
                 "US": 5},
    "study": {"AU": 12, "JP": 12, "MY": 12, "EG": 10, "TW": 10, "GB": 8, "SA": 6, "KR": 6, "NL": 6,
              "DE": 6, "US": 5, "TR": 4, "CN": 3},
    "internship": {"JP": 70, "KR": 10, "DE": 10, "TW": 10},
    "other": {"SG": 30, "MY": 30, "TL": 10, "JP": 10, "TH": 10, "AU": 5, "PG": 5},
}
GENUINE_TICKET = {"return": 93, "one_way": 5, "none": 2}
STUDENT_TICKET = {"one_way": 60, "return": 40}
GENUINE_PAID_BY = {"self": 65, "family": 30, "agency": 3, "sponsor": 2}
BUSINESS_PAID_BY = {"employer": 60, "self": 40}
FAMILY_SIZE = {1: 40, 2: 30, 3: 12, 4: 12, 5: 4, 6: 2}

# --- 2. procedural placements (2023 placements by destination, thousands; domain.md) -----------
PROCEDURAL_DESTINATION = {"TW": 83.2, "MY": 72.3, "HK": 65.9, "KR": 12.6, "JP": 9.7, "SG": 7.9,
                          "SA": 6.3, "BN": 3.0, "PL": 2.5, "DE": 2.0, "AE": 2.0, "QA": 2.0,
                          "IT": 1.5, "TR": 1.5, "NZ": 1.0, "AU": 1.0}
SCHEME: dict[Any, Table] = {
          "SA": {"spsk": 70, "p3mi": 30}, "KR": {"g2g": 85, "p3mi": 5, "self_placed": 10},
          "JP": {"p3mi": 60, "g2p": 20, "self_placed": 20}, "TW": {"p3mi": 95, "self_placed": 5},
          "HK": {"p3mi": 97, "self_placed": 3}, "MY": {"p3mi": 90, "self_placed": 10},
          "SG": {"p3mi": 95, "self_placed": 5}}
OTHER_SCHEME = {"p3mi": 70, "self_placed": 20, "g2p": 10}
PROCEDURAL_OCCUPATION: dict[Any, Table] = {
    "TW": {"caregiver": 45, "domestic_worker": 10, "manufacturing": 30, "fishing_crew": 8,
           "plantation_worker": 3, "construction": 2, "other": 2},
    "HK": {"domestic_worker": 75, "caregiver": 15, "baby_carer": 4, "elderly_carer": 5, "cook": 1},
    "MY": {"plantation_worker": 32, "domestic_worker": 12, "manufacturing": 30, "construction": 12,
           "hospitality": 5, "caregiver": 4, "cleaner": 5},
    "KR": {"manufacturing": 70, "fishing_crew": 15, "construction": 5, "plantation_worker": 10},
    "JP": {"caregiver": 30, "manufacturing": 30, "construction": 10, "nurse": 10, "hospitality": 10,
           "fishing_crew": 5, "plantation_worker": 5},
    "SG": {"domestic_worker": 70, "caregiver": 10, "elderly_carer": 5, "manufacturing": 8,
           "hospitality": 7},
    "SA": {"domestic_worker": 70, "cook": 5, "family_driver": 10, "hospitality": 10, "nurse": 5},
}
OTHER_OCCUPATION = {"manufacturing": 20, "hospitality": 25, "nurse": 10, "caregiver": 10,
                    "construction": 10, "fishing_crew": 10, "plantation_worker": 10, "other": 5}
RECRUITED_VIA: dict[Any, Table] = {
    "p3mi": {"licensed_agency": 65, "ltsa": 25, "social_media": 4, "family_friend": 4, "other": 2},
    "spsk": {"licensed_agency": 70, "ltsa": 30},
    "self_placed": {"family_friend": 40, "social_media": 30, "ltsa": 20, "other": 10},
}
GOVERNMENT_RECRUITED_VIA = {"ltsa": 90, "social_media": 5, "other": 5}
PROCEDURAL_LICENCE = {VALID_LICENCE: 98, BAD_LICENCE: 0.5, UNKNOWN_LICENCE: 1, NAME_ONLY: 0.5}
PROCEDURAL_DOCUMENTS = {"work_contract": 0.99, "placement_agreement": 0.99,
                        "medical_certificate": 0.99, "competency_certificate": 0.985,
                        "family_consent": 0.99, "bpjs": 0.975, "opp_completed": 0.95,
                        "e_pmi_id": 0.85}
SELF_PLACED_AGREEMENT = {None: 70, True: 20, False: 10}  # no agency, often no such agreement
PROCEDURAL_VISA = {"work": 98.5, "tourist": 1, "none": 0.5}
PROCEDURAL_TICKET = {"one_way": 85, "return": 15}
PAID_BY_TW_HK = {"self": 35, "agency": 45, "employer": 20}  # costs still charged there
PAID_BY_ZERO_COST = {"agency": 60, "employer": 40}
PAID_BY_OTHER = {"employer": 50, "agency": 30, "self": 20}

# --- 3. irregular stories: what they share, per story (SEA, SCAM, GULF, OVERSTAY, UNLICENSED) ---
IRREGULAR_RATES = {
    "escort": (0.55, 0.35, 0.40, 0.25, 0.30),
    "documents_held": (0.15, 0.10, 0.12, 0.05, 0.10),
    "cannot_explain": (0.30, 0.25, 0.25, 0.20, 0.10),
    "indicator": (0.03, 0.04, 0.03, 0.01, 0.02),  # each of the five interview indicators
    "minor": (0.06, 0.02, 0.03, 0.02, 0.08),
    "prior_overseas_work": (0.35, 0.10, 0.40, 0.20, 0.25),
    "prior_postponed": (0.12, 0.10, 0.15, 0.10, 0.08),
    "prior_deportation": (0.08, 0.05, 0.06, 0.06, 0.03),
    "prior_victim": (0.01, 0.04, 0.03, 0.01, 0.01),
    "new_passport": (0.45, 0.55, 0.45, 0.45, 0.50),
    "debt": (0.45, 0.20, 0.50, 0.35, 0.50),
    "has_document": (0.15, 0.10, 0.20, 0.15, 0.55),  # each Pasal 13 document and BPJS
}
IRREGULAR_GROUP_SIZE = {1: 45, 2: 15, 3: 12, 4: 10, 5: 8, 6: 5, 8: 5}

SEA_PURPOSE = {"tourism": 45, "family_visit": 20, "work": 25, "other": 10}
SEA_VISA = {"visa_free": 75, "none": 5, "tourist": 8, "visa_on_arrival": 6, "work": 6}
UNOFFICIAL_VISA = {"none": 80, "visa_free": 20}
SEA_TICKET = {"one_way": 55, "return": 35, "none": 10}
UNOFFICIAL_TICKET = {"none": 80, "one_way": 20}
SEA_OCCUPATION = {"plantation_worker": 30, "construction": 20, "domestic_worker": 20,
                  "manufacturing": 10, "hospitality": 8, "fishing_crew": 5, "cleaner": 4,
                  "other": 3}
SEA_RECRUITED_VIA = {"individual_broker": 50, "family_friend": 30, "social_media": 12, "other": 8}
SEA_PAYEE = {"individual": 45, "boat_operator": 45, "none": 10}

SCAM_DESTINATION = {"KH": 55, "TH": 17, "PH": 12, "MM": 8, "LA": 8}
SCAM_TRANSIT: dict[Any, Table] = {"KH": {(): 40, ("MY",): 20, ("SG",): 20, ("TH",): 20},
                "MM": {("TH",): 80, ("MY", "TH"): 20}, "LA": {("TH",): 50, ("VN",): 20, (): 30},
                "PH": {(): 80, ("SG",): 20}, "TH": {(): 85, ("MY",): 15}}
SCAM_PURPOSE = {"tourism": 80, "business": 10, "work": 10}
SCAM_VISA = {"visa_free": 80, "visa_on_arrival": 8, "tourist": 7, "work": 5}
SCAM_TICKET = {"return": 45, "one_way": 50, "none": 5}
SCAM_OCCUPATION = {"it_customer_service": 70, "hospitality": 8, "entertainment": 7, "other": 15}
SCAM_RECRUITED_VIA = {"social_media": 65, "family_friend": 20, "individual_broker": 15}

GULF_DESTINATION = {"SA": 60, "AE": 10, "QA": 6, "KW": 6, "OM": 5, "JO": 5, "BH": 4, "TR": 4}
SAUDI_PURPOSE = {"religious": 55, "family_visit": 20, "work": 15, "tourism": 10}
GULF_PURPOSE = {"tourism": 45, "family_visit": 35, "work": 20}
SAUDI_VISA = {"umrah": 50, "ziarah": 20, "tourist": 15, "work": 10, "none": 5}
GULF_VISA = {"tourist": 60, "visa_on_arrival": 20, "work": 15, "none": 5}
GULF_TICKET = {"one_way": 55, "return": 40, "none": 5}
GULF_PAID_BY = {"sponsor": 55, "agency": 10, "self": 20, "family": 15}
GULF_OCCUPATION = {"domestic_worker": 70, "cook": 6, "family_driver": 8, "baby_carer": 5,
                   "elderly_carer": 4, "cleaner": 4, "other": 3}
GULF_RECRUITED_VIA = {"individual_broker": 65, "family_friend": 25, "social_media": 10}

OVERSTAY_DESTINATION = {"MY": 45, "KR": 10, "TW": 10, "JP": 8, "HK": 7, "SG": 5, "AU": 5, "BN": 5,
                        "PL": 5}
OVERSTAY_PURPOSE = {"tourism": 75, "family_visit": 15, "business": 5, "study": 5}
OVERSTAY_TICKET = {"return": 60, "one_way": 35, "none": 5}
OVERSTAY_PAID_BY = {"self": 50, "sponsor": 30, "family": 20}
OVERSTAY_OCCUPATION: dict[Any, Table] = {
    "MY": {"plantation_worker": 30, "domestic_worker": 20, "construction": 20, "manufacturing": 15,
           "hospitality": 15}}
OVERSTAY_OTHER_OCCUPATION = {"manufacturing": 30, "caregiver": 15, "domestic_worker": 15,
                             "hospitality": 15, "plantation_worker": 10, "construction": 10,
                             "fishing_crew": 5}
OVERSTAY_RECRUITED_VIA = {"family_friend": 40, "individual_broker": 30, "social_media": 25,
                          "other": 5}

UNLICENSED_DESTINATION = {"MY": 30, "SA": 15, "TW": 15, "HK": 10, "PL": 10, "JP": 10, "KR": 10}
UNLICENSED_OCCUPATION: dict[Any, Table] = {
    "SA": {"domestic_worker": 80, "family_driver": 10, "cook": 10},
    "HK": {"domestic_worker": 90, "caregiver": 10},
    "TW": {"caregiver": 50, "manufacturing": 40, "fishing_crew": 10}}
UNLICENSED_OTHER_OCCUPATION = {"manufacturing": 35, "plantation_worker": 20, "construction": 15,
                               "hospitality": 15, "domestic_worker": 10, "fishing_crew": 5}
UNLICENSED_VISA = {"work": 40, "tourist": 30, "visa_free": 15, "visa_on_arrival": 5, "none": 10}
UNLICENSED_TICKET = {"one_way": 80, "return": 15, "none": 5}
UNLICENSED_PAID_BY = {"agency": 60, "self": 30, "sponsor": 10}
UNLICENSED_SCHEME = {"p3mi": 85, "g2p": 5, "self_placed": 10}
UNLICENSED_RECRUITED_VIA = {"licensed_agency": 45, "individual_broker": 25, "social_media": 20,
                            "ltsa": 10}
UNLICENSED_PAYEE = {"agency": 70, "individual": 30}
UNLICENSED_LICENCE = {UNKNOWN_LICENCE: 45, BAD_LICENCE: 30, MISUSED_LICENCE: 15, NAME_ONLY: 10}
# fmt: on

# --- the label: log-odds of a non-procedural departure given the complete record ---------------

INTERCEPT = -5.8
WEIGHTS: dict[str, float] = {
    # intent and papers
    "work_intent": 0.15,
    "work_intent_without_work_visa": 2.5,
    "work_visa_for_work": -0.4,
    "in_placement_scheme": -0.3,
    "complete_procedural_file": -0.8,
    # route and destination
    "sea_route_to_neighbour": 0.25,
    "sea_route_work_without_papers": 1.5,
    "unofficial_exit": 3.0,
    "young_on_sea_route": 0.3,
    "former_migrant_on_sea_route": 0.15,
    "scam_hotspot_route": 0.15,
    "scam_route_x_it_job": 2.0,
    "scam_route_x_it_job_x_non_work_visa": 0.5,
    "moratorium_domestic_individual_employer": 2.0,
    # recruitment and money
    "individual_broker": 1.2,
    "fee_to_individual": 1.0,
    "social_media_offer": 0.15,
    "pay_moderately_above_market": 0.25,
    "pay_far_above_market": 0.4,
    "social_media_x_pay_far_above_market": 0.5,
    "debt_or_salary_deduction": 0.3,
    "fee_for_zero_cost_job": 0.25,
    "fee_over_cap": 0.15,
    "agency_licence_not_active": 2.5,
    "agency_without_job_order": 0.25,
    "missing_pasal_13_documents": 0.2,  # per missing document, 0 to 5
    "no_bpjs": 0.15,
    # the trip
    "one_way_short_visit": 0.3,
    "sponsor_paid_non_work_trip": 0.5,
    "agency_paid_non_work_trip": 0.15,
    "return_ticket_self_paid_visit": -0.4,
    "new_passport": 0.15,
    "new_passport_x_one_way": 0.15,
    "new_passport_x_one_way_x_escort": 0.5,
    "escort_present": 0.15,
    "escort_x_small_group": 0.25,
    "escort_ring": 0.5,
    "documents_held_by_other": 2.0,
    "cannot_explain_trip": 0.55,
    "forced_labour_indicator": 2.0,
    # the person (never sex, never the province of origin)
    "minor_with_work_intent": 3.0,
    "low_education": 0.1,
    "prior_postponed_departure": 0.55,
    "prior_deportation": 0.45,
    "prior_trafficking_victim": 1.5,
    # where and when
    "port_desk": 0.1,
    "ltsa_counter": -0.45,
    "early_morning_departure": 0.15,
    "after_lebaran": 0.15,
}

# --- hiding: P(a field is recorded unknown) = base + extra for non-procedural travellers --------

HIDDEN: dict[str, tuple[float, float]] = {
    "person.full_name": (0.10, 0.00),
    "person.nik": (0.35, 0.05),
    "person.passport_no": (0.08, 0.00),
    "person.origin_province": (0.08, 0.00),
    "person.education": (0.30, 0.05),
    "person.prior_overseas_work": (0.30, 0.05),
    "person.prior_postponed_departure": (0.10, 0.05),
    "person.prior_deportation": (0.10, 0.05),
    "person.prior_trafficking_victim": (0.20, 0.05),
    "travel.exit_point": (0.02, 0.0),
    "travel.exit_point_type": (0.01, 0.0),
    "travel.mode": (0.01, 0.0),
    "travel.destination_country": (0.01, 0.00),
    "travel.transit_countries": (0.25, 0.00),
    "travel.ticket": (0.05, 0.02),
    "travel.ticket_paid_by": (0.20, 0.20),
    "travel.declared_purpose": (0.03, 0.03),
    "travel.visa_type": (0.04, 0.02),
    "travel.passport_issued_on": (0.10, 0.00),
    "travel.group_size": (0.20, 0.00),
    "travel.escort_present": (0.08, 0.05),
    "travel.documents_held_by_other": (0.10, 0.05),
    "placement.scheme": (0.10, 0.10),
    "placement.agency_license_no": (0.08, 0.15),
    "placement.agency_name": (0.10, 0.15),
    "placement.job_order_no": (0.05, 0.05),
    "placement.employer_type": (0.20, 0.20),
    "placement.occupation": (0.08, 0.35),
    "placement.offered_monthly_salary_usd": (0.15, 0.35),
    **dict.fromkeys(PASAL_13, (0.10, 0.15)),
    "placement.documents.bpjs": (0.10, 0.15),
    "placement.documents.opp_completed": (0.10, 0.15),
    "placement.documents.e_pmi_id": (0.10, 0.15),
    "recruitment.channel": (0.10, 0.35),
    "recruitment.fee_demanded_idr": (0.15, 0.35),
    "recruitment.fee_paid_idr": (0.15, 0.35),
    "recruitment.fee_payee": (0.15, 0.35),
    "recruitment.debt_or_salary_deduction": (0.25, 0.30),
    "interview.can_explain_trip": (0.10, 0.00),
    **dict.fromkeys(INTERVIEW_INDICATORS, (0.15, 0.0)),
    "links.escort_ref": (0.20, 0.20),
    "links.group_ref": (0.30, 0.10),
}
# How much of the label-dependent hiding above applies. Zero: what a desk does not record does
# not depend on the answer. With label-dependent hiding an additive model adds up a weight for
# every unknown field and ranks an almost empty record (a family visit with the form half blank)
# near the top, with "unknown" as its main reasons; an experiment with zero lost no AUC (0.931
# against 0.932 on held-out data). Only a concealed job (below) remains label-dependent: it hides
# the work signs of irregular travellers who declare a visit, which makes them look like genuine
# visitors, not like empty records.
LABEL_HIDING_SCALE = 0.0
# Whole sections a desk or office does not record at all, for anyone (label-independent): a desk
# that does not interview records no interview answers; one that does not check the history
# records none of it. Keeps a sparse record ordinary, as it is at a busy desk.
SECTIONS = {
    "interview.": {"desk": 0.45, "office": 0.70},
    "person.prior_": {"desk": 0.35, "office": 0.20},
    "placement.documents.": {"desk": 0.50, "office": 0.10},
    "recruitment.": {"desk": 0.40, "office": 0.10},
    "travel.escort_present": {"desk": 0.30, "office": 0.60},
    "travel.documents_held_by_other": {"desk": 0.30, "office": 0.60},
}
DESK_DOCUMENTS_HIDDEN = 0.15  # added at desks: they see fewer placement papers than the LTSA
OFFICE_INTERVIEW_HIDDEN = 0.35  # added for LTSA files and batch records: fewer desk observations
LTSA_NIK_HIDDEN = 0.05  # the LTSA always takes the NIK
BIRTH_DATE_HIDDEN = (0.20, 0.05)
AGE_HIDDEN_WITH_BIRTH_DATE = 0.75  # the birth date wins; many records carry only it
AGE_HIDDEN_WITHOUT_BIRTH_DATE = (0.25, 0.10)
# A traveller who declares a visit may keep a job offer to themselves: then the record holds
# nothing of placement or recruitment. P(concealed), for procedural / non-procedural travellers.
JOB_CONCEALED = (0.05, 0.55)
VISIT_DOCUMENTS_HIDDEN = 0.5  # added for declared visits: desks seldom ask for placement papers
WORK_SIGNS = tuple(path for path in CASE_FIELDS if path.startswith(("placement.", "recruitment.")))


def generate(rows: int, seed: int) -> dict[str, Column]:
    """Columns of `rows` synthetic screening cases, deterministic from `seed`.

    Keys: every path of `engine.case.CASE_FIELDS`, plus `non_procedural` (numpy bool). Enumerations,
    text and countries are object arrays of str (None = unknown); yes/no fields object arrays of
    True/False/None; numbers float64 (NaN = unknown); dates datetime64[D] (NaT = unknown);
    `screened_at` datetime64[s] in UTC; `travel.transit_countries` tuples or None. Rows are in
    screening order, so replaying them links escorts across desks as the service would.
    """
    columns, _truth = _generate(rows, seed)
    return columns


def _generate(rows: int, seed: int) -> tuple[Columns, dict[str, Column]]:
    """The columns, and what is true but never shown: the story, the escort rings, and the
    probability the label was drawn from (for the model card and calibration checks)."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    rng = np.random.default_rng(seed)
    cols: Columns = {path: _empty(spec.kind, rows) for path, spec in CASE_FIELDS.items()}
    story = rng.choice(len(STORIES), size=rows, p=_normalised(STORY_SHARES))
    aux: Columns = {
        "story": story,
        "age": np.zeros(rows),
        "passport_days": np.zeros(rows),
        "licence_kind": np.zeros(rows, dtype=np.int8),
        "tour": np.zeros(rows, dtype=bool),
        "ring": np.zeros(rows, dtype=bool),
        "leader": np.arange(rows),
        "offset": np.zeros(rows, dtype=np.int64),
    }
    _genuine(rng, cols, aux, np.flatnonzero(story == GENUINE))
    _procedural(rng, cols, aux, np.flatnonzero(story == PROCEDURAL))
    _irregular(rng, cols, aux, np.flatnonzero(story >= SEA))
    _groups(rng, cols, aux, seed)
    _desks(rng, cols, story)
    _times(rng, cols, aux)
    _dates(cols, aux)
    _agencies(rng, cols, aux)
    cols["person.sex"] = _sex(rng, cols["placement.occupation"])
    probability = 1.0 / (1.0 + np.exp(-logit(cols, aux["ring"])))
    label = rng.random(rows) < probability
    _identifiers(cols, seed)
    _hide(rng, cols, label)
    order = np.argsort(cols["screened_at"], kind="stable")
    for path in cols:  # one column at a time, to hold one copy at most
        cols[path] = cols[path][order]
    cols["case_id"] = _numbered(f"SYN-{seed}-", np.arange(rows))
    cols[LABEL] = label[order]
    truth = {"story": story[order], "ring": aux["ring"][order], "probability": probability[order]}
    return cols, truth


def logit(cols: Mapping[str, Column], ring: Column) -> NDArray[np.float64]:
    """Log-odds of a non-procedural departure: `INTERCEPT` + sum of `WEIGHTS` x `signals`."""
    total = np.full(len(cols["channel"]), INTERCEPT)
    for name, value in signals(cols, ring).items():
        total += WEIGHTS[name] * value
    return total


def signals(cols: Mapping[str, Column], ring: Column) -> dict[str, Column]:
    """The risk signals of each record (yes/no, or a count), as the label reads them.

    `ring`: whether the case's escort took 3 or more travellers within a few days. Unknown
    values count as absent; the generator applies this to complete records only.
    """
    v = cols
    day = v["screened_at"].astype("datetime64[D]")
    work = _work_intent(v)
    visa, purpose = v["travel.visa_type"], v["travel.declared_purpose"]
    non_work_visa = _among(visa, NON_WORK_VISAS)
    occupation, destination = v["placement.occupation"], v["travel.destination_country"]
    sea = _sea_route(v)
    age = _whole_years(v["person.birth_date"], day)
    channel = v["recruitment.channel"]
    with np.errstate(invalid="ignore"):
        ratio = v["placement.offered_monthly_salary_usd"] / _market_pay(occupation, destination)
    ratio = np.nan_to_num(ratio, nan=0.0)
    fee = np.fmax(
        np.nan_to_num(v["recruitment.fee_demanded_idr"]),
        np.nan_to_num(v["recruitment.fee_paid_idr"]),
    )
    documents = [v[path] for path in PASAL_13]
    missing = np.sum([document == False for document in documents], axis=0)  # noqa: E712
    in_scheme = _among(v["placement.scheme"], IN_PROCESS)
    job_order = _known(v["placement.job_order_no"])
    agency = _agency_involved(v)
    status = _licence_status(v["placement.agency_license_no"], day)
    ticket, paid_by = v["travel.ticket"], v["travel.ticket_paid_by"]
    one_way = _among(ticket, ("one_way", "none"))
    visit = _among(purpose, SHORT_VISITS)
    issued = v["travel.passport_issued_on"]
    new = ~np.isnat(issued) & ((day - issued) < np.timedelta64(NEW_PASSPORT_DAYS, "D"))
    escort = v["travel.escort_present"] == True  # noqa: E712
    group = v["travel.group_size"]
    hotspot = _among(destination, SCAM_HOTSPOTS) | _through(v, SCAM_HOTSPOTS)
    it_job = occupation == "it_customer_service"
    hour = (v["screened_at"] + WIB).astype("datetime64[h]").astype(np.int64) % 24
    after_eid = _days_after_eid(day)
    yes = {path: v[path] == True for path in (  # noqa: E712
        "person.prior_overseas_work", "person.prior_postponed_departure",
        "person.prior_deportation", "person.prior_trafficking_victim",
        "recruitment.debt_or_salary_deduction", "travel.documents_held_by_other",
        *INTERVIEW_INDICATORS)}  # fmt: skip
    found = {
        "work_intent": work,
        "work_intent_without_work_visa": work & non_work_visa,
        "work_visa_for_work": work & (visa == "work"),
        "in_placement_scheme": in_scheme,
        "complete_procedural_file": in_scheme
        & (visa == "work")
        & job_order
        & np.all([document == True for document in documents], axis=0),  # noqa: E712
        "sea_route_to_neighbour": sea,
        "sea_route_work_without_papers": sea & work & (visa != "work") & ~job_order,
        "unofficial_exit": v["travel.exit_point_type"] == "unofficial",
        "young_on_sea_route": sea & (age < 21),
        "former_migrant_on_sea_route": sea & yes["person.prior_overseas_work"],
        "scam_hotspot_route": hotspot,
        "scam_route_x_it_job": hotspot & it_job,
        "scam_route_x_it_job_x_non_work_visa": hotspot & it_job & non_work_visa,
        "moratorium_domestic_individual_employer": _among(destination, MORATORIUM)
        & _among(occupation, DOMESTIC)
        & (v["placement.employer_type"] == "individual"),
        "individual_broker": channel == "individual_broker",
        "fee_to_individual": _among(v["recruitment.fee_payee"], ("individual", "boat_operator")),
        "social_media_offer": channel == "social_media",
        "pay_moderately_above_market": (ratio >= 1.3) & (ratio < 2),
        "pay_far_above_market": ratio >= 2,
        "social_media_x_pay_far_above_market": (channel == "social_media") & (ratio >= 2),
        "debt_or_salary_deduction": yes["recruitment.debt_or_salary_deduction"],
        "fee_for_zero_cost_job": (fee > 0)
        & _among(occupation, ZERO_COST)
        & ~_among(destination, ("TW", "HK")),
        "fee_over_cap": fee > _fee_cap(destination, occupation),
        "agency_licence_not_active": agency & _among(status, ("inactive", "not_found")),
        "agency_without_job_order": agency & ~job_order,
        "missing_pasal_13_documents": missing,
        "no_bpjs": v["placement.documents.bpjs"] == False,  # noqa: E712
        "one_way_short_visit": one_way & visit,
        "sponsor_paid_non_work_trip": (paid_by == "sponsor")
        & _known(purpose)
        & (purpose != "work"),
        "agency_paid_non_work_trip": (paid_by == "agency") & _known(purpose) & (purpose != "work"),
        "return_ticket_self_paid_visit": (ticket == "return")
        & _among(paid_by, ("self", "family"))
        & visit,
        "new_passport": new,
        "new_passport_x_one_way": new & one_way,
        "new_passport_x_one_way_x_escort": new & one_way & escort,
        "escort_present": escort,
        "escort_x_small_group": escort & (group >= 2) & (group <= 8),
        "escort_ring": ring,
        "documents_held_by_other": yes["travel.documents_held_by_other"],
        "cannot_explain_trip": v["interview.can_explain_trip"] == False,  # noqa: E712
        "forced_labour_indicator": np.any([yes[path] for path in INTERVIEW_INDICATORS], axis=0),
        "minor_with_work_intent": work & (age < 18),
        "low_education": _among(v["person.education"], ("none", "primary")),
        "prior_postponed_departure": yes["person.prior_postponed_departure"],
        "prior_deportation": yes["person.prior_deportation"],
        "prior_trafficking_victim": yes["person.prior_trafficking_victim"],
        "port_desk": v["channel"] == "port_desk",
        "ltsa_counter": v["channel"] == "ltsa_counter",
        "early_morning_departure": (hour >= 4) & (hour < 7),
        "after_lebaran": after_eid < 56,
    }
    return {name: np.asarray(value) for name, value in found.items()}


def to_records(
    columns: Mapping[str, Column], rows: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """Case-v1 records (nested dicts, JSON-ready: dates as ISO strings, unknowns omitted) for the
    given rows (all by default). Columns that are not case fields, such as the label, are left
    out."""
    paths = [path for path in CASE_FIELDS if path in columns]
    count = len(columns[paths[0]]) if paths else 0
    index = np.arange(count) if rows is None else np.fromiter(rows, dtype=np.int64)
    values = [(path.split("."), _plain(path, columns[path][index])) for path in paths]
    records = []
    for row in range(len(index)):
        record: dict[str, Any] = {}
        for (*groups, name), column in values:
            value = column[row]
            if value is None:
                continue
            node = record
            for group in groups:
                node = node.setdefault(group, {})
            node[name] = value
        records.append(record)
    return records


# --- stories ------------------------------------------------------------------------------------


def _genuine(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    purpose = _draw(rng, GENUINE_PURPOSE, n)
    destination = _draw_by(rng, purpose, GENUINE_DESTINATION)
    origin = _draw(rng, ORIGINS["genuine"], n)
    visa = _either(_among(destination, ASEAN), "visa_free", "tourist")
    visa[destination == "TL"] = "visa_on_arrival"
    visa[(destination == "JP") & (rng.random(n) < 0.5)] = "visa_free"  # e-passport waiver
    _set_where(rng, visa, (purpose == "religious") & (destination == "SA"),
               {"umrah": 85, "hajj": 12, "tourist": 3})  # fmt: skip
    visa[_among(purpose, ("religious", "family_visit")) & _among(destination, ("IQ", "SA"))
         & (visa == "tourist")] = "ziarah"  # fmt: skip
    _set_where(rng, visa, purpose == "study", {"student": 95, "tourist": 5})
    visa[purpose == "internship"] = "internship"
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.6)
    tour = _among(purpose, ("tourism", "religious")) & (
        rng.random(n) < np.where(purpose == "religious", 0.45, 0.12)
    )
    study = _among(purpose, ("study", "internship"))
    age = np.where(rng.random(n) < 0.08, rng.uniform(1, 18, n), 18 + rng.gamma(3.0, 6.0, n))
    _put(cols, idx, {
        "person.origin_province": origin,
        "person.education": _draw(rng, EDUCATION["genuine"], n),
        "person.prior_overseas_work": _bools(rng, 0.08, n),
        "person.prior_postponed_departure": _bools(rng, 0.005, n),
        "person.prior_deportation": _bools(rng, 0.002, n),
        "person.prior_trafficking_victim": _bools(rng, 0.0005, n),
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": _transit(rng, destination, direct=0.7),
        "travel.ticket": np.where(study, _draw(rng, STUDENT_TICKET, n),
                                  _draw(rng, GENUINE_TICKET, n)),
        "travel.ticket_paid_by": np.where(purpose == "business", _draw(rng, BUSINESS_PAID_BY, n),
                                          _draw(rng, GENUINE_PAID_BY, n)),
        "travel.declared_purpose": purpose,
        "travel.visa_type": visa,
        "travel.group_size": np.where(tour, rng.integers(10, 46, n), _draw(rng, FAMILY_SIZE, n)),
        "travel.escort_present": _objects(tour),
        "travel.documents_held_by_other": _bools(
            rng, np.where(tour & (purpose == "religious"), 0.03, 0.003), n),
        "placement.scheme": _draw(rng, {"none": 20, None: 80}, n),
        **_interview(rng, n, cannot_explain=0.015, indicator=0.0005),
    })  # fmt: skip
    aux["age"][idx] = np.where(study, rng.uniform(18, 30, n), np.minimum(age, 85))
    aux["tour"][idx] = tour
    aux["passport_days"][idx] = np.where(
        rng.random(n) < 0.05, rng.uniform(5, NEW_PASSPORT_DAYS, n), rng.uniform(60, 3650, n)
    )


def _procedural(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    destination = _draw(rng, PROCEDURAL_DESTINATION, n)
    scheme = _draw_by(rng, destination, SCHEME, OTHER_SCHEME)
    occupation = _draw_by(rng, destination, PROCEDURAL_OCCUPATION, OTHER_OCCUPATION)
    occupation[(scheme == "spsk") & ~_among(occupation, DOMESTIC)] = "domestic_worker"
    household = _among(occupation, DOMESTIC) & ~_among(destination, MORATORIUM)
    origin = _draw(rng, ORIGINS["procedural"], n)
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.18)
    first_time = rng.random(n) < 0.65
    zero_cost = _among(occupation, ZERO_COST)
    taiwan_hk = _among(destination, ("TW", "HK"))
    fee = _procedural_fees(rng, destination, occupation, zero_cost & ~taiwan_hk)
    agency = _among(scheme, ("p3mi", "spsk"))
    job_order = rng.random(n) < np.select([scheme == "self_placed", agency], [0.3, 0.95], 0.9)
    _put(cols, idx, {
        "person.origin_province": origin,
        "person.education": _draw(rng, EDUCATION["procedural"], n),
        "person.prior_overseas_work": _objects(~first_time),
        "person.prior_postponed_departure": _bools(rng, 0.01, n),
        "person.prior_deportation": _bools(rng, 0.003, n),
        "person.prior_trafficking_victim": _bools(rng, 0.001, n),
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": _transit(rng, destination, direct=0.8),
        "travel.ticket": _draw(rng, PROCEDURAL_TICKET, n),
        "travel.ticket_paid_by": np.select(
            [taiwan_hk, zero_cost],
            [_draw(rng, PAID_BY_TW_HK, n), _draw(rng, PAID_BY_ZERO_COST, n)],
            _draw(rng, PAID_BY_OTHER, n)),
        "travel.declared_purpose": np.full(n, "work", dtype=object),
        "travel.visa_type": _draw(rng, PROCEDURAL_VISA, n),
        "travel.group_size": np.where(rng.random(n) < 0.75, 1, rng.integers(2, 13, n)),
        "travel.escort_present": _bools(rng, 0.04, n),
        "travel.documents_held_by_other": _bools(rng, 0.005, n),
        "placement.scheme": scheme,
        "placement.employer_type": _either(household & (rng.random(n) < 0.92), "individual",
                                           "legal_entity"),
        "placement.occupation": occupation,
        "placement.offered_monthly_salary_usd": np.round(
            _market_pay(occupation, destination) * rng.lognormal(0.03, 0.12, n)),
        "placement.job_order_no": _marks(job_order),
        **{f"placement.documents.{name}": _bools(rng, p, n)
           for name, p in PROCEDURAL_DOCUMENTS.items()},
        "recruitment.channel": _draw_by(rng, scheme, RECRUITED_VIA, GOVERNMENT_RECRUITED_VIA),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": np.where(rng.random(n) < 0.7, fee, _round_fee(fee / 2)),
        "recruitment.fee_payee": _either(fee > 0, "agency", "none"),
        "recruitment.debt_or_salary_deduction": _bools(rng, np.where(taiwan_hk, 0.10, 0.03), n),
        **_interview(rng, n, cannot_explain=0.015, indicator=0.001),
    })  # fmt: skip
    self_placed = idx[scheme == "self_placed"]
    cols["placement.documents.placement_agreement"][self_placed] = _draw(
        rng, SELF_PLACED_AGREEMENT, len(self_placed)
    )
    aux["licence_kind"][idx] = np.where(agency, _draw(rng, PROCEDURAL_LICENCE, n), NO_AGENCY)
    adult = np.minimum(18.5 + rng.gamma(2.2, 5.0, n), 58)
    aux["age"][idx] = np.where(rng.random(n) < 0.001, rng.uniform(16, 18, n), adult)
    aux["passport_days"][idx] = np.where(
        first_time, rng.uniform(20, 240, n), rng.uniform(60, 1800, n)
    )


def _irregular(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    """What the five irregular stories share; each story's function adds its route and job."""
    n = len(idx)
    story = aux["story"][idx]
    rate = {name: np.asarray(values)[story - SEA] for name, values in IRREGULAR_RATES.items()}
    education = np.where(
        story == SCAM, _draw(rng, EDUCATION["scam"], n), _draw(rng, EDUCATION["irregular"], n)
    )
    has = rate["has_document"]
    _put(cols, idx, {
        "person.origin_province": _draw(rng, ORIGINS["irregular"], n),
        "person.education": education,
        "person.prior_overseas_work": _bools(rng, rate["prior_overseas_work"], n),
        "person.prior_postponed_departure": _bools(rng, rate["prior_postponed"], n),
        "person.prior_deportation": _bools(rng, rate["prior_deportation"], n),
        "person.prior_trafficking_victim": _bools(rng, rate["prior_victim"], n),
        "travel.escort_present": _bools(rng, rate["escort"], n),
        "travel.documents_held_by_other": _bools(rng, rate["documents_held"], n),
        "travel.group_size": _draw(rng, IRREGULAR_GROUP_SIZE, n),
        "recruitment.debt_or_salary_deduction": _bools(rng, rate["debt"], n),
        "placement.scheme": _draw(rng, {"none": 40, None: 60}, n),
        **{path: _bools(rng, has, n) for path in (*PASAL_13, "placement.documents.bpjs")},
        "placement.documents.opp_completed": _bools(rng, has / 2, n),
        "placement.documents.e_pmi_id": _bools(rng, has / 3, n),
        **_interview(rng, n, cannot_explain=rate["cannot_explain"], indicator=rate["indicator"]),
    })  # fmt: skip
    adult = np.clip(16 + rng.gamma(2.5, 4.0, n), 18.2, 55)
    aux["age"][idx] = np.where(rng.random(n) < rate["minor"], rng.uniform(14.5, 18, n), adult)
    aux["passport_days"][idx] = np.where(
        rng.random(n) < rate["new_passport"],
        rng.uniform(3, NEW_PASSPORT_DAYS, n),
        rng.uniform(60, 1500, n),
    )
    for code, build in ((SEA, _sea), (SCAM, _scam), (GULF, _gulf), (OVERSTAY, _overstay),
                        (UNLICENSED, _unlicensed)):  # fmt: skip
        build(rng, cols, aux, idx[story == code])


def _sea(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    origin = cols["person.origin_province"][idx]
    region = _select(
        [_among(origin, EASTERN), _among(origin, SUMATRAN)], ["east", "sumatra"], "other"
    )
    port = _draw_by(rng, region, SEA_PORT_BY_ORIGIN)
    destination = _either(_among(port, ("DUM", "NNX")) | (rng.random(n) < 0.8), "MY", "SG")
    unofficial = rng.random(n) < 0.18
    occupation = _draw(rng, SEA_OCCUPATION, n)
    low = np.array([SMUGGLER_FEES[p][0] for p in port.tolist()])
    high = np.array([SMUGGLER_FEES[p][1] for p in port.tolist()])
    payee = _draw(rng, SEA_PAYEE, n)
    fee = np.where(payee == "none", 0.0, _round_fee(rng.uniform(low, high)))
    _put(cols, idx, {
        "travel.exit_point": np.where(unofficial & (rng.random(n) < 0.5), _NONE, port),
        "travel.exit_point_type": _either(unofficial, "unofficial", "ferry_terminal"),
        "travel.destination_country": destination,
        "travel.transit_countries": _tuples([()] * n),
        "travel.declared_purpose": _draw(rng, SEA_PURPOSE, n),
        "travel.visa_type": np.where(unofficial, _draw(rng, UNOFFICIAL_VISA, n),
                                     _draw(rng, SEA_VISA, n)),
        "travel.ticket": np.where(unofficial, _draw(rng, UNOFFICIAL_TICKET, n),
                                  _draw(rng, SEA_TICKET, n)),
        "travel.ticket_paid_by": _draw(rng, {"sponsor": 40, "self": 40, "family": 20}, n),
        "placement.occupation": occupation,
        "placement.employer_type": _draw(rng, {"individual": 50, "legal_entity": 25, None: 25}, n),
        "placement.offered_monthly_salary_usd": np.round(
            _market_pay(occupation, destination) * rng.lognormal(0.35, 0.3, n)),
        "recruitment.channel": _draw(rng, SEA_RECRUITED_VIA, n),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": np.where(rng.random(n) < 0.6, fee, _round_fee(fee / 2)),
        "recruitment.fee_payee": payee,
    })  # fmt: skip


def _scam(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    destination = _draw(rng, SCAM_DESTINATION, n)
    transit = _draw_by(rng, destination, SCAM_TRANSIT)
    origin = cols["person.origin_province"][idx]
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.0)
    by_batam = rng.random(n) < 0.12  # a ferry to Singapore, then a flight on
    exit_point[by_batam], exit_type[by_batam] = "BTM", "ferry_terminal"
    transit[by_batam] = _tuples([t if "SG" in t else ("SG", *t) for t in transit[by_batam]])
    occupation = _draw(rng, SCAM_OCCUPATION, n)
    fee = np.where(rng.random(n) < 0.4, _round_fee(rng.uniform(2e6, 10e6, n)), 0.0)
    _put(cols, idx, {
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": transit,
        "travel.declared_purpose": _draw(rng, SCAM_PURPOSE, n),
        "travel.visa_type": _draw(rng, SCAM_VISA, n),
        "travel.ticket": _draw(rng, SCAM_TICKET, n),
        "travel.ticket_paid_by": _draw(rng, {"sponsor": 55, "self": 35, "family": 10}, n),
        "placement.occupation": occupation,
        "placement.employer_type": _draw(rng, {"legal_entity": 50, None: 50}, n),
        "placement.offered_monthly_salary_usd": np.round(rng.uniform(900, 2000, n), -1),
        "recruitment.channel": _draw(rng, SCAM_RECRUITED_VIA, n),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": fee,
        "recruitment.fee_payee": _either(fee > 0, "individual", "none"),
    })  # fmt: skip


def _gulf(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    destination = _draw(rng, GULF_DESTINATION, n)
    saudi = destination == "SA"
    purpose = np.where(saudi, _draw(rng, SAUDI_PURPOSE, n), _draw(rng, GULF_PURPOSE, n))
    visa = np.where(saudi, _draw(rng, SAUDI_VISA, n), _draw(rng, GULF_VISA, n))
    visa[saudi & (purpose == "religious")] = "umrah"
    origin = cols["person.origin_province"][idx]
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.0)
    occupation = _draw(rng, GULF_OCCUPATION, n)
    fee = np.where(rng.random(n) < 0.5, _round_fee(rng.uniform(5e6, 20e6, n)), 0.0)
    _put(cols, idx, {
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": _transit(rng, destination, direct=0.5),
        "travel.declared_purpose": purpose,
        "travel.visa_type": visa,
        "travel.ticket": _draw(rng, GULF_TICKET, n),
        "travel.ticket_paid_by": _draw(rng, GULF_PAID_BY, n),
        "placement.occupation": occupation,
        "placement.employer_type": _draw(rng, {"individual": 85, "legal_entity": 5, None: 10}, n),
        "placement.offered_monthly_salary_usd": np.round(
            _market_pay(occupation, destination) * rng.lognormal(0.25, 0.25, n)),
        "recruitment.channel": _draw(rng, GULF_RECRUITED_VIA, n),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": np.where(rng.random(n) < 0.5, fee, 0.0),
        "recruitment.fee_payee": _either(fee > 0, "individual", "none"),
    })  # fmt: skip


def _overstay(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    destination = _draw(rng, OVERSTAY_DESTINATION, n)
    purpose = _draw(rng, OVERSTAY_PURPOSE, n)
    visa = _either(_among(destination, (*ASEAN, "HK")), "visa_free", "tourist")
    visa[purpose == "study"] = "student"
    origin = cols["person.origin_province"][idx]
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.0)
    occupation = _draw_by(rng, destination, OVERSTAY_OCCUPATION, OVERSTAY_OTHER_OCCUPATION)
    fee = np.where(rng.random(n) < 0.6, _round_fee(rng.uniform(5e6, 30e6, n)), 0.0)
    _put(cols, idx, {
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": _transit(rng, destination, direct=0.7),
        "travel.declared_purpose": purpose,
        "travel.visa_type": visa,
        "travel.ticket": _draw(rng, OVERSTAY_TICKET, n),
        "travel.ticket_paid_by": _draw(rng, OVERSTAY_PAID_BY, n),
        "placement.occupation": occupation,
        "placement.employer_type": _draw(rng, {"individual": 40, "legal_entity": 30, None: 30}, n),
        "placement.offered_monthly_salary_usd": np.round(
            _market_pay(occupation, destination) * rng.lognormal(0.3, 0.3, n)),
        "recruitment.channel": _draw(rng, OVERSTAY_RECRUITED_VIA, n),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": fee,
        "recruitment.fee_payee": _either(fee > 0, "individual", "none"),
    })  # fmt: skip


def _unlicensed(rng: np.random.Generator, cols: Columns, aux: Columns, idx: Column) -> None:
    n = len(idx)
    destination = _draw(rng, UNLICENSED_DESTINATION, n)
    occupation = _draw_by(rng, destination, UNLICENSED_OCCUPATION, UNLICENSED_OTHER_OCCUPATION)
    origin = cols["person.origin_province"][idx]
    exit_point, exit_type = _route(rng, origin, destination, sea_share=0.1)
    fee = _round_fee(rng.uniform(15e6, 60e6, n))
    internship = (destination == "JP") & (rng.random(n) < 0.5)  # "magang" sold as a job
    visa = _draw(rng, UNLICENSED_VISA, n)
    visa[internship] = "internship"
    _put(cols, idx, {
        "travel.exit_point": exit_point,
        "travel.exit_point_type": exit_type,
        "travel.destination_country": destination,
        "travel.transit_countries": _transit(rng, destination, direct=0.7),
        "travel.declared_purpose": _either(internship, "internship", "work"),
        "travel.visa_type": visa,
        "travel.ticket": _draw(rng, UNLICENSED_TICKET, n),
        "travel.ticket_paid_by": _draw(rng, UNLICENSED_PAID_BY, n),
        "placement.scheme": _draw(rng, UNLICENSED_SCHEME, n),
        "placement.occupation": occupation,
        "placement.employer_type": _either(
            _among(occupation, DOMESTIC) & (rng.random(n) < 0.8), "individual", "legal_entity"),
        "placement.offered_monthly_salary_usd": np.round(
            _market_pay(occupation, destination) * rng.uniform(1.2, 2.5, n)),
        "placement.job_order_no": _marks(rng.random(n) < 0.4),
        "recruitment.channel": _draw(rng, UNLICENSED_RECRUITED_VIA, n),
        "recruitment.fee_demanded_idr": fee,
        "recruitment.fee_paid_idr": np.where(rng.random(n) < 0.5, fee, _round_fee(fee / 2)),
        "recruitment.fee_payee": _draw(rng, UNLICENSED_PAYEE, n),
    })  # fmt: skip
    aux["licence_kind"][idx] = _draw(rng, UNLICENSED_LICENCE, n)


# --- groups, desks, times, dates, agencies, sex, identifiers, hiding ----------------------------


def _groups(rng: np.random.Generator, cols: Columns, aux: Columns, seed: int) -> None:
    """Tour groups share a trip and a group reference (their guide's escort reference sometimes);
    escort rings share an escort reference. Members take the route of their group's first member;
    `_times` later puts them within 90 minutes (tours) or 4 days (rings) of that member."""
    route = ("travel.exit_point", "travel.exit_point_type", "travel.destination_country",
             "travel.transit_countries")  # fmt: skip
    members, group, leader, _size = _partition(rng, np.flatnonzero(aux["tour"]), 3, 10)
    for path in (*route, "travel.ticket", "travel.visa_type", "travel.declared_purpose",
                 "travel.group_size"):  # fmt: skip
        cols[path][members] = cols[path][leader]
    aux["leader"][members] = leader
    aux["offset"][members] = np.where(members == leader, 0, rng.integers(0, 90 * 60, len(members)))
    cols["links.group_ref"][members] = _numbered(f"GRP-{seed}-", group)
    guide_known = (rng.random(len(members)) < 0.08)[group]
    cols["links.escort_ref"][members[guide_known]] = _numbered(f"ESC-{seed}-T", group[guide_known])

    story = aux["story"]
    escorted = cols["travel.escort_present"] == True  # noqa: E712
    in_ring = _among(story, (SEA, SCAM, GULF, OVERSTAY)) & escorted & (rng.random(len(story)) < 0.7)
    first_ring = 0
    for code in (SEA, SCAM, GULF, OVERSTAY):
        members, ring, leader, size = _partition(
            rng, np.flatnonzero(in_ring & (story == code)), 3, 8
        )
        for path in route:
            cols[path][members] = cols[path][leader]
        aux["leader"][members] = leader
        aux["offset"][members] = np.where(
            members == leader, 0, rng.integers(0, 4 * 86_400, len(members))
        )
        aux["ring"][members] = size >= 3
        cols["links.escort_ref"][members] = _numbered(f"ESC-{seed}-R", ring + first_ring)
        first_ring += int(ring.max(initial=-1)) + 1
    sponsor = escorted & (story >= SEA) & ~in_ring & (rng.random(len(story)) < 0.5)
    cols["links.escort_ref"][sponsor] = _numbered(f"ESC-{seed}-S", np.flatnonzero(sponsor))


def _partition(
    rng: np.random.Generator, rows: Column, low: int, high: int
) -> tuple[Column, Column, Column, Column]:
    """`rows` shuffled into groups of `low` to `high` (the last may be smaller): the members, each
    member's group number, its group's first member, and its group's size."""
    members = rng.permutation(rows)
    if not len(members):
        return members, members, members, members
    sizes = rng.integers(low, high + 1, size=len(members) // low + 1)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, len(members))) + 1
    group = np.repeat(np.arange(count), sizes[:count])[: len(members)]
    starts = np.concatenate(([0], ends[: count - 1]))
    return members, group, members[starts[group]], np.bincount(group)[group]


def _desks(rng: np.random.Generator, cols: Columns, story: Column) -> None:
    exit_type = cols["travel.exit_point_type"]
    by_sea = _among(exit_type, ("ferry_terminal", "unofficial"))
    cols["travel.mode"] = _select(
        [exit_type == "airport", by_sea, exit_type == "land_border"], ["air", "sea", "land"], None
    )
    channel = _either(by_sea, "port_desk", "immigration_desk")
    n = len(story)
    at_ltsa = rng.random(n) < np.select([story == PROCEDURAL, story == UNLICENSED], [0.35, 0.25], 0)
    channel[at_ltsa] = "ltsa_counter"
    channel[rng.random(n) < 0.04] = "batch"  # historical records rescored by analysts
    cols["channel"] = channel


def _times(rng: np.random.Generator, cols: Columns, aux: Columns) -> None:
    story, channel, exit_type = aux["story"], cols["channel"], cols["travel.exit_point_type"]
    n = len(story)
    day = rng.integers(0, (END - START) // np.timedelta64(1, "D"), n)
    surge = np.flatnonzero((story >= SEA) & (rng.random(n) < 0.2))  # the weeks after Lebaran
    eid = (EID_AL_FITR - START.astype("datetime64[D]")).astype(np.int64)
    day[surge] = eid[rng.integers(0, len(eid), len(surge))] + rng.integers(0, 56, len(surge))
    ltsa = channel == "ltsa_counter"
    weekday = day % 7  # 2024-01-01 was a Monday
    weekend = ltsa & (weekday >= 5)
    day[weekend] -= weekday[weekend] - 4  # LTSA counters open on weekdays: the Friday before
    ferry = exit_type == "ferry_terminal"
    hour = np.select(
        [ltsa, exit_type == "unofficial", ferry & (story >= SEA), ferry,
         exit_type == "land_border"],
        [rng.integers(8, 16, n), _draw(rng, NIGHT_HOURS, n), _draw(rng, EARLY_FERRY_HOURS, n),
         _draw(rng, FERRY_HOURS, n), rng.integers(7, 18, n)],
        _draw(rng, AIRPORT_HOURS, n)).astype(np.int64)  # fmt: skip
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)
    time = START + seconds.astype("timedelta64[s]") - WIB
    latest = END - np.timedelta64(4 * 86_400 + 1, "s")  # a group ends before the period does
    grouped = aux["leader"] != np.arange(n)
    grouped[aux["leader"][grouped]] = True  # the first members too
    base = np.where(grouped, np.minimum(time[aux["leader"]], latest), time)
    cols["screened_at"] = np.maximum(base + aux["offset"].astype("timedelta64[s]"), START)


def _dates(cols: Columns, aux: Columns) -> None:
    day = cols["screened_at"].astype("datetime64[D]")
    age_days = np.round(aux["age"] * 365.25).astype(np.int64)
    born = day - age_days.astype("timedelta64[D]")
    cols["person.birth_date"] = born
    cols["person.age"] = _whole_years(born, day)
    held = np.clip(np.round(aux["passport_days"]).astype(np.int64), 0, age_days - 30)
    cols["travel.passport_issued_on"] = day - held.astype("timedelta64[D]")


def _agencies(rng: np.random.Generator, cols: Columns, aux: Columns) -> None:
    """Licence numbers from the sample registry, active or not on the screening date as the story
    needs; invented numbers that are not in it; agency names; job-order numbers."""
    kind = aux["licence_kind"]
    day = cols["screened_at"].astype("datetime64[D]")
    chosen = np.full(len(kind), -1)
    for wanted, active in ((VALID_LICENCE, True), (MISUSED_LICENCE, True), (BAD_LICENCE, False)):
        rows = np.flatnonzero(kind == wanted)
        for _attempt in range(20):
            pick = rng.integers(0, len(LICENCES), len(rows))
            fits = _active(pick, day[rows]) == active
            chosen[rows[fits]] = pick[fits]
            rows = rows[~fits]
        chosen[rows] = 0 if active else 15  # SIP3MI-0001 (active throughout) / 0016 (revoked)
    number = np.array([row[0] for row in LICENCES] + [None], dtype=object)[chosen]
    name = np.array([row[1] for row in LICENCES] + [None], dtype=object)[chosen]
    invented = np.flatnonzero(kind == UNKNOWN_LICENCE)
    serial, year = rng.integers(100, 1000, len(invented)), rng.integers(2019, 2025, len(invented))
    number[invented] = _numbered("SIP3MI-0", serial, suffixes=[f"-{y}" for y in year.tolist()])
    name[invented] = _numbered(
        "PT Contoh Penempatan ", serial, suffixes=[" (fiktif)"] * len(serial)
    )
    named = np.flatnonzero(kind == NAME_ONLY)
    name[named] = _draw(rng, dict.fromkeys((row[1] for row in LICENCES), 1), len(named))
    cols["placement.agency_license_no"], cols["placement.agency_name"] = number, name
    orders = np.flatnonzero(cols["placement.job_order_no"] == "")
    years = day[orders].astype("datetime64[Y]").astype(np.int64) + 1970
    cols["placement.job_order_no"][orders] = _numbered(
        "SIP2MI-",
        years,
        suffixes=[f"-{s:05d}" for s in rng.integers(1, 100_000, len(orders)).tolist()],
    )


def _sex(rng: np.random.Generator, occupation: Column) -> Column:
    """F or M from the occupation alone: never from the story, the label or anything else."""
    share = np.full(len(occupation), WOMEN_SHARE[None])
    for name, value in WOMEN_SHARE.items():
        if name is not None:
            share[occupation == name] = value
    return _either(rng.random(len(occupation)) < share, "F", "M")


def _identifiers(cols: Columns, seed: int) -> None:
    """Invented identifiers, unique per row; never the names or numbers of real people."""
    rows = np.arange(len(cols["channel"]))
    cols["person.full_name"] = _numbered("Nama-", rows)
    cols["person.nik"] = _numbered(f"NIK-{seed}-", rows)
    cols["person.passport_no"] = _numbered(f"PAS-{seed}-", rows)


def _hide(rng: np.random.Generator, cols: Columns, label: Column) -> None:
    """Unknown fields: at random, and more often among non-procedural travellers."""
    n = len(label)
    channel = cols["channel"]
    desk = _among(channel, ("immigration_desk", "port_desk"))
    office = _among(channel, ("ltsa_counter", "batch"))
    purpose = cols["travel.declared_purpose"]
    visit = _known(purpose) & (purpose != "work")
    concealed = visit & (rng.random(n) < np.where(label, JOB_CONCEALED[1], JOB_CONCEALED[0]))
    for path in WORK_SIGNS:
        _forget(cols[path], concealed)
    for prefix, where in SECTIONS.items():
        skipped = rng.random(n) < np.where(desk, where["desk"], where["office"])
        for path in cols:
            if path.startswith(prefix):
                _forget(cols[path], skipped)
    for path, (base, extra) in HIDDEN.items():
        chance = base + LABEL_HIDING_SCALE * extra * label
        if path.startswith("placement.documents."):
            chance = chance + DESK_DOCUMENTS_HIDDEN * desk + VISIT_DOCUMENTS_HIDDEN * visit
        elif path.startswith("interview."):
            chance = chance + OFFICE_INTERVIEW_HIDDEN * office
        elif path == "person.nik":
            chance = np.where(channel == "ltsa_counter", LTSA_NIK_HIDDEN, chance)
        _forget(cols[path], rng.random(n) < chance)
    born = rng.random(n) < BIRTH_DATE_HIDDEN[0] + LABEL_HIDING_SCALE * BIRTH_DATE_HIDDEN[1] * label
    base, extra = AGE_HIDDEN_WITHOUT_BIRTH_DATE
    age = rng.random(n) < np.where(
        born, base + LABEL_HIDING_SCALE * extra * label, AGE_HIDDEN_WITH_BIRTH_DATE
    )
    _forget(cols["person.birth_date"], born)
    _forget(cols["person.age"], age)


def _forget(column: Column, rows: Column) -> None:
    if column.dtype == object:
        column[rows] = None
    elif column.dtype.kind == "M":
        column[rows] = np.datetime64("NaT")
    else:
        column[rows] = np.nan


# --- what the label reads off a record ----------------------------------------------------------


def _work_intent(v: Mapping[str, Column]) -> Column:
    """Case-v1's work intent (an unknown sign counts as absent)."""
    fee = np.nan_to_num(v["recruitment.fee_demanded_idr"]) + np.nan_to_num(
        v["recruitment.fee_paid_idr"]
    )
    channel = v["recruitment.channel"]
    signs = (
        (v["travel.declared_purpose"] == "work")
        | _among(v["placement.scheme"], IN_PROCESS)
        | _known(v["placement.agency_name"])
        | _known(v["placement.agency_license_no"])
        | _known(v["placement.job_order_no"])
        | _known(v["placement.occupation"])
        | (fee > 0)
        | (_known(channel) & (channel != "family_friend"))
    )
    return np.asarray(signs, dtype=bool)


def _agency_involved(v: Mapping[str, Column]) -> Column:
    involved = (
        _known(v["placement.agency_name"])
        | _known(v["placement.agency_license_no"])
        | (v["placement.scheme"] == "p3mi")
        | (v["recruitment.channel"] == "licensed_agency")
    )
    return np.asarray(involved, dtype=bool)


def _sea_route(v: Mapping[str, Column]) -> Column:
    """Leaving by sea for a country the exit point serves (Malaysia, Singapore)."""
    exit_point, destination = v["travel.exit_point"], v["travel.destination_country"]
    malaysia, singapore = destination == "MY", destination == "SG"
    both = _among(exit_point, [port for port, served in SEA_PORTS.items() if "SG" in served])
    malaysia_only = _among(
        exit_point, [port for port, served in SEA_PORTS.items() if "SG" not in served]
    )
    by_sea = (v["travel.mode"] == "sea") | _among(
        v["travel.exit_point_type"], ("ferry_terminal", "unofficial")
    )
    served = ((both | ~malaysia_only) & (malaysia | singapore)) | (malaysia_only & malaysia)
    return np.asarray((by_sea | both | malaysia_only) & served, dtype=bool)


def _through(v: Mapping[str, Column], countries: tuple[str, ...]) -> Column:
    listed = frozenset(countries)
    return np.array(
        [bool(t) and not listed.isdisjoint(t) for t in v["travel.transit_countries"].tolist()],
        dtype=bool,
    )


def _licence_status(numbers: Column, day: Column) -> Column:
    """ "active", "inactive" (expired, not yet valid, suspended, revoked), "not_found", or ""."""
    index = {row[0]: i for i, row in enumerate(LICENCES)}
    found = np.array([index.get(number, -1) for number in numbers.tolist()], dtype=np.int64)
    status = _either(_active(np.maximum(found, 0), day), "active", "inactive")
    status[found < 0] = "not_found"
    status[~_known(numbers)] = ""
    return status


def _active(pick: Column, day: Column) -> Column:
    """Whether licence number `pick` (an index into LICENCES) is active on `day`."""
    start = np.array([row[3] for row in LICENCES], dtype="datetime64[D]")[pick]
    until = np.array([row[4] for row in LICENCES], dtype="datetime64[D]")[pick]
    active = np.array([row[2] == "active" for row in LICENCES])[pick]
    return np.asarray(active & (start <= day) & (day <= until), dtype=bool)


def _market_pay(occupation: Column, destination: Column) -> NDArray[np.float64]:
    occupations = CASE_FIELDS["placement.occupation"].values
    countries = tuple(MARKET_PAY_BY_DESTINATION)
    table = np.full((len(occupations) + 1, len(countries) + 1), np.nan)  # last: unknown / other
    for row, name in enumerate(occupations):
        table[row, :] = MARKET_PAY[name]
        for column, country in enumerate(countries):
            table[row, column] = MARKET_PAY_BY_DESTINATION[country].get(name, MARKET_PAY[name])
    return np.asarray(table[_codes(occupation, occupations), _codes(destination, countries)])


def _fee_cap(destination: Column, occupation: Column) -> NDArray[np.float64]:
    """The destination's cap for the occupation; infinite where none is configured."""
    cap = np.full(len(destination), np.inf)
    for (country, name), value in FEE_CAPS.items():  # any-occupation rows come first
        rows = destination == country
        cap[rows & (occupation == name) if name else rows] = value
    return cap


def _procedural_fees(
    rng: np.random.Generator, destination: Column, occupation: Column, free: Column
) -> NDArray[np.float64]:
    """Within the destination's cap (6% above it); nothing where the job is free of costs (7%
    charged anyway); elsewhere nothing or a modest fee."""
    n = len(destination)
    cap = _fee_cap(destination, occupation)
    share = np.where(rng.random(n) < 0.06, rng.uniform(1.1, 1.8, n), rng.uniform(0.3, 1.0, n))
    fee = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(1e6, 10e6, n))
    fee = np.where(np.isfinite(cap), np.where(np.isfinite(cap), cap, 0) * share, fee)
    fee = np.where(free, np.where(rng.random(n) < 0.07, rng.uniform(1e6, 5e6, n), 0.0), fee)
    return _round_fee(fee)


def _days_after_eid(day: Column) -> NDArray[np.float64]:
    """Days since the latest Eid al-Fitr on or before `day` (infinite before the first)."""
    after = np.full(len(day), np.inf)
    for eid in EID_AL_FITR:
        days = (day - eid).astype(np.int64).astype(float)
        after = np.where((days >= 0) & (days < after), days, after)
    return after


def _whole_years(born: Column, on: Column) -> NDArray[np.float64]:
    """Whole years from `born` to `on` (NaN where the birth date is unknown)."""
    year, on_year = born.astype("datetime64[Y]"), on.astype("datetime64[Y]")
    month, on_month = born.astype("datetime64[M]"), on.astype("datetime64[M]")
    years = (on_year - year).astype(np.int64)
    month_of_year = (month - year.astype("datetime64[M]")).astype(np.int64)
    on_month_of_year = (on_month - on_year.astype("datetime64[M]")).astype(np.int64)
    day_of_month = (born - month.astype("datetime64[D]")).astype(np.int64)
    on_day_of_month = (on - on_month.astype("datetime64[D]")).astype(np.int64)
    before = (on_month_of_year < month_of_year) | (
        (on_month_of_year == month_of_year) & (on_day_of_month < day_of_month)
    )
    return np.where(np.isnat(born), np.nan, (years - before).astype(float))


# --- drawing ------------------------------------------------------------------------------------


def _route(
    rng: np.random.Generator, origin: Column, destination: Column, *, sea_share: float
) -> tuple[Column, Column]:
    """Exit point and its type: an airport near home; to Singapore and Malaysia sometimes a
    ferry; to Timor-Leste by land, and from West Kalimantan to Malaysia mostly by land."""
    n = len(origin)
    exit_point = _draw_by(rng, origin, AIRPORTS, OTHER_AIRPORTS)
    exit_type = np.full(n, "airport", dtype=object)
    for country, ports in FERRIES.items():
        by_sea = (destination == country) & (rng.random(n) < sea_share)
        exit_point[by_sea] = _draw(rng, ports, int(by_sea.sum()))
        exit_type[by_sea] = "ferry_terminal"
    by_land = (destination == "TL") | (
        (destination == "MY") & (origin == "Kalimantan Barat") & (rng.random(n) < 0.7)
    )
    exit_point[by_land] = _either(destination[by_land] == "TL", "MTA", "ETK")
    exit_type[by_land] = "land_border"
    return exit_point, exit_type


def _transit(rng: np.random.Generator, destination: Column, *, direct: float) -> Column:
    """() for a direct trip, or one hub on the way (never the destination itself)."""
    region = np.array([REGIONS.get(c, "west") for c in destination.tolist()], dtype=object)
    hub = _draw_by(rng, region, HUBS)
    hub[(rng.random(len(destination)) < direct) | (hub == destination)] = None
    single = {code: (code,) for table in HUBS.values() for code in table}  # shared tuples
    return _tuples([single.get(h, ()) for h in hub.tolist()])


def _interview(
    rng: np.random.Generator, n: int, *, cannot_explain: Any, indicator: Any
) -> dict[str, Column]:
    answers = {"interview.can_explain_trip": _objects(rng.random(n) >= cannot_explain)}
    for path in INTERVIEW_INDICATORS:
        answers[path] = _bools(rng, indicator, n)
    return answers


def _draw(rng: np.random.Generator, table: Table, size: int) -> Column:
    """`size` values drawn from `table` (value -> weight)."""
    keys = np.empty(len(table), dtype=object)
    keys[:] = list(table)
    weights = np.fromiter(table.values(), dtype=float)
    return keys[rng.choice(len(keys), size=size, p=weights / weights.sum())]


def _draw_by(
    rng: np.random.Generator,
    given: Column,
    tables: Mapping[Any, Table],
    default: Table | None = None,
) -> Column:
    """One value per row, from the table for the row's `given` value (or `default`)."""
    out = np.full(len(given), None, dtype=object)
    for key in sorted(set(given.tolist()), key=str):  # sorted: the same draws in every process
        rows = given == key
        table = tables.get(key, default)
        if table is None:
            raise KeyError(f"no table for {key!r}")
        out[rows] = _draw(rng, table, int(rows.sum()))
    return out


def _set_where(rng: np.random.Generator, column: Column, rows: Column, table: Table) -> None:
    column[rows] = _draw(rng, table, int(np.count_nonzero(rows)))


def _put(cols: Columns, idx: Column, values: Mapping[str, Any]) -> None:
    for path, value in values.items():
        cols[path][idx] = value


def _bools(rng: np.random.Generator, p: Any, n: int) -> Column:
    return _objects(rng.random(n) < p)


def _objects(flags: Column) -> Column:
    return np.array([False, True], dtype=object)[np.asarray(flags, dtype=np.int8)]


def _tuples(items: list[tuple[str, ...]]) -> Column:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _among(column: Column, values: Iterable[Any]) -> Column:
    """Where `column` holds one of `values` (np.isin is slow on object arrays)."""
    wanted = tuple(values)
    if len(wanted) > 4:
        chosen = frozenset(wanted)
        return np.fromiter((value in chosen for value in column.tolist()), bool, len(column))
    found = np.zeros(len(column), dtype=bool)
    for value in wanted:
        found |= column == value
    return found


def _codes(column: Column, values: tuple[str, ...]) -> NDArray[np.int64]:
    """Index of each value in `values`; len(values) for anything else (unknown included)."""
    index = {value: i for i, value in enumerate(values)}
    other = len(values)
    return np.fromiter((index.get(v, other) for v in column.tolist()), np.int64, len(column))


def _either(flags: Column, yes: Any, no: Any) -> Column:
    """`yes` where `flags`, else `no`: an object array sharing the two values (np.where would
    make a new string object for every row)."""
    out = np.full(len(flags), no, dtype=object)
    out[np.asarray(flags, dtype=bool)] = yes
    return out


def _select(conditions: list[Column], choices: list[Any], default: Any) -> Column:
    """np.select for object values: the first condition that holds picks the choice."""
    out = np.full(len(conditions[0]), default, dtype=object)
    for condition, choice in reversed(list(zip(conditions, choices, strict=True))):
        out[np.asarray(condition, dtype=bool)] = choice
    return out


def _known(column: Column) -> Column:
    return np.asarray(np.not_equal(column, _NONE), dtype=bool)


def _marks(flags: Column) -> Column:
    """ "" where `flags` (a number to be filled in later), None elsewhere."""
    out = np.full(len(flags), None, dtype=object)
    out[flags] = ""
    return out


def _round_fee(fee: Any) -> NDArray[np.float64]:
    return np.asarray(np.round(np.asarray(fee, dtype=float) / 50_000) * 50_000, dtype=float)


def _numbered(prefix: str, numbers: Column, *, suffixes: list[str] | None = None) -> Column:
    """Object array of prefix + number + suffix."""
    out = np.empty(len(numbers), dtype=object)
    if suffixes is None:
        out[:] = [f"{prefix}{n}" for n in numbers.tolist()]
    else:
        out[:] = [f"{prefix}{n}{end}" for n, end in zip(numbers.tolist(), suffixes, strict=True)]
    return out


def _empty(kind: str, rows: int) -> Column:
    if kind in {"int", "number"}:
        return np.full(rows, np.nan)
    if kind == "date":
        return np.full(rows, np.datetime64("NaT"), dtype="datetime64[D]")
    if kind == "datetime":
        return np.full(rows, np.datetime64("NaT"), dtype="datetime64[s]")
    return np.empty(rows, dtype=object)  # numpy fills object arrays with None


def _normalised(weights: Iterable[float]) -> NDArray[np.float64]:
    values = np.fromiter(weights, dtype=float)
    return np.asarray(values / values.sum(), dtype=float)


def _plain(path: str, values: Column) -> list[Any]:
    """JSON-ready Python values of one column (None = unknown)."""
    kind = CASE_FIELDS[path].kind
    if kind == "date":
        days = np.datetime_as_string(values.astype("datetime64[D]"), unit="D").tolist()
        return [None if day == "NaT" else day for day in days]
    if kind == "datetime":
        times = np.datetime_as_string(values.astype("datetime64[s]"), unit="s").tolist()
        return [None if time == "NaT" else f"{time}Z" for time in times]
    if kind in {"int", "number"}:
        return [
            None if v != v else int(v) if v.is_integer() else round(v, 2)
            for v in values.astype(float).tolist()
        ]
    if kind == "countries":
        return [None if v is None else list(v) for v in values.tolist()]
    return list(values.tolist())
