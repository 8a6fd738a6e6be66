"""Case history: what other desks have seen, for rules that link cases (escort_network).

The engine asks one question through a small protocol, so that the in-memory history here and
the database-backed one of the service answer it the same way.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Protocol


class CaseHistory(Protocol):
    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        """Record that `traveller` was screened with `escort` at `at`, and return how many
        distinct travellers are linked to `escort` in (at - window, at], this one included.

        Recording and counting are one step, so that two desks screening travellers of the same
        escort at the same moment both count each other.
        """
        ...


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
            since = at - window
            travellers = {who for when, who in links if since < when <= at}
            self._since_sweep += 1
            if self._since_sweep >= self.SWEEP_EVERY:
                self._sweep()
            return len(travellers)

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
