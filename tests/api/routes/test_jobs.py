"""Batch rescoring over HTTP, as an analyst's script uses it: upload, poll, download."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, update

from api import jobs as job_runner
from api import runners
from api.app import create_app
from api.routes import jobs as job_routes
from api.settings import Settings
from api.storage import database, jobs, tables
from models.artifact import MODEL_FILE, TrainedModel
from tests.api.calls import Headers, rows
from tests.api.conftest import key_headers
from tests.api.routes.test_activation import (
    DEFAULT,
    activate,
    edit_in_place,
    library_model,
    library_pack,
)
from tests.api.routes.test_registry import NEW_LICENCE, NEW_REGISTRY
from tests.api.routes.test_registry import upload as upload_registry
from tests.api.servers import alive, wait_for
from tests.api.test_app import every_connection
from tests.api.test_in_use import flat
from tests.api.test_rescore_commands import case_rows, read_output, rescore, write_csv
from tests.conftest import DEFAULT_PACK
from tests.factories import documented_worker

CSV = {"Content-Type": "text/csv"}


def upload(
    client: TestClient, headers: Headers, body: bytes, query: str = "", media: dict[str, str] = CSV
) -> Any:
    return client.post(f"/v1/rescore-jobs{query}", content=body, headers={**headers, **media})


def wait(client: TestClient, headers: Headers, job_id: str, seconds: float = 180) -> dict[str, Any]:
    """The job once it is done or failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/rescore-jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {seconds} s")


def started(client: TestClient, headers: Headers, body: bytes, query: str = "") -> dict[str, Any]:
    answer = upload(client, headers, body, query)
    assert answer.status_code == 202, answer.text
    return wait(client, headers, answer.json()["job_id"])


def test_an_uploaded_file_is_rescored_as_the_command_line_does(
    client: TestClient, analyst: Headers, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "cases.csv", case_rows(400))
    answer = upload(client, analyst, source.read_bytes(), "?name=NTB%202025")
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["status"] in ("queued", "running")
    assert queued["name"] == "NTB 2025"
    job = wait(client, analyst, queued["job_id"])
    assert job["status"] == "done", job["error"]
    assert job["summary"]["rescored"] == 400
    assert job["progress"] == {"stage": "rescoring", "done": 400, "total": 400}
    result = client.get(job["links"]["result"], headers=analyst)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/vnd.apache.parquet"
    served = pq.read_table(io.BytesIO(result.content))
    rescore(str(source), "--out", str(tmp_path / "cli.parquet"))
    assert served.equals(read_output(tmp_path / "cli.parquet"))
    listed = client.get("/v1/rescore-jobs", headers=analyst).json()["jobs"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]


# The job runs the same on both databases (the first test shows it); the rest run on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_bad_rows_fail_the_job_or_are_skipped_into_rejects(
    client: TestClient, analyst: Headers, tmp_path: Path
) -> None:
    cases = case_rows(50)
    cases[7]["travel.mode"] = "ship"
    body = write_csv(tmp_path / "cases.csv", cases).read_bytes()
    stopped = started(client, analyst, body)
    assert stopped["status"] == "failed"
    assert "row 8: travel.mode: 'ship' is not allowed" in stopped["error"]
    assert (
        client.get(f"/v1/rescore-jobs/{stopped['job_id']}/result", headers=analyst).status_code
        == 409
    )
    skipped = started(client, analyst, body, "?on_error=skip&output=csv")
    assert skipped["status"] == "done", skipped["error"]
    assert skipped["summary"]["rejected"] == 1
    rejects = client.get(skipped["links"]["rejects"], headers=analyst)
    assert rejects.text.splitlines()[1].startswith("8,travel.mode,")
    decisions = pacsv.read_csv(
        io.BytesIO(client.get(skipped["links"]["result"], headers=analyst).content)
    )
    assert decisions.num_rows == 49


def bigger_library_pack(settings: Settings) -> tuple[Path, str]:
    """A pack of the library with one more non-info rule than the default (one more model
    input): its folder and label."""
    folder, label = library_pack(settings, "bigger", "2026.12.2")
    text = (folder / "rules" / "unlicensed_agency.yaml").read_text(encoding="utf-8")
    again = text.replace("id: unlicensed_agency", "id: unlicensed_agency_again", 1)
    (folder / "rules" / "unlicensed_agency_again.yaml").write_text(again, encoding="utf-8")
    return folder, label


