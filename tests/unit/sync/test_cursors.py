"""Cursors of every kind the flows need: how each moves on, orders, and travels by XCom."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_b1.sync import KeysetCursor, ReplayIdCursor, StampCursor, TokenCursor, choose_start
from airflow_provider_b1.sync.cursors import cursor_from_xcom


def test_a_stamp_cursor_drops_what_it_has_seen_and_keeps_what_is_later():
    cursor = StampCursor(("2024-05-01", "13:14:45"), seen_keys=(7, 3))
    assert not cursor.is_new(("2024-05-01", "13:14:44"), 99)
    assert not cursor.is_new(("2024-05-01", "13:14:45"), 7)
    assert cursor.is_new(("2024-05-01", "13:14:45"), 8)
    assert cursor.is_new(("2024-05-02", "00:00:00"), 7)


def test_a_stamp_cursor_advances_to_later_stamps_and_collects_keys_at_the_same_stamp():
    start = StampCursor(("2024-05-01", "10:00:00"), seen_keys=("a",))
    assert start.advance(StampCursor(("2024-05-01", "09:00:00"), ("z",))) is start
    assert start.advance(StampCursor(("2024-05-01", "10:00:00"), ("b",))).seen_keys == ("a", "b")
    later = StampCursor(("2024-05-01", "11:00:00"), ("c",))
    assert start.advance(later) == later
    day_only = StampCursor(("2024-05-01",), (1, 2))
    assert day_only.advance(StampCursor(("2024-05-02",), (5,))).stamp == ("2024-05-02",)


def test_a_stamp_cursor_orders_by_stamp_then_by_the_keys_it_has_seen():
    a = StampCursor(("2024-05-01", "10:00:00"), ("k1",))
    assert a.compare(StampCursor(("2024-05-01", "10:00:01"))) == -1
    assert a.compare(StampCursor(("2024-04-30", "23:59:59"))) == 1
    assert a.compare(StampCursor(("2024-05-01", "10:00:00"), ("k1",))) == 0
    assert a.compare(StampCursor(("2024-05-01", "10:00:00"), ("k1", "k2"))) == -1
    assert a.compare(StampCursor(("2024-05-01", "10:00:00"), ("k2",))) is None


def test_a_keyset_cursor_reads_strictly_after_its_position():
    cursor = KeysetCursor(("2024-05-01T10:00:00.000Z", "001A"))
    assert not cursor.is_new(("2024-05-01T10:00:00.000Z", "001A"))
    assert cursor.is_new(("2024-05-01T10:00:00.000Z", "001B"))
    assert cursor.advance(KeysetCursor(("2024-05-01T09:00:00.000Z", "999"))) is cursor
    assert cursor.compare(KeysetCursor(("2024-05-02T00:00:00.000Z", "0"))) == -1


def test_opaque_tokens_move_to_the_latest_page_and_cannot_be_ordered():
    first, second = TokenCursor("abc"), TokenCursor("def")
    assert first.advance(second) == second
    assert first.compare(TokenCursor("abc")) == 0
    assert first.compare(second) is None
    replay = ReplayIdCursor("AAAAAAAABd8=")
    assert replay.advance(ReplayIdCursor("AAAAAAAABeA=")).token == "AAAAAAAABeA="


@pytest.mark.parametrize(
    "cursor",
    [
        StampCursor(("2024-05-01", "13:14:45"), (3, "x")),
        StampCursor(("2024-05-01",)),
        KeysetCursor(("2024-05-01T10:00:00.000Z", "001A")),
        TokenCursor("eyJ0b2tlbiI6IDF9"),
        ReplayIdCursor("AAAAAAAABd8="),
    ],
)
def test_every_cursor_round_trips_through_xcom_primitives(cursor):
    import json

    data = json.loads(json.dumps(cursor.to_xcom()))
    assert data["kind"] == cursor.kind
    assert cursor_from_xcom(type(cursor), data) == cursor
    assert "{" not in str(cursor)  # a log line names a position, not a dict


def test_a_cursor_of_another_kind_is_refused_and_none_is_no_cursor():
    with pytest.raises(ValueError, match="not a replay_id cursor"):
        ReplayIdCursor.from_xcom(TokenCursor("abc").to_xcom())
    with pytest.raises(ValueError, match="not a stamp cursor"):
        StampCursor.from_xcom({"token": "x"})
    assert cursor_from_xcom(StampCursor, None) is None
    assert cursor_from_xcom(None, {"stamp": ["2024-05-01"]}) is None


C = StampCursor(("2024-05-01", "10:00:00"))
EARLIER = StampCursor(("2024-04-01", "00:00:00"))
LATER = StampCursor(("2024-06-01", "00:00:00"))


@pytest.mark.parametrize(
    ("cursor", "mark", "resume", "start", "level", "says"),
    [
        (None, None, False, None, logging.INFO, "first run"),
        (C, C, False, C, logging.INFO, "continuing from cursor"),
        # a target that holds data but no checkpoint yet (loaded before it kept any)
        (C, None, False, C, logging.INFO, "keeps no checkpoint"),
        (C, EARLIER, False, EARLIER, logging.WARNING, "behind"),
        # a checkpoint ahead of the cursor never skips the run's window: re-runs read it again
        (C, LATER, False, C, logging.INFO, "continuing from cursor"),
        (None, C, False, None, logging.INFO, "first run"),
        (TokenCursor("a"), TokenCursor("b"), False, TokenCursor("b"), logging.WARNING, "cannot be ordered"),
        # an earlier try of this very run committed pages and never finished: resume after them
        (C, LATER, True, LATER, logging.INFO, "resuming after"),
        (None, C, True, C, logging.INFO, "resuming after"),
    ],
)
def test_the_start_is_the_cursor_unless_the_target_holds_less(cursor, mark, resume, start, level, says):
    chosen, reason, chosen_level = choose_start(cursor, mark, stream="Invoices", resume=resume)
    assert chosen == start
    assert chosen_level == level
    assert says in reason


def test_a_target_that_holds_nothing_is_read_from_the_beginning_whatever_the_cursor():
    chosen, reason, level = choose_start(C, None, stream="Invoices", target_empty=True)
    assert (chosen, level) == (None, logging.WARNING)
    assert "the target holds nothing of Invoices" in reason
