"""Which function replays the failed records of which flow, declared in one place.

A flow's replayer is named by import path (``"package.module:function"``) so that this module
imports no flow, and a flow's dependencies load only when its records are replayed. A flow
module, a plugin or a test may add its own with :func:`register_replayer`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from airflow_provider_b1.exceptions import B1ProviderError

#: Flow name -> import path of its replayer (see :class:`airflow_provider_b1.sync.replay.Replayer`).
REPLAYERS: dict[str, str | Callable[..., Any]] = {
    "sap_b1_to_warehouse": "airflow_provider_b1.transfers.sap_b1_to_warehouse:replay_warehouse_records",
}

#: Flow name -> options handed to its replayer in ``ReplayContext.options`` (connection ids, ...).
REPLAYER_OPTIONS: dict[str, dict[str, Any]] = {}


class UnknownFlowError(B1ProviderError):
    """No replayer is registered for a flow name."""


def register_replayer(flow: str, replayer: str | Callable[..., Any], **options: Any) -> None:
    """Declare (or replace) the replayer of a flow.

    :param flow: the flow name used in the audit trail.
    :param replayer: ``"package.module:function"`` or the callable itself.
    :param options: primitives handed to the replayer as ``context.options``.
    """
    if isinstance(replayer, str) and ":" not in replayer:
        raise ValueError(f"Replayer path {replayer!r} must look like 'package.module:function'.")
    REPLAYERS[flow] = replayer
    REPLAYER_OPTIONS[flow] = dict(options)


def unregister_replayer(flow: str) -> None:
    """Forget a flow's replayer (tests use this to clean up)."""
    REPLAYERS.pop(flow, None)
    REPLAYER_OPTIONS.pop(flow, None)


def registered_flows() -> list[str]:
    """Return the names of the flows that can be replayed, sorted."""
    return sorted(REPLAYERS)


def get_replayer(flow: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Return ``(replayer, options)`` for a flow, importing the replayer if needed.

    :param flow: the flow name.
    :raises UnknownFlowError: when nothing is registered under that name.
    """
    try:
        target = REPLAYERS[flow]
    except KeyError:
        raise UnknownFlowError(
            f"No replayer is registered for flow {flow!r}; known flows: {', '.join(registered_flows()) or 'none'}."
        ) from None
    if callable(target):
        return target, dict(REPLAYER_OPTIONS.get(flow, {}))
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute), dict(REPLAYER_OPTIONS.get(flow, {}))
