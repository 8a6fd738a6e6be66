from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.routes import registry as registry_routes
from api.settings import SAMPLE_REGISTRY, Settings, bundled
from api.storage import activation, audit, database, tables
from api.storage.keys import CLI
from engine.case import WIB
from engine.registry import AgencyRegistry
from tests.api.calls import Headers, rows
from tests.api.test_group_commit import hold_lock
from tests.factories import documented_worker

CSV = {"Content-Type": "text/csv"}
HEADER = "license_no,agency_name,status,valid_from,valid_until\n"

NEW_LICENCE = "SIP3MI-0100-2026"
NEW_REGISTRY = (
    HEADER
    + f"{NEW_LICENCE},PT Contoh Baru Sejahtera (fiktif),active,2026-01-05,2031-01-04\n"
    + "SIP3MI-0001-2021,PT Contoh Karya Mandiri (fiktif),revoked,2021-03-01,2027-02-28\n"
)


def lookup(client: TestClient, headers: Headers, number: str, **params: Any) -> Any:
    return client.get(f"/v1/registry/licences/{number}", params=params, headers=headers)


def flags_of(client: TestClient, desk: Headers, case: dict[str, Any]) -> set[str]:
    answer = client.post("/v1/screenings", json=case, headers=desk)
    assert answer.status_code == 201, answer.text
    return {flag["rule_id"] for flag in answer.json()["flags"]}


def upload(client: TestClient, admin: Headers, content: str) -> Any:
    return client.put("/v1/registry", content=content.encode(), headers={**admin, **CSV})


def test_a_licence_is_looked_up_with_its_status_on_a_day(client: TestClient, desk: Headers) -> None:
    answer = lookup(client, desk, "SIP3MI-0009-2020", on="2024-06-01")
    assert answer.status_code == 200
    licence = answer.json()
    assert licence["license_no"] == "SIP3MI-0009-2020"
    assert licence["agency_name"] == "PT Contoh Bahari Insani (fiktif)"
    assert licence["status"] == "active"
    assert licence["valid_from"] == "2020-05-01"
    assert licence["valid_until"] == "2025-04-30"
    assert licence["on"] == "2024-06-01"
    assert licence["status_on"] == "active"
    assert lookup(client, desk, "SIP3MI-0009-2020", on="2025-05-01").json()["status_on"] == (
        "expired"
    )
    assert lookup(client, desk, "SIP3MI-0021-2026", on="2026-11-23").json()["status_on"] == (
        "not_yet_valid"
    )
    assert lookup(client, desk, "SIP3MI-0014-2020", on="2026-11-23").json()["status_on"] == (
        "suspended"
    )
    today = lookup(client, desk, "SIP3MI-0016-2019")
    assert today.json()["on"] == datetime.now(WIB).date().isoformat()
    assert today.json()["status_on"] == "revoked"


