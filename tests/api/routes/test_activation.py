from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine

from api.app import create_app
from api.problems import Unavailable
from api.service import Service
from api.settings import Settings, bundled
from api.storage import database, tables
from engine.rule_pack import load_rule_pack
from models import artifact
from models.artifact import TrainedModel
from tests.api.calls import Headers, rows, screen
from tests.api.conftest import key_headers
from tests.api.test_app import every_connection
from tests.factories import documented_worker, tourist

DEFAULT = load_rule_pack(bundled("default"))


def library_pack(settings: Settings, folder: str, version: str) -> tuple[Path, str]:
    """A copy of the default pack in the settings' pack library, under a new version."""
    target = settings.pack_library / folder
    shutil.copytree(bundled("default"), target)
    manifest = target / "pack.yaml"
    text = manifest.read_text(encoding="utf-8")
    bumped = re.sub(r"^version: .*$", f'version: "{version}"', text, count=1, flags=re.M)
    assert bumped != text
    manifest.write_text(bumped, encoding="utf-8")
    return target, f"{DEFAULT.name}@{version}"


@pytest.fixture
def next_pack(settings: Settings) -> str:
    """The label of a new version of the default pack with the same rules."""
    _folder, label = library_pack(settings, "next", "2026.12.1")
    return label


@pytest.fixture
def bigger_pack(settings: Settings) -> str:
    """The label of a pack with one more non-info rule (so the session's model no longer fits)."""
    folder, label = library_pack(settings, "bigger", "2026.12.2")
    source = folder / "rules" / "unlicensed_agency.yaml"
    text = source.read_text(encoding="utf-8")
    copy = text.replace("id: unlicensed_agency", "id: unlicensed_agency_again", 1)
    (folder / "rules" / "unlicensed_agency_again.yaml").write_text(copy, encoding="utf-8")
    return label


@pytest.fixture
def smaller_pack(settings: Settings) -> str:
    """The label of a pack without the info rule no_predeparture_orientation (the model, which
    does not take info rules, still fits it)."""
    folder, label = library_pack(settings, "smaller", "2026.12.3")
    (folder / "rules" / "no_predeparture_orientation.yaml").unlink()
    return label


def label_of(listed: dict[str, Any]) -> str:
    """The label to activate a listed pack by (GET /v1/rule-packs promises one)."""
    label: str = listed["label"]
    return label


def listed_packs(client: TestClient, headers: Headers) -> dict[str, bool]:
    answer = client.get("/v1/rule-packs", headers=headers)
    assert answer.status_code == 200
    return {label_of(p): p["active"] for p in answer.json()["rule_packs"]}


def activate(client: TestClient, admin: Headers, rule_pack: str, model: str) -> Any:
    return client.post(
        "/v1/activation", json={"rule_pack": rule_pack, "model": model}, headers=admin
    )


def test_the_settings_pack_and_model_are_listed_as_active_and_the_listing_follows_activation(
    client: TestClient, analyst: Headers, admin: Headers, next_pack: str, trained: TrainedModel
) -> None:
    current = client.get("/v1/activation", headers=analyst)
    assert current.json() == {"rule_pack": DEFAULT.label, "model": trained.version}
    models = client.get("/v1/models", headers=analyst)
    assert models.status_code == 200
    assert models.json()["active"] == trained.version
    [model] = models.json()["models"]
    assert model["version"] == trained.version
    assert model["active"] is True
    assert "folder" not in model, "server paths are not shown"

    packs = client.get("/v1/rule-packs", headers=analyst)
    assert packs.status_code == 200
    assert packs.json()["active"] == DEFAULT.label
    for listed in packs.json()["rule_packs"]:
        assert "folder" not in listed
        assert listed["rules"] == len(DEFAULT.rules)
    # each pack is listed under the label POST /v1/activation takes, the active one marked
    assert listed_packs(client, analyst) == {DEFAULT.label: True, next_pack: False}
    assert activate(client, admin, next_pack, trained.version).status_code == 201
    assert listed_packs(client, analyst) == {DEFAULT.label: False, next_pack: True}


