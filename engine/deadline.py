"""A referral's deadline in hours, as a rule pack or LINDUNG_REFERRAL_HOURS gives it.

Apart from engine/rule_pack.py, so that the settings check a deadline without loading the rule
engine and the table libraries it needs: every command reads the settings, and most need neither.
"""

from __future__ import annotations

from typing import TypeGuard

DEADLINE_HOURS = (1 / 60, 720.0)  # from a minute to 30 days
DEADLINE_TEXT = "expected a number of hours from 1/60 (a minute) to 720 (30 days)"


def deadline_is_sound(hours: object) -> TypeGuard[float]:
    low, high = DEADLINE_HOURS
    return isinstance(hours, int | float) and not isinstance(hours, bool) and low <= hours <= high
