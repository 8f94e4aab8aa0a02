"""Fetch the next item of a slow iterator in a background thread while the caller works on this one.

Reading an API page by page is a chain of waits: the server answers, the caller decodes and
loads, the server answers again. :func:`prefetched` overlaps the two, one item ahead and never
more, so memory stays bounded by two items whatever the source's length.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_POLL = 0.2
"""Seconds between the fetcher's checks that the caller has not gone away."""


def prefetched(items: Iterator[T], *, name: str = "b1-prefetch") -> Iterator[T]:
    """Yield ``items`` as they are, fetching item N+1 in a background thread while the caller has item N.

    The fetcher only starts on the next item once the caller has taken the previous one, so at
    most one item waits besides the one in the caller's hands. An exception of the fetcher is
    raised in the caller at the point of the item it replaces. When the caller stops early
    (``close()``, ``break``, an exception), the fetcher stops too and ``items`` is closed.

    :param items: the source; it is consumed in the background thread only, so it need not be
        thread-safe, but what it uses (an HTTP session, a credential) is shared with the caller.
    :param name: the thread's name, for thread dumps and logs.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    may_fetch = threading.Semaphore(1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while True:
                while not may_fetch.acquire(timeout=_POLL):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(items)
                except StopIteration:
                    handoff.put(("end", None))
                    return
                handoff.put(("item", item))
        except BaseException as exc:
            handoff.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    worker = threading.Thread(target=fetch, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            may_fetch.release()
            # Hand the interpreter lock to the fetcher so the next request leaves now; work on
            # this item (decoding a wide page) holds the lock for tens of milliseconds, during
            # which the fetcher could not even send it.
            time.sleep(0)
            yield value
    finally:
        stop.set()
        # Unblock a fetcher waiting to hand over an item the caller no longer wants.
        with contextlib.suppress(queue.Empty):
            handoff.get_nowait()
        worker.join(timeout=1.0)