def test_today_is_jakartas_day_as_a_screening_at_the_same_moment_judges_it(
    client: TestClient, desk: Headers, admin: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 23:24 UTC on 6 December it is already 7 December at every desk in Indonesia."""
    ending = HEADER + "T-1,PT Hampir Habis (fiktif),active,2021-01-01,2026-12-06\n"
    assert upload(client, admin, ending).status_code == 201
    monkeypatch.setattr(registry_routes, "now", lambda: datetime(2026, 12, 6, 23, 24, tzinfo=UTC))
    today = lookup(client, desk, "T-1").json()
    assert (today["on"], today["status_on"]) == ("2026-12-07", "expired")
    case = documented_worker(
        screened_at="2026-12-07T06:24:00+07:00", placement={"agency_license_no": "T-1"}
    )
    assert "unlicensed_agency" in flags_of(client, desk, case)


@pytest.mark.parametrize(
    "screened_at", ["2026-12-06T18:00:00Z", "2026-12-06T18:00:00", "2026-12-07T01:00:00+07:00"]
)
def test_a_screening_time_in_utc_judges_the_licence_on_jakartas_day_as_the_lookup_does(
    client: TestClient, desk: Headers, admin: Headers, screened_at: str
) -> None:
    """18:00 UTC on 6 December is 01:00 WIB on the 7th: a licence valid until the 6th has
    expired, whichever way the desk sends that moment; the decision echoes the time as sent."""
    ending = HEADER + "B.123/SIP3MI/2020,PT Slash (fiktif),active,2020-01-01,2026-12-06\n"
    assert upload(client, admin, ending).status_code == 201
    assert lookup(client, desk, "B.123/SIP3MI/2020", on="2026-12-07").json()["status_on"] == (
        "expired"
    )
    case = documented_worker(
        screened_at=screened_at, placement={"agency_license_no": "B.123/SIP3MI/2020"}
    )
    answer = client.post("/v1/screenings", json=case, headers=desk)
    assert answer.status_code == 201, answer.text
    decision = answer.json()
    assert "unlicensed_agency" in {flag["rule_id"] for flag in decision["flags"]}
    assert decision["tier"] == "high"
    echoed = datetime.fromisoformat(decision["screened_at"])
    given = datetime.fromisoformat(screened_at)
    assert echoed == (given if given.tzinfo else given.replace(tzinfo=UTC))
    assert echoed.utcoffset() == (given.utcoffset() or timedelta(0))


def test_a_licence_number_with_a_slash_is_looked_up_as_written(
    client: TestClient, desk: Headers, admin: Headers
) -> None:
    slashed = HEADER + "B.123/SIP3MI/2020,PT Garis Miring (fiktif),active,2020-01-01,2030-12-31\n"
    assert upload(client, admin, slashed).status_code == 201
    for typed in ("B.123/SIP3MI/2020", "B.123%2FSIP3MI%2F2020"):
        answer = lookup(client, desk, typed, on="2026-11-23")
        assert answer.status_code == 200, (typed, answer.text)
        assert answer.json()["license_no"] == "B.123/SIP3MI/2020"


def test_a_licence_typed_with_spaces_or_in_lowercase_is_still_found(
    client: TestClient, desk: Headers, analyst: Headers, admin: Headers
) -> None:
    for typed in ("sip3mi-0001-2021", "SIP3MI 0001 2021", " sip3mi0001 2021 ", "Sip3mi.0001_2021"):
        answer = lookup(client, desk, typed, on="2026-11-23")
        assert answer.status_code == 200, typed
        assert answer.json()["license_no"] == "SIP3MI-0001-2021", typed
        assert answer.json()["status_on"] == "active", typed
    unknown = lookup(client, analyst, "SIP3MI-9999-2022")
    assert unknown.status_code == 404
    assert unknown.json()["field"] == "license_no"
    bad_day = lookup(client, admin, "SIP3MI-0001-2021", on="next tuesday")
    assert bad_day.status_code == 422
    assert bad_day.json()["field"] == "on"
    assert lookup(client, {}, "SIP3MI-0001-2021").status_code == 401


@pytest.mark.parametrize("on", ["0", "1765065600", "-1", "20261207"])
def test_a_day_given_as_a_number_is_422_naming_on(
    client: TestClient, desk: Headers, on: str
) -> None:
    """Pydantic reads a number as Unix time: on=0 was 1970-01-01, and the licence not yet
    valid; 20261207 (the date without dashes) was 1970-08-23 as a time, and a 422 of no use."""
    answer = lookup(client, desk, "SIP3MI-0001-2021", on=on)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "on"
    assert answer.json()["detail"] == f"on: expected a date like 2026-12-07, got {on}"


def test_an_uploaded_registry_replaces_the_old_one_for_lookups_and_screening(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    newly_licensed = documented_worker(
        case_id="W-new", placement={"agency_license_no": NEW_LICENCE}
    )
    formerly_fine = documented_worker(case_id="W-old")  # SIP3MI-0001-2021
    sample = bundled(*SAMPLE_REGISTRY).read_text(encoding="utf-8").strip().splitlines()
    in_use = client.get("/v1/registry", headers=desk).json()
    assert in_use == {"source": "settings", "licences": len(sample) - 1}
    assert "unlicensed_agency" in flags_of(client, desk, newly_licensed)
    assert "unlicensed_agency" not in flags_of(client, desk, formerly_fine)
    assert lookup(client, desk, NEW_LICENCE).status_code == 404

    answer = upload(client, admin, NEW_REGISTRY)
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["licences"] == 2
    assert len(stored["sha256"]) == 64
    assert rows(engine, tables.registries) == 1

    # screened again after the upload: the same cases, as a desk screens them later
    later = "2026-11-23T10:00:00+00:00"
    newly_licensed["screened_at"] = formerly_fine["screened_at"] = later
    assert "unlicensed_agency" not in flags_of(client, desk, newly_licensed)
    answer = client.post("/v1/screenings", json=formerly_fine, headers=desk)
    [flag] = [f for f in answer.json()["flags"] if f["rule_id"] == "unlicensed_agency"]
    assert "revoked" in flag["reason"]["en"], "SIP3MI-0001-2021 is revoked in the new file"
    found = lookup(client, desk, NEW_LICENCE.lower(), on="2026-11-23")
    assert found.status_code == 200
    assert found.json()["status_on"] == "active"
    assert lookup(client, desk, "SIP3MI-0009-2020").status_code == 404, "the old file is gone"
    summary = client.get("/v1/registry", headers=desk).json()
    assert summary["source"] == "uploaded"
    assert summary["licences"] == 2
    assert summary["sha256"] == stored["sha256"]


def test_an_uploaded_registry_is_recorded_by_the_sha256_of_the_file_as_sent(
    settings: Settings, client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """Excel's CSV UTF-8 begins with a byte-order mark, and Windows ends lines with CRLF: the
    SHA-256 the service reports is what `sha256sum registry.csv` says of the file. Before, it
    was the SHA-256 of the text after the mark, which no tool of the admin's gives."""
    sent = b"\xef\xbb\xbf" + NEW_REGISTRY.replace("\n", "\r\n").encode()
    answer = client.put("/v1/registry", content=sent, headers={**admin, **CSV})
    assert answer.status_code == 201, answer.text
    assert answer.json()["sha256"] == hashlib.sha256(sent).hexdigest()
    assert client.get("/v1/registry", headers=desk).json()["sha256"] == answer.json()["sha256"]
    assert lookup(client, desk, NEW_LICENCE).json()["license_no"] == NEW_LICENCE
    with engine.connect() as connection:
        assert audit.verify(connection).problems == []
    with TestClient(create_app(settings)) as restarted:  # reads the stored file back
        assert restarted.get("/v1/registry", headers=desk).json()["licences"] == 2
        assert lookup(restarted, desk, NEW_LICENCE).status_code == 200


def test_an_upload_waiting_for_another_processs_write_lock_holds_up_no_other_request(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    if engine.dialect.name != "sqlite" or engine.url.database is None:
        pytest.skip("a SQLite file's write lock")
    hold_lock(engine.url.database, lock_file=False, seconds=2)
    with ThreadPoolExecutor(1) as admins:
        uploading = admins.submit(upload, client, admin, NEW_REGISTRY)
        time.sleep(0.5)  # the upload waits for the lock now
        assert client.get("/healthz").status_code == 200
        assert not uploading.done()  # answered while the upload waits, not after it
        answer = uploading.result(timeout=30)
    assert answer.status_code == 201, answer.text
    assert rows(engine, tables.registries) == 1


def test_a_registry_with_a_bad_row_is_refused_whole_naming_line_and_column(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    bad = NEW_REGISTRY + "SIP3MI-0101-2026,PT Contoh Salah (fiktif),pending,2026-01-05,\n"
    answer = upload(client, admin, bad)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["field"] == "status"
    assert "line 4" in problem["detail"]
    assert "pending" in problem["detail"]
    assert rows(engine, tables.registries) == 0
    assert client.get("/v1/registry", headers=desk).json()["source"] == "settings"
    assert lookup(client, desk, NEW_LICENCE).status_code == 404, "the old registry stays in use"
    assert "unlicensed_agency" not in flags_of(client, desk, documented_worker())


def test_a_registry_with_a_control_character_or_a_short_row_is_422_naming_it(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    for bad, field in (
        (NEW_REGISTRY + "SIP3MI-0101-2026,PT U\x00ji (fiktif),active,2026-01-05,\n", "agency_name"),
        (NEW_REGISTRY + "SIP3MI-0101-2026,PT Uji (fiktif),active\n", "body"),
    ):
        answer = upload(client, admin, bad)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field
        assert "line 4" in answer.json()["detail"]
    assert rows(engine, tables.registries) == 0


def test_a_registry_with_old_mac_line_ends_is_read_and_an_overlong_value_is_422(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    overlong = upload(client, admin, NEW_REGISTRY + f"SIP3MI-0101-2026,{'x' * 131_073},active,,\n")
    assert overlong.status_code == 422, overlong.text
    assert overlong.json()["field"] == "body"
    assert "line 4" in overlong.json()["detail"]
    assert rows(engine, tables.registries) == 0
    answer = upload(client, admin, NEW_REGISTRY.replace("\n", "\r"))
    assert answer.status_code == 201, answer.text
    assert lookup(client, desk, NEW_LICENCE).status_code == 200


def test_a_bad_upload_after_a_good_one_keeps_the_good_one(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    assert upload(client, admin, NEW_REGISTRY).status_code == 201
    for bad, field, line in (
        (HEADER + "SIP3MI-0102-2026,PT X,active,05/01/2026,\n", "valid_from", "line 2"),
        (HEADER + ",PT X,active,2026-01-05,\n", "license_no", "line 2"),
        (NEW_REGISTRY + "-/-,PT X,active,2026-01-05,\n", "license_no", "line 4"),
        (NEW_REGISTRY + NEW_LICENCE.lower() + ",PT Y,active,,\n", "license_no", "line 4"),
        (HEADER + "SIP3MI-0103-2026,PT X,active,2026-01-05,2025-01-05\n", "valid_until", "line 2"),
    ):
        answer = upload(client, admin, bad)
        assert answer.status_code == 422, bad
        assert answer.json()["field"] == field, bad
        assert line in answer.json()["detail"], bad
    assert rows(engine, tables.registries) == 1
    assert lookup(client, desk, NEW_LICENCE).status_code == 200


def test_a_registry_without_the_columns_or_licences_is_422_and_only_admins_upload(
    client: TestClient, desk: Headers, analyst: Headers, admin: Headers, engine: Engine
) -> None:
    assert upload(client, desk, NEW_REGISTRY).status_code == 403
    assert upload(client, analyst, NEW_REGISTRY).status_code == 403
    assert upload(client, {}, NEW_REGISTRY).status_code == 401
    missing = upload(client, admin, "license_no,agency_name\nSIP3MI-0100-2026,PT X\n")
    assert missing.status_code == 422
    assert "valid_until" in missing.json()["detail"]
    assert "line 1" in missing.json()["detail"]
    twice = upload(client, admin, NEW_REGISTRY.replace("valid_until\n", "valid_until,status\n"))
    assert twice.status_code == 422
    assert twice.json()["field"] == "status"
    assert "line 1" in twice.json()["detail"]
    empty = upload(client, admin, HEADER)
    assert empty.status_code == 422
    assert empty.json()["field"] == "body"
    not_text = client.put("/v1/registry", content=b"\xff\xfe\x00bad", headers={**admin, **CSV})
    assert not_text.status_code == 422
    windows = NEW_REGISTRY.replace("Baru", "Baru Café").encode("cp1252")  # Excel's plain CSV
    answer = client.put("/v1/registry", content=windows, headers={**admin, **CSV})
    assert answer.status_code == 422
    assert answer.json()["field"] == "body"
    assert answer.json()["detail"] == (
        "upload, line 2: byte 0xE9 is not UTF-8 (saved as Windows-1252?): save the file as CSV "
        "UTF-8"
    )
    assert rows(engine, tables.registries) == 0


def test_a_semicolon_separated_registry_is_422_saying_to_send_commas(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """As Excel saves "CSV" in an Indonesian locale."""
    answer = upload(client, admin, NEW_REGISTRY.replace(",", ";"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"
    assert answer.json()["detail"] == (
        "upload, line 1: the file's columns are separated by ';' (as Excel saves CSV in an "
        "Indonesian locale), not commas: send comma-separated CSV, the header reading "
        "license_no,agency_name,status,valid_from,valid_until"
    )
    assert rows(engine, tables.registries) == 0
    assert client.get("/v1/registry", headers=desk).json()["source"] == "settings"


def test_a_registry_sent_as_a_form_upload_is_415_saying_to_send_it_as_the_body(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """As a browser form or `curl -F file=@registry.csv` sends it: the part's boundary line was
    read as the header, and the error named missing columns."""
    files = {"file": ("registry.csv", NEW_REGISTRY.encode(), "text/csv")}
    answer = client.put("/v1/registry", files=files, headers=admin)
    assert answer.status_code == 415, answer.text
    assert answer.json()["field"] == "Content-Type"
    assert answer.json()["detail"] == (
        "received a form upload (multipart/form-data, the file in its part 'file' "
        "('registry.csv')): send the CSV as the request body (Content-Type text/csv), not as "
        "a form upload, e.g. curl --data-binary @registry.csv -H 'Content-Type: text/csv'"
    )
    empty_form = client.put(
        "/v1/registry", content=b"", headers={**admin, "Content-Type": "multipart/form-data"}
    )
    assert empty_form.status_code == 415
    assert empty_form.json()["detail"].startswith(
        "received a form upload (multipart/form-data): send the CSV as the request body"
    )
    assert rows(engine, tables.registries) == 0
    assert client.get("/v1/registry", headers=desk).json()["source"] == "settings"


def test_a_registry_stored_before_the_checks_it_fails_still_serves_after_an_upgrade(
    settings: Settings, client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """A registry the service accepted and kept, with a column named twice (the last one's
    values were used), a licence of no letter or digit, a row with a value too many or one
    short, a control character or a value over 200 characters: refused on upload since, it is
    read as it was accepted, so that a server still starts on it (and an admin can replace
    it). Before, each server process failed to rebuild its components on it."""
    twice = (
        "license_no,agency_name,status,valid_from,valid_until,status\n"
        f"{NEW_LICENCE},PT Contoh Baru Sejahtera (fiktif),revoked,2026-01-05,2031-01-04,active\n"
        "---,PT Tanpa Nomor (fiktif),active,,,active\n"
    )
    uneven = (  # as the first release accepted: the value too many dropped, the missing empty
        HEADER
        + f"{NEW_LICENCE},PT Dua (fiktif),active,2026-01-05,2031-01-04,diperpanjang 2026-10-01\n"
        + "SIP3MI-0200-2020,PT Tiga (fiktif),active,2020-01-01\n"
        + "SIP3MI-0201-2020,PT\x07 Empat (fiktif),active,,\n"
        + f"SIP3MI-0202-2020,PT {'Lima ' * 50}(fiktif),active,,\n"
    )
    for kept in (twice, uneven):
        assert upload(client, admin, kept).status_code == 422, kept  # refused as an upload
        with database.transaction(engine) as connection:  # stored as the earlier code stored it
            read = AgencyRegistry.from_text(NEW_REGISTRY)  # only the count is kept
            at = datetime(2026, 12, 1, tzinfo=UTC)
            activation.upload_registry(connection, kept, read, CLI, at)
        with TestClient(create_app(settings)) as restarted:  # a server started on it
            assert restarted.get("/readyz").status_code == 200
            case = documented_worker(placement={"agency_license_no": NEW_LICENCE})
            assert "unlicensed_agency" not in flags_of(restarted, desk, case)  # its status
            assert restarted.get("/v1/registry", headers=desk).json()["licences"] == 2
            for number in ("SIP3MI-0200-2020", "SIP3MI-0201-2020", "SIP3MI-0202-2020"):
                found = lookup(restarted, desk, number)
                assert found.status_code == (200 if kept is uneven else 404), number
            assert upload(restarted, admin, NEW_REGISTRY).status_code == 201
