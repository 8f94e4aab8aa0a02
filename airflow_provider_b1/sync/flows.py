"""A flow is a declaration: its streams, how to open its source and its sink, its default options.

Declaring a :class:`Flow` registers it under its name, so the replay task finds it and replays
its failed records through the same source and sink, without a replayer written by hand. A flow
declared in another package is found by entry point (group ``airflow_provider_b1.flows``, value
``package.module:FLOW``), or named directly as ``"package.module:FLOW"``::

    INVOICES = Flow(
        name="shop_invoices_to_sap",
        source_system="shop",
        target_system="sap_b1",
        streams=(Stream("invoices", cursor=KeysetCursor, target="Invoices"),),
        open_source=lambda options: ShopSource(options["shop_conn_id"]),
        open_sink=lambda options: SapInvoiceSink(options["sap_b1_conn_id"]),
        options={"shop_conn_id": "shop_default", "sap_b1_conn_id": "sap_b1_default"},
    )

**Scopes.** A flow that runs once per SAP company (or per tenant, per org) names the option that
tells them apart: ``scope_option="sap_b1_conn_id"``. Run with another value than the default, it
is the *scoped* flow ``"<name>@<value>"`` (:meth:`Flow.scoped`): the same streams, source and
sink, under a name of its own. Everything the engine keys by the flow's name is then per scope
without knowing it: the audit rows (counts, the latest attempt of a record, replay), the
checkpoints, the summaries. Replaying ``"sap_b1_to_warehouse@sap_b1_eu"`` reopens the
``sap_b1_eu`` connection (:func:`get_flow`). The default scope keeps the plain name, so a flow
run for one company is exactly what it was before scopes existed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.sync.cursors import Cursor

if TYPE_CHECKING:
    from airflow_provider_b1.sync.engine import Sink, Source

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "airflow_provider_b1.flows"
#: Waiting records retried per stream at the start of an incremental run, by default.
RETRY_WAITING = 500


class UnknownFlowError(PermanentError, LookupError):
    """No flow is declared under a name."""


@dataclasses.dataclass(frozen=True)
class Stream:
    """One entity a flow moves.

    :param name: the entity in the source (``Invoices``); the audit trail's ``source_entity``.
    :param cursor: the cursor class of its incremental reads; ``None`` reads it in full every run.
    :param target: the entity in the target, when the sink does not name it itself.
    :param retry_waiting: at most this many of its records that wait for another record (a payment
        for an invoice the target does not hold yet) are read again by key at the start of each
        incremental run, the least recently tried first; ``0`` leaves them to replay.
    """

    name: str
    cursor: type[Cursor] | None = None
    target: str | None = None
    retry_waiting: int = RETRY_WAITING


@dataclasses.dataclass(frozen=True)
class System:
    """A system a flow reads or writes, as its lineage names it (see :mod:`airflow_provider_b1.lineage`).

    :param kind: ``sap_b1``, ``salesforce``, ``servicetitan`` or ``database`` (a ``postgres`` or
        ``sqlite`` connection).
    :param conn_option: the flow option that holds its connection id (``sap_b1_conn_id``).
    :param schema_option: for a ``database``, the option that holds the PostgreSQL schema of its tables.
    """

    kind: str
    conn_option: str
    schema_option: str | None = None


@dataclasses.dataclass(frozen=True)
class Lineage:
    """Where a flow's streams come from and where they land, for OpenLineage.

    The datasets are named here; their namespaces (server, company, org, tenant, database) come
    from the connections the flow's options name, when a task reports its lineage.

    :param source: the system the streams are read from.
    :param target: the system they are written to.
    :param inputs: per stream, what it reads in the source; the stream's name when not given.
    :param outputs: per stream, what it writes in the target (a table and its child tables, or
        several objects); the stream's ``target``, else its name, when not given.
    """

    source: System
    target: System
    inputs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    outputs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def inputs_of(self, stream: Stream) -> tuple[str, ...]:
        """What ``stream`` reads in the source."""
        return tuple(self.inputs.get(stream.name) or (stream.name,))

    def outputs_of(self, stream: Stream) -> tuple[str, ...]:
        """What ``stream`` writes in the target."""
        return tuple(self.outputs.get(stream.name) or (stream.target or stream.name,))


@dataclasses.dataclass(frozen=True, eq=False)
class Flow:
    """A flow: what it moves, from where to where.

    :param name: its name in the audit trail and in summaries (``sap_b1_to_warehouse``).
    :param source_system: the source's name in audit rows (``sap_b1``).
    :param target_system: the target's name in audit rows (``warehouse``).
    :param streams: the entities it moves.
    :param open_source: ``options -> Source``: opens the source (a hook inside).
    :param open_sink: ``options -> Sink``: opens the sink, its schema in place.
    :param options: default options (connection ids, page size...), primitives only; a task
        overrides some of them.
    :param description: one line for people.
    :param assets: the Airflow Asset each stream updates (``{stream: Asset}``): a task running
        some streams marks theirs updated (its outlets), so DAGs scheduled on them run after it.
    :param lineage: where its streams come from and land, reported to OpenLineage by the tasks
        that run them; ``None`` reports nothing.
    :param register: add the flow to the registry (the default), so replay finds it by name.
    :param scope_option: the option whose value tells the flow's scopes apart (a SAP connection id:
        one scope per company); see :meth:`scoped`.
    """

    name: str
    source_system: str
    target_system: str
    streams: tuple[Stream, ...]
    open_source: Callable[[Mapping[str, Any]], Source]
    open_sink: Callable[[Mapping[str, Any]], Sink]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    assets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    lineage: Lineage | None = None
    register: dataclasses.InitVar[bool] = True
    scope_option: str | None = None

    def __post_init__(self, register: bool) -> None:
        object.__setattr__(self, "streams", tuple(self.streams))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        names = [stream.name for stream in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"Flow {self.name!r} declares a stream twice: {names}")
        if self.lineage is not None:
            unknown = sorted({*self.lineage.inputs, *self.lineage.outputs} - set(names))
            if unknown:
                raise ValueError(f"Flow {self.name!r} names the lineage of streams it lacks: {unknown}")
        if register:
            register_flow(self)

    def __repr__(self) -> str:
        return (
            f"Flow({self.name!r}: {self.source_system} -> {self.target_system}, {len(self.streams)} streams)"
        )

    def stream(self, name: str) -> Stream:
        """The stream of this name.

        :raises UnknownFlowError: naming the flow's streams when there is none.
        """
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise UnknownFlowError(
            f"Flow {self.name!r} has no stream {name!r}; its streams: {', '.join(s.name for s in self.streams)}."
        )

    def assets_of(self, streams: Iterable[str]) -> list[Any]:
        """The Assets these streams update, each once, in stream order."""
        found: list[Any] = []
        for name in streams:
            asset = self.assets.get(name)
            if asset is not None and asset not in found:
                found.append(asset)
        return found

    def scoped(self, options: Mapping[str, Any] | None) -> Flow:
        """This flow for the scope ``options`` name: itself for the default scope (or a flow without
        scopes), else ``"<name>@<value>"`` with the value as its default option, so that its audit
        rows, checkpoints and replay are the scope's own.

        :param options: the options a task runs the flow with (overrides of the defaults).
        """
        if self.scope_option is None or "@" in self.name:
            return self
        value = (options or {}).get(self.scope_option)
        if value is None or value == self.options.get(self.scope_option):
            return self
        return _scoped(self, str(value))

    def merged_options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The flow's options with ``overrides`` on top."""
        return {**self.options, **(overrides or {})}

    @contextlib.contextmanager
    def open(self, options: Mapping[str, Any] | None = None) -> Iterator[tuple[Source, Sink]]:
        """Open the source and the sink with these options; close both afterwards."""
        merged = self.merged_options(options)
        source = self.open_source(merged)
        try:
            sink = self.open_sink(merged)
            try:
                yield source, sink
            finally:
                sink.close()
        finally:
            source.close()


