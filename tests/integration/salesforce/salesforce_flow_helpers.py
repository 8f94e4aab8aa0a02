"""Shared by the Salesforce flow's integration tests (a module of its own: ``conftest`` is not importable)."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_b1.salesforce.mapping import load_mapping
from airflow_provider_b1.utils.retry import RetryPolicy

MAPPING = load_mapping(Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml")
"""The DAG's mapping of the sandbox org onto the sandbox company."""

FAST = RetryPolicy(max_attempts=4, max_elapsed=20.0, initial_wait=0.01, max_wait=0.05)
"""Retries as the hook makes them, without the waits."""
