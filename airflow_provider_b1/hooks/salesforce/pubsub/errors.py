"""The Pub/Sub API's failures as typed errors, told apart by gRPC status and ``error-code`` trailer.

Salesforce ends a failed call with a gRPC status and puts its own code in the ``error-code``
trailer (``sfdc.platform.eventbus.grpc...``); the status details end with ``rpcId: <uuid>``, which
Salesforce support asks for. What matters to a subscriber:

* ``UNAUTHENTICATED`` (``...service.auth.error``): the session token is expired or invalid. Fetch
  a new token once and call again (:class:`PubSubAuthError` when that does not help).
* ``INVALID_ARGUMENT`` with ``...subscription.fetch.replayid.corrupted`` (status details "The
  Replay ID validation failed."): the replay id is outside the 72-hour retention, or was never
  issued for this topic. Subscribe again from ``LATEST`` or ``EARLIEST``
  (:class:`ReplayIdExpiredError`).
* ``NOT_FOUND`` from ``GetTopic`` ("The topic information for org ... and topic
  /data/AccountChangeEvent not found. Ensure the topic name is correct and that the topic
  exists."), as an org answers for an object not selected for Change Data Capture; a refused
  ``Subscribe`` to such a topic is read the same way whether it comes as ``NOT_FOUND`` or
  ``PERMISSION_DENIED`` (*unconfirmed* which one Salesforce sends) (:class:`TopicUnavailableError`).
* ``UNAVAILABLE``, ``INTERNAL``, ``UNKNOWN``, ``DEADLINE_EXCEEDED``, ``RESOURCE_EXHAUSTED``: worth
  another try after a pause (:class:`PubSubStreamError` with ``retryable``).

No message carries a token.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError

AUTH_ERROR_CODE = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_ID_CORRUPTED_CODE = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_ID_VALIDATION_FAILED_CODE = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"

INSTALL_HINT = "pip install 'airflow-provider-b1[cdc]'"

#: gRPC status names worth a new attempt after a pause.
RETRYABLE_STATUSES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
)


class PubSubError(B1ProviderError):
    """A failed Pub/Sub API call.

    :param message: one sentence naming the cause and the fix.
    :param status: the gRPC status name (``INVALID_ARGUMENT``), when the server answered.
    :param error_code: Salesforce's ``error-code`` trailer, when there was one.
    :param rpc_id: Salesforce's ``rpc-id`` trailer, for its support.
    :param topic: the topic of the call, when it had one.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        error_code: str | None = None,
        rpc_id: str | None = None,
        topic: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.rpc_id = rpc_id
        self.topic = topic


class CdcDependencyError(PubSubError, PermanentError):
    """grpcio, protobuf or fastavro is missing: the ``cdc`` extra is not installed here."""


class PubSubAuthError(PubSubError, PermanentError):
    """Salesforce refused the session token, also a freshly fetched one."""


class ReplayIdExpiredError(PubSubError):
    """The replay id is older than the event bus keeps events (72 hours), or unknown to the topic."""


class TopicUnavailableError(PubSubError):
    """The org offers no such topic to this user: Change Data Capture is off for the object (not
    selected in Setup), the org has no CDC, or the topic name is wrong."""


class PubSubStreamError(PubSubError):
    """The call failed in a way another attempt may not repeat (connection lost, service
    unavailable), or kept failing until the attempts ran out."""

    def __init__(self, message: str, *, retryable: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable


def trailer(error: Any, key: str) -> str | None:
    """A trailing metadata value of a failed call (``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    try:
        metadata = error.trailing_metadata() or ()
    except Exception:
        return None
    for name, value in metadata:
        if name == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def status_name(error: Any) -> str | None:
    """The gRPC status name of a failed call, or ``None`` when it is not one."""
    try:
        code = error.code()
    except Exception:
        return None
    return getattr(code, "name", None)


def from_rpc_error(error: Any, *, call: str, topic: str | None = None) -> PubSubError:
    """The typed error for a failed call. The status and trailer decide; the details (Salesforce's
    own sentence, ending with its rpcId) are quoted for the reader."""
    status = status_name(error)
    code = trailer(error, "error-code")
    rpc_id = trailer(error, "rpc-id")
    try:
        details = error.details() or ""
    except Exception:
        details = str(error)
    where = f"{call} {topic}" if topic else call
    kwargs = {"status": status, "error_code": code, "rpc_id": rpc_id, "topic": topic}
    if status == "UNAUTHENTICATED":
        return PubSubAuthError(
            f"Salesforce Pub/Sub API refused the session token on {where} ({status}: {details}); check "
            "the connected app's client id and secret, its 'api' scope and the org's session settings.",
            **kwargs,
        )
    if code in (REPLAY_ID_CORRUPTED_CODE, REPLAY_ID_VALIDATION_FAILED_CODE):
        return ReplayIdExpiredError(
            f"Salesforce refused the replay id on {where} ({status}: {details}): it is older than the "
            "event bus keeps events (72 hours) or belongs to another topic; subscribe from LATEST and "
            "let polling catch up.",
            **kwargs,
        )
    if status in ("NOT_FOUND", "PERMISSION_DENIED") and topic:
        return TopicUnavailableError(
            f"Salesforce offers no topic {topic} to this user ({status}: {details}); select the object "
            "for Change Data Capture in Setup (Integrations > Change Data Capture) and give the "
            "integration user read access to it.",
            **kwargs,
        )
    return PubSubStreamError(
        f"Salesforce Pub/Sub API call {where} failed ({status or type(error).__name__}: {details}).",
        retryable=status in RETRYABLE_STATUSES or status is None,
        **kwargs,
    )