def test_activating_a_new_pack_changes_the_next_decisions_but_not_the_earlier_ones(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    analyst: Headers,
    next_pack: str,
    trained: TrainedModel,
    engine: Engine,
) -> None:
    before = screen(client, desk, tourist(case_id="before"))
    assert before["versions"]["rule_pack"] == DEFAULT.label
    assert activate(client, analyst, next_pack, trained.version).status_code == 403
    assert activate(client, desk, next_pack, trained.version).status_code == 403

    answer = activate(client, admin, next_pack, trained.version)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"rule_pack": next_pack, "model": trained.version}
    assert rows(engine, tables.activations) == 1

    after = screen(client, desk, tourist(case_id="after"))
    assert after["versions"]["rule_pack"] == next_pack
    assert after["versions"]["model"] == trained.version
    earlier = client.get(f"/v1/decisions/{before['decision_id']}", headers=desk).json()
    assert earlier["versions"]["rule_pack"] == DEFAULT.label
    listed = client.get("/v1/decisions", headers=analyst).json()["decisions"]
    assert {d["case_id"]: d["versions"]["rule_pack"] for d in listed} == {
        "before": DEFAULT.label,
        "after": next_pack,
    }
    assert client.get("/v1/activation", headers=analyst).json()["rule_pack"] == next_pack
    assert client.get("/v1/rule-packs", headers=analyst).json()["active"] == next_pack
    assert client.get("/v1/rules", headers=desk).json()["rule_pack"] == next_pack
    assert client.get("/readyz").json()["rule_pack"] == next_pack


def test_decisions_can_still_be_listed_by_a_rule_the_active_pack_has_dropped(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    analyst: Headers,
    smaller_pack: str,
    trained: TrainedModel,
) -> None:
    no_orientation = {"placement": {"documents": {"opp_completed": False, "e_pmi_id": False}}}
    before = screen(client, desk, documented_worker(**no_orientation))
    assert "no_predeparture_orientation" in {f["rule_id"] for f in before["flags"]}
    assert activate(client, admin, smaller_pack, trained.version).status_code == 201

    assert "no_predeparture_orientation" not in {
        rule["id"] for rule in client.get("/v1/rules", headers=desk).json()["rules"]
    }
    listed = client.get(
        "/v1/decisions", params={"rule_id": "no_predeparture_orientation"}, headers=analyst
    )
    assert listed.status_code == 200, listed.text
    assert [d["decision_id"] for d in listed.json()["decisions"]] == [before["decision_id"]]
    typo = client.get("/v1/decisions", params={"rule_id": "no_pre_departure"}, headers=analyst)
    assert typo.status_code == 422
    assert typo.json()["field"] == "rule_id"
    assert "no_pre_departure" in typo.json()["detail"]


def test_a_pack_the_model_does_not_fit_is_409_and_changes_nothing(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    bigger_pack: str,
    trained: TrainedModel,
    engine: Engine,
) -> None:
    log_before = rows(engine, tables.audit_log)
    answer = activate(client, admin, bigger_pack, trained.version)
    assert answer.status_code == 409
    assert answer.json()["field"] == "model"
    assert rows(engine, tables.activations) == 0
    assert rows(engine, tables.audit_log) == log_before
    assert client.get("/v1/activation", headers=admin).json() == {
        "rule_pack": DEFAULT.label,
        "model": trained.version,
    }
    assert screen(client, desk, tourist())["versions"]["rule_pack"] == DEFAULT.label


