"""``Retry-After`` read once for every hook: seconds or an HTTP-date, never negative."""

from __future__ import annotations

import email.utils
import time

import pytest

from airflow_provider_b1.utils.retry import parse_retry_after


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0.5", 0.5), (" 3 ", 3.0), ("0", 0.0)])
def test_seconds_are_read_as_given(value, seconds):
    assert parse_retry_after(value) == seconds


def test_an_http_date_is_the_time_left_until_it():
    in_thirty = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after(in_thirty) <= 30


@pytest.mark.parametrize("value", ["-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_negative_number_or_a_past_date_means_now_never_a_negative_wait(value):
    assert parse_retry_after(value) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "inf", "nan"])
def test_missing_or_unreadable_values_give_none(value):
    assert parse_retry_after(value) is None
