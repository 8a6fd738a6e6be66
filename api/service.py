"""The screening service behind the HTTP API: the active components and the database.

One `Service` per server process. The screenings waiting on its event loop are screened and
stored in one transaction (escort links, decisions, audit entries and referrals are stored
together or not at all). It follows the admins' activations and registry uploads made through
any process.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api import components, in_use, library
from api.group_commit import GroupCommit
from api.jobs import JobRunner
from api.problems import Conflict
from api.settings import Settings
from api.storage import activation, audit, database, decisions
from api.storage.case_history import DatabaseCaseHistory, PreviewHistory, escort_locks
from api.storage.keys import Caller
from engine.case import Case
from engine.decision import Decision
from engine.errors import LindungError
from engine.history import CaseHistory
from engine.pseudonym import Pseudonymiser, pseudonymised_record
from engine.rule_pack import load_rule_pack
from models import artifact


def now() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.pseudonymiser = Pseudonymiser(settings.pseudonym_key.get_secret_value())
        self._lock = threading.Lock()
        self._generation: activation.Generation | None = None
        self._parts: components.Components | None = None
        self.registry_summary: dict[str, Any] = {}
        self.group = GroupCommit(self._store_at_once)
        self.jobs = JobRunner(settings, engine)
        self._checkpoints: database.WalCheckpoints | None = None

    def start(self) -> None:
        """Bring the schema up to date and load the active components (training the reference
        model on first use)."""
        database.upgrade(self.engine)
        self.jobs.open()  # what a server killed mid-job left behind, and heartbeats
        with database.transaction(self.engine) as connection:
            parts = self.active(connection)
            activation.pin(connection, parts.pack, activation.SERVER, now())
        if self.engine.dialect.name == "sqlite":
            self._checkpoints = database.WalCheckpoints(self.engine)
            self._checkpoints.start()

    def stop(self) -> None:
        self.jobs.stop()
        if self._checkpoints is not None:
            self._checkpoints.stop()
            self._checkpoints = None
        self.engine.dispose()

    @property
    def parts(self) -> components.Components:
        if self._parts is None:
            raise RuntimeError("the service has not started")
        return self._parts

    def current(self) -> components.Components:
        """The active components, as every process sees them now."""
        with database.reading(self.engine) as connection:
            return self.active(connection)

    def active(
        self, connection: Connection, seen: activation.Generation | None = None
    ) -> components.Components:
        """The components of the newest activation and registry (`seen`, if the transaction
        has read it), rebuilt when either changed. Those of a change committed after the
        transaction read `seen` (put in use by the change itself) are kept: on PostgreSQL, a
        group that waited for the audit head an admin's change held reads what was committed
        before it, and rebuilding that, then the change again, would hold up the loop twice."""
        if seen is None:
            seen = activation.generation(connection)
        if not self._older_than(seen):
            return self.parts
        with self._lock:  # a change under way may put newer ones in use meanwhile: asked again
            if self._older_than(seen):
                self._put_in_use(seen, in_use.build(self.settings, in_use.choice(connection)))
        return self.parts

    def _older_than(self, seen: activation.Generation) -> bool:
        """Whether the components in use are older than `seen` (or there are none yet)."""
        return self._parts is None or not (
            seen == self._generation or seen.before(self._generation)
        )

    def _put_in_use(self, seen: activation.Generation, used: in_use.InUse) -> None:
        self._parts, self._generation = used.parts, seen
        self.registry_summary = used.registry_summary
        # The components are hundreds of thousands of long-lived objects: left to the
        # collector, each full collection walks them all (100-300 ms, a desk waiting).
        gc.collect()
        gc.freeze()

    @contextmanager
    def changing(self) -> Iterator[Connection]:
        """A transaction that changes what is in use (an activation, a registry upload). The
        components it makes are built inside it, by the caller's thread (not the event loop's),
        and put in use once it has committed: put in use before, a group on the loop could
        read the generation committed before and build that again. The lock on what is in use
        is taken before the commit and kept until then: a group on the loop that reads the
        change as soon as it is committed waits for its components, rather than building them
        again on the loop while this thread has not yet run (it had not, under load, in CI)."""
        with ExitStack() as held:
            with database.transaction(self.engine) as connection:
                yield connection
                seen = activation.generation(connection)
                used = in_use.build(self.settings, in_use.choice(connection))
                held.enter_context(self._lock)
            if self._older_than(seen):
                self._put_in_use(seen, used)

    def activate(self, rule_pack: str, model: str, caller: Caller) -> dict[str, Any]:
        """Check that the pack loads, its examples pass and the model fits it; then record it."""
        folder = library.pack_folder(self.settings, rule_pack)  # 404 if it is not there
        try:
            pack = load_rule_pack(folder)
        except LindungError as error:
            raise Conflict(f"rule pack {rule_pack} does not load: {error}", "rule_pack") from None
        try:
            in_use.activated_model(self.settings, pack, model)
        except artifact.ModelError as error:  # an outdated one is a Conflict of its own
            raise Conflict(f"model {model} does not load: {error}", "model") from None
        at = now()
        with self.changing() as connection:
            activation.pin(connection, pack, caller, at)
            activation.activate(connection, pack.label, model, caller, at)
            current = activation.current(connection) or {}
        return current

    async def screen_together(self, cases: Sequence[Case], caller: Caller) -> list[Decision]:
        """The decisions for `cases` (in their order), stored in one transaction with the other
        screenings waiting on the event loop (`GroupCommit`)."""
        return await self.group.screen(cases, caller)

    def screen(self, cases: Sequence[Case], caller: Caller) -> list[Decision]:
        """Screen and store `cases` in a transaction of their own (bulk requests, tests). Their
        escorts' travellers are counted beforehand, outside the write lock (`PreviewHistory`):
        the transaction counts again only the escorts someone linked meanwhile."""
        try:
            [made] = self._store_group([(cases, caller)], preview=True)
        except SentWithOtherAnswers as error:  # named within the bulk
            raise Conflict(error.detail, f"cases.{error.number}.case_id") from None
        return made

    def _store_at_once(
        self, asked: Sequence[tuple[Sequence[Case], Caller]]
    ) -> list[list[Decision]]:
        """`_store_group` for the event loop: Busy, nothing stored, where another process holds
        the write lock (`GroupCommit` waits for it in a thread)."""
        return self._store_group(asked, at_once=True)

    def _store_group(
        self,
        asked: Sequence[tuple[Sequence[Case], Caller]],
        preview: bool = False,
        at_once: bool = False,
    ) -> list[list[Decision]]:
        """Screen and store the cases each caller asked about in one transaction; their
        decisions, in order.

        A case its desk sent before (the same case_id and screened_at: a retry after a lost
        answer) is not screened or stored again: its stored decision is the answer (`replayed`).
        Sent with other answers, it is refused (`SentWithOtherAnswers`). The database's unique
        index finds them: a group's transaction fails, those are read, and the rest is stored
        (a group without any costs nothing more). With `preview` (a bulk, which is not waited for
        as a desk's screening is) they are looked up first, so that a bulk sent again is not
        screened whole before its transaction finds them. A case sent twice within the group (a
        double submit) is stored once, the second answered with the first's decision.
        """
        cases = [(case, caller) for group, caller in asked for case in group]
        copies = _copies(cases)
        replayed: dict[int, Decision] = {}
        if preview:  # a bulk: a desk syncing again sends many cases stored before, looked up first
            replayed = self._sent_before(cases, [i for i in range(len(cases)) if i not in copies])
        while True:
            rest = [i for i in range(len(cases)) if i not in replayed and i not in copies]
            try:
                rows = [cases[i] for i in rest]
                stored = self._store_cases(rows, preview, at_once) if rest else []
                break
            except IntegrityError:
                before = self._sent_before(cases, rest)
                if not before:
                    raise
                replayed.update(before)  # then the rest again: each round has fewer
        made = dict(zip(rest, stored, strict=True)) | replayed
        for i, first in copies.items():
            made[i] = replace(made[first], replayed=True)
        answers, done = [], iter(made[i] for i in range(len(cases)))
        for group, _caller in asked:
            answers.append([next(done) for _case in group])
        return answers

    def _sent_before(
        self, cases: Sequence[tuple[Case, Caller]], rows: Sequence[int]
    ) -> dict[int, Decision]:
        """The stored decisions of those of `rows` their desk sent before, by row."""
        sent = {
            i: decisions.sent_once(cases[i][0].case_id, cases[i][0].screened_at, cases[i][1])
            for i in rows
        }

        def look_up() -> dict[decisions.SentOnce, dict[str, Any]]:
            with database.reading(self.engine) as connection:
                return decisions.stored_before(connection, list(sent.values()))

        stored = database.once_more_if_lost(look_up)  # a bulk's first look at the database
        found: dict[int, Decision] = {}
        for i, key in sent.items():
            if (body := stored.get(key)) is None:
                continue
            case = cases[i][0]
            # the time is the same instant (the key): its offset may be written otherwise
            record = orjson.loads(audit.canonical(pseudonymised_record(case, self.pseudonymiser)))
            if _answers(record) != _answers(body["input"]):
                raise SentWithOtherAnswers(
                    f"case {case.case_id} screened at {case.screened_at.isoformat()} was sent"
                    f" before with other answers (decision {body['decision_id']}); a case"
                    " screened again needs the time it was screened again",
                    i,
                )
            found[i] = Decision.from_dict(body, replayed=True)
        return found

    def _store_cases(
        self, cases: Sequence[tuple[Case, Caller]], preview: bool, at_once: bool
    ) -> list[Decision]:
        """Screen and store `cases` in one transaction; their decisions, in order.

        Only what must be is done while holding the write lock (SQLite's, or on PostgreSQL the
        audit head's and the escorts'): cases that name no escort are screened before the
        transaction with the components last seen, and their audit bodies written (again in
        the rare group that finds newer components). Cases with an escort are screened inside
        it, in order of screening time, so that their counts include every desk's and every
        process's links and are stored with them; with `preview`, they are screened before it
        too, and inside only those whose escort someone linked meanwhile.

        On PostgreSQL a group without escorts makes three round trips: BEGIN (with, on the event
        loop, the limit on its lock waits), one statement that reads the components' generation
        and locks the audit head, and its writes with the COMMIT (five before).
        """
        at = now()
        parts = self.parts  # as last seen: checked against the database in the transaction
        made: list[decisions.Screened | None] = [None] * len(cases)
        escorts = {
            i: self.pseudonymiser.token("escort_ref", str(case.links.escort_ref))
            for i, (case, _) in enumerate(cases)
            if case.links.escort_ref is not None
        }
        alone = [i for i in range(len(cases)) if i not in escorts]
        self._screen(parts, cases, alone, made, NO_HISTORY)
        previewed, previewed_with = None, parts
        if preview and escorts:

            def look_ahead() -> PreviewHistory:
                with database.reading(self.engine) as connection:
                    history = PreviewHistory(connection, escorts.values())
                    self._screen(parts, cases, list(escorts), made, history)
                    return history

            previewed = database.once_more_if_lost(look_ahead)

        locks = escort_locks(escorts.values())  # which a wait for them (Busy) takes with the head

        def commit() -> list[decisions.Screened]:
            nonlocal parts
            with database.transaction(self.engine, at_once=at_once, advisory=locks) as connection:
                head = None
                if escorts:  # the audit head is locked later, once the escorts' cases are in
                    newest = self.active(connection)
                else:
                    seen, head = activation.generation_and_head(connection)
                    newest = self.active(connection, seen)
                if newest is not parts:  # an admin activated or uploaded something meanwhile
                    parts = newest
                    self._screen(parts, cases, alone, made, NO_HISTORY)
                if escorts:
                    history = DatabaseCaseHistory(connection)
                    history.lock(escorts.values())
                    again = list(escorts)
                    if previewed is not None and parts is previewed_with:
                        changed = previewed.changed(connection)
                        history.record(
                            link for link in previewed.links if link["escort"] not in changed
                        )
                        again = [i for i in again if escorts[i] in changed]
                    self._screen(parts, cases, again, made, history)
                screened = [item for item in made if item is not None]
                decisions.store(connection, screened, at, head=head, commit=True)  # the last
            return screened

        return [item.decision for item in database.once_more_if_lost(commit)]

    def _screen(
        self,
        parts: components.Components,
        cases: Sequence[tuple[Case, Caller]],
        rows: Sequence[int],
        made: list[decisions.Screened | None],
        history: CaseHistory,
    ) -> None:
        if not rows:
            return
        # a case_id is its desk's own numbering: a desk is its keys' holder (kept on rotation)
        sources = [cases[i][1].holder for i in rows]
        found = parts.screener.screen_many([cases[i][0] for i in rows], history, sources)
        for i, decision in zip(rows, found, strict=True):
            case, caller = cases[i]
            record = pseudonymised_record(case, self.pseudonymiser)
            made[i] = decisions.screened(decision, record, caller)


def _copies(cases: Sequence[tuple[Case, Caller]]) -> dict[int, int]:
    """The cases sent again within a group of requests (a double submit: one case, its desk,
    case_id and screening time), each with the place of its first; a copy with other answers
    is refused (`SentWithOtherAnswers`)."""
    first: dict[decisions.SentOnce, int] = {}
    copies: dict[int, int] = {}
    for i, (case, caller) in enumerate(cases):
        sent = decisions.sent_once(case.case_id, case.screened_at, caller)
        if (j := first.setdefault(sent, i)) == i:
            continue
        if case != cases[j][0]:  # the time is the same instant, whatever its offset
            raise SentWithOtherAnswers(
                f"case {case.case_id} screened at {case.screened_at.isoformat()} was sent"
                " twice at once with other answers",
                i,
            )
        copies[i] = j
    return copies


def _answers(record: dict[str, Any]) -> dict[str, Any]:
    return {path: value for path, value in record.items() if path != "screened_at"}


class SentWithOtherAnswers(Conflict):
    """A case its desk sent before (the same case_id and screened_at) with other answers."""

    def __init__(self, detail: str, number: int) -> None:
        super().__init__(detail, "case_id")
        self.number = number  # the case's place among those asked together


class _NoHistory:
    """The history of cases that name no escort: enrichment never asks it anything."""

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        raise RuntimeError("a case with an escort must be screened inside the transaction")


NO_HISTORY = _NoHistory()
