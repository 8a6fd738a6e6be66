"""The `lindung` command as a desk or an analyst runs it: the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_PACK
from tests.factories import documented_worker, tourist

LINDUNG = str(Path(sys.executable).parent / "lindung")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "desk-cases.jsonl"
# No database, unless a test gives one: a service's, in var/ of this checkout, would be read.
NO_DATABASE = Path(tempfile.gettempdir()) / f"lindung-no-database-{os.getpid()}" / "lindung.db"


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with only the LINDUNG_ settings a test gives (and the model)."""
    found = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LINDUNG_") or k == "LINDUNG_MODEL_DIR"
    }
    found["LINDUNG_DATABASE_URL"] = f"sqlite:///{NO_DATABASE}"
    found.update(env or {})
    return found


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed `lindung` command, with only the LINDUNG_ settings a test gives it."""
    return subprocess.run(
        [LINDUNG, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=120,
        check=False,
    )


def flag_ids(stdout: str) -> list[str]:
    return [flag["rule_id"] for decision in decisions(stdout) for flag in decision["flags"]]


def decisions(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_screen_prints_one_decision_per_json_line() -> None:
    result = run("screen", str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    found = decisions(result.stdout)
    assert [d["case_id"] for d in found] == [
        "BTM-2026-0001",
        "BTM-2026-0002",
        "CGK-2026-0003",
        "LTSA-2026-0004",
    ]
    assert [d["tier"] for d in found][1:] == ["urgent", "urgent", "clear"]
    assert found[0]["flags"] == []  # a family visit by ferry raises no flag
    assert all(0 < d["risk_score"] < 1 for d in found)
    assert not NO_DATABASE.parent.exists(), "screening makes no database"
    assert found[1]["referral"]["agency"] in {"police_tppo", "social_services"}


def test_screen_reads_an_object_or_an_array_from_stdin() -> None:
    one = run("screen", "-", stdin=json.dumps(tourist(), indent=2))
    many = run("screen", stdin=json.dumps([tourist(), documented_worker()]))
    assert one.returncode == many.returncode == 0
    assert len(decisions(one.stdout)) == 1
    assert [d["case_id"] for d in decisions(many.stdout)] == ["T-1", "W-1"]


def test_text_format_is_readable_in_both_languages() -> None:
    result = run("screen", str(EXAMPLES), "--format", "text")
    assert result.returncode == 0
    assert "URGENT" in result.stdout
    assert "Anak di bawah" in result.stdout  # Bahasa Indonesia title
    assert "leaving to work" in result.stdout  # English reason
    assert "Rujukan / Referral" in result.stdout
    assert "Skor risiko / Risk score:" in result.stdout
    assert "Main factors raising the risk score" in result.stdout


def test_bad_case_is_named_on_stderr_without_a_traceback() -> None:
    bad = dict(tourist(case_id="T-2"), travel={"visa_typ": "tourist"})
    lines = "\n".join(json.dumps(c) for c in (tourist(), bad, documented_worker()))
    result = run("screen", stdin=lines)
    assert result.returncode == 1
    note, problem = result.stderr.strip().splitlines()
    assert note.startswith("No database at "), "the service's choices do not apply"
    assert problem == "case 2: travel.visa_typ: unknown field, did you mean travel.visa_type?"
    assert [d["case_id"] for d in decisions(result.stdout)] == ["T-1", "W-1"]


def test_a_field_in_the_wrong_group_is_named_with_the_one_meant() -> None:
    # the same words as the HTTP API's (tests/api/routes/test_screenings.py): one parser
    result = run("screen", stdin=json.dumps(dict(tourist(), travel={"age": 23})))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "case 1: travel.age: unknown field, did you mean person.age?"
    )


def test_input_that_is_not_json_is_refused_clearly() -> None:
    result = run("screen", stdin='{"channel": "batch"}\n{"channel": \n')
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("input: record 2 (line 2): not valid JSON")
    assert "Traceback" not in result.stderr


def test_cli_decision_equals_the_in_process_decision(scored_screener: Any) -> None:
    from engine.case_input import parse_case

    record = tourist(
        travel={"destination_country": "KH", "visa_type": "visa_on_arrival"},
        placement={"occupation": "it_customer_service"},
    )
    [from_cli] = decisions(run("screen", stdin=json.dumps(record)).stdout)
    in_process = scored_screener.screen(parse_case(record)).as_dict()
    for body in (from_cli, in_process):
        body.pop("decision_id")
    assert from_cli == in_process


def test_registry_comes_from_settings_and_the_option_overrides_it(tmp_path: Path) -> None:
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "license_no,agency_name,status,valid_from,valid_until\n"
        "SIP3MI-0001-2021,PT Contoh,revoked,2021-01-01,2030-01-01\n",
        encoding="utf-8",
    )
    case = json.dumps(documented_worker())
    from_env = run("screen", stdin=case, env={"LINDUNG_REGISTRY": str(registry)})
    assert "unlicensed_agency" in flag_ids(from_env.stdout)
    from_option = run("screen", "--registry", str(registry), stdin=case)
    assert "unlicensed_agency" in flag_ids(from_option.stdout)
    assert "unlicensed_agency" not in flag_ids(run("screen", stdin=case).stdout)


def test_broken_registry_or_pack_is_a_clear_error(tmp_path: Path) -> None:
    registry = tmp_path / "registry.csv"
    registry.write_text(
        "license_no,agency_name,status,valid_from,valid_until\n"
        "X-1,PT X,cancelled,2021-01-01,2030-01-01\n",
        encoding="utf-8",
    )
    result = run("screen", "--registry", str(registry), stdin=json.dumps(tourist()))
    assert result.returncode != 0
    assert f"registry: {registry}, line 2: status: 'cancelled' is not allowed" in result.stderr
    windows = tmp_path / "windows.csv"  # Excel's plain CSV: é is the one byte 0xE9
    windows.write_bytes(registry.read_text().replace("PT X", "PT Café").encode("cp1252"))
    said = f"registry: {windows}, line 2: byte 0xE9 is not UTF-8 (saved as Windows-1252?)"
    for chosen in (
        run("screen", "--registry", str(windows), stdin=json.dumps(tourist())),
        run("screen", stdin=json.dumps(tourist()), env={"LINDUNG_REGISTRY": str(windows)}),
    ):
        assert chosen.returncode != 0
        assert said in chosen.stderr
        assert "Traceback" not in chosen.stderr
    missing = run("screen", "--rule-pack", str(tmp_path), stdin="{}")
    assert "rule pack: " in missing.stderr
    assert "pack.yaml is missing" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr


@pytest.mark.parametrize(
    ("hours", "said"),
    [
        *(
            (
                f'{{"police_tppo": {hours}}}',
                "LINDUNG_REFERRAL_HOURS.police_tppo: Value error, expected a number of hours "
                "from 1/60 (a minute) to 720 (30 days)",
            )
            for hours in ("-1", "0", "1e-300", "721", "1e308", "Infinity", "NaN")
        ),
        ('{"police": 4}', "names agencies the pack does not know: ['police']"),
        ("notjson", 'error parsing value for field "referral_hours"'),
    ],
)
def test_bad_referral_hours_are_a_clear_error(hours: str, said: str) -> None:
    result = run("screen", stdin=json.dumps(tourist()), env={"LINDUNG_REFERRAL_HOURS": hours})
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: settings: "), result.stderr
    assert said in error
    assert "Traceback" not in result.stderr


def test_production_refuses_the_development_pseudonym_key() -> None:
    result = run("screen", stdin=json.dumps(tourist()), env={"LINDUNG_ENVIRONMENT": "production"})
    assert result.returncode != 0
    assert "LINDUNG_PSEUDONYM_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr


def test_rules_list_shows_every_rule_in_both_languages() -> None:
    listing = json.loads(run("rules", "list", "--format", "json").stdout)
    assert len(listing["rules"]) == 24
    first = listing["rules"][0]
    assert set(first) == {"id", "severity", "title", "basis", "when"}
    assert set(first["title"]) == {"id", "en"}
    text = run("rules", "list").stdout
    assert "escort_network" in text
    assert "basis:" in text


def test_rules_check_runs_every_example(tmp_path: Path) -> None:
    result = run("rules", "check", str(DEFAULT_PACK))
    assert result.returncode == 0
    assert result.stdout.strip().endswith(" passed, 0 failed")
    import shutil

    broken = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, broken)
    rule = broken / "rules" / "minor_departing_for_work.yaml"
    rule.write_text(
        rule.read_text(encoding="utf-8").replace("age < 18", "age < 12"), encoding="utf-8"
    )
    failing = run("rules", "check", str(broken))
    assert failing.returncode == 1
    assert "FAIL minor_departing_for_work:" in failing.stderr


def test_production_refuses_the_fictional_sample_registry(tmp_path: Path) -> None:
    key = {"LINDUNG_ENVIRONMENT": "production", "LINDUNG_PSEUDONYM_KEY": "k" * 40}
    refused = run("screen", stdin=json.dumps(tourist()), env=key)
    assert refused.returncode != 0
    assert "LINDUNG_REGISTRY must point at the ministry's registry" in refused.stderr
    registry = tmp_path / "registry.csv"
    registry.write_text("license_no,agency_name,status,valid_from,valid_until\n", encoding="utf-8")
    accepted = run(
        "screen", stdin=json.dumps(tourist()), env={**key, "LINDUNG_REGISTRY": str(registry)}
    )
    assert accepted.returncode == 0, accepted.stderr


def test_a_command_starts_without_loading_the_model_cards_plotting() -> None:
    # matplotlib and fairlearn cost about half a second of every command's start
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, api.cli; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'matplotlib'" not in loaded
    assert "'fairlearn'" not in loaded


# A command run through `lindung`'s entry point, then the model's libraries it loaded on stderr.
LOADED_AFTER = """
import sys
from api.cli import main
try:
    main(sys.argv[1:])