NAME, NIK, PASSPORT = "Siti Rahmawati Zubaidah", "3201999988887777", "XQ7788991"


@SQLITE_ONLY
def test_a_job_keeps_no_name_or_identity_number_in_clear(
    client: TestClient, analyst: Headers, settings: Settings, tmp_path: Path
) -> None:
    """Neither in its error (a row shifted by a stray comma, or one the CSV reader cannot
    split), nor in its rejects, nor in the database, nor in the upload once the job ended."""
    cases = case_rows(20)
    for row in cases:
        row.update({"person.full_name": NAME, "person.nik": NIK, "person.passport_no": PASSPORT})
    cases[3]["travel.visa_type"] = NAME  # a name in the wrong column
    body = write_csv(tmp_path / "cases.csv", cases).read_bytes()
    unsplittable = body + f"R-x,port_desk,{NAME},{NIK},{PASSPORT},extra\n".encode()
    jobs = [
        started(client, analyst, body),
        started(client, analyst, body, "?on_error=skip"),
        started(client, analyst, unsplittable),
    ]
    assert [job["status"] for job in jobs] == ["failed", "done", "failed"]
    assert "row 4: travel.visa_type: the value is not allowed" in jobs[0]["error"]
    assert "Expected" in jobs[2]["error"]
    rejects = client.get(jobs[1]["links"]["rejects"], headers=analyst).text
    kept = [path for path in settings.job_dir.rglob("*") if path.is_file()]
    stored = [
        json.dumps(jobs),
        rejects,
        *(path.read_bytes().decode(errors="replace") for path in kept),
    ]
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    stored += [p.read_bytes().decode(errors="replace") for p in database.parent.glob("*.db*")]
    for text in stored:
        for identifier in (NAME, NIK, PASSPORT):
            assert identifier not in text
    assert not list(settings.job_dir.rglob("in.*")), "the uploads are deleted once read"


@SQLITE_ONLY
def test_a_candidate_pack_is_backtested_against_the_live_one(
    client: TestClient, analyst: Headers, settings: Settings, tmp_path: Path
) -> None:
    candidate = settings.pack_library / "candidate"
    shutil.copytree(DEFAULT_PACK, candidate)
    rule = candidate / "rules" / "escort_network.yaml"
    rule.write_text(rule.read_text().replace("escort_travellers >= 3", "escort_travellers >= 2"))
    pack = candidate / "pack.yaml"
    pack.write_text(pack.read_text().replace('version: "2026.11.2"', 'version: "2026.12.0"'))
    labels = [
        p["label"] for p in client.get("/v1/rule-packs", headers=analyst).json()["rule_packs"]
    ]
    label = next(label for label in labels if label.endswith("2026.12.0"))
    body = write_csv(tmp_path / "cases.csv", case_rows(600)).read_bytes()
    live = started(client, analyst, body)
    backtest = started(client, analyst, body, f"?rule_pack={label}&compare_to={live['job_id']}")
    assert backtest["status"] == "done", backtest["error"]
    figures = client.get(backtest["links"]["report.json"], headers=analyst).json()
    assert figures["cases"]["moved"] > 0
    assert figures["rules"][0]["rule"] == "escort_network"
    page = client.get(backtest["links"]["report"], headers=analyst)
    assert page.headers["content-type"].startswith("text/html")
    assert "Perpindahan tingkat / Tier transitions" in page.text
    moved = client.get(backtest["links"]["moved-cases"], headers=analyst).text.splitlines()
    assert len(moved) == figures["cases"]["moved"] + 1
    # the earlier job's decisions named by the job, their SHA-256 and what made them
    decisions = client.get(live["links"]["result"], headers=analyst).content
    sha256 = hashlib.sha256(decisions).hexdigest()
    made = f"{live['uses']['rule_pack']} + {live['uses']['model']}"
    assert figures["compared"]["previous"] == f"{made} (job {live['job_id']}, SHA-256 {sha256})"
    assert figures["compared"]["previous_file"] == {
        "name": f"job {live['job_id']}",
        "sha256": sha256,
    }
    same = started(client, analyst, body, f"?rule_pack={label}&baseline=true")
    assert same["status"] == "done", same["error"]
    again = client.get(same["links"]["report.json"], headers=analyst).json()
    assert again["cases"]["moved"] == figures["cases"]["moved"]
    for shown in (backtest, figures, same, again):  # an analyst gets links, not server paths
        text = json.dumps(shown)
        assert str(settings.job_dir) not in text, text
        assert str(settings.pack_library) not in text, text


