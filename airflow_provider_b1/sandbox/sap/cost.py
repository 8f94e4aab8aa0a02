"""What each request costs the imitated server, and how its sessions and nodes queue (off by default).

A real Service Layer spends seconds on a login, reads at a pace set by how many records and how
many of their properties it sends, takes about a second to post a document of 20 lines when idle
(far longer under load), and works through one session's requests one at a time on the node the
session is pinned to by ``ROUTEID``, while other sessions are served side by side (PROTOCOLS.md,
"Throughput is set by the server"). With a :class:`CostModel` switched on (``POST
/_sandbox/cost``, ``SapSandboxConfig.cost``, or ``b1-sandbox --cost-model``):

- every request of a session waits for that session's previous request to finish;
- at most ``nodes`` requests are served at once, whatever their session; the others wait their
  turn in arrival order. A login has no session yet: it takes a node of its own (it never waits
  for another login of the same user);
- each request then sleeps (no CPU) what it costs, all times multiplied by ``scale``:

  ============================ ===================================================================
  ``POST Login``               ``login_seconds`` (accepted or refused alike)
  ``GET /ping/``               ``ping_seconds``; answered by the load balancer, so it takes no
                               node and waits for nothing
  ``GET <Set>/$count``         ``count_seconds``
  a read (a page of a set, or  ``read_seconds + sum over the records sent of (per_record_seconds
  one entity)                  x width + per_line_read_seconds x lines)``
  a document write             ``write_seconds + per_line_seconds x lines``
  anything else the company    ``read_seconds`` (``Logout``, ``$metadata``, a refused request, a
  serves                       write of master data)
  ============================ ===================================================================

  ``width`` is the share of the entity's properties a record is sent with: 1 for a whole
  record, ``k / n`` for a ``$select`` of ``k`` of its ``n`` properties (an invoice has 273, so
  a ``$select`` of 5 costs 1/55 of a whole record). ``lines`` are the child rows sent with
  it: ``DocumentLines``, ``PaymentInvoices`` or ``JournalEntryLines``, when they are sent (a
  ``$select`` without them sends none). The fixed ``read_seconds`` per page makes large pages
  cheaper per record, as on a real server.

  A document write is a POST, PATCH or action on a document, draft, payment or journal entry,
  or ``DraftsService_SaveDraftToDocument``; its ``lines`` are those the payload carries (or the
  draft holds). A ``$batch`` costs the sum of what its parts cost. A write is done when its time
  starts: other sessions may read it while the reply is still on its way.

:class:`Gate` keeps that order for requests arriving on any server thread and event loop (the
HTTP and the HTTPS server of one sandbox share it), and counts what it did: requests admitted,
each kind of work, seconds slept (in all and per kind), the most requests served at once and
waiting at once, and how long requests queued.

:meth:`CostModel.service_layer` holds the defaults a benchmark starts from (see its docstring
for where each number comes from); a model built from a control call or by keyword starts from
zero instead, so a setting left out costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

_SECONDS = (
    "write_seconds",
    "per_line_seconds",
    "login_seconds",
    "read_seconds",
    "per_record_seconds",
    "per_line_read_seconds",
    "count_seconds",
    "ping_seconds",
)
KINDS = ("login", "read", "count", "ping", "write", "other")
"""The kinds of work the gate counts seconds for."""


@dataclass(frozen=True)
class CostModel:
    """Settings of the cost model (seconds, before ``scale``; see the module for the formulas).

    :param write_seconds: time one document write takes, whatever its size.
    :param per_line_seconds: time each line of the written document adds.
    :param nodes: requests served at once (of different sessions).
    :param login_seconds: time a login takes.
    :param read_seconds: time a read takes, however few records it sends (also what any other
        request served by the company takes).
    :param per_record_seconds: time one whole record sent adds (a ``$select`` pays its share).
    :param per_line_read_seconds: time each child row sent (document line...) adds.
    :param count_seconds: time a ``$count`` takes.
    :param ping_seconds: time ``/ping/`` takes.
    :param scale: multiplies every time above (0.01 runs the same shape of load 100 times faster).
    """

    write_seconds: float = 0.0
    per_line_seconds: float = 0.0
    nodes: int = 1
    login_seconds: float = 0.0
    read_seconds: float = 0.0
    per_record_seconds: float = 0.0
    per_line_read_seconds: float = 0.0
    count_seconds: float = 0.0
    ping_seconds: float = 0.0
    scale: float = 1.0

    @classmethod
    def service_layer(cls, **overrides: Any) -> CostModel:
        """The defaults, from PROTOCOLS.md ("Throughput is set by the server"), with overrides.

        - ``login_seconds=2``: "Login costs seconds" (3-8 s were seen; 2 s is an idle server).
        - ``write_seconds=0.5``, ``per_line_seconds=0.025``: a 20-line document takes about 1 s
          to post on an idle server.
        - ``nodes=4``: SAP's own test peaked at 6.7 documents/s on 10-15 cores, i.e. about seven
          one-second documents at once on large hardware, gaining little past that; a typical
          customer's server is smaller, so half of it. Four also lets a benchmark show both
          sides of the limit (1, 2, 4 sessions scale; 8 do not) instead of flattering it.
        - ``read_seconds=0.1``, ``per_record_seconds=0.01``, ``per_line_read_seconds=0.002``: no
          figure is published; chosen so that a default page of 20 whole invoices of 3 lines
          takes about 0.4 s and a page of 500 about 8 s, as slow as wide records (36 KB each)
          make a real server, while a ``$select`` of a handful of fields is far cheaper.
        - ``count_seconds=0.05``, ``ping_seconds=0.005``: cheap, but not free.

        :raises ValueError: for an unknown setting or a value out of range.
        """
        defaults = {
            "login_seconds": 2.0,
            "write_seconds": 0.5,
            "per_line_seconds": 0.025,
            "nodes": 4,
            "read_seconds": 0.1,
            "per_record_seconds": 0.01,
            "per_line_read_seconds": 0.002,
            "count_seconds": 0.05,
            "ping_seconds": 0.005,
            "scale": 1.0,
        }
        model = cls.parse({**defaults, **overrides})
        assert model is not None
        return model

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CostModel | None:
        """The model a control call asks for: ``{}`` switches it off; settings left out are
        zero (``nodes`` 1, ``scale`` 1), unless ``"defaults": true`` starts from
        :meth:`service_layer`.

        :raises ValueError: for an unknown key or a value out of range.
        """
        if not body:
            return None
        body = dict(body)
        start = body.pop("defaults", False)
        if type(start) is not bool:
            raise ValueError("defaults: true or false")
        if start:
            return cls.service_layer(**body)
        unknown = set(body) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown cost settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name in _SECONDS:
            value = body.get(name, 0.0)
            if type(value) not in (int, float) or not 0 <= value <= 600:
                raise ValueError(f"{name}: a number of seconds from 0 to 600")
            values[name] = float(value)
        nodes = body.get("nodes", 1)
        if type(nodes) is not int or not 1 <= nodes <= 1000:
            raise ValueError("nodes: an integer from 1 to 1000")
        scale = body.get("scale", 1.0)
        if type(scale) not in (int, float) or not 0 <= scale <= 1000:
            raise ValueError("scale: a number from 0 to 1000")
        return cls(nodes=nodes, scale=float(scale), **values)

    def seconds(self, writes: int, lines: int) -> float:
        """The time ``writes`` document writes of ``lines`` lines in all take."""
        return (writes * self.write_seconds + lines * self.per_line_seconds) * self.scale

    def breakdown(self, work: Work) -> dict[str, float]:
        """The seconds ``work`` takes, per kind (see :data:`KINDS`)."""
        read = (
            work.reads * self.read_seconds
            + work.width * self.per_record_seconds
            + work.read_lines * self.per_line_read_seconds
        )
        return {
            "login": work.logins * self.login_seconds * self.scale,
            "read": read * self.scale,
            "count": work.counts * self.count_seconds * self.scale,
            "ping": work.pings * self.ping_seconds * self.scale,
            "write": self.seconds(work.writes, work.lines),
            "other": work.others * self.read_seconds * self.scale,
        }

    def cost(self, work: Work) -> float:
        """The seconds ``work`` takes."""
        return sum(self.breakdown(work).values())


@dataclass
class Work:
    """What one request did, in the cost model's measures.

    :param logins: logins.
    :param reads: reads (a page of a set, or one entity).
    :param records: records those reads sent.
    :param width: the sum over those records of the share of properties each was sent with.
    :param read_lines: child rows sent with them.
    :param counts: ``$count`` requests.
    :param pings: ``/ping/`` requests.
    :param writes: document writes.
    :param lines: lines of the written documents.
    :param others: anything else the company served.
    """

    logins: int = 0
    reads: int = 0
    records: int = 0
    width: float = 0.0
    read_lines: int = 0
    counts: int = 0
    pings: int = 0
    writes: int = 0
    lines: int = 0
    others: int = 0

    def read(self, records: int, width: float, lines: int) -> None:
        """Note a read that sent ``records`` records, ``width`` wide in all, with ``lines`` rows."""
        self.reads += 1
        self.records += records
        self.width += width
        self.read_lines += lines

    def empty(self) -> bool:
        return not any(dataclasses.astuple(self))


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
        self.work = Work()
        self.seconds = 0.0
        self.seconds_by_kind = dict.fromkeys(KINDS, 0.0)
        self.max_concurrency = 0
        self.max_waiting = 0
        self.queued = 0
        self.queue_seconds = 0.0
        self.max_queue_seconds = 0.0

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
            arrived = time.monotonic()
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
            waited = time.monotonic() - arrived
            with self._mutex:
                self.queued += 1
                self.queue_seconds += waited
                self.max_queue_seconds = max(self.max_queue_seconds, waited)
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

    def charge(self, writes: int = 0, lines: int = 0, *, work: Work | None = None) -> float:
        """The seconds a request takes (and count its work): ``work``, or ``writes`` document
        writes of ``lines`` lines. A request that did nothing the model measures counts as
        one "other" request."""
        if work is None:
            work = Work(writes=writes, lines=lines)
        if work.empty():
            work = Work(others=1)
        parts = self.model.breakdown(work)
        seconds = sum(parts.values())
        with self._mutex:
            for f in dataclasses.fields(Work):
                setattr(self.work, f.name, getattr(self.work, f.name) + getattr(work, f.name))
            for kind, value in parts.items():
                self.seconds_by_kind[kind] += value
            self.seconds += seconds
        return seconds

    def stats(self) -> dict[str, Any]:
        """The settings in force, then what the gate did since it was switched on."""
        with self._mutex:
            return {
                **asdict(self.model),
                "requests": self.requests,
                **asdict(self.work),
                "width": round(self.work.width, 6),
                "seconds": round(self.seconds, 6),
                "seconds_by_kind": {k: round(v, 6) for k, v in self.seconds_by_kind.items()},
                "max_concurrency": self.max_concurrency,
                "max_waiting": self.max_waiting,
                "queued": self.queued,
                "queue_seconds": round(self.queue_seconds, 6),
                "max_queue_seconds": round(self.max_queue_seconds, 6),
                "running": self._running,
                "waiting": len(self._waiting),
            }


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
