"""Who may call what: every route of the HTTP API against every kind of caller, deny by default.

`POLICY` is the reviewed access table. A route missing from it (or a stale entry) fails
`test_every_route_is_in_the_policy`, so a new endpoint cannot ship without a decision on who may
call it. Each (route, caller) pair is then sent through the real app: an allowed caller gets the
route's success status (with real ids, so a 404 cannot hide a refusal), a key of the wrong role
gets 403, and no key, a made-up key or a revoked key get 401 with `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from starlette.routing import Route

import api.deps
from api.runners import runner
from api.settings import Settings, bundled
from api.storage import audit, database, jobs, keys, tables
from tests.api.conftest import KeyMaker
from tests.api.storage.test_database import terminate_connections
from tests.api.test_app import published_problems
from tests.factories import tourist

ROLES = ("desk", "analyst", "admin")
ANYONE = frozenset({"anyone"})  # no key needed; a key, even a bad one, changes nothing
DESK = frozenset({"desk"})
ANALYST = frozenset({"analyst"})
ADMIN = frozenset({"admin"})
DESK_ANALYST = frozenset({"desk", "analyst"})
ANALYST_ADMIN = frozenset({"analyst", "admin"})
ANY_ROLE = frozenset(ROLES)

# (method, path template) -> the roles that may call it. This is the spec: change it only with
# a reviewed change of policy, never to make a test pass.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    # health and docs: no key
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/openapi.json"): ANYONE,
    ("GET", "/docs"): ANYONE,
    ("GET", "/docs/oauth2-redirect"): ANYONE,
    ("GET", "/redoc"): ANYONE,
    ("GET", "/metrics"): ANALYST_ADMIN,
    # screening
    ("POST", "/v1/screenings"): DESK,
    ("POST", "/v1/screenings/bulk"): DESK_ANALYST,
    # decisions and outcomes (a desk sees only its own decisions: see the tests below)
    ("GET", "/v1/decisions"): DESK_ANALYST,
    ("GET", "/v1/decisions/{decision_id}"): DESK_ANALYST,
    ("GET", "/v1/decisions/{decision_id}/outcome"): DESK_ANALYST,
    ("POST", "/v1/decisions/{decision_id}/outcome"): DESK_ANALYST,
    ("GET", "/v1/outcomes/labelled"): ANALYST,
    # the referral queue: desks work it, analysts read it
    ("GET", "/v1/referrals"): DESK_ANALYST,
    ("GET", "/v1/referrals/{decision_id}"): DESK_ANALYST,
    ("POST", "/v1/referrals/{decision_id}/acknowledge"): DESK,
    ("POST", "/v1/referrals/{decision_id}/resolve"): DESK,
    # what the service screens with: readable with any key
    ("GET", "/v1/rules"): ANY_ROLE,
    ("GET", "/v1/rules/{rule_id}"): ANY_ROLE,
    ("GET", "/v1/model"): ANY_ROLE,
    ("GET", "/v1/registry"): ANY_ROLE,
    ("GET", "/v1/registry/licences/{license_no:path}"): ANY_ROLE,
    ("PUT", "/v1/registry"): ADMIN,
    # activation: analysts and admins list, admins switch
    ("GET", "/v1/rule-packs"): ANALYST_ADMIN,
    ("GET", "/v1/models"): ANALYST_ADMIN,
    ("GET", "/v1/activation"): ANALYST_ADMIN,
    ("POST", "/v1/activation"): ADMIN,
    # keys
    ("GET", "/v1/keys"): ADMIN,
    ("POST", "/v1/keys"): ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): ADMIN,
    # batch rescoring: analysts
    ("POST", "/v1/rescore-jobs"): ANALYST,
    ("GET", "/v1/rescore-jobs"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}/result"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}/rejects"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}/report"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}/report.json"): ANALYST,
    ("GET", "/v1/rescore-jobs/{job_id}/moved-cases"): ANALYST,
    ("POST", "/v1/rescore-jobs/{job_id}/cancel"): ANALYST,
}

# Who calls: a key of each role, no key, a key that was never issued, a key that was revoked.
CALLERS = (*ROLES, "no key", "bad key", "revoked key")
URGENT = tourist(case_id="U-1", interview={"reports_coercion": True})  # fires an urgent rule
URGENT_RULE = "coercion_or_deception_reported"
LICENCE = "SIP3MI-0001-2021"  # in rules/registry/sample.csv


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, with routers' prefixes; HEAD only where it
    is declared without GET (Starlette answers HEAD for every GET route)."""
    found = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        assert isinstance(route, Route), f"a route of an unreviewed kind: {route!r}"
        assert context.path, f"a route without a path: {route!r}"
        methods = set(context.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        assert methods, f"a route without methods: {context.path}"
        found |= {(method, context.path) for method in methods}
    return found


def test_every_route_is_in_the_policy(app: FastAPI) -> None:
    served = app_routes(app)
    unreviewed = sorted(served - POLICY.keys())
    stale = sorted(POLICY.keys() - served)
    assert not unreviewed, (
        f"routes with no entry in POLICY (decide who may call them): {unreviewed}"
    )
    assert not stale, f"POLICY lists routes the app no longer serves: {stale}"
    api_routes = {
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }
    assert len(api_routes) == 36, sorted(api_routes)  # the docs are the other four
    assert all(roles == ANYONE or roles <= ANY_ROLE for roles in POLICY.values())


# --- the world a request needs: real keys, decisions and referrals, made on first use ----------


@dataclass
class World:
    client: TestClient
    engine: Engine
    _keys: dict[str, dict[str, str]] = field(default_factory=dict)

    def key(self, role: str) -> tuple[str, dict[str, str]]:
        """A new live key of `role`: its id and the headers carrying it."""
        with database.transaction(self.engine) as connection:
            made, secret = keys.create(
                connection, role, f"{role} {uuid.uuid4().hex[:6]}", datetime.now(UTC)
            )
        return made.key_id, {"Authorization": f"Bearer {secret}"}

    def headers(self, role: str) -> dict[str, str]:
        """The one key of `role` the test calls with (made on first use)."""
        if role not in self._keys:
            self._keys[role] = self.key(role)[1]
        return self._keys[role]

    def revoked(self, role: str) -> dict[str, str]:
        """Headers with a key of `role` that worked, then was revoked by an admin."""
        key_id, headers = self.key(role)
        assert self.client.get("/v1/rules", headers=headers).status_code == 200
        answer = self.client.delete(f"/v1/keys/{key_id}", headers=self.headers("admin"))
        assert answer.status_code == 200, answer.text
        return headers

    def screen(self, case: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post("/v1/screenings", json=case, headers=self.headers("desk"))
        assert answer.status_code == 201, answer.text
        decision: dict[str, Any] = answer.json()
        return decision

    @cached_property
    def decision_id(self) -> str:
        """A decision made by the test's desk key."""
        return str(self.screen(tourist(case_id="T-1"))["decision_id"])

    @cached_property
    def referral_id(self) -> str:
        """An urgent decision by the test's desk key, with its referral open."""
        decision = self.screen(URGENT)
        assert decision["tier"] == "urgent", decision
        assert decision["referral"], decision
        return str(decision["decision_id"])

    @cached_property
    def spare_key_id(self) -> str:
        """A live key for an admin to revoke."""
        return self.key("desk")[0]

    @cached_property
    def job_id(self) -> str:
        """A finished rescore job with every file: decisions, rejects and a report."""
        headers = {**self.headers("analyst"), "Content-Type": "text/csv"}
        answer = self.client.post(
            "/v1/rescore-jobs?on_error=skip&baseline=true", content=JOB_CSV, headers=headers
        )
        assert answer.status_code == 202, answer.text
        job_id = str(answer.json()["job_id"])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/rescore-jobs/{job_id}", headers=headers).json()
            if job["status"] in ("done", "failed"):
                assert job["status"] == "done", job["error"]
                return job_id
            time.sleep(0.2)
        raise AssertionError(f"rescore job {job_id} did not finish")

    @cached_property
    def queued_job_id(self) -> str:
        """A rescore job queued in this server process (which never starts it)."""
        job_id = uuid.uuid4().hex
        with database.transaction(self.engine) as connection:
            jobs.create(connection, job_id, "k" * 32, "cases.csv", {}, datetime.now(UTC), runner())
        return job_id

    @cached_property
    def activation(self) -> dict[str, str]:
        """The active rule pack and model (activating them again changes nothing)."""
        answer = self.client.get("/v1/activation", headers=self.headers("admin"))
        assert answer.status_code == 200, answer.text
        current: dict[str, str] = answer.json()
        return current


@dataclass(frozen=True)
class Call:
    """One request, and the status an allowed caller gets."""

    url: str
    ok: int = 200
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


SAMPLE_CSV = bundled("registry", "sample.csv").read_bytes()
JOB_CSV = (
    b"case_id,channel,screened_at,travel.visa_type\n"
    b"J-1,port_desk,2026-03-01T10:00:00+07:00,tourist\n"
    b"J-2,port_desk,2026-03-01T10:05:00+07:00,tourst\n"
)

# (method, path template) -> a valid request for it, so an allowed caller sees a success.
CALLS: dict[tuple[str, str], Callable[[World], Call]] = {
    ("GET", "/healthz"): lambda w: Call("/healthz"),
    ("GET", "/readyz"): lambda w: Call("/readyz"),
    ("GET", "/openapi.json"): lambda w: Call("/openapi.json"),
    ("GET", "/docs"): lambda w: Call("/docs"),
    ("GET", "/docs/oauth2-redirect"): lambda w: Call("/docs/oauth2-redirect"),
    ("GET", "/redoc"): lambda w: Call("/redoc"),
    ("GET", "/metrics"): lambda w: Call("/metrics"),
    ("POST", "/v1/screenings"): lambda w: Call("/v1/screenings", 201, json=tourist()),
    ("POST", "/v1/screenings/bulk"): lambda w: Call(
        "/v1/screenings/bulk", 201, json={"cases": [tourist(case_id="B-1"), URGENT]}
    ),
    ("GET", "/v1/decisions"): lambda w: Call("/v1/decisions?limit=10"),
    ("GET", "/v1/decisions/{decision_id}"): lambda w: Call(f"/v1/decisions/{w.decision_id}"),
    ("GET", "/v1/decisions/{decision_id}/outcome"): lambda w: Call(
        f"/v1/decisions/{w.decision_id}/outcome"
    ),
    ("POST", "/v1/decisions/{decision_id}/outcome"): lambda w: Call(
        f"/v1/decisions/{w.decision_id}/outcome", 201, json={"action": "counselled"}
    ),
    ("GET", "/v1/outcomes/labelled"): lambda w: Call("/v1/outcomes/labelled"),
    ("GET", "/v1/referrals"): lambda w: Call("/v1/referrals"),
    ("GET", "/v1/referrals/{decision_id}"): lambda w: Call(f"/v1/referrals/{w.referral_id}"),
    ("POST", "/v1/referrals/{decision_id}/acknowledge"): lambda w: Call(
        f"/v1/referrals/{w.referral_id}/acknowledge"
    ),
    ("POST", "/v1/referrals/{decision_id}/resolve"): lambda w: Call(
        f"/v1/referrals/{w.referral_id}/resolve", json={"note": "handed to the TPPO task force"}
    ),
    ("GET", "/v1/rules"): lambda w: Call("/v1/rules"),
    ("GET", "/v1/rules/{rule_id}"): lambda w: Call(f"/v1/rules/{URGENT_RULE}"),
    ("GET", "/v1/model"): lambda w: Call("/v1/model"),
    ("GET", "/v1/registry"): lambda w: Call("/v1/registry"),
    ("GET", "/v1/registry/licences/{license_no:path}"): lambda w: Call(
        f"/v1/registry/licences/{LICENCE}"
    ),
    ("PUT", "/v1/registry"): lambda w: Call(
        "/v1/registry", 201, content=SAMPLE_CSV, headers={"Content-Type": "text/csv"}
    ),
    ("GET", "/v1/rule-packs"): lambda w: Call("/v1/rule-packs"),
    ("GET", "/v1/models"): lambda w: Call("/v1/models"),
    ("GET", "/v1/activation"): lambda w: Call("/v1/activation"),
    ("POST", "/v1/activation"): lambda w: Call("/v1/activation", 201, json=w.activation),
    ("GET", "/v1/keys"): lambda w: Call("/v1/keys"),
    ("POST", "/v1/keys"): lambda w: Call(
        "/v1/keys", 201, json={"role": "desk", "name": "second desk, Soekarno-Hatta"}
    ),
    ("DELETE", "/v1/keys/{key_id}"): lambda w: Call(f"/v1/keys/{w.spare_key_id}"),
    ("POST", "/v1/rescore-jobs"): lambda w: Call(
        "/v1/rescore-jobs", 202, content=JOB_CSV, headers={"Content-Type": "text/csv"}
    ),
    ("GET", "/v1/rescore-jobs"): lambda w: Call("/v1/rescore-jobs"),
    ("GET", "/v1/rescore-jobs/{job_id}"): lambda w: Call(f"/v1/rescore-jobs/{w.job_id}"),
    **{
        ("GET", f"/v1/rescore-jobs/{{job_id}}/{name}"): (
            lambda w, name=name: Call(f"/v1/rescore-jobs/{w.job_id}/{name}")
        )
        for name in ("result", "rejects", "report", "report.json", "moved-cases")
    },
    ("POST", "/v1/rescore-jobs/{job_id}/cancel"): lambda w: Call(
        f"/v1/rescore-jobs/{w.queued_job_id}/cancel"
    ),
}


def test_every_policy_entry_has_a_request() -> None:
    assert CALLS.keys() == POLICY.keys()


def test_the_published_api_gives_the_status_each_route_answers(app: FastAPI) -> None:
    """A client generated from /openapi.json expects the success status the route sends."""

    class Ids:  # what a request's ids are does not change its status
        def __getattr__(self, name: str) -> str:
            return "x"

    paths = app.openapi()["paths"]
    published = {  # OpenAPI names a path parameter without its converter
        (method, path): sorted(
            paths[re.sub(r"{(\w+):\w+}", r"{\1}", path)][method.lower()]["responses"]
        )
        for method, path in CALLS
        if POLICY[(method, path)] != ANYONE
    }
    answered = {route: str(CALLS[route](Ids()).ok) for route in published}  # type: ignore[arg-type]
    assert {route: s for route, s in published.items() if answered[route] not in s} == {}


PUBLISHED_PATHS = {path for _, path in POLICY if path.startswith("/v1/") or path == "/metrics"}


def caller_headers(world: World, caller: str, allowed: frozenset[str]) -> dict[str, str]:
    if caller in ROLES:
        return world.headers(caller)
    if caller == "no key":
        return {}
    if caller == "bad key":
        return {"Authorization": "Bearer lk_never-issued"}
    # A revoked key of a role the route admits, so only the revocation can refuse it.
    return world.revoked(next((r for r in ROLES if r in allowed), "desk"))


def audit_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(tables.audit_log)
        return int(connection.execute(query).scalar_one())


def check(
    client: TestClient, world: World, method: str, path: str, call: Call, caller: str
) -> None:
    """Send `call` as `caller`: success if POLICY admits the caller, else 403 or 401, and a
    refused request stores nothing."""
    allowed = POLICY[method, path]
    headers = {**call.headers, **caller_headers(world, caller, allowed)}
    before = audit_rows(world.engine)
    answer = client.request(method, call.url, json=call.json, content=call.content, headers=headers)
    where = f"{method} {path} as {caller}: got {answer.status_code} {answer.text[:300]}"
    if path in PUBLISHED_PATHS:  # its status and body are what /openapi.json says of them
        template = re.sub(r"{(\w+):\w+}", r"{\1}", path)
        assert published_problems(client.app.openapi(), method, template, answer) == [], where
    if allowed == ANYONE or caller in allowed:
        assert answer.status_code == call.ok, f"{where} (allowed: expected {call.ok})"
        return
    if caller in ROLES:
        assert answer.status_code == 403, f"{where} (not allowed: expected 403)"
        assert answer.json()["error"] == "Forbidden", where
        named = {"desk": "a desk key", "analyst": "an analyst key", "admin": "an admin key"}
        assert answer.json()["detail"].startswith(named[caller]), where
    else:
        assert answer.status_code == 401, f"{where} (no valid key: expected 401)"
        assert answer.headers.get("WWW-Authenticate") == "Bearer", where
        assert answer.json()["error"] == "Unauthorised", where
    assert audit_rows(world.engine) == before, f"{where}: a refused request stored something"


@pytest.mark.parametrize(
    ("method", "path"), sorted(POLICY), ids=[f"{m} {p}" for m, p in sorted(POLICY)]
)
def test_route_admits_exactly_its_roles(
    client: TestClient, engine: Engine, subtests: pytest.Subtests, method: str, path: str
) -> None:
    """Every caller in turn, each pair a subtest of its own (one app and database per route
    keeps this quick). Refused calls change nothing, so the allowed ones still succeed."""
    world = World(client, engine)
    call = CALLS[method, path](world)
    for caller in CALLERS:
        with subtests.test(msg=f"{method} {path} as {caller}", caller=caller):
            check(client, world, method, path, call, caller)


# --- what the role table alone does not show -------------------------------------------------


def test_a_desk_cannot_read_or_act_on_another_desks_decision(
    client: TestClient, engine: Engine, make_key: Callable[..., dict[str, str]]
) -> None:
    world = World(client, engine)
    mine, other = world.headers("desk"), make_key("desk")
    decision_id = world.decision_id
    assert client.get(f"/v1/decisions/{decision_id}", headers=mine).status_code == 200

    for method, url, body in (
        ("GET", f"/v1/decisions/{decision_id}", None),
        ("GET", f"/v1/decisions/{decision_id}/outcome", None),
        ("POST", f"/v1/decisions/{decision_id}/outcome", {"action": "cleared"}),
    ):
        answer = client.request(method, url, json=body, headers=other)
        assert answer.status_code == 404, f"{method} {url}: {answer.status_code} {answer.text}"
        assert answer.json()["error"] == "NotFound"
        assert "T-1" not in answer.text, answer.text
        assert "tier" not in answer.text, answer.text

    assert decision_id in str(client.get("/v1/decisions", headers=mine).json())
    assert decision_id not in str(client.get("/v1/decisions", headers=other).json())
    summary = client.get(f"/v1/decisions/{decision_id}/outcome", headers=mine).json()
    assert summary["actions"] == [], "the other desk's refused outcome was stored"
    seen_by_analyst = client.get(f"/v1/decisions/{decision_id}", headers=world.headers("analyst"))
    assert seen_by_analyst.status_code == 200
    assert seen_by_analyst.json()["case_id"] == "T-1"


def test_a_confirmed_outcome_is_corrected_by_whoever_may_confirm_it(
    client: TestClient, engine: Engine, make_key: Callable[..., dict[str, str]]
) -> None:
    """A correction goes through the outcome endpoint with `corrects`: the desk that screened
    the case and any analyst may correct a confirmation (each other's too); another desk
    cannot see the decision, and an admin key acts on no case."""
    world = World(client, engine)
    url = f"/v1/decisions/{world.decision_id}/outcome"
    desk, analyst = world.headers("desk"), world.headers("analyst")
    assert client.post(url, json={"confirmed": "trafficking"}, headers=desk).status_code == 201

    def correction(wrong: str, right: str) -> dict[str, str]:
        return {"confirmed": right, "corrects": wrong, "note": "the BP2MI file says otherwise"}

    refused = (
        (make_key("desk"), 404, "NotFound"),
        (world.headers("admin"), 403, "Forbidden"),
        ({}, 401, "Unauthorised"),
    )
    for headers, status, error in refused:
        answer = client.post(url, json=correction("trafficking", "procedural"), headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text
    assert client.get(url, headers=desk).json()["confirmed"] == "trafficking"

    by_analyst = client.post(url, json=correction("trafficking", "non_procedural"), headers=analyst)
    assert by_analyst.status_code == 201, by_analyst.text
    by_desk = client.post(url, json=correction("non_procedural", "procedural"), headers=desk)
    assert by_desk.status_code == 201, by_desk.text
    history = client.get(url, headers=desk).json()["confirmations"]
    assert [c["confirmed"] for c in history] == ["trafficking", "non_procedural", "procedural"]
    desk_id, analyst_id, again = (c["key_id"] for c in history)
    assert desk_id == again != analyst_id


def rotate(client: TestClient, admin: dict[str, str], key_id: str) -> tuple[str, dict[str, str]]:
    """An admin's replacement for `key_id`: its id and the headers carrying it."""
    answer = client.post("/v1/keys", json={"role": "desk", "replaces": key_id}, headers=admin)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    return made["key_id"], {"Authorization": f"Bearer {made['key']}"}


def test_a_desk_whose_key_is_rotated_keeps_its_decisions_and_no_other_desks(
    client: TestClient, engine: Engine
) -> None:
    """An admin replaces a desk's key, then revokes the old one: the desk reads, lists and acts
    on what it screened before, with either key while both live; another desk, rotated too,
    still reads none of it. Each decision and outcome still names the key that asked."""
    world = World(client, engine)
    admin = world.headers("admin")
    old_id, old = world.key("desk")
    other_id, other = world.key("desk")
    before = screen_with(client, old, "T-1")
    others = screen_with(client, other, "O-1")

    new_id, new = rotate(client, admin, old_id)
    during = screen_with(client, new, "T-2")
    for headers in (old, new):  # both keys live: the desk's decisions, with either key
        for decision_id in (before, during):
            assert client.get(f"/v1/decisions/{decision_id}", headers=headers).status_code == 200
        assert listed_ids(client, headers) == {before, during}
    assert client.delete(f"/v1/keys/{old_id}", headers=admin).status_code == 200

    assert client.get("/v1/rules", headers=old).status_code == 401
    read = client.get(f"/v1/decisions/{before}", headers=new)
    assert read.status_code == 200, read.text
    assert read.json()["asked_by"]["key_id"] == old_id, "who asked is kept"
    page = client.get("/v1/decisions", headers=new).json()["decisions"]
    assert {item["decision_id"]: item["key_id"] for item in page} == {
        before: old_id,
        during: new_id,
    }
    outcome = client.post(
        f"/v1/decisions/{before}/outcome", json={"action": "counselled"}, headers=new
    )
    assert outcome.status_code == 201, outcome.text
    [action] = client.get(f"/v1/decisions/{before}/outcome", headers=new).json()["actions"]
    assert action["key_id"] == new_id

    _, other_new = rotate(client, admin, other_id)
    for headers, mine, theirs in ((new, before, others), (other_new, others, before)):
        assert client.get(f"/v1/decisions/{mine}", headers=headers).status_code == 200
        refused = client.get(f"/v1/decisions/{theirs}", headers=headers)
        assert refused.status_code == 404, refused.text
        assert theirs not in listed_ids(client, headers)
    with engine.connect() as connection:
        verified = audit.verify(connection)
    assert verified.ok, verified.problems


def listed_ids(client: TestClient, headers: dict[str, str]) -> set[str]:
    answer = client.get("/v1/decisions", headers=headers)
    assert answer.status_code == 200, answer.text
    return {item["decision_id"] for item in answer.json()["decisions"]}


def screen_with(client: TestClient, headers: dict[str, str], case_id: str) -> str:
    answer = client.post("/v1/screenings", json=tourist(case_id=case_id), headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["decision_id"])


def test_a_key_revoked_by_an_admin_gets_401(
    app: FastAPI, client: TestClient, engine: Engine
) -> None:
    world = World(client, engine)
    key_id, headers = world.key("analyst")
    assert client.get("/v1/activation", headers=headers).status_code == 200
    admin = world.headers("admin")
    assert client.delete(f"/v1/keys/{key_id}", headers=admin).status_code == 200

    answer = client.get("/v1/activation", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["error"] == "Unauthorised"
    app.state.keys.forget()  # as if KEY_CACHE_SECONDS had passed
    assert client.get("/v1/activation", headers=headers).status_code == 401
    again = client.delete(f"/v1/keys/{key_id}", headers=admin)
    assert again.status_code == 404, again.text
    listed = {k["key_id"]: k for k in client.get("/v1/keys", headers=admin).json()["keys"]}
    assert listed[key_id]["revoked_at"] is not None


def test_a_key_revoked_elsewhere_stops_working_once_the_cache_expires(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process revoked it (straight in the database): this process's cache forgets it
    within KEY_CACHE_SECONDS."""
    monkeypatch.setattr(api.deps, "KEY_CACHE_SECONDS", 0.2)
    world = World(client, engine)
    key_id, headers = world.key("desk")
    assert client.get("/v1/rules", headers=headers).status_code == 200
    with database.transaction(engine) as connection:
        assert keys.revoke(connection, key_id, datetime.now(UTC))
    time.sleep(0.3)
    answer = client.get("/v1/rules", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_a_key_sent_with_another_scheme_gets_401(client: TestClient, engine: Engine) -> None:
    secret = World(client, engine).headers("desk")["Authorization"].removeprefix("Bearer ")
    for value in (f"Basic {secret}", secret, "Bearer", "Bearer "):
        answer = client.get("/v1/rules", headers={"Authorization": value})
        assert answer.status_code == 401, f"{value!r}: {answer.status_code}"
        assert answer.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "allowed", "refused"),
    [
        ("/v1/keys", "admin", "desk"),
        ("/v1/activation", "admin", "desk"),
        ("/v1/referrals/d0/resolve", "desk", "admin"),
        ("/v1/decisions/d0/outcome", "desk", "admin"),
        ("/v1/screenings/bulk", "desk", "admin"),
    ],
)
def test_the_key_is_checked_before_the_body_is_read(
    client: TestClient, make_key: KeyMaker, path: str, allowed: str, refused: str
) -> None:
    """A request with no key or the wrong role learns nothing about its body; the right key
    gets the body's problem, named as every endpoint names it."""
    broken, json_type = b'{"note": ', {"Content-Type": "application/json"}
    assert client.post(path, content=broken, headers=json_type).status_code == 401
    wrong = {**json_type, **make_key(refused)}
    assert client.post(path, content=broken, headers=wrong).status_code == 403
    answer = client.post(path, content=broken, headers={**json_type, **make_key(allowed)})
    assert (answer.status_code, answer.json()["field"]) == (422, "body"), answer.text
    assert "not valid JSON" in answer.json()["detail"]


# --- a NUL character in a parameter: PostgreSQL cannot hold one, no id has one ------------------

NUL = "a%00b"


def keyed_routes() -> list[tuple[str, str, str]]:
    """(method, path, a role that may call it) for every route that takes a key."""
    return [
        (method, path, sorted(roles)[0])
        for (method, path), roles in sorted(POLICY.items())
        if roles != ANYONE
    ]


PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")  # a path parameter, with its converter if any


def test_a_nul_in_any_path_or_query_parameter_is_refused_on_every_route(
    app: FastAPI, client: TestClient, make_key: KeyMaker
) -> None:
    """Walks every route: on PostgreSQL a NUL reaching a query was a 500."""
    unkeyed = {path for (_, path), roles in POLICY.items() if roles == ANYONE}
    assert not [path for _, path in app_routes(app) if path in unkeyed and "{" in path]
    headers = {role: make_key(role) for role in ROLES}
    named = 0
    for method, path, role in keyed_routes():
        filled = PARAMETER.sub("x", path)
        answer = client.request(method, f"{filled}?probe={NUL}", headers=headers[role])
        assert answer.status_code == 422, (method, path, answer.text)
        detail = "probe: a NUL character is not allowed"
        assert answer.json() == {"error": "Invalid", "detail": detail, "field": "probe"}
        for parameter in PARAMETER.finditer(path):
            name = parameter.group(1)
            url = PARAMETER.sub("x", path.replace(parameter.group(), NUL))
            answer = client.request(method, url, headers=headers[role])
            assert answer.status_code == 404, (method, url, answer.text)
            detail = f"no {name.replace('_', ' ')} holds a NUL character"
            assert answer.json() == {"error": "NotFound", "detail": detail, "field": name}
            named += 1
    assert named == 16


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", f"/v1/decisions?rule_id={NUL}", "rule_id"),
        ("GET", f"/v1/decisions?after=20260101T000000.000000Z_{NUL}", "after"),
        ("GET", f"/v1/referrals?after=20260101T000000.000000Z_{NUL}", "after"),
        ("POST", f"/v1/rescore-jobs?name={NUL}", "name"),
    ],
)
def test_a_nul_in_a_query_parameter_is_422_naming_it(
    client: TestClient, make_key: KeyMaker, method: str, url: str, field: str
) -> None:
    answer = client.request(method, url, headers=make_key("analyst"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_a_nul_is_refused_only_once_the_key_is(client: TestClient, make_key: KeyMaker) -> None:
    assert client.get(f"/v1/decisions/{NUL}").status_code == 401
    assert client.get(f"/v1/decisions/{NUL}", headers=make_key("admin")).status_code == 403


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_new_key_is_looked_up_on_a_new_connection_after_the_database_restarted(
    settings: Settings, client: TestClient, make_key: KeyMaker
) -> None:
    """The server's pooled connections were ended (PostgreSQL restarted): the first key it has
    not seen yet is still recognised, rather than the desk being told the database is gone."""
    client.get("/v1/rules", headers=make_key("analyst"))  # a connection waits in the pool
    desk = make_key("desk")
    assert terminate_connections(settings.database_url) >= 1
    answer = client.get("/v1/rules", headers=desk)
    assert answer.status_code == 200, answer.text