def test_a_file_that_cannot_be_rescored_is_refused_before_a_job_exists(
    client: TestClient, analyst: Headers, engine: Engine, settings: Settings
) -> None:
    header_only = b"case_id,channel,screened_at,travel.visa_typ\n"
    answer = upload(client, analyst, header_only)
    assert answer.status_code == 422
    assert answer.json()["field"] == "travel.visa_typ"
    assert "did you mean travel.visa_type?" in answer.json()["detail"]
    answer = upload(client, analyst, b"case_id,channel,screened_at,channel\n")
    assert answer.status_code == 422
    assert answer.json()["field"] == "channel"
    assert "channel: column appears more than once" in answer.json()["detail"]
    answer = upload(client, analyst, b"{}", media={"Content-Type": "application/json"})
    assert answer.status_code == 415
    assert answer.json()["field"] == "Content-Type"
    answer = upload(client, analyst, header_only, "?rule_pack=nope@1")
    assert answer.status_code == 404
    assert answer.json()["field"] == "rule_pack"
    broken = settings.pack_library / "broken"
    shutil.copytree(DEFAULT_PACK, broken)
    (broken / "rules" / "unlicensed_agency.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    good_header = b"case_id,channel,screened_at\n"
    answer = upload(client, analyst, good_header, "?rule_pack=(broken) broken")
    assert answer.status_code == 404
    assert answer.json()["field"] == "rule_pack"
    answer = upload(client, analyst, good_header, "?model=nope-1")
    assert answer.status_code == 404
    assert answer.json()["field"] == "model"
    for name in ("a\nb", "a\tb", "a\x85b", "a\x1b[31mb"):
        answer = client.post(
            "/v1/rescore-jobs",
            params={"name": name},
            content=good_header,
            headers={**analyst, **CSV},
        )
        assert answer.status_code == 422, name
        assert answer.json()["field"] == "name"
        assert "control character" in answer.json()["detail"]
    answer = upload(client, analyst, header_only, "?on_error=later")
    assert answer.status_code == 422
    assert answer.json()["field"] == "on_error"
    assert rows(engine, tables.rescore_jobs) == 0
    assert not any(settings.job_dir.iterdir()) if settings.job_dir.exists() else True


def test_a_csv_file_saved_by_excel_with_a_byte_order_mark_is_rescored(
    client: TestClient, analyst: Headers, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "cases.csv", case_rows(3))
    job = started(client, analyst, b"\xef\xbb\xbf" + source.read_bytes(), "?output=csv")
    assert job["status"] == "done", job["error"]
    result = client.get(f"/v1/rescore-jobs/{job['job_id']}/result", headers=analyst)
    decided = pacsv.read_csv(io.BytesIO(result.content))
    assert decided.column("case_id").to_pylist() == ["C-0000", "C-0001", "C-0002"]


def test_a_csv_file_that_is_not_utf8_or_not_csv_is_422_before_a_job_exists(
    client: TestClient, analyst: Headers, engine: Engine
) -> None:
    latin = "case_id,channel,screened_at,person.origin_province\nC-1,port_desk,,Jawa Timür\n"
    answer = upload(client, analyst, latin.encode("latin-1"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "body"
    assert answer.json()["detail"] == "the file: not UTF-8 text (save the CSV as UTF-8)"
    answer = upload(client, analyst, b"case_id," + b"x" * 131_073 + b"\n")
    assert answer.status_code == 422, answer.text
    assert "field larger than field limit" in answer.json()["detail"]
    assert rows(engine, tables.rescore_jobs) == 0


def test_an_unknown_job_is_404(client: TestClient, analyst: Headers) -> None:
    answer = client.get("/v1/rescore-jobs/0123456789abcdef", headers=analyst)
    assert answer.status_code == 404
    assert json.loads(answer.text)["field"] == "job_id"


# A server process of its own: it names itself as a job's runner would, and lives until the
# block ends.
SERVER = "import sys; from api.jobs import runner; print(runner(), flush=True); sys.stdin.read()"
OPTIONS = {
    "on_error": "stop",
    "output": "parquet",
    "rule_pack": None,
    "model": None,
    "baseline": False,
    "compare_to": None,
    "compare_to_file": None,
}


@contextmanager
def another_server() -> Iterator[str]:
    """The runner of another server process on this machine, alive while the block runs."""
    with subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        yield process.stdout.readline().strip()


def stopped_server() -> str:
    """The runner of a server process that has stopped (killed, as far as its jobs know)."""
    with another_server() as runner:
        return runner


def held_job(engine: Engine, settings: Settings, runner: str, status: str = "running") -> str:
    """A job of `runner` with its upload (identity numbers in clear) and its decisions file."""
    job_id, at = uuid.uuid4().hex, datetime.now(UTC)
    with database.transaction(engine) as connection:
        jobs.create(connection, job_id, "k" * 32, "upload", OPTIONS, at, runner)
        if status != "queued":
            jobs.started(connection, job_id, runner, at)
        if status == "done":
            jobs.finished(connection, job_id, {"rescored": 1}, at)
    folder = settings.job_dir / job_id
    folder.mkdir(parents=True)
    (folder / "in.csv").write_text(f"case_id,channel,screened_at,person.nik\nC-1,,,{NIK}\n")
    (folder / "out.parquet").write_bytes(b"the decisions")
    return job_id


def uploads(settings: Settings) -> set[str]:
    return {path.parent.name for path in settings.job_dir.glob("*/in.*")}


def stored(engine: Engine, job_id: str) -> dict[str, Any]:
    with database.reading(engine) as connection:
        job = jobs.get(connection, job_id)
    assert job is not None
    return job


INTERRUPTED = "interrupted: the server running it stopped"


def test_a_job_whose_server_stopped_is_failed_and_its_upload_deleted(
    client: TestClient, analyst: Headers, engine: Engine, settings: Settings
) -> None:
    """A server killed mid-job leaves it running in the database and its upload on disk: the
    next read of the job marks it and deletes the upload. Its decisions file stays."""
    read, listed = (held_job(engine, settings, stopped_server()) for _ in range(2))
    job = client.get(f"/v1/rescore-jobs/{read}", headers=analyst).json()
    assert (job["status"], job["error"]) == ("failed", INTERRUPTED)
    assert uploads(settings) == {listed}
    shown = client.get("/v1/rescore-jobs", headers=analyst).json()["jobs"]
    assert {job["status"] for job in shown} == {"failed"}
    assert uploads(settings) == set()
    assert (settings.job_dir / read / "out.parquet").exists()


def test_a_server_starting_deletes_the_uploads_no_job_still_reads(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    """Those of jobs whose server has gone, of ended jobs, and of uploads a stop cut off before
    their job was made; never one a job of another live process reads or an upload arriving."""
    with another_server() as alive:
        gone = held_job(engine, settings, stopped_server())
        gone_queued = held_job(engine, settings, stopped_server(), "queued")
        ended = held_job(engine, settings, stopped_server(), "done")
        running = held_job(engine, settings, alive)
        queued = held_job(engine, settings, alive, "queued")
        elsewhere = held_job(engine, settings, "another-machine:4242")
        cut_off, arriving = (settings.job_dir / uuid.uuid4().hex for _ in range(2))
        for folder in (cut_off, arriving):
            folder.mkdir()
            (folder / "in.csv").write_text(f"case_id,person.nik\nC-1,{NIK}\n")
        two_hours_ago = time.time() - 7200
        os.utime(cut_off / "in.csv", (two_hours_ago, two_hours_ago))
        with TestClient(create_app(settings)):  # a server (re)starting beside the others
            assert uploads(settings) == {running, queued, elsewhere, arriving.name}
            assert not cut_off.exists()
            for job_id in (gone, gone_queued):
                assert (stored(engine, job_id)["status"], stored(engine, job_id)["error"]) == (
                    "failed",
                    INTERRUPTED,
                )
                assert (settings.job_dir / job_id / "out.parquet").exists()
            assert stored(engine, ended)["status"] == "done"
            assert [stored(engine, job_id)["status"] for job_id in (running, elsewhere)] == [
                "running",
                "running",
            ]
            assert stored(engine, queued)["status"] == "queued"


def this_pid_started_earlier() -> str:
    """A runner of this process's PID that is not this process: a server killed, then started
    again with its PID (PID 1 in a container) or one whose PID this process took."""
    host, pid, identity = runners.runner().rsplit(":", 2)
    place, _, started = identity.rpartition(".")
    assert place, "a runner on Linux names its kernel and PID namespace"
    return f"{host}:{pid}:{place}.{int(started) - 100}"


def silent_for(engine: Engine, job_id: str, seconds: float) -> None:
    """The job's last heartbeat `seconds` ago, by the database's clock."""
    with database.transaction(engine) as connection:
        at = jobs.clock(connection) - timedelta(seconds=seconds)
        connection.execute(
            update(tables.rescore_jobs)
            .where(tables.rescore_jobs.c.job_id == job_id)
            .values(beat_at=at)
        )


def test_a_job_of_an_earlier_process_with_this_pid_is_interrupted(
    client: TestClient, analyst: Headers, engine: Engine, settings: Settings
) -> None:
    """Its runner's PID runs (this process) but is not its runner: it never beats again."""
    job_id = held_job(engine, settings, this_pid_started_earlier())
    job = client.get(f"/v1/rescore-jobs/{job_id}", headers=analyst).json()
    assert (job["status"], job["error"]) == ("failed", INTERRUPTED)
    assert uploads(settings) == set()


def test_a_job_whose_runner_fell_silent_is_interrupted(
    client: TestClient, analyst: Headers, engine: Engine, settings: Settings
) -> None:
    """A runner on another machine (or in another container) is judged by its heartbeat."""
    silent, beating = (
        held_job(engine, settings, f"machine-{n}:1:{uuid.uuid4().hex}") for n in "ab"
    )
    silent_for(engine, silent, runners.STALE + 5)
    silent_for(engine, beating, runners.STALE - 15)
    shown = {
        job["job_id"]: job for job in client.get("/v1/rescore-jobs", headers=analyst).json()["jobs"]
    }
    assert (shown[silent]["status"], shown[silent]["error"]) == ("failed", INTERRUPTED)
    assert shown[beating]["status"] == "running"
    assert uploads(settings) == {beating}


def test_a_server_beats_for_its_own_jobs_only(
    app: FastAPI, client: TestClient, engine: Engine, settings: Settings
) -> None:
    mine = held_job(engine, settings, runners.runner(), "queued")
    earlier = held_job(engine, settings, this_pid_started_earlier(), "queued")
    for job_id in (mine, earlier):
        silent_for(engine, job_id, runners.STALE + 5)
    app.state.service.jobs.beat()
    with database.reading(engine) as connection:
        at = jobs.clock(connection)
    assert at - stored(engine, mine)["beat_at"] < timedelta(seconds=5)
    assert at - stored(engine, earlier)["beat_at"] > timedelta(seconds=runners.STALE)


@SQLITE_ONLY
def test_a_running_job_beats_and_a_silent_one_is_swept_without_a_read(
    analyst: Headers,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(runners, "BEAT", 0.05)
    monkeypatch.setattr(job_runner, "SWEEP", 0.2)
    with TestClient(create_app(settings)) as client:
        silent = held_job(engine, settings, f"machine-a:1:{uuid.uuid4().hex}")
        silent_for(engine, silent, runners.STALE + 5)
        body = write_csv(tmp_path / "cases.csv", case_rows(50)).read_bytes()
        job_id = upload(client, analyst, body).json()["job_id"]
        beats, deadline = set(), time.monotonic() + 180
        while (job := stored(engine, job_id))["status"] in jobs.HELD:
            assert time.monotonic() < deadline, "the job never ended"
            beats.add(job["beat_at"])
            time.sleep(0.02)
        assert job["status"] == "done", job["error"]
        # its command takes seconds to start: it beat every 0.05 s meanwhile
        assert len(beats) >= 5, beats
        assert (stored(engine, silent)["status"], stored(engine, silent)["error"]) == (
            "failed",
            INTERRUPTED,
        )
        while uploads(settings):  # the job's own, deleted once it ended
            assert time.monotonic() < deadline, uploads(settings)
            time.sleep(0.02)


@SQLITE_ONLY
def test_a_job_whose_pack_the_model_cannot_score_is_409_before_it_exists(
    analyst: Headers,
    admin: Headers,
    settings: Settings,
    model_dir: Path,
    trained: TrainedModel,
    engine: Engine,
    tmp_path: Path,
) -> None:
    """As an activation of the same pack and model is: naming the model, without a server path;
    LINDUNG_MODEL_DIR's model is never trained for the pack."""
    own_model = tmp_path / "service-model"
    shutil.copytree(model_dir, own_model)
    kept = {path.name: path.read_bytes() for path in own_model.iterdir()}
    settings = settings.model_copy(update={"model_dir": own_model, "training_rows": 10_000})
    _folder, bigger = bigger_library_pack(settings)
    _folder, next_pack = library_pack(settings, "next", "2026.12.1")
    library_model(settings, model_dir, "lindung-risk@broken", b"garbage")
    body = write_csv(tmp_path / "cases.csv", case_rows(20)).read_bytes()
    with TestClient(create_app(settings)) as client:
        refused = [upload(client, analyst, body, f"?rule_pack={bigger}")]
        assert activate(client, admin, next_pack, trained.version).status_code == 201
        refused.append(upload(client, analyst, body, f"?rule_pack={bigger}"))
        refused.append(
            upload(client, analyst, body, f"?rule_pack={bigger}&model={trained.version}")
        )
        for answer in refused:
            assert answer.status_code == 409, answer.text
            assert answer.json()["field"] == "model"
            assert (
                f"model {trained.version} was trained on other features than rule pack {bigger}"
                in answer.json()["detail"]
            )
        broken = upload(client, analyst, body, "?model=lindung-risk@broken")
        assert broken.status_code == 409, broken.text
        assert broken.json()["field"] == "model"
        assert broken.json()["detail"].startswith("model lindung-risk@broken does not load: ")
        assert "LINDUNG_MODEL_LIBRARY/broken/model.pkl" in broken.json()["detail"]
        for answer in [*refused, broken]:
            assert str(tmp_path) not in answer.text
            assert str(model_dir) not in answer.text
    assert rows(engine, tables.rescore_jobs) == 0
    assert not settings.job_dir.exists() or not any(settings.job_dir.iterdir())
    assert {path.name: path.read_bytes() for path in own_model.iterdir()} == kept


@SQLITE_ONLY
def test_a_job_error_names_no_server_folder(
    client: TestClient,
    analyst: Headers,
    settings: Settings,
    model_dir: Path,
    trained: TrainedModel,
    tmp_path: Path,
) -> None:
    library_model(settings, model_dir, "lindung-risk@copy", (model_dir / MODEL_FILE).read_bytes())
    header = b"case_id,channel,screened_at\n"
    with client.app.state.service.jobs._slot:  # another job runs: the next one waits its turn
        queued = upload(client, analyst, header, "?model=lindung-risk@copy")
        assert queued.status_code == 202, queued.text
        (settings.model_library / "copy" / MODEL_FILE).write_bytes(b"swapped meanwhile")
    job = wait(client, analyst, queued.json()["job_id"])
    assert job["status"] == "failed"
    assert "LINDUNG_MODEL_LIBRARY/copy/model.pkl: SHA-256 " in job["error"], job["error"]
    assert str(tmp_path) not in job["error"]


@SQLITE_ONLY
def test_a_job_on_a_pack_changed_in_place_is_refused_before_it_exists(
    client: TestClient,
    analyst: Headers,
    admin: Headers,
    settings: Settings,
    trained: TrainedModel,
    engine: Engine,
) -> None:
    """The service decides with the pack as its label was pinned: a job must not decide with
    other rules under the same label."""
    folder, label = library_pack(settings, "next", "2026.12.1")
    assert activate(client, admin, label, trained.version).status_code == 201
    header = b"case_id,channel,screened_at\n"
    with client.app.state.service.jobs._slot:  # another job runs: the next one waits its turn
        queued = upload(client, analyst, header)
        assert queued.status_code == 202, queued.text
        edit_in_place(folder)
    job = wait(client, analyst, queued.json()["job_id"])
    assert job["status"] == "failed"
    assert "needs a new version" in job["error"]
    for query in ("", f"?rule_pack={label}", f"?rule_pack={DEFAULT.label}&baseline=true"):
        answer = upload(client, analyst, header, query)
        assert answer.status_code == 409, (query, answer.text)
        assert answer.json()["field"] == "rule_pack"
        assert f"rule pack {label} " in answer.json()["detail"]
        assert "needs a new version" in answer.json()["detail"]
    assert rows(engine, tables.rescore_jobs) == 1
    assert upload(client, analyst, header, f"?rule_pack={DEFAULT.label}").status_code == 202


@SQLITE_ONLY
def test_a_job_runs_with_and_shows_what_was_in_use_when_it_was_asked_for(
    client: TestClient,
    analyst: Headers,
    admin: Headers,
    settings: Settings,
    trained: TrainedModel,
    tmp_path: Path,
) -> None:
    """Two jobs asking for no pack or model, under two activations and registries, each say
    which they ran with; a job queued before an admin's change runs with what it was asked
    under."""
    case = documented_worker(case_id="W-new", placement={"agency_license_no": NEW_LICENCE})
    body = write_csv(tmp_path / "cases.csv", [flat(case)]).read_bytes()
    _folder, next_pack = library_pack(settings, "next", "2026.12.1")
    with client.app.state.service.jobs._slot:  # another job runs: these wait their turn
        plain = upload(client, analyst, body, "?output=csv")
        backtest = upload(client, analyst, body, f"?output=csv&rule_pack={next_pack}&baseline=true")
        assert (plain.status_code, backtest.status_code) == (202, 202)
        assert activate(client, admin, next_pack, trained.version).status_code == 201
        uploaded = upload_registry(client, admin, NEW_REGISTRY)
        assert uploaded.status_code == 201
    before = wait(client, analyst, plain.json()["job_id"])
    assert before["status"] == "done", before["error"]
    assert before["uses"] == {
        "rule_pack": DEFAULT.label,
        "model": trained.version,
        "registry": "settings",
    }
    assert "unlicensed_agency" in flags_of(client, analyst, before)
    compared = wait(client, analyst, backtest.json()["job_id"])
    assert compared["status"] == "done", compared["error"]
    assert compared["uses"] == {
        "rule_pack": next_pack,
        "model": trained.version,
        "registry": "settings",
        "baseline": {"rule_pack": DEFAULT.label, "model": trained.version},
    }
    figures = client.get(compared["links"]["report.json"], headers=analyst).json()
    assert figures["compared"]["previous"] == f"{DEFAULT.label} + {trained.version}"

    after = started(client, analyst, body, "?output=csv")
    assert after["uses"] == {
        "rule_pack": next_pack,
        "model": trained.version,
        "registry": uploaded.json()["sha256"],
    }
    assert "unlicensed_agency" not in flags_of(client, analyst, after)
    listed = client.get("/v1/rescore-jobs", headers=analyst).json()["jobs"]
    assert {job["job_id"]: job["uses"] for job in listed} == {
        job["job_id"]: job["uses"] for job in (before, compared, after)
    }


def flags_of(client: TestClient, headers: Headers, job: dict[str, Any]) -> str:
    """The flags of the one case of a job's CSV result."""
    result = client.get(job["links"]["result"], headers=headers)
    [row] = pacsv.read_csv(io.BytesIO(result.content)).to_pylist()
    return str(row["flags"])


def cancel(client: TestClient, headers: Headers, job_id: str) -> Any:
    return client.post(f"/v1/rescore-jobs/{job_id}/cancel", headers=headers)


# A job that would run long, with a worker process of its own (as `lindung rescore` starts one
# for each core), which writes its PID to the file named by the first argument.
SLEEPING = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(sys.argv[1], "a") as pids:
    print(worker.pid, file=pids)
time.sleep(600)
"""


def sleeping_jobs(monkeypatch: pytest.MonkeyPatch, pids: Path) -> None:
    command = [sys.executable, "-c", SLEEPING, str(pids)]
    monkeypatch.setattr(job_runner.JobRunner, "command", lambda *_: command)


def workers_alive(pids: Path) -> list[int]:
    """Those of the jobs' worker processes that still run (none written yet: none)."""
    written = pids.read_text() if pids.exists() else ""
    return [pid for pid in map(int, written.split()) if alive(pid)]


def test_a_cancelled_job_stops_and_keeps_no_file(
    client: TestClient,
    analyst: Headers,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sleeping_jobs(monkeypatch, tmp_path / "pids")
    body = write_csv(tmp_path / "cases.csv", case_rows(5)).read_bytes()
    running, queued = (upload(client, analyst, body).json()["job_id"] for _ in range(2))
    wait_for(lambda: stored(engine, running)["status"] == "running")
    wait_for(lambda: workers_alive(tmp_path / "pids"))  # its command has started its worker
    assert stored(engine, queued)["status"] == "queued"  # one job at a time per process
    for job_id in (queued, running):
        answer = cancel(client, analyst, job_id)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["status"] == "cancelled"
        assert job["error"].startswith("cancelled by key ")
        assert job["finished_at"] is not None
        assert job["links"] == {"self": f"/v1/rescore-jobs/{job_id}"}
    # the upload (names and identity numbers in clear) and anything written are deleted
    wait_for(lambda: not any((settings.job_dir / job_id).exists() for job_id in (running, queued)))
    assert stored(engine, running)["status"] == "cancelled"  # not failed once its command stops
    assert stored(engine, queued)["started_at"] is None  # it never started
    wait_for(lambda: not workers_alive(tmp_path / "pids"))  # stopped with the command
    assert cancel(client, analyst, running).status_code == 409
    result = client.get(f"/v1/rescore-jobs/{running}/result", headers=analyst)
    assert result.status_code == 409
    assert "the job is cancelled" in result.json()["detail"]


def test_a_job_cancelled_at_another_server_process_stops_at_its_runners_next_beat(
    client: TestClient,
    analyst: Headers,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sleeping_jobs(monkeypatch, tmp_path / "pids")
    monkeypatch.setattr(runners, "BEAT", 0.05)
    body = write_csv(tmp_path / "cases.csv", case_rows(5)).read_bytes()
    job_id = upload(client, analyst, body).json()["job_id"]
    wait_for(lambda: stored(engine, job_id)["status"] == "running")
    wait_for(lambda: workers_alive(tmp_path / "pids"))  # its command has started its worker
    with TestClient(create_app(settings)) as elsewhere:  # another worker, one database
        assert cancel(elsewhere, analyst, job_id).json()["status"] == "cancelled"
    wait_for(lambda: not (settings.job_dir / job_id).exists())
    assert stored(engine, job_id)["status"] == "cancelled"
    wait_for(lambda: not workers_alive(tmp_path / "pids"))


def test_only_a_queued_or_running_job_can_be_cancelled(
    client: TestClient, analyst: Headers, engine: Engine, settings: Settings
) -> None:
    ended = held_job(engine, settings, stopped_server(), "done")
    answer = cancel(client, analyst, ended)
    assert answer.status_code == 409
    assert answer.json()["field"] == "job_id"
    said = "the job is done: only a queued or running job can be cancelled"
    assert answer.json()["detail"] == said
    assert (settings.job_dir / ended / "out.parquet").exists()
    # one whose server has gone is failed (interrupted) when it is read, not cancelled
    gone = held_job(engine, settings, stopped_server())
    assert "the job is failed" in cancel(client, analyst, gone).json()["detail"]
    assert stored(engine, gone)["error"] == INTERRUPTED
    assert cancel(client, analyst, uuid.uuid4().hex).status_code == 404


@SQLITE_ONLY
def test_a_job_once_stored_is_answered_as_stored_whatever_comes_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The answer shows the job as its transaction stored it, without reading it again: other
    requests holding every connection just after the commit (here for 1 s) do not turn a job
    that runs into 503 "nothing was stored", which a client would send again as a second job."""
    monkeypatch.setattr(database, "POOL_WAIT_SECONDS", 1)
    held: list[Connection] = []
    store_as_before = job_routes._store

    def then_every_connection_taken(service: Any, *args: Any) -> dict[str, Any]:
        stored = store_as_before(service, *args)
        held.extend(every_connection(service.engine))
        return stored

    monkeypatch.setattr(job_routes, "_store", then_every_connection_taken)
    source = write_csv(tmp_path / "cases.csv", case_rows(20))
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        analyst = key_headers(engine, "analyst")
        try:
            answer = upload(client, analyst, source.read_bytes(), "?name=NTB")
        finally:
            for connection in held:
                connection.close()
        assert answer.status_code == 202, answer.text
        assert answer.json()["name"] == "NTB"
        assert answer.json()["status"] in ("queued", "running")
        assert rows(engine, tables.rescore_jobs) == 1
        done = wait(client, analyst, answer.json()["job_id"])
        assert done["status"] == "done"
        assert answer.json().keys() == done.keys()  # the job in the same shape as a read of it
        for unchanged in ("job_id", "name", "created_at", "options"):
            assert answer.json()[unchanged] == done[unchanged]
