from __future__ import annotations

from engine.rule_pack import RulePack
from engine.wording import fill


def test_amounts_read_as_each_language_writes_them(pack: RulePack) -> None:
    facts = {"fee_idr": 15_000_000, "pay_to_market_ratio": 2.5, "market_salary_usd": 1200}
    template = "{fee_idr} | {pay_to_market_ratio} | {market_salary_usd}"
    assert fill(template, facts, pack.labels, "id", {}) == "Rp15.000.000 | 2,5× | USD 1.200"  # noqa: RUF001
    assert fill(template, facts, pack.labels, "en", {}) == "IDR 15,000,000 | 2.5× | USD 1,200"  # noqa: RUF001


def test_values_read_as_words_and_unknown_says_so(pack: RulePack) -> None:
    facts = {
        "travel.visa_type": "visa_on_arrival",
        "travel.destination_country": "KH",
        "interview.can_explain_trip": False,
    }
    kinds = {"travel.destination_country": "country"}
    template = (
        "{travel.visa_type}; {travel.destination_country}; {interview.can_explain_trip}; {age}"
    )
    assert fill(template, facts, pack.labels, "id", kinds) == (
        "visa kunjungan saat kedatangan; Kamboja (KH); tidak; tidak diketahui"
    )
    assert fill(template, facts, pack.labels, "en", kinds) == (
        "visa on arrival; Cambodia (KH); no; unknown"
    )


def test_matched_facts_list_what_fired_the_rule(pack: RulePack) -> None:
    facts = {"placement.documents.bpjs": False}
    matched = [("placement.documents.bpjs", None), ("placement.job_order_no", False)]
    text = fill("{facts}", facts, pack.labels, "en", {}, matched)
    assert text.endswith(
        ": no; " + pack.labels.fact("placement.job_order_no", "en") + ": not recorded"
    )
