from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, LargeBinary, Table, delete, func, select, type_coerce, update

from api.cli import main
from api.storage import audit, audit_body, database, tables
from tests.factories import tourist


@pytest.fixture
def screened(client: TestClient, desk: dict[str, str]) -> list[str]:
    """Three stored decisions, with an outcome on the first."""
    ids = [
        client.post("/v1/screenings", json=tourist(case_id=f"T-{n}"), headers=desk).json()[
            "decision_id"
        ]
        for n in range(3)
    ]
    client.post(f"/v1/decisions/{ids[0]}/outcome", json={"action": "cleared"}, headers=desk)
    return ids


def verify(engine: Engine) -> audit.Verification:
    with engine.connect() as connection:
        return audit.verify(connection)


def test_an_untouched_trail_verifies(engine: Engine, screened: list[str]) -> None:
    result = verify(engine)
    assert result.ok, result.problems
    # the pack pinned at start, the desk's key, three decisions, one outcome
    assert result.entries == 1 + 1 + 3 + 1


def edit(engine: Engine, statement: object) -> None:
    with database.transaction(engine) as connection:
        connection.execute(statement)  # type: ignore[call-overload]


def test_an_edited_entry_is_detected(engine: Engine, screened: list[str]) -> None:
    """Edited as someone who knows how bodies are packed would: read, changed, packed again."""
    log = tables.audit_log.c
    with engine.connect() as connection:
        body = connection.execute(select(log.body).where(log.subject == screened[1])).scalar_one()
    assert '"tier":"clear"' in body
    edited = body.replace('"tier":"clear"', '"tier":"urgent"')
    edit(engine, update(tables.audit_log).where(log.subject == screened[1]).values(body=edited))
    result = verify(engine)
    assert not result.ok
    assert any("changed after recording" in problem for problem in result.problems)


def stored_bytes(engine: Engine, subject: str) -> bytes:
    log = tables.audit_log.c
    with engine.connect() as connection:
        raw = select(type_coerce(log.body, LargeBinary)).where(
            log.subject == subject, log.kind == "decision"
        )
        return bytes(connection.execute(raw).scalar_one())


def test_a_decision_is_stored_packed_in_a_fifth_of_its_text(
    engine: Engine, screened: list[str]
) -> None:
    log = tables.audit_log.c
    with engine.connect() as connection:
        decision = select(log.body).where(log.subject == screened[0], log.kind == "decision")
        text = connection.execute(decision).scalar_one()
    stored = stored_bytes(engine, screened[0])
    assert len(text) > 15_000
    assert stored[:1] == bytes([audit_body.ZSTD_1])
    assert len(stored) < len(text) / 5  # lz4, one body at a time: 2 / 5


def test_damaged_stored_bytes_are_detected_not_a_crash(engine: Engine, screened: list[str]) -> None:
    log = tables.audit_log.c
    for subject, damage in ((screened[1], b"\xff\xff\xff"), (screened[2], b"")):
        stored = stored_bytes(engine, subject)
        middle = len(stored) // 2
        damaged = stored[:middle] + damage + stored[middle + len(damage) :]
        if not damage:
            damaged = stored[:middle]  # cut short
        edit(engine, update(tables.audit_log).where(log.subject == subject).values(body=damaged))
    result = verify(engine)
    assert not result.ok
    changed = [p for p in result.problems if "changed after recording" in p]
    assert len(changed) == 2, result.problems


def test_an_edited_decision_row_is_detected(engine: Engine, screened: list[str]) -> None:
    d = tables.decisions.c
    edit(engine, update(tables.decisions).where(d.decision_id == screened[2]).values(tier="high"))
    result = verify(engine)
    assert [p for p in result.problems if "tier differs from the audit log" in p]


@pytest.mark.parametrize("holder", [None, "e" * 32])
def test_a_decisions_desk_edited_is_detected(
    engine: Engine, screened: list[str], holder: str | None
) -> None:
    """Emptied, a retry of the case would be stored again; another desk's, that desk's case of
    the same number and time would be answered with this decision."""
    assert verify(engine).ok
    d = tables.decisions.c
    edit(engine, update(tables.decisions).where(d.decision_id == screened[1]).values(holder=holder))
    [problem] = verify(engine).problems
    assert ("has no desk" if holder is None else "its desk is not its key's holder") in problem


def test_an_upgraded_key_role_is_detected(engine: Engine, screened: list[str]) -> None:
    edit(engine, update(tables.api_keys).values(role="admin"))
    assert any("role differs" in problem for problem in verify(engine).problems)


