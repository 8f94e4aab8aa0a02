"""A faithful imitation of the SAP Business One Service Layer, for tests and first tries.

Independent of :mod:`airflow_provider_b1.hooks`: it shares no protocol code with them, so the
two implementations check each other. Production code never imports it.
"""

from __future__ import annotations

from airflow_provider_b1.sandbox.sap.app import SapSandbox, SapSandboxConfig, create_app
from airflow_provider_b1.sandbox.sap.cost import CostModel
from airflow_provider_b1.sandbox.sap.store import ApprovalRule

__all__ = ["ApprovalRule", "CostModel", "SapSandbox", "SapSandboxConfig", "create_app"]