finally:
    heavy = ("pandas", "pyarrow", "numpy", "scipy", "sklearn", "shap", "durable", "matplotlib")
    print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)
"""


def test_admin_commands_start_without_the_model_and_rule_engine(tmp_path: Path) -> None:
    # they cost a second of each keys, audit and outcomes command, which use none of them
    env = environment({"LINDUNG_DATABASE_URL": f"sqlite:///{tmp_path / 'lindung.db'}"})

    def loaded(*args: str) -> tuple[str, str]:
        result = subprocess.run(
            [sys.executable, "-c", LOADED_AFTER, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        *said, modules = result.stderr.splitlines()
        assert modules == "[]", f"lindung {' '.join(args)} loaded {modules}"
        return result.stdout, "\n".join(said)

    _secret, made = loaded("keys", "create", "--role", "admin", "--name", "Batam desk")
    key_id = made.split()[2]
    assert key_id in loaded("keys", "list")[0]
    assert "audit trail intact" in loaded("audit", "verify")[0]
    assert "0 labelled cases" in loaded("outcomes", "export", "--out", "-")[1]
    assert loaded("keys", "revoke", key_id)[0] == f"revoked {key_id}\n"


def test_a_mistyped_command_is_told_the_nearest_one_loaded_or_not() -> None:
    for typed, meant in (("rescor", "rescore"), ("mdel", "model"), ("kyes", "keys")):
        result = run(typed)
        assert result.returncode == 2
        assert f"No such command '{typed}'. Did you mean '{meant}'?" in result.stderr


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_json_has_not_is_not_json_as_over_http(number: str) -> None:
    case = '{"channel": "port_desk", "recruitment": {"fee_paid_idr": ' + number + "}}"
    for given, where in ((case, "record 1 (line 1): "), (f"[{case}]", "")):
        result = run("screen", stdin=given)
        assert result.returncode == 1
        said = f"{where}not valid JSON ({number} is not a JSON number)"
        assert said in result.stderr, result.stderr