def test_a_deleted_entry_in_the_middle_is_detected(engine: Engine, screened: list[str]) -> None:
    gone = screened[1]  # a decision, its index rows and its entry: as if it never happened
    for table in (tables.decision_flags, tables.referrals, tables.decisions):
        edit(engine, delete(table).where(table.c.decision_id == gone))
    edit(engine, delete(tables.audit_log).where(tables.audit_log.c.subject == gone))
    problems = verify(engine).problems
    assert any("missing" in p for p in problems), problems
    assert any("does not follow" in p for p in problems), problems


def test_a_deleted_last_entry_is_detected(engine: Engine, screened: list[str]) -> None:
    with engine.connect() as connection:
        last = connection.execute(select(func.max(tables.audit_log.c.seq))).scalar_one()
    edit(engine, delete(tables.outcomes))
    edit(engine, delete(tables.audit_log).where(tables.audit_log.c.seq == last))
    assert any("head" in problem for problem in verify(engine).problems)


def test_the_last_entries_deleted_with_the_head_moved_back_are_caught_by_an_anchor(
    engine: Engine, screened: list[str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain alone cannot tell a log cut short, its head moved back onto what is left,
    from one that was never longer: the head printed by an earlier verify, kept elsewhere, can."""
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    runner = CliRunner()
    printed = runner.invoke(main, ["audit", "verify"]).output.strip()
    anchor = printed.split(" head ")[1]  # "5 <hash>"
    log = tables.audit_log.c
    with engine.connect() as connection:
        last, kept = connection.execute(
            select(log.seq, log.hash).order_by(log.seq.desc()).offset(1).limit(1)
        ).one()
    edit(engine, delete(tables.outcomes))
    edit(engine, delete(tables.audit_log).where(log.seq > last))
    edit(engine, update(tables.audit_head).values(seq=last, hash=kept))

    unanchored = runner.invoke(main, ["audit", "verify"])
    assert unanchored.exit_code == 0, "a cut at the end that moved the head is not seen alone"
    anchored = runner.invoke(main, ["audit", "verify", "--anchor", anchor])
    assert anchored.exit_code == 1
    assert f"entry {last + 1} was anchored but the log ends at entry {last}" in anchored.output
    earlier = runner.invoke(main, ["audit", "verify", "--anchor", f"{last} {kept.upper()}"])
    assert earlier.exit_code == 0, earlier.output
    start = runner.invoke(main, ["audit", "verify", "--anchor", f"0 {'0' * 64}"])
    assert start.exit_code == 0, "an empty log's head, as verify prints it, starts every chain"
    not_start = runner.invoke(main, ["audit", "verify", "--anchor", f"0 {'1' * 64}"])
    assert not_start.exit_code == 1
    assert "entry 0 is where every chain starts" in not_start.output
    wrong = runner.invoke(main, ["audit", "verify", "--anchor", f"{last} {'0' * 64}"])
    assert wrong.exit_code == 1
    assert "its hash is not the anchored one" in wrong.output
    typo = runner.invoke(main, ["audit", "verify", "--anchor", "five"])
    assert typo.exit_code == 2
    assert "expected an entry number and its hash" in typo.output


@pytest.mark.parametrize("change", ["delete", "duplicate", "renumber"])
def test_a_deleted_or_added_head_row_is_reported_not_a_crash(
    engine: Engine,
    screened: list[str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    head = tables.audit_head
    statement = {
        "delete": delete(head),
        "duplicate": head.insert().values(id=2, seq=1, hash="0" * 64),
        "renumber": update(head).values(id=2),
    }[change]
    edit(engine, statement)
    broken = CliRunner().invoke(main, ["audit", "verify"])
    assert isinstance(broken.exception, SystemExit), broken.exception
    assert broken.exit_code == 1
    assert "FAIL the head is one row (id 1), but audit_head holds" in broken.output
    assert "BROKEN" in broken.output


def test_a_removed_decision_row_is_detected(engine: Engine, screened: list[str]) -> None:
    d = tables.decisions.c
    edit(engine, delete(tables.outcomes))
    edit(engine, delete(tables.decisions).where(d.decision_id == screened[1]))
    assert any("missing" in problem for problem in verify(engine).problems)


def test_entries_chain_in_order_whoever_appends(engine: Engine) -> None:
    at = datetime.now(UTC)
    with database.transaction(engine) as connection:
        first = audit.append(connection, [audit.Entry("note", "a", "cli", {"n": 1})], at)
        second = audit.append(
            connection,
            [audit.Entry("note", "b", "cli", {"n": 2}), audit.Entry("note", "c", "cli", {})],
            at,
        )
    assert second == [first[0] + 1, first[0] + 2]
    assert verify(engine).ok


def test_lindung_audit_verify_passes_then_fails_after_an_edit(
    engine: Engine, screened: list[str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    runner = CliRunner()
    intact = runner.invoke(main, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    d = tables.decisions.c
    edit(
        engine, update(tables.decisions).where(d.decision_id == screened[0]).values(risk_score=0.0)
    )
    broken = runner.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN" in broken.output
    assert "risk_score differs" in broken.output


def test_lindung_audit_verify_checks_what_is_committed_while_a_writer_goes_on(
    engine: Engine, screened: list[str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server appending meanwhile neither waits for the check nor breaks it."""
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    with database.transaction(engine) as connection:
        audit.append(connection, [audit.Entry("note", "a", "cli", {})], datetime.now(UTC))
        intact = CliRunner().invoke(main, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    assert verify(engine).entries == 1 + 1 + 3 + 1 + 1


# What is done to a record after it was made is checked too: a referral's steps, a key's
# revocation, a decision's flags and referral, the registry's content.
COERCED = {"interview": {"reports_coercion": True}}  # urgent: a referral to the police


@pytest.fixture
def worked(client: TestClient, desk: dict[str, str], admin: dict[str, str]) -> dict[str, str]:
    """An urgent decision whose referral was resolved with a note, another left open, a
    revoked key, an uploaded registry, and the desk key's id."""
    urgent = [
        client.post("/v1/screenings", json=tourist(case_id=f"U-{n}", **COERCED), headers=desk)
        for n in range(2)
    ]
    assert [answer.status_code for answer in urgent] == [201, 201]
    resolved, still_open = (answer.json()["decision_id"] for answer in urgent)
    for step, body in (("acknowledge", {}), ("resolve", {"note": "handed to the police"})):
        answer = client.post(f"/v1/referrals/{resolved}/{step}", json=body, headers=desk)
        assert answer.status_code == 200, answer.text
    made = client.post("/v1/keys", json={"role": "desk", "name": "left"}, headers=admin).json()
    assert client.delete(f"/v1/keys/{made['key_id']}", headers=admin).status_code in (200, 204)
    registry = "license_no,agency_name,status,valid_from,valid_until\n"
    registry += "SIP3MI-0100-2026,PT Contoh (fiktif),active,2026-01-05,2031-01-04\n"
    uploaded = client.put(
        "/v1/registry", content=registry.encode(), headers={**admin, "Content-Type": "text/csv"}
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    assert verify_ok(client)
    asked = client.get(f"/v1/decisions/{still_open}", headers=desk).json()["asked_by"]
    return {
        "resolved": resolved,
        "open": still_open,
        "revoked": made["key_id"],
        "desk": asked["key_id"],
    }


def verify_ok(client: TestClient) -> bool:
    engine: Engine = client.app.state.service.engine  # type: ignore[attr-defined]
    result = verify(engine)
    assert result.ok, result.problems
    return True


REFERRAL = tables.referrals.c


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("reopen", "referral of {resolved}: status differs"),
        ("renote", "referral of {resolved}: note differs"),
        ("redeadline", "referral_deadline differs"),
        ("drop_referral", "referral_agency differs"),
        ("renotify", "referral_also_notify differs"),
        ("unreason", "referral_reasons differs"),
        ("garble_reasons", "referral_reasons differs"),
        ("acknowledge", "referral of {open}: status differs"),
        ("unrevoke", "key {revoked}: revoked_at differs"),
        ("drop_flag", "flags differs"),
        ("add_flag", "flags differs"),
        ("registry", "registry of entry"),
        ("backdate_decision", "recorded_at differs"),
        ("backdate_referral", "referral_opened_at differs"),
        ("reupload_as_another", "key_id differs"),
        ("backdate_key", "created_at differs"),
        ("repin", "rule pack of entry"),
        ("reholder", "holder differs"),  # a key made to read another desk's decisions
        ("rereplace", "replaces differs"),
    ],
)
def test_a_record_changed_after_it_was_made_is_detected(
    engine: Engine, worked: dict[str, str], change: str, problem: str
) -> None:
    resolved, still_open = worked["resolved"], worked["open"]
    flags = tables.decision_flags
    statement = {
        "reopen": update(tables.referrals)
        .where(REFERRAL.decision_id == resolved)
        .values(status="open", resolved_at=None, resolved_by=None, note=None),
        "renote": update(tables.referrals)
        .where(REFERRAL.decision_id == resolved)
        .values(note="nothing to report"),
        "redeadline": update(tables.referrals)
        .where(REFERRAL.decision_id == still_open)
        .values(deadline=datetime(2099, 1, 1, tzinfo=UTC)),
        "drop_referral": delete(tables.referrals).where(REFERRAL.decision_id == resolved),
        "renotify": update(tables.referrals)
        .where(REFERRAL.decision_id == still_open)
        .values(also_notify='["immigration"]'),
        "unreason": update(tables.referrals)
        .where(REFERRAL.decision_id == resolved)
        .values(reasons="[]"),
        "garble_reasons": update(tables.referrals)
        .where(REFERRAL.decision_id == still_open)
        .values(reasons="not JSON"),
        "acknowledge": update(tables.referrals)
        .where(REFERRAL.decision_id == still_open)
        .values(status="acknowledged"),
        "unrevoke": update(tables.api_keys)
        .where(tables.api_keys.c.key_id == worked["revoked"])
        .values(revoked_at=None),
        "drop_flag": delete(flags).where(flags.c.decision_id == still_open),
        "add_flag": flags.insert().values(decision_id=resolved, rule_id="visa_overstay_history"),
        "registry": update(tables.registries).values(content="license_no\n"),
        "backdate_decision": update(tables.decisions)
        .where(tables.decisions.c.decision_id == still_open)
        .values(recorded_at=datetime(2026, 1, 1, tzinfo=UTC)),
        "backdate_referral": update(tables.referrals)
        .where(REFERRAL.decision_id == still_open)
        .values(opened_at=datetime(2026, 1, 1, tzinfo=UTC)),
        "reupload_as_another": update(tables.registries).values(key_id=worked["revoked"]),
        "repin": update(tables.rule_packs).values(sha256="0" * 64),
        "reholder": update(tables.api_keys)
        .where(tables.api_keys.c.key_id == worked["revoked"])
        .values(holder=worked["desk"]),
        "rereplace": update(tables.api_keys)
        .where(tables.api_keys.c.key_id == worked["revoked"])
        .values(replaces=worked["desk"]),
        "backdate_key": update(tables.api_keys)
        .where(tables.api_keys.c.key_id == worked["revoked"])
        .values(created_at=datetime(2026, 1, 1, tzinfo=UTC)),
    }[change]
    edit(engine, statement)
    problems = verify(engine).problems
    assert any(problem.format(**worked) in p for p in problems), problems


@pytest.mark.parametrize("table", [tables.registries, tables.activations])
def test_rows_renumbered_out_of_the_logs_order_are_detected(
    client: TestClient, admin: dict[str, str], engine: Engine, table: Table
) -> None:
    """The server runs with the row of highest id: an older one renumbered above the newest
    would bring back an old registry or an old pack and model."""
    active = client.get("/v1/activation", headers=admin).json()
    for n in range(2):
        registry = "license_no,agency_name,status,valid_from,valid_until\n"
        registry += f"SIP3MI-010{n}-2026,PT Contoh (fiktif),active,2026-01-05,2031-01-04\n"
        headers = {**admin, "Content-Type": "text/csv"}
        assert client.put("/v1/registry", content=registry.encode(), headers=headers).is_success
        assert client.post("/v1/activation", json=active, headers=admin).status_code == 201
    assert verify_ok(client)
    [row_id] = table.primary_key.columns
    with engine.connect() as connection:
        oldest = connection.execute(select(func.min(row_id))).scalar_one()
    edit(engine, update(table).where(row_id == oldest).values({row_id: 100}))
    problems = verify(engine).problems
    assert any(f"{table.name}: {row_id.name} 100 comes after" in p for p in problems), problems


def test_a_deleted_or_changed_escort_link_is_detected(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    """Links are what later cases count: one deleted could keep escort_network from firing."""
    escorted = [
        tourist(
            case_id=f"E-{n}",
            person={"passport_no": f"X{n:07d}"},
            links={"escort_ref": "+62 812 5555 0001"},
        )
        for n in range(4)
    ]
    assert client.post("/v1/screenings", json=escorted[0], headers=desk).status_code == 201
    bulk = client.post("/v1/screenings/bulk", json={"cases": escorted[1:]}, headers=desk)
    assert bulk.status_code == 201
    unnamed = tourist(case_id="E-x", links={"escort_ref": "+62 812 5555 0002"})
    assert client.post("/v1/screenings", json=unnamed, headers=desk).status_code == 201
    result = verify(engine)
    assert result.ok, result.problems
    links = tables.escort_links
    with engine.connect() as connection:
        first, last = connection.execute(
            select(func.min(links.c.link_id), func.max(links.c.link_id))
        ).one()
    edit(engine, update(links).where(links.c.link_id == first).values(traveller="passport_no:0"))
    assert any("escort links of" in p for p in verify(engine).problems)
    edit(engine, delete(links).where(links.c.link_id == first))
    problems = verify(engine).problems
    assert any("3 stored, 4 in the decisions" in p for p in problems), problems
    edit(engine, delete(links).where(links.c.link_id == last))  # the unnamed traveller's
    assert len([p for p in verify(engine).problems if "escort links of" in p]) == 2


def test_a_link_whose_traveller_was_swapped_is_detected_whatever_names_the_traveller(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    """Travellers known by name and birth date, or by nothing but their case: making two of
    them one (which lowers the escort's count) is caught, though verify has no key to hash
    names with: each decision records the pseudonym it linked."""
    escort = {"escort_ref": "+62 812 5555 0003"}
    travellers = [
        tourist(case_id="N-1", person={"full_name": "Siti A", "birth_date": "1999-01-02"}),
        tourist(case_id="N-2", person={"full_name": "Dewi B", "birth_date": "1998-03-04"}),
        tourist(case_id="N-3"),
    ]
    for case in travellers:
        case["links"] = escort
        answer = client.post("/v1/screenings", json=case, headers=desk)
        assert answer.status_code == 201
        assert "escort_traveller" not in answer.json()
        stored = client.get(f"/v1/decisions/{answer.json()['decision_id']}", headers=desk)
        assert "escort_traveller" not in stored.json()
    assert verify(engine).ok
    links = tables.escort_links.c
    with engine.connect() as connection:
        first, second, third = connection.execute(
            select(links.link_id, links.traveller).order_by(links.link_id)
        ).all()
    # the third is known by its case_id within the desk that screened it
    assert [first.traveller[:11], third.traveller[:12]] == ["name_birth:", "source_case:"]
    edit(
        engine,
        update(tables.escort_links)
        .where(links.link_id == second.link_id)
        .values(traveller=first.traveller),
    )
    problems = verify(engine).problems
    assert any("escort links of" in p for p in problems), problems
    edit(
        engine,
        update(tables.escort_links)
        .where(links.link_id.in_([second.link_id, third.link_id]))
        .values(traveller=first.traveller),
    )
    assert any("escort links of" in p for p in verify(engine).problems)


@pytest.fixture
def corrected(client: TestClient, desk: dict[str, str]) -> str:
    """A decision confirmed as trafficking, then corrected to procedural."""
    decision_id = client.post("/v1/screenings", json=tourist(), headers=desk).json()["decision_id"]
    url = f"/v1/decisions/{decision_id}/outcome"
    for body in (
        {"confirmed": "trafficking"},
        {"confirmed": "procedural", "corrects": "trafficking", "note": "wrong button"},
    ):
        assert client.post(url, json=body, headers=desk).status_code == 201
    return str(decision_id)


OUTCOME = tables.outcomes.c


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("unmark", "corrects differs from the audit log"),
        ("mark", "corrects differs from the audit log"),
        ("relabel", "confirmed differs from the audit log"),
    ],
)
def test_a_correction_changed_in_the_outcomes_table_is_detected(
    engine: Engine, corrected: str, change: str, problem: str
) -> None:
    """The latest confirmation is the training label: a correction undone or made up in the
    table shows."""
    assert verify(engine).ok, verify(engine).problems
    with engine.connect() as connection:
        first, second = connection.execute(
            select(OUTCOME.audit_seq).order_by(OUTCOME.audit_seq)
        ).scalars()
    statement = {
        "unmark": update(tables.outcomes).where(OUTCOME.audit_seq == second).values(corrects=None),
        "mark": update(tables.outcomes)
        .where(OUTCOME.audit_seq == first)
        .values(corrects="procedural"),
        "relabel": update(tables.outcomes)
        .where(OUTCOME.audit_seq == second)
        .values(confirmed="trafficking", corrects=None),
    }[change]
    edit(engine, statement)
    problems = verify(engine).problems
    assert any(problem in p for p in problems), problems
