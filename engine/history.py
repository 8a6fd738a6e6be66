"""Case history: what other desks have seen, for rules that link cases (escort_network).

The engine asks one question through a small protocol, so that the in-memory history here and
the database-backed one of the service answer it the same way.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol


class CaseHistory(Protocol):
    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        """Record that `traveller` was screened with `escort` at `at`, and return the most
        distinct travellers linked to `escort` within one window that holds `at`, this one
        included (`travellers_within`).

        Recording and counting are one step, so that two desks screening travellers of the same
        escort at the same moment both count each other.
        """
        ...


Link = tuple[datetime, str]  # when, and which traveller


def travellers_within(links: Iterable[Link], at: datetime, window: timedelta) -> int:
    """The most distinct travellers among `links` in one span (end - window, end] that holds
    `at`: the span ending at `at` (the travellers of the last `window`, as a case screened when
    it happens sees them), or one ending at a link recorded after it, less than a window later.
    A desk syncing its cases after an outage sends them after later ones were linked: its case
    counts those too, where it counted none and an escort's third traveller passed unflagged."""
    near = sorted(
        (when, who) for when, who in links if at - window < when < at + window
    )  # the spans' links, in time order
    ends = [at, *(when for when, _ in near if when > at)]
    most, inside, first, last = 0, Counter[str](), 0, 0  # inside: near[first:last]
    for end in ends:  # the spans move forward: each link enters and leaves once
        while last < len(near) and near[last][0] <= end:
            inside[near[last][1]] += 1
            last += 1
        while first < last and near[first][0] <= end - window:
            inside[near[first][1]] -= 1
            if not inside[near[first][1]]:
                del inside[near[first][1]]
            first += 1
        most = max(most, len(inside))
    return most


class InMemoryCaseHistory:
    """Case history for one process.

    Links older than the longest window asked for, counted back from the newest screening seen,
    are dropped as cases arrive, so memory stays bounded however many escorts pass through.
    """

    SWEEP_EVERY = 1_000

    def __init__(self) -> None:
        self._links: dict[str, deque[tuple[datetime, str]]] = {}
        self._horizon = timedelta(0)
        self._newest: datetime | None = None
        self._since_sweep = 0
        self._lock = threading.Lock()

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        with self._lock:
            self._horizon = max(self._horizon, window)
            self._newest = at if self._newest is None else max(self._newest, at)
            links = self._links.setdefault(escort, deque())
            links.append((at, traveller))
            travellers = travellers_within(links, at, window)
            self._since_sweep += 1
            if self._since_sweep >= self.SWEEP_EVERY:
                self._sweep()
            return travellers

    def __len__(self) -> int:
        """Links held now (for tests and memory checks)."""
        with self._lock:
            return sum(len(links) for links in self._links.values())

    def _sweep(self) -> None:
        assert self._newest is not None
        cutoff = self._newest - self._horizon
        for escort in list(self._links):
            kept = deque(link for link in self._links[escort] if link[0] > cutoff)
            if kept:
                self._links[escort] = kept
            else:
                del self._links[escort]
        self._since_sweep = 0
