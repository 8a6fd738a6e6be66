from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.history import InMemoryCaseHistory, Link, travellers_within

WEEK = timedelta(days=7)
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_a_case_screened_when_it_happens_counts_the_last_window() -> None:
    links = [(AT - timedelta(days=8), "t0"), (AT - timedelta(days=2), "t1"), (AT, "t2")]
    assert travellers_within(links, AT, WEEK) == 2


def test_a_case_synced_late_counts_the_travellers_linked_after_it() -> None:
    """A desk offline since 08:00 sends its case after the 09:00 and 10:00 travellers of the
    same escort were screened elsewhere: it is the escort's third."""
    history = InMemoryCaseHistory()
    assert history.link("escort", "t2", AT + timedelta(hours=1), WEEK) == 1
    assert history.link("escort", "t3", AT + timedelta(hours=2), WEEK) == 2
    assert history.link("escort", "t1", AT, WEEK) == 3
    assert history.link("escort", "t1", AT, WEEK) == 3  # the same traveller again


def test_travellers_more_than_a_window_apart_are_never_counted_together() -> None:
    links = [
        (AT - WEEK + timedelta(hours=1), "before"),
        (AT, "t"),
        (AT + WEEK - timedelta(hours=1), "after"),
    ]
    assert travellers_within(links, AT, WEEK) == 2
    # a link exactly a window later is in no span that holds AT
    assert travellers_within([(AT, "t"), (AT + WEEK, "later")], AT, WEEK) == 1


_hours = st.integers(min_value=-400, max_value=400)


@given(
    links=st.lists(st.tuples(_hours, st.sampled_from("abcdef")), max_size=25),
    window_hours=st.integers(min_value=1, max_value=300),
)
def test_the_count_is_the_fullest_window_that_holds_the_case(
    links: list[tuple[int, str]], window_hours: int
) -> None:
    """Against the definition, span by span: every window-long span (end - window, end] that
    holds the case, its end at the case or at any link."""
    window = timedelta(hours=window_hours)
    timed: list[Link] = [(AT + timedelta(hours=h), who) for h, who in links] + [(AT, "me")]
    ends = [AT, *(when for when, _ in timed)]
    expected = max(
        len({who for when, who in timed if end - window < when <= end})
        for end in ends
        if end - window < AT <= end
    )
    assert travellers_within(timed, AT, window) == expected
