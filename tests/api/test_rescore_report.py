"""The what-changed report's figures, read the same on every run."""

from __future__ import annotations

import pandas as pd

from api.rescore_report import _by_group


def test_groups_with_equal_moves_are_listed_by_name_whatever_order_the_rows_came_in() -> None:
    provinces = ["NTT", "Jawa Timur", "NTB", "NTT", "Jawa Timur", "NTB", "Lampung", None]
    orders = [provinces, provinces[::-1], provinces[3:] + provinces[:3]]
    listed = []
    for order in orders:
        moved = pd.DataFrame({"province": order})
        listed.append(_by_group(moved, moved, "province"))  # every move a move up
    assert listed[0] == listed[1] == listed[2]
    assert [row["province"] for row in listed[0]] == [
        "Jawa Timur",
        "NTB",
        "NTT",
        "(not recorded)",
        "Lampung",
    ]
    assert listed[0][0] == {"province": "Jawa Timur", "moved": 2, "moved_up": 2, "moved_down": 0}
