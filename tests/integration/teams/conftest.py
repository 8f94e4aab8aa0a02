"""Fixtures of the ``sap_b1_to_teams`` flow's tests; they live in ``teams_flow_helpers``."""

from teams_flow_helpers import teams_flow

__all__ = ["teams_flow"]
