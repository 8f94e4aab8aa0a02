"""The reconciliation task of ``servicetitan_to_sap_b1``: SAP's receivables against ServiceTitan's."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.operators.sync import PermanentFailures
from airflow_provider_b1.servicetitan.flow import SERVICETITAN_FLOW, mappings_of, servicetitan_conn_id
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as DEFAULT_AUDIT_SCHEMA

if TYPE_CHECKING:
    from airflow.sdk import Context


class ServiceTitanReconcileOperator(PermanentFailures, BaseOperator):
    """Compare SAP with ServiceTitan partner by partner: invoice count and total, payments applied,
    open balance (:func:`~airflow_provider_b1.servicetitan.reconcile.reconcile_receivables`).

    Fails at once, without retries, with a report naming each differing partner, its customers,
    both sides' figures and each missing invoice with the flow's recorded reason: a retry would
    compare the same data.

    :param options: the flow's options where they differ from its defaults (connection ids,
        ``mappings``), as the flow's load tasks are given them: ``sap_b1_conn_id`` names the SAP
        company compared, with its own ServiceTitan tenant, mapping-table rows, audit rows (its
        scope of the flow, ``servicetitan_to_sap_b1@<conn id>``) and mapping (its ``companies``
        section's keys; without ``mappings``, ``B1_SERVICETITAN_MAPPINGS`` or the example file).
    :param audit_schema: the PostgreSQL schema of the audit trail (and the mapping table).
    """

    template_fields: Sequence[str] = ("options",)
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        options: Mapping[str, Any] | None = None,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = dict(options or {})
        self.audit_schema = audit_schema

    def run(self, context: Context) -> Mapping[str, Any]:
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
        from airflow_provider_b1.servicetitan.customers import CustomerMap
        from airflow_provider_b1.servicetitan.reconcile import reconcile_or_raise, reconcile_receivables
        from airflow_provider_b1.sync.audit import AuditTrail
        from airflow_provider_b1.utils.sql import open_database

        flow = SERVICETITAN_FLOW.scoped(self.options)
        options = flow.merged_options(self.options)
        mappings = mappings_of(options)
        with contextlib.ExitStack() as stack:
            servicetitan = ServiceTitanHook(servicetitan_conn_id(options))
            stack.callback(servicetitan.close)
            sap = SapB1Hook(options["sap_b1_conn_id"])
            stack.callback(sap.close)
            database = open_database(options["mapping_conn_id"], purpose="the customer mapping table")
            customers = CustomerMap(
                database, options["mapping_schema"], servicetitan.tenant_id, company=options["sap_b1_conn_id"]
            )
            stack.callback(customers.close)
            audit = stack.enter_context(AuditTrail(options["mapping_conn_id"], schema=self.audit_schema))
            report = reconcile_receivables(
                servicetitan,
                sap,
                customers,
                audit=audit,
                flow=flow.name,
                invoice_id_field=mappings.invoice_id_field,
            )
        return reconcile_or_raise(report)
