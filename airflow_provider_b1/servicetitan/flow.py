"""The ``servicetitan_to_sap_b1`` flow: its streams, source, sink and default options.

Several SAP companies, each fed by a ServiceTitan tenant of its own, are declared in
``B1_SERVICETITAN_COMPANIES`` (:func:`servicetitan_companies`): ``sap_b1_us=servicetitan_us,
sap_b1_eu=servicetitan_eu``. The SAP connection id is the flow's scope
(:meth:`~airflow_provider_b1.sync.flows.Flow.scoped`): a company other than ``sap_b1_default`` runs
as ``servicetitan_to_sap_b1@<conn id>``, with its own audit rows, cursors and replay, and its own
rows of the customer mapping table (keyed by company and tenant). A scoped flow only sets its SAP
connection; the ServiceTitan connection it opens is the one its options name, and where they name
the default (``servicetitan_default``, as a replay of ``servicetitan_to_sap_b1@sap_b1_eu`` given no
options does), the one the same declaration pairs with the SAP connection
(:func:`servicetitan_conn_id`). So a replay reopens the company's own tenant with no options given;
the variable must then be the same where the replay runs as where the DAG is parsed.

The mapping (GL accounts, business units, tax, payment types) is the ``mappings`` option, else
``B1_SERVICETITAN_MAPPINGS`` (:func:`mappings_of`), so a replay given no options maps as a DAG
reading that variable does (never the example file: its accounts are the sandbox's); each company gets its own
keys from the document's ``companies`` section, by its SAP connection id or CompanyDB (see
:mod:`airflow_provider_b1.servicetitan.mappings`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_b1.companies import Company, declared_companies, peer_conn_id
from airflow_provider_b1.sync.cursors import TokenCursor
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System

if TYPE_CHECKING:
    from airflow_provider_b1.servicetitan.mappings import Mappings

log = logging.getLogger(__name__)

NAME = "servicetitan_to_sap_b1"
DEFAULT_SERVICETITAN_CONN_ID = "servicetitan_default"
DEFAULT_SAP_CONN_ID = "sap_b1_default"
DEFAULT_MAPPING_CONN_ID = "b1_audit_default"
#: The environment variable declaring the SAP companies and the ServiceTitan connection of each.
COMPANIES_ENV = "B1_SERVICETITAN_COMPANIES"
#: The environment variable naming the mapping (a path, or ``var:<Variable key>``).
MAPPINGS_ENV = "B1_SERVICETITAN_MAPPINGS"
#: The example mapping beside the DAGs, for the sandboxes.


def servicetitan_companies(value: str | None = None) -> list[Company]:
    """The SAP companies the flow posts into, each with its ServiceTitan connection (``peer_conn_id``).

    Read from ``B1_SERVICETITAN_COMPANIES`` (or ``value``): ``<SAP conn id>=<ServiceTitan conn id>``
    entries separated by commas. A single entry may leave out ``=...``: it reads
    ``servicetitan_default``. Unset or empty: ``sap_b1_default`` with ``servicetitan_default``.

    :raises ValueError: for what :func:`~airflow_provider_b1.companies.declared_companies` refuses,
        and for several companies where one names no ServiceTitan connection: they would all read
        ``servicetitan_default``, posting each of its invoices into every company.
    """
    companies = declared_companies(COMPANIES_ENV, value, peer="ServiceTitan connection")
    unpaired = [company.sap_b1_conn_id for company in companies if company.peer_conn_id is None]
    if len(companies) > 1 and unpaired:
        raise ValueError(
            f"{COMPANIES_ENV} declares {len(companies)} SAP companies but names no ServiceTitan connection "
            f"for {', '.join(unpaired)}; with several companies every entry must be "
            "<SAP conn id>=<ServiceTitan conn id> (two companies reading one tenant would each post "
            "its invoices)."
        )
    return [
        Company(company.sap_b1_conn_id, company.peer_conn_id or DEFAULT_SERVICETITAN_CONN_ID)
        for company in companies
    ]


def servicetitan_conn_id(options: Mapping[str, Any]) -> str:
    """The ServiceTitan connection of the SAP company the (merged) options name: the options' own,
    unless it is the default and ``B1_SERVICETITAN_COMPANIES`` pairs the SAP connection with
    another (a replay of a scoped flow, which sets only its SAP connection).

    :raises MappingError: when the declaration cannot be read (not retried).
    """
    try:
        return peer_conn_id(
            options, "servicetitan_conn_id", DEFAULT_SERVICETITAN_CONN_ID, servicetitan_companies
        )
    except ValueError as exc:
        from airflow_provider_b1.servicetitan.mappings import MappingError

        raise MappingError(str(exc)) from None


def mappings_source(options: Mapping[str, Any]) -> str | None:
    """Where the mapping is: the ``mappings`` option, else ``B1_SERVICETITAN_MAPPINGS`` (as the DAG
    reads it, so that a replay or a task run outside the DAG maps alike); ``None`` without either:
    nothing mapped, so a record fails naming the key to map rather than being posted with an
    example file's sandbox accounts (which an installed package does not even hold)."""
    return options.get("mappings") or os.environ.get(MAPPINGS_ENV) or None


