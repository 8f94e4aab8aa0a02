"""Salesforce Change Data Capture through the Pub/Sub API (gRPC service ``eventbus.v1.PubSub``).

* :mod:`.client`: :class:`~.client.SalesforcePubSubClient` (blocking) and
  :class:`~.client.AsyncSalesforcePubSubClient` (asyncio, for the triggerer): ``GetTopic``,
  ``GetSchema`` and ``Subscribe`` with replay presets, flow control, one new token on
  ``UNAUTHENTICATED`` and bounded reconnects; events come back decoded.
* :mod:`.events`: Avro decoding (fastavro, schemas cached by schema id) and the
  ``ChangeEventHeader`` bitmap fields (``changedFields``, ``nulledFields``, ``diffFields``)
  turned into field names.
* :mod:`.replay`: replay ids (opaque bytes) as text for XComs and trigger arguments.
* :mod:`.errors`: typed failures, told apart by gRPC status and Salesforce's ``error-code``
  trailer, never by message text.

``pubsub_api.proto`` is Salesforce's file, copied verbatim from github.com/forcedotcom/pub-sub-api
(commit 03d49a9, CC0 1.0 public-domain dedication); it includes ``ManagedSubscribe`` (beta), which
this package does not use. ``pubsub_api_pb2.py`` and ``pubsub_api_pb2_grpc.py`` were generated once
from it, from the repository root, with grpcio-tools 1.60.0 (the oldest release the ``cdc`` extra
allows, so the stubs load with every grpcio and protobuf it allows, up to today's)::

    python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \\
        airflow_provider_b1/hooks/salesforce/pubsub/pubsub_api.proto

Run time needs grpcio, protobuf and fastavro: ``pip install airflow-provider-b1[cdc]``. Nothing
here imports them until CDC is used, so the provider imports without the extra; using CDC
without it raises :class:`~.errors.CdcDependencyError` saying what to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_provider_b1.hooks.salesforce.pubsub.errors import (
    CdcDependencyError,
    PubSubAuthError,
    PubSubError,
    PubSubStreamError,
    ReplayIdExpiredError,
    TopicUnavailableError,
)
from airflow_provider_b1.hooks.salesforce.pubsub.replay import (
    replay_id_from_text,
    replay_id_to_text,
)

_LAZY = {
    "SalesforcePubSubClient": "client",
    "AsyncSalesforcePubSubClient": "client",
    "ReplayPreset": "client",
    "FetchBatch": "client",
    "ChangeEvent": "events",
    "EventDecoder": "events",
    "decode_bitmap": "events",
    "DEFAULT_ENDPOINT": "client",
}

__all__ = [
    "CdcDependencyError",
    "PubSubAuthError",
    "PubSubError",
    "PubSubStreamError",
    "ReplayIdExpiredError",
    "TopicUnavailableError",
    "replay_id_from_text",
    "replay_id_to_text",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
