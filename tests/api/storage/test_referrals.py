from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, update

from api.storage import audit, tables
from tests.api.calls import Headers, screen
from tests.api.conftest import KeyMaker
from tests.api.routes.test_referrals import MINOR_SENT_TO_WORK, referral
from tests.api.storage.test_audit import edit
from tests.api.storage.test_audit_body import migrate
from tests.factories import tourist


def test_referrals_opened_before_revision_0006_are_filled_from_their_decisions(
    client: TestClient, desk: Headers, make_key: KeyMaker, engine: Engine
) -> None:
    """An upgraded database shows its open referrals' other agencies and reasons, as verify
    checks them; a referral whose entry no longer reads keeps empty lists."""
    kept, damaged = (
        screen(client, desk, tourist(case_id=f"U-{n}", **MINOR_SENT_TO_WORK)) for n in range(2)
    )
    migrate(engine, "0005", down=True)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("referrals")}
    assert {"also_notify", "reasons"}.isdisjoint(columns)
    log = tables.audit_log.c
    damage = update(tables.audit_log).where(log.subject == damaged["decision_id"])
    edit(engine, damage.values(body=b"\x01damaged"))

    migrate(engine, "head")
    other_desk = make_key("desk")
    item = referral(client, other_desk, kept["decision_id"])
    assert item["also_notify"] == ["social_services"]
    assert item["rule_ids"] == kept["referral"]["rule_ids"]
    reasons = {flag["rule_id"]: flag["reason"] for flag in kept["flags"]}
    assert [reason["reason"] for reason in item["reasons"]] == [
        reasons[rule_id] for rule_id in kept["referral"]["rule_ids"]
    ]
    unread = referral(client, other_desk, damaged["decision_id"])
    assert (unread["also_notify"], unread["rule_ids"], unread["reasons"]) == ([], [], [])
    with engine.connect() as connection:
        problems = audit.verify(connection).problems
    [problem] = problems  # the damaged entry; the kept referral agrees with the log
    assert "changed after recording" in problem, problems
