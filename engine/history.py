"""Case history: what other desks have seen, for rules that link cases (escort_network).

The engine asks one question, through a small protocol, so that the in-memory history here and
the database-backed one of the service answer it the same way.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta
from typing import Protocol


class CaseHistory(Protocol):
    def escort_travellers(
        self, escort: str, traveller: str, at: datetime, window: timedelta
    ) -> int:
        """Distinct travellers linked to `escort` in (at - window, at], `traveller` included."""
        ...

    def record(self, escort: str, traveller: str, at: datetime) -> None:
        """Remember that `traveller` was screened with `escort` at `at`."""
        ...


class InMemoryCaseHistory:
    """Case history for one process; keeps only links inside the longest window asked for."""

    def __init__(self) -> None:
        self._links: dict[str, deque[tuple[datetime, str]]] = defaultdict(deque)
        self._horizon = timedelta(0)
        self._lock = threading.Lock()

    def escort_travellers(
        self, escort: str, traveller: str, at: datetime, window: timedelta
    ) -> int:
        with self._lock:
            self._horizon = max(self._horizon, window)
            since = at - window
            seen = {who for when, who in self._links.get(escort, ()) if since < when <= at}
        seen.add(traveller)
        return len(seen)

    def record(self, escort: str, traveller: str, at: datetime) -> None:
        with self._lock:
            links = self._links[escort]
            links.append((at, traveller))
            newest = max(when for when, _ in links)
            while links and links[0][0] < newest - self._horizon:
                links.popleft()
