"""Fixtures of the whole-DAG tests; they live in ``dag_helpers`` (a name no other test folder uses)."""

from dag_helpers import dag_of, eu_sandbox, flow, recorded_secrets

__all__ = ["dag_of", "eu_sandbox", "flow", "recorded_secrets"]
