"""An idle pause between two timed runs, for the benches that time work after one: imports
nothing of the project, so a bench of the machine alone can use it without loading the app."""

from __future__ import annotations

import time


def pause_for(seconds: float, spin: bool) -> None:
    """Wait `seconds`: asleep, or with `spin` busy on this core in a loop that reads almost
    nothing from memory."""
    if not seconds:
        return
    if not spin:
        time.sleep(seconds)
        return
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass
