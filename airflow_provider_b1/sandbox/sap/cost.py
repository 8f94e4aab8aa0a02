"""What a write costs the imitated server, and how its sessions and nodes queue (off by default).

A real Service Layer takes about a second to post a document of 20 lines when idle, far longer
under load; a node works through one session's requests one at a time (the session is pinned to
the node by ``ROUTEID``), while other sessions are served side by side. With a :class:`CostModel`
switched on (``POST /_sandbox/cost``):

- every request of a session waits for that session's previous request to finish;
- at most ``nodes`` requests of different sessions are served at once; the others wait their
  turn in arrival order;
- a document write (a POST, PATCH or action on a document, draft, payment or journal entry, or
  ``DraftsService_SaveDraftToDocument``) then takes ``write_seconds + per_line_seconds x lines``
  more, asleep (no CPU); a ``$batch`` takes the sum over the writes it carries. The write is
  done when that time starts: other sessions may read it while the reply is still on its way.

:class:`Gate` keeps that order for requests arriving on any server thread and event loop (the
HTTP and the HTTPS server of one sandbox share it), and counts what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CostModel:
    """Settings of the cost model.

    :param write_seconds: time one document write takes, whatever its size.
    :param per_line_seconds: time each line of the written document adds.
    :param nodes: requests of different sessions served at once.
    """

    write_seconds: float = 0.0
    per_line_seconds: float = 0.0
    nodes: int = 1

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CostModel | None:
        """The model a control call asks for (``{}`` switches it off).

        :raises ValueError: for an unknown key or a value out of range.
        """
        if not body:
            return None
        unknown = set(body) - {"write_seconds", "per_line_seconds", "nodes"}
        if unknown:
            raise ValueError(f"Unknown cost settings: {sorted(unknown)}")
        seconds = {}
        for name in ("write_seconds", "per_line_seconds"):
            value = body.get(name, 0.0)
            if type(value) not in (int, float) or not 0 <= value <= 600:
                raise ValueError(f"{name}: a number of seconds from 0 to 600")
            seconds[name] = float(value)
        nodes = body.get("nodes", 1)
        if type(nodes) is not int or not 1 <= nodes <= 1000:
            raise ValueError("nodes: an integer from 1 to 1000")
        return cls(seconds["write_seconds"], seconds["per_line_seconds"], nodes)

    def seconds(self, writes: int, lines: int) -> float:
        return writes * self.write_seconds + lines * self.per_line_seconds


@dataclass
class _Waiter:
    session: str
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Gate:
    """One request per session, at most ``model.nodes`` at once, in arrival order."""

    def __init__(self, model: CostModel) -> None:
        self.model = model
        self._mutex = threading.Lock()
        self._busy: set[str] = set()
        self._running = 0
        self._waiting: list[_Waiter] = []
        self.requests = 0
        self.writes = 0
        self.lines = 0
        self.seconds = 0.0
        self.max_concurrency = 0
        self.max_waiting = 0

    def _free(self, session: str) -> bool:
        return session not in self._busy and self._running < self.model.nodes

    def _admit(self, session: str) -> None:
        self._busy.add(session)
        self._running += 1
        self.requests += 1
        self.max_concurrency = max(self.max_concurrency, self._running)

    @contextlib.asynccontextmanager
    async def slot(self, session: str) -> AsyncIterator[None]:
        """Hold the session and a node while the request is served."""
        waiter = None
        with self._mutex:
            queued = any(w.session == session for w in self._waiting)
            if self._free(session) and not queued:
                self._admit(session)
            else:
                loop = asyncio.get_running_loop()
                waiter = _Waiter(session, loop.create_future(), loop)
                self._waiting.append(waiter)
                self.max_waiting = max(self.max_waiting, len(self._waiting))
        if waiter is not None:
            try:
                await waiter.future
            except BaseException:
                with self._mutex:
                    still_waiting = waiter in self._waiting
                    if still_waiting:
                        self._waiting.remove(waiter)
                if not still_waiting:  # admitted as it was cancelled: hand the slot on
                    self._release(session)
                raise
        try:
            yield
        finally:
            self._release(session)

    def _release(self, session: str) -> None:
        with self._mutex:
            self._busy.discard(session)
            self._running -= 1
            for waiter in list(self._waiting):
                if self._free(waiter.session):
                    self._waiting.remove(waiter)
                    self._admit(waiter.session)
                    with contextlib.suppress(RuntimeError):  # its server's loop has closed
                        waiter.loop.call_soon_threadsafe(_wake, waiter.future)

    def charge(self, writes: int, lines: int) -> float:
        """The seconds ``writes`` document writes of ``lines`` lines take (and count them)."""
        seconds = self.model.seconds(writes, lines)
        with self._mutex:
            self.writes += writes
            self.lines += lines
            self.seconds += seconds
        return seconds

    def stats(self) -> dict[str, Any]:
        with self._mutex:
            return {
                **asdict(self.model),
                "requests": self.requests,
                "writes": self.writes,
                "lines": self.lines,
                "seconds": round(self.seconds, 6),
                "max_concurrency": self.max_concurrency,
                "max_waiting": self.max_waiting,
                "running": self._running,
                "waiting": len(self._waiting),
            }


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