_FLOWS: dict[str, Flow] = {}
_SCOPED: dict[tuple[str, str], tuple[Flow, Flow]] = {}


def _scoped(flow: Flow, value: str) -> Flow:
    """The scoped flow, made once per flow and value: the cache holds the flow it was made from,
    so a flow declared again under the same name (tests do) gets a scope of its own."""
    key = (flow.name, value)
    made = _SCOPED.get(key)
    if made is None or made[0] is not flow:
        made = _SCOPED[key] = (
            flow,
            dataclasses.replace(
                flow,
                name=f"{flow.name}@{value}",
                options={**flow.options, flow.scope_option: value},
                register=False,
            ),
        )
    return made[1]


def register_flow(flow: Flow) -> None:
    """Make a flow findable by name (declaring one does it); a later declaration replaces it."""
    _FLOWS[flow.name] = flow


def unregister_flow(name: str) -> None:
    """Forget a flow (tests use this to clean up)."""
    _FLOWS.pop(name, None)


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_flows() -> list[str]:
    """The names of the flows that can be found: declared in this process, or by entry point."""
    return sorted({*_FLOWS, *_entry_points()})


def get_flow(name: str) -> Flow:
    """Find a flow by its name, its entry point, or ``"package.module:attribute"``; a scoped flow by
    ``"<name>@<scope value>"`` (see :meth:`Flow.scoped`).

    :raises UnknownFlowError: naming the known flows.
    """
    if name in _FLOWS:
        return _FLOWS[name]
    base, at, scope = name.partition("@")
    if at and scope and ":" not in scope:
        flow = get_flow(base)
        if flow.scope_option is None:
            raise UnknownFlowError(f"Flow {base!r} runs in one scope only; name it without {'@' + scope!r}.")
        return flow.scoped({flow.scope_option: scope})
    found = _entry_points().get(name)
    if found is not None:
        flow = found.load()
    elif ":" in name:
        module, _, attribute = name.partition(":")
        try:
            flow = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise UnknownFlowError(f"Cannot load flow {name!r}: {exc}") from None
    else:
        raise UnknownFlowError(
            f"No flow is declared as {name!r}; known flows: {', '.join(known_flows()) or 'none'}."
        )
    if not isinstance(flow, Flow):
        raise UnknownFlowError(f"{name!r} is a {type(flow).__name__}, not a Flow.")
    return flow
