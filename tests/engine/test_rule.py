"""A broken rule or pack fails at load, naming the file, the rule and the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import RulePackError
from engine.rule_pack import load_rule_pack


def edit(pack_dir: Path, rule_id: str, old: str, new: str) -> Path:
    path = pack_dir / "rules" / f"{rule_id}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def load_error(pack_dir: Path) -> RulePackError:
    with pytest.raises(RulePackError) as caught:
        load_rule_pack(pack_dir)
    return caught.value


def test_unknown_field_fails_with_file_rule_and_suggestion(pack_copy: Path) -> None:
    path = edit(
        pack_copy, "unofficial_exit_point", "travel.exit_point_type ==", "travel.exit_point_typ =="
    )
    error = load_error(pack_copy)
    assert error.file == str(path)
    assert error.rule_id == "unofficial_exit_point"
    assert "unknown fact travel.exit_point_typ, did you mean travel.exit_point_type?" in str(error)


def test_bad_operator_fails_at_load(pack_copy: Path) -> None:
    edit(pack_copy, "minor_departing_for_work", "age < 18", "age =< 18")
    error = load_error(pack_copy)
    assert error.rule_id == "minor_departing_for_work"
    assert "when: cannot read" in str(error)


def test_type_mismatch_fails_at_load(pack_copy: Path) -> None:
    edit(pack_copy, "minor_departing_for_work", "age < 18", 'age < "eighteen"')
    assert "age cannot be 'eighteen': expected a number" in str(load_error(pack_copy))


def test_bad_enumeration_value_fails_with_a_suggestion(pack_copy: Path) -> None:
    edit(pack_copy, "unofficial_exit_point", '"unofficial"', '"unoficial"')
    assert "did you mean 'unofficial'?" in str(load_error(pack_copy))


def test_rule_id_must_match_its_file_name(pack_copy: Path) -> None:
    source = pack_copy / "rules" / "unofficial_exit_point.yaml"
    source.rename(pack_copy / "rules" / "unofficial_exit_point2.yaml")
    error = load_error(pack_copy)
    assert error.rule_id == "unofficial_exit_point"
    assert "id must equal the file name 'unofficial_exit_point2'" in str(error)


def rewrite(pack_dir: Path, rule_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = pack_dir / "rules" / f"{rule_id}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_missing_translation_fails(pack_copy: Path) -> None:
    rewrite(pack_copy, "unofficial_exit_point", lambda rule: rule["title"].pop("en"))
    error = load_error(pack_copy)
    assert error.rule_id == "unofficial_exit_point"
    assert "title: needs a non-empty text in both 'id' and 'en' (missing translation)" in str(error)


def test_sex_can_never_be_a_rule_input(pack_copy: Path) -> None:
    edit(pack_copy, "minor_departing_for_work", "age < 18", 'person.sex == "F"')
    assert "kept for the fairness audit only" in str(load_error(pack_copy))


def test_identifiers_cannot_be_compared(pack_copy: Path) -> None:
    edit(pack_copy, "minor_departing_for_work", "age < 18", 'person.nik == "3201"')
    assert "may only be tested with 'is known' or 'is unknown'" in str(load_error(pack_copy))


def test_unknown_reference_list_fails_with_a_suggestion(pack_copy: Path) -> None:
    edit(pack_copy, "work_intent_without_work_visa", "@non_work_visas", "@non_work_visa")
    assert "did you mean @non_work_visas?" in str(load_error(pack_copy))


def test_reason_may_never_quote_an_identifier(pack_copy: Path) -> None:
    rewrite(
        pack_copy,
        "unofficial_exit_point",
        lambda rule: rule["reason"].update(id="NIK {person.nik}"),
    )
    assert "{person.nik} may never be quoted" in str(load_error(pack_copy))


def test_reason_may_only_quote_facts_the_rule_reads(pack_copy: Path) -> None:
    rewrite(pack_copy, "unofficial_exit_point", lambda rule: rule["reason"].update(en="Aged {age}"))
    assert "{age} is not a fact this rule's condition reads" in str(load_error(pack_copy))


def test_urgent_rule_without_referral_fails(pack_copy: Path) -> None:
    edit(pack_copy, "unofficial_exit_point", "referral: immigration", "referral: embassy")
    assert "urgent rules must name one of" in str(load_error(pack_copy))


def test_missing_question_for_a_needed_field_fails(pack_copy: Path) -> None:
    path = pack_copy / "questions.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  travel.exit_point_type:")
    end = text.index("\n  travel.", start + 5)
    path.write_text(text[:start] + text[end + 1 :], encoding="utf-8")
    assert "no question for travel.exit_point_type" in str(load_error(pack_copy))


def test_invalid_example_case_fails_at_load(pack_copy: Path) -> None:
    edit(
        pack_copy,
        "unofficial_exit_point",
        "exit_point_type: unofficial",
        "exit_point_typ: unofficial",
    )
    error = load_error(pack_copy)
    assert error.rule_id == "unofficial_exit_point"
    assert "examples.fires[1].case: travel.exit_point_typ: unknown field" in str(error)