def mappings_of(options: Mapping[str, Any]) -> Mappings:
    """The mapping of the SAP company the (merged) options name (:func:`mappings_source`, with the
    keys its ``companies`` section gives, by SAP connection id or CompanyDB).

    :raises MappingError: naming the key at fault (not retried).
    """
    from airflow_provider_b1.companies import company_db
    from airflow_provider_b1.servicetitan.mappings import load_mappings

    conn_id = str(options.get("sap_b1_conn_id") or DEFAULT_SAP_CONN_ID)
    return load_mappings(mappings_source(options), company=(conn_id, company_db(conn_id)))


def _tenant(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    tenant = (BaseHook.get_connection(conn_id).extra_dejson or {}).get("tenant_id")
    if not tenant:
        from airflow_provider_b1.servicetitan.mappings import MappingError

        raise MappingError(f"Connection {conn_id!r} has no tenant_id in its extra.")
    return str(tenant)


def own_tenant(options: Mapping[str, Any]) -> str:
    """The tenant the (merged) options' company reads, checked to be no other declared company's.

    Two ServiceTitan connections of two companies reaching one tenant would post each of its
    invoices into both companies; the declaration cannot tell (it names connections, not tenants),
    so the task that would post checks before it writes anything.

    :raises MappingError: naming both connections and the tenant (not retried).
    """
    conn_id = servicetitan_conn_id(options)
    tenant = _tenant(conn_id)
    sap = options.get("sap_b1_conn_id") or DEFAULT_SAP_CONN_ID
    try:
        companies = servicetitan_companies()
    except ValueError:  # reported by servicetitan_conn_id where it matters
        return tenant
    for company in companies:
        if company.sap_b1_conn_id == sap or company.peer_conn_id in (None, conn_id):
            continue
        try:
            other = _tenant(company.peer_conn_id)
        except Exception as exc:  # a missing or incomplete connection: its own company's tasks fail on it
            log.debug("Cannot read the tenant of %s: %s", company.peer_conn_id, exc)
            continue
        if other == tenant:
            from airflow_provider_b1.servicetitan.mappings import MappingError

            raise MappingError(
                f"ServiceTitan connections {conn_id!r} (SAP company {sap}) and {company.peer_conn_id!r} "
                f"(SAP company {company.sap_b1_conn_id}) both reach tenant {tenant}: each SAP company in "
                f"{COMPANIES_ENV} needs a tenant of its own, or its invoices would be posted into both."
            )
    return tenant


def _open_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
    from airflow_provider_b1.sources.servicetitan import ServiceTitanSource

    return ServiceTitanSource(ServiceTitanHook(servicetitan_conn_id(options)))


def _open_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.servicetitan.customers import CustomerMap
    from airflow_provider_b1.servicetitan.sink import SapReceivablesSink
    from airflow_provider_b1.utils.sql import open_database

    database = open_database(options["mapping_conn_id"], purpose="the customer mapping table")
    customers = CustomerMap(
        database,
        options["mapping_schema"],
        own_tenant(options),
        company=options["sap_b1_conn_id"],
    )
    return SapReceivablesSink(SapB1Hook(options["sap_b1_conn_id"]), mappings_of(options), customers)


SERVICETITAN_FLOW = Flow(
    name=NAME,
    source_system="servicetitan",
    target_system="sap_b1",
    streams=(
        Stream("customers", cursor=TokenCursor, target="BusinessPartners"),
        Stream("invoices", cursor=TokenCursor, target="Invoices"),
        Stream("payments", cursor=TokenCursor, target="IncomingPayments"),
    ),
    open_source=_open_source,
    open_sink=_open_sink,
    options={
        "servicetitan_conn_id": DEFAULT_SERVICETITAN_CONN_ID,
        "sap_b1_conn_id": DEFAULT_SAP_CONN_ID,
        "mapping_conn_id": DEFAULT_MAPPING_CONN_ID,
        "mapping_schema": "b1_audit",
        "mappings": None,
    },
    description="ServiceTitan customers, invoices and payments into SAP Business One receivables.",
    # One scope per SAP company: its own audit rows, cursors, mapping-table rows and replay.
    scope_option="sap_b1_conn_id",
    # Each stream reads its kind's export feed (hooks.servicetitan.reads.KINDS: module, then export).
    lineage=Lineage(
        source=System("servicetitan", "servicetitan_conn_id"),
        target=System("sap_b1", "sap_b1_conn_id"),
        inputs={
            "customers": ("crm/export/customers",),
            "invoices": ("accounting/export/invoices",),
            "payments": ("accounting/export/payments",),
        },
    ),
)
