from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from engine.errors import RulePackError
from engine.examples import ExampleRunner, run_examples
from engine.reference import yaml_data
from engine.rule import Example, Rule
from engine.rule_pack import RulePack, content_digest, load_rule_pack
from tests.conftest import DEFAULT_PACK

CATALOGUE = {  # shared/domain.md: the default pack must cover each id, with this severity
    "minor_departing_for_work": "urgent",
    "unofficial_exit_point": "urgent",
    "documents_held_by_third_party": "urgent",
    "coercion_or_deception_reported": "urgent",
    "scam_compound_pattern": "urgent",
    "work_intent_without_work_visa": "high",
    "unlicensed_agency": "high",
    "individual_recruiter": "high",
    "placement_fee_charged": "high",
    "fee_above_cost_structure": "warning",
    "debt_bondage_risk": "high",
    "moratorium_individual_employer": "high",
    "missing_placement_documents": "high",
    "no_job_order": "warning",
    "sea_route_to_neighbour": "warning",
    "no_social_security": "warning",
    "no_predeparture_orientation": "info",
    "unexplained_trip": "warning",
    "social_media_recruitment": "warning",
    "repeat_attempt": "high",
    "escort_network": "urgent",
    "third_party_paid_travel": "warning",
}


def test_default_pack_covers_the_catalogue_with_its_severities(pack: RulePack) -> None:
    severities = {rule.id: rule.severity for rule in pack.rules}
    assert {rid: severities.get(rid) for rid in CATALOGUE} == CATALOGUE


def test_pack_is_versioned_dated_and_every_rule_cites_a_basis(pack: RulePack) -> None:
    assert pack.label == f"lindung-default@{pack.version}"
    assert pack.effective_date.year >= 2026
    assert all(rule.basis and rule.title.id != rule.title.en for rule in pack.rules)
    assert all(ref.source and ref.as_of for ref in pack.reference.lists.values())


def test_every_urgent_rule_refers_to_an_agency(pack: RulePack) -> None:
    for rule in pack.rules:
        assert (rule.referral in pack.agencies) == (rule.severity == "urgent"), rule.id


DEFAULT = load_rule_pack(DEFAULT_PACK)
EXAMPLES = [
    pytest.param(rule, example, id=f"{rule.id}-fires-{n}")
    for rule in DEFAULT.rules
    for n, example in enumerate((e for e in rule.examples if e.fires), start=1)
] + [
    pytest.param(rule, example, id=f"{rule.id}-does_not_fire-{n}")
    for rule in DEFAULT.rules
    for n, example in enumerate((e for e in rule.examples if not e.fires), start=1)
]


@pytest.fixture(scope="module")
def runner() -> ExampleRunner:
    return ExampleRunner(DEFAULT)


@pytest.mark.parametrize(("rule", "example"), EXAMPLES)
def test_rule_example(runner: ExampleRunner, rule: Rule, example: Example) -> None:
    result = runner.run(rule, example)
    assert result.ok, result.describe()


def test_every_rule_has_examples_both_ways(pack: RulePack) -> None:
    for rule in pack.rules:
        assert {example.fires for example in rule.examples} == {True, False}, rule.id


@pytest.mark.parametrize("backend", ["reference", "columnar"])
def test_examples_also_hold_on_the_other_backends(pack: RulePack, backend: str) -> None:
    assert [r.describe() for r in run_examples(pack, backend=backend) if not r.ok] == []


def test_a_pack_version_is_an_immutable_object(pack: RulePack) -> None:
    with pytest.raises(AttributeError):
        pack.version = "other"  # type: ignore[misc]


def test_the_digest_names_the_content_the_loader_reads(tmp_path: Path) -> None:
    """What is loaded is what is hashed: an edit to a rule is another digest, a README or an
    editor's backup beside the files is not."""
    copy = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, copy)
    before = content_digest(copy)
    (copy / "README.md").write_text("notes for the pack's authors\n")
    (copy / "rules" / "unlicensed_agency.yaml~").write_text("an editor's backup\n")
    assert content_digest(copy) == before
    rule = copy / "rules" / "unlicensed_agency.yaml"
    rule.write_text(rule.read_text().replace("high", "warning", 1))
    assert content_digest(copy) != before
    assert load_rule_pack(copy).digest == content_digest(copy)


def test_the_digest_follows_a_linked_folder_as_the_loader_does(tmp_path: Path) -> None:
    """A pack whose rules/ is a symbolic link to a shared folder: editing a rule there is an
    edit of the pack."""
    shared = tmp_path / "shared-rules"
    shutil.copytree(DEFAULT_PACK / "rules", shared)
    copy = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, copy, ignore=shutil.ignore_patterns("rules"))
    (copy / "rules").symlink_to(shared)
    assert content_digest(copy) == content_digest(DEFAULT_PACK)
    rule = shared / "unlicensed_agency.yaml"
    rule.write_text(rule.read_text().replace("high", "warning", 1))
    assert load_rule_pack(copy).digest != content_digest(DEFAULT_PACK)


@pytest.mark.parametrize("hours", ["0", "-2", ".inf", ".nan", "1000", "yes", "0.001"])
def test_a_referral_deadline_out_of_bounds_is_refused_naming_the_agency(
    tmp_path: Path, hours: str
) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, copy)
    manifest = copy / "pack.yaml"
    manifest.write_text(
        manifest.read_text().replace("deadline_hours: 24", f"deadline_hours: {hours}")
    )
    with pytest.raises(RulePackError) as refused:
        load_rule_pack(copy)
    assert "referral_agencies.bp3mi.deadline_hours: expected a number of hours from 1/60" in str(
        refused.value
    )


def test_every_file_of_the_pack_reads_as_pyyamls_safe_load_reads_it() -> None:
    # the loader reads with libyaml's parser where PyYAML has it: the same values
    files = sorted(DEFAULT_PACK.rglob("*.yaml"))
    assert len(files) > 30
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml_data(text) == yaml.safe_load(text), path.name


@pytest.mark.parametrize("folder", ["rules", "reference"])
def test_a_file_that_is_not_yaml_is_refused_naming_it_and_its_line(
    tmp_path: Path, folder: str
) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, copy)
    broken = sorted((copy / folder).glob("*.yaml"))[0]
    lines = broken.read_text(encoding="utf-8").splitlines()
    broken.write_text("\n".join([*lines[:2], "  - [unclosed: {", *lines[2:]]), encoding="utf-8")
    with pytest.raises(RulePackError) as refused:
        load_rule_pack(copy)
    message = str(refused.value)
    assert broken.name in message
    assert "not valid YAML" in message
    assert "line 3" in message
