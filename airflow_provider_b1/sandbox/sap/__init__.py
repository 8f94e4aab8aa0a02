"""A faithful imitation of the SAP Business One Service Layer, for tests and first tries.

Independent of :mod:`airflow_provider_b1.hooks` and :mod:`airflow_provider_b1.webhooks`: it
shares no protocol code with them, so the implementations check each other. Production code never
imports it. Webhooks (``EventSubscriptions``, the handshake, signed deliveries): :mod:`.webhooks`.
"""

from __future__ import annotations

from airflow_provider_b1.sandbox.sap.app import SapSandbox, SapSandboxConfig, create_app
from airflow_provider_b1.sandbox.sap.cost import CostModel
from airflow_provider_b1.sandbox.sap.store import ApprovalRule

__all__ = ["ApprovalRule", "CostModel", "SapSandbox", "SapSandboxConfig", "create_app"]