def test_activating_an_unknown_or_broken_pack_or_model_changes_nothing(
    client: TestClient, admin: Headers, settings: Settings, trained: TrainedModel, engine: Engine
) -> None:
    folder, broken = library_pack(settings, "broken", "2026.12.3")
    (folder / "rules" / "unlicensed_agency.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    listing = client.get("/v1/rule-packs", headers=admin).json()["rule_packs"]
    assert any(label_of(p) == "(broken) broken" for p in listing)
    answer = activate(client, admin, broken, trained.version)
    assert answer.status_code in (404, 409), answer.text  # not in the library / does not load
    assert answer.json()["field"] == "rule_pack"

    unknown_model = activate(client, admin, DEFAULT.label, "no-such-model")
    assert unknown_model.status_code == 404
    assert unknown_model.json()["field"] == "model"
    assert rows(engine, tables.activations) == 0

    unknown_pack = activate(client, admin, "lindung-default@1999.1.1", trained.version)
    assert unknown_pack.json()["field"] == "rule_pack"
    assert rows(engine, tables.activations) == 0
    assert client.get("/v1/activation", headers=admin).json()["rule_pack"] == DEFAULT.label
    assert unknown_pack.status_code == 404, unknown_pack.text


def test_a_broken_pack_is_listed_with_its_problem_but_no_server_path(
    client: TestClient, analyst: Headers, settings: Settings, tmp_path: Path
) -> None:
    folder, _label = library_pack(settings, "broken", "2026.12.3")
    (folder / "reference" / "fee_caps.yaml").unlink()
    listing = client.get("/v1/rule-packs", headers=analyst).json()["rule_packs"]
    [broken] = [p for p in listing if label_of(p) == "(broken) broken"]
    assert broken["problem"].startswith("LINDUNG_PACK_LIBRARY/broken/reference: "), broken
    assert str(tmp_path) not in json.dumps(listing)


def library_model(settings: Settings, model_dir: Path, version: str, payload: bytes) -> None:
    """The session's model listed in the library as `version`, its file replaced by `payload`
    (none if empty), which its manifest vouches for unless the payload begins "unvouched"."""
    folder = settings.model_library / version.partition("@")[2]
    shutil.copytree(model_dir, folder)
    (folder / artifact.MODEL_FILE).unlink()
    if payload:
        (folder / artifact.MODEL_FILE).write_bytes(payload)
    path = folder / artifact.MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["model"] = version
    if not payload.startswith(b"unvouched"):
        manifest["sha256"] = hashlib.sha256(payload).hexdigest()
    path.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("none", "no model in"),
        ("unvouched garbage", "does not match the manifest"),
        ("garbage", "not a readable model"),
        ("other pickle", "is not the pinned LINDUNG_MODEL_SHA256"),
    ],
)
def test_a_listed_model_that_does_not_load_is_409_and_changes_nothing(
    settings: Settings,
    model_dir: Path,
    trained: TrainedModel,
    admin: Headers,
    engine: Engine,
    payload: str,
    reason: str,
) -> None:
    content = {
        "none": b"",
        "unvouched garbage": b"unvouched garbage",
        "garbage": b"garbage",
        "other pickle": pickle.dumps(trained.model, protocol=4),  # the same model, other bytes
    }[payload]
    library_model(settings, model_dir, "lindung-risk@x", content)
    if payload == "other pickle":
        settings = settings.model_copy(update={"model_sha256": trained.manifest["sha256"]})
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/models", headers=admin).json()["models"]
        assert "lindung-risk@x" in {model["version"] for model in listed}
        answer = activate(client, admin, DEFAULT.label, "lindung-risk@x")
        assert answer.status_code == 409, answer.text
        assert answer.json()["field"] == "model"
        assert answer.json()["detail"].startswith("model lindung-risk@x does not load: ")
        assert reason in answer.json()["detail"]
        assert client.get("/v1/activation", headers=admin).json()["model"] == trained.version
    assert rows(engine, tables.activations) == 0


@pytest.fixture
def second_process(settings: Settings, client: TestClient) -> Iterator[TestClient]:
    """Another server process on the same database."""
    with TestClient(create_app(settings)) as other:
        yield other


def test_what_an_admin_changes_through_one_process_another_sees_at_its_next_request(
    client: TestClient,
    second_process: TestClient,
    desk: Headers,
    admin: Headers,
    next_pack: str,
    trained: TrainedModel,
) -> None:
    assert screen(second_process, desk, tourist())["versions"]["rule_pack"] == DEFAULT.label
    assert activate(client, admin, next_pack, trained.version).status_code == 201
    assert second_process.get("/v1/activation", headers=admin).json()["rule_pack"] == next_pack
    next_case = tourist(case_id="T-2")  # T-1 sent again would get the decision it was given
    assert screen(second_process, desk, next_case)["versions"]["rule_pack"] == next_pack
    assert second_process.get("/readyz").json()["rule_pack"] == next_pack

    csv = (
        "license_no,agency_name,status,valid_from,valid_until\n"
        "SIP3MI-0100-2026,PT Contoh Baru (fiktif),active,2026-01-05,2031-01-04\n"
    )
    uploaded = client.put(
        "/v1/registry", content=csv, headers={**admin, "Content-Type": "text/csv"}
    )
    assert uploaded.status_code == 201
    found = second_process.get("/v1/registry/licences/SIP3MI-0100-2026", headers=desk)
    assert found.status_code == 200
    assert second_process.get("/v1/registry", headers=desk).json()["source"] == "uploaded"
    assert second_process.get("/v1/activation", headers=admin).json()["rule_pack"] == next_pack


# --- a pack label names one content -----------------------------------------------------------


def edit_in_place(folder: Path) -> None:
    """Change a rule of the pack in `folder` without changing its version."""
    rule = folder / "rules" / "sea_route_to_neighbour.yaml"
    rule.write_text(rule.read_text(encoding="utf-8") + "\n# tuned\n", encoding="utf-8")


