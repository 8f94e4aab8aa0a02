"""The one-page-ahead prefetcher: order, bounded look-ahead, errors in the caller, no thread left behind."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_provider_b1.utils.prefetch import prefetched


class _Boom(Exception):
    pass


def test_prefetch_stays_one_page_ahead_and_keeps_order():
    fetched = []

    def source():
        for i in range(5):
            fetched.append(i)
            yield [i]

    seen = []
    for page in prefetched(source()):
        time.sleep(0.05)  # the fetcher must not run ahead while the caller works
        assert len(fetched) <= page[0] + 2
        seen.append(page[0])
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_raises_the_fetchers_error_in_the_caller():
    def source():
        yield [1]
        raise _Boom("boom")

    iterator = prefetched(source())
    assert next(iterator) == [1]
    with pytest.raises(_Boom, match="boom"):
        next(iterator)


def test_prefetch_stops_its_thread_when_the_caller_stops():
    def source():
        for i in range(100):
            yield [i]

    before = threading.active_count()
    iterator = prefetched(source())
    next(iterator)
    iterator.close()
    time.sleep(0.5)
    assert threading.active_count() <= before
