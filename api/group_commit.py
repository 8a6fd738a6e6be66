"""Desks' screenings gathered into one transaction whenever the server is free (group commit).

Requests arrive faster than one transaction each can commit. The screenings that reached the
event loop together are screened as one frame and stored in one transaction, on the event
loop's own thread: while a group is being stored, the next requests wait in their sockets and
make the next group. Keeping this work on one thread matters as much as grouping it: a second
Python thread doing it would wait for the interpreter lock at every database call (up to 5 ms a
time), which is what made a desk's screening take 50 ms.

A request is answered only after its decisions are committed, so nothing is reported that is
not stored. When a group fails, its requests are tried again one at a time, so that a request
that cannot be stored fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from api.metrics import GROUP_CASES, GROUP_SECONDS
from api.storage.keys import Caller
from engine.case import Case
from engine.decision import Decision

log = logging.getLogger("lindung.api")

MOST_CASES = 64  # in one group: a desk waits for its whole group


@dataclass(frozen=True)
class Request:
    cases: Sequence[Case]
    caller: Caller
    answer: asyncio.Future[list[Decision]]


# Screens and stores the cases of several callers in one transaction; their decisions, in order.
StoreGroup = Callable[[Sequence[tuple[Sequence[Case], Caller]]], list[list[Decision]]]


class GroupCommit:
    def __init__(self, store: StoreGroup, most_cases: int = MOST_CASES) -> None:
        self._store = store
        self._most_cases = most_cases
        self._waiting: list[Request] = []
        self._flush_due = False

    async def screen(self, cases: Sequence[Case], caller: Caller) -> list[Decision]:
        """The decisions for `cases`, once they are stored with the other requests waiting."""
        loop = asyncio.get_running_loop()
        request = Request(cases, caller, loop.create_future())
        self._waiting.append(request)
        if not self._flush_due:
            # after the requests already under way on the loop, so that they join this group
            self._flush_due = True
            loop.call_soon(self._flush)
        return await request.answer

    def _flush(self) -> None:
        self._flush_due = False
        waiting, self._waiting = self._waiting, []
        for group in self._groups(waiting):
            self._commit(group)

    def _groups(self, waiting: list[Request]) -> list[list[Request]]:
        groups: list[list[Request]] = []
        cases = 0  # in the last group
        for request in waiting:
            if request.answer.done():  # its client went away: nothing to store
                continue
            if groups and cases + len(request.cases) <= self._most_cases:
                groups[-1].append(request)
                cases += len(request.cases)
            else:
                groups.append([request])
                cases = len(request.cases)
        return groups

    def _commit(self, group: list[Request]) -> None:
        started = time.perf_counter()
        try:
            answers = self._store([(request.cases, request.caller) for request in group])
        except Exception as error:
            if len(group) == 1:
                group[0].answer.set_exception(error)
                return
            log.warning(
                "a group of %d requests failed (%s); storing them one by one",
                len(group),
                type(error).__name__,
            )
            for request in group:
                self._commit([request])
            return
        GROUP_SECONDS.observe(time.perf_counter() - started)
        GROUP_CASES.observe(sum(len(request.cases) for request in group))
        for request, decisions in zip(group, answers, strict=True):
            if not request.answer.done():
                request.answer.set_result(decisions)
