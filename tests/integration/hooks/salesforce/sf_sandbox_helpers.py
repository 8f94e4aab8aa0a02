"""Shared by the Salesforce hook's integration tests (a module of its own: ``conftest`` is not importable)."""

from __future__ import annotations

from airflow_provider_b1.utils.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=4, max_elapsed=20.0, initial_wait=0.01, max_wait=0.05)
"""Retries as the hook makes them, without the waits."""
