from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from engine.rule_pack import RulePack
from models.artifact import TrainedModel
from tests.api.calls import screen
from tests.api.storage.test_write_lock import HEAD, held_in_another_transaction
from tests.api.test_group_commit import hold_lock
from tests.factories import tourist

Headers = dict[str, str]


def screenings_counted(metrics: str, tier: str, channel: str) -> float:
    pattern = (
        r'^lindung_screenings_total\{(?=[^}]*channel="'
        + channel
        + r'")(?=[^}]*tier="'
        + tier
        + r'")[^}]*\} ([0-9.e+]+)$'
    )
    found = re.search(pattern, metrics, flags=re.M)
    return float(found.group(1)) if found else 0.0


def test_healthz_and_readyz_answer_without_a_key(
    client: TestClient, pack: RulePack, trained: TrainedModel
) -> None:
    alive = client.get("/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "rule_pack": pack.label, "model": trained.version}


def test_the_server_answers_while_another_process_holds_a_lock_a_screening_needs(
    client: TestClient, engine: Engine, desk: Headers, analyst: Headers
) -> None:
    stored = screen(client, desk, tourist())
    if engine.dialect.name == "sqlite":  # a sqlite3 shell's BEGIN IMMEDIATE
        hold_lock(str(engine.url.database), lock_file=False, seconds=3)
    else:  # an admin's upload holds the audit head, as does any writer of another process
        held_in_another_transaction(engine, HEAD, seconds=3)
    held = time.monotonic()
    with ThreadPoolExecutor(1) as desks:
        screening = desks.submit(
            client.post, "/v1/screenings", json=tourist(case_id="held-up"), headers=desk
        )
        time.sleep(0.5)  # the screening waits for the lock now
        assert client.get("/healthz").status_code == 200
        read = client.get(f"/v1/decisions/{stored['decision_id']}", headers=analyst)
        assert read.status_code == 200
        assert not screening.done()  # both answered while the screening waits
        answer = screening.result(timeout=30)
    assert answer.status_code == 201, answer.text
    assert answer.json()["case_id"] == "held-up"
    assert time.monotonic() - held > 2.5, "stored only once the lock came free"


def test_metrics_count_screenings_by_tier_and_time_requests(
    client: TestClient, desk: Headers, analyst: Headers, admin: Headers
) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=desk).status_code == 403
    assert client.get("/metrics", headers=admin).status_code == 200
    before = client.get("/metrics", headers=analyst).text
    case = tourist(channel="port_desk", interview={"reports_coercion": True})
    decision = client.post("/v1/screenings", json=case, headers=desk).json()
    assert decision["tier"] == "urgent"

    answer = client.get("/metrics", headers=analyst)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert re.search(r'^lindung_screenings_total\{[^}]*tier="urgent"', text, flags=re.M)
    assert screenings_counted(text, "urgent", "port_desk") == (
        screenings_counted(before, "urgent", "port_desk") + 1
    )
    assert "# TYPE lindung_request_seconds histogram" in text
    assert re.search(
        r'^lindung_request_seconds_count\{route="/v1/screenings"\} [1-9]', text, flags=re.M
    )
