"""OpenLineage datasets of the flows: what each task reads and writes, named from its connections.

A flow declares its lineage (:class:`~airflow_provider_b1.sync.flows.Lineage`): the system its
streams are read from and the one they are written to, and per stream the entity sets, tables or
objects involved. This module turns that declaration and a task's options (connection ids, the
warehouse schema) into OpenLineage datasets, which
:meth:`SyncOperator.get_openlineage_facets_on_start
<airflow_provider_b1.operators.sync.SyncOperator.get_openlineage_facets_on_start>` hands to the
``apache-airflow-providers-openlineage`` provider (the ``openlineage`` extra). Without that
provider nothing here is imported and the operators report nothing.

Namespaces and names:

============  ===================================================  ==================================
system        namespace                                            name
============  ===================================================  ==================================
SAP B1        ``sap-b1://{service layer host}:{port}/{CompanyDB}``  entity set (``Invoices``)
PostgreSQL    ``postgres://{host}:{port}`` (OpenLineage's own)     ``{database}.{schema}.{table}``
SQLite        ``sqlite://{absolute path of the database file}``    ``{table}``
Salesforce    ``salesforce://{My Domain host}``                    object (``Account``)
ServiceTitan  ``servicetitan://{tenant id}``                       export feed (``crm/export/customers``)
============  ===================================================  ==================================

The port of the Service Layer is the URL's, else the connection's, else the scheme's (443); a
Salesforce namespace carries a port only when the My Domain URL names one other than 443.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_b1.sync.flows import Flow, System

SAP_B1_SCHEME = "sap-b1"
SALESFORCE_SCHEME = "salesforce"
SERVICETITAN_SCHEME = "servicetitan"
_DEFAULT_PORTS = {"https": 443, "http": 80}


class LineageConfigError(ValueError):
    """A connection does not say enough to name a flow's datasets (no host, company or tenant)."""


@dataclasses.dataclass(frozen=True)
class DatasetName:
    """One dataset as OpenLineage names it."""

    namespace: str
    name: str


@dataclasses.dataclass(frozen=True)
class FlowDatasets:
    """What some streams of a flow read (``inputs``) and write (``outputs``), each dataset once."""

    inputs: tuple[DatasetName, ...]
    outputs: tuple[DatasetName, ...]


def flow_datasets(
    flow: Flow, streams: Iterable[str] | None = None, options: Mapping[str, Any] | None = None
) -> FlowDatasets | None:
    """The datasets of ``streams`` (all of the flow's when ``None``) under the flow's options with
    ``options`` on top; ``None`` for a flow that declares no lineage.

    :raises LineageConfigError: when a connection lacks what a namespace needs.
    """
    lineage = flow.lineage
    if lineage is None:
        return None
    merged = flow.merged_options(options)
    chosen = [flow.stream(name) for name in (streams or [s.name for s in flow.streams])]
    connections: dict[str, Any] = {}
    source_namespace, source_prefix = _place(lineage.source, merged, connections)
    target_namespace, target_prefix = _place(lineage.target, merged, connections)
    inputs = [
        DatasetName(source_namespace, source_prefix + name)
        for stream in chosen
        for name in lineage.inputs_of(stream)
    ]
    outputs = [
        DatasetName(target_namespace, target_prefix + name)
        for stream in chosen
        for name in lineage.outputs_of(stream)
    ]
    return FlowDatasets(tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(outputs)))


def operator_lineage(
    flow: Flow, streams: Iterable[str] | None = None, options: Mapping[str, Any] | None = None
) -> Any:
    """The provider's ``OperatorLineage`` of these streams, or ``None`` without the OpenLineage
    provider or without a lineage declared by the flow."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
    except ImportError:
        return None
    datasets = flow_datasets(flow, streams, options)
    if datasets is None:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in datasets.inputs],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in datasets.outputs],
    )


# -- namespaces ----------------------------------------------------------------------------------


def _place(system: System, options: Mapping[str, Any], connections: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, prefix of every name)`` of a system under these options."""
    conn_id = options.get(system.conn_option)
    if not conn_id:
        raise LineageConfigError(f"The flow's option {system.conn_option!r} names no connection.")
    if conn_id not in connections:
        from airflow.sdk import BaseHook

        connections[conn_id] = BaseHook.get_connection(conn_id)
    conn = connections[conn_id]
    if system.kind == "sap_b1":
        return sap_b1_namespace(conn), ""
    if system.kind == "salesforce":
        return salesforce_namespace(conn), ""
    if system.kind == "servicetitan":
        return servicetitan_namespace(conn), ""
    if system.kind == "database":
        schema = options.get(system.schema_option) if system.schema_option else None
        return database_place(conn, schema)
    raise LineageConfigError(f"Unknown kind of system {system.kind!r} in a flow's lineage.")


def _url(conn: Any, what: str) -> Any:
    host = (conn.host or "").strip()
    if not host:
        raise LineageConfigError(f"Connection {conn.conn_id!r} has no {what} (host).")
    parts = urlsplit(host if "://" in host else "https://" + host)
    if not parts.hostname:
        raise LineageConfigError(f"Connection {conn.conn_id!r}: {host!r} names no host.")
    return parts


def sap_b1_namespace(conn: Any) -> str:
    """``sap-b1://{host}:{port}/{CompanyDB}`` of a SAP Business One connection."""
    parts = _url(conn, "Service Layer URL")
    port = parts.port or conn.port or _DEFAULT_PORTS.get(parts.scheme, 443)
    company = (conn.schema or "").strip()
    if not company:
        raise LineageConfigError(f"Connection {conn.conn_id!r} has no company database (schema).")
    return f"{SAP_B1_SCHEME}://{parts.hostname}:{port}/{company}"


def salesforce_namespace(conn: Any) -> str:
    """``salesforce://{My Domain host}`` of a Salesforce connection (``:{port}`` when not 443)."""
    parts = _url(conn, "My Domain URL")
    port = parts.port or conn.port
    return f"{SALESFORCE_SCHEME}://{parts.hostname}" + (f":{port}" if port and port != 443 else "")


def servicetitan_namespace(conn: Any) -> str:
    """``servicetitan://{tenant id}`` of a ServiceTitan connection."""
    tenant = str((conn.extra_dejson or {}).get("tenant_id") or "").strip()
    if not tenant:
        raise LineageConfigError(f"Connection {conn.conn_id!r} has no tenant_id in its extra.")
    return f"{SERVICETITAN_SCHEME}://{tenant}"


def database_place(conn: Any, schema: str | None) -> tuple[str, str]:
    """``(namespace, table name prefix)`` of a ``postgres`` or ``sqlite`` connection, as
    :func:`~airflow_provider_b1.utils.sql.open_database` reads it.

    :param schema: the PostgreSQL schema of the tables (``public`` when ``None``).
    """
    kind = (conn.conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        database = conn.schema or conn.login or "postgres"
        return (
            f"postgres://{conn.host or 'localhost'}:{int(conn.port or 5432)}",
            f"{database}.{schema or 'public'}.",
        )
    if kind == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise LineageConfigError(f"Connection {conn.conn_id!r} is a SQLite connection without a file.")
        return f"sqlite://{os.path.realpath(path)}", ""
    raise LineageConfigError(
        f"Connection {conn.conn_id!r} has type {conn.conn_type!r}, not postgres or sqlite."
    )