def test_a_pack_changed_in_place_after_its_label_was_used_cannot_be_activated(
    client: TestClient, admin: Headers, settings: Settings, next_pack: str, trained: TrainedModel
) -> None:
    assert activate(client, admin, next_pack, trained.version).status_code == 201
    assert activate(client, admin, DEFAULT.label, trained.version).status_code == 201
    edit_in_place(settings.pack_library / "next")
    again = activate(client, admin, next_pack, trained.version)
    assert again.status_code == 409
    assert again.json()["field"] == "rule_pack"
    assert "needs a new version" in again.json()["detail"]
    # the admin is told which pack by the setting that points at it, not the server's folder
    assert f"rule pack {next_pack} in LINDUNG_PACK_LIBRARY/next " in again.json()["detail"]
    assert str(settings.pack_library) not in again.json()["detail"]
    assert client.get("/v1/activation", headers=admin).json()["rule_pack"] == DEFAULT.label


def test_a_process_whose_copy_of_the_active_pack_differs_refuses_to_screen_with_it(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    settings: Settings,
    next_pack: str,
    trained: TrainedModel,
    tmp_path: Path,
) -> None:
    """As on two machines, each with its own pack library, one of them edited in place."""
    other_library = tmp_path / "other-packs"
    shutil.copytree(settings.pack_library, other_library)
    edit_in_place(other_library / "next")
    elsewhere = settings.model_copy(update={"pack_library": other_library})
    with TestClient(create_app(elsewhere)) as other:
        assert screen(other, desk, tourist())["versions"]["rule_pack"] == DEFAULT.label
        assert activate(client, admin, next_pack, trained.version).status_code == 201
        refused = other.post("/v1/screenings", json=tourist(case_id="T-2"), headers=desk)
        assert refused.status_code == 503
        assert refused.json()["field"] == "rule_pack"
        assert f"rule pack {next_pack} in LINDUNG_PACK_LIBRARY/next " in refused.json()["detail"]
        assert str(other_library) not in refused.json()["detail"]
    assert screen(client, desk, tourist(case_id="T-2"))["versions"]["rule_pack"] == next_pack


def test_a_server_started_with_a_pack_changed_in_place_is_refused(
    client: TestClient, desk: Headers, settings: Settings, tmp_path: Path
) -> None:
    """The settings' pack, used by this server, then edited under the same version."""
    assert screen(client, desk, tourist())["versions"]["rule_pack"] == DEFAULT.label
    copy = tmp_path / "pack"
    shutil.copytree(bundled("default"), copy)
    edit_in_place(copy)
    edited = create_app(settings.model_copy(update={"rule_pack": copy}))
    with pytest.raises(Unavailable, match="needs a new version"), TestClient(edited):
        pass


def test_an_activation_the_settings_registry_no_longer_loads_for_is_503_naming_registry(
    settings: Settings, admin: Headers, next_pack: str, trained: TrainedModel, tmp_path: Path
) -> None:
    """The settings' registry file, removed since start-up: nothing is activated."""
    registry = tmp_path / "registry.csv"
    shutil.copy(settings.registry, registry)
    with TestClient(create_app(settings.model_copy(update={"registry": registry}))) as client:
        registry.unlink()
        refused = activate(client, admin, next_pack, trained.version)
        assert refused.status_code == 503, refused.text
        assert refused.json()["field"] == "registry"
        assert "cannot read the registry" in refused.json()["detail"]
        shutil.copy(settings.registry, registry)
        assert listed_packs(client, admin) == {DEFAULT.label: True, next_pack: False}
        assert activate(client, admin, next_pack, trained.version).status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_activation_once_committed_is_answered_as_stored_whatever_comes_after(
    settings: Settings, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer says what was activated without reading the database again: other requests
    holding every connection just after the commit (here for 1 s) do not turn an activation in
    effect into 503 "nothing was stored"."""
    monkeypatch.setattr(database, "POOL_WAIT_SECONDS", 1)
    _folder, label = library_pack(settings, "next", "2026.12.1")
    held: list[Connection] = []
    activate_as_before = Service.activate

    def then_every_connection_taken(service: Service, *args: Any, **kwargs: Any) -> Any:
        made = activate_as_before(service, *args, **kwargs)
        held.extend(every_connection(service.engine))
        return made

    monkeypatch.setattr(Service, "activate", then_every_connection_taken)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        admin = key_headers(engine, "admin")
        try:
            answer = activate(client, admin, label, trained.version)
        finally:
            for connection in held:
                connection.close()
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"rule_pack": label, "model": trained.version}
        assert rows(engine, tables.activations) == 1
