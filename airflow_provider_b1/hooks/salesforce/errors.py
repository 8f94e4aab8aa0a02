"""Salesforce's failures as typed errors, each one sentence naming the cause and the fix.

The REST API answers every failure with a JSON array of ``{message, errorCode, fields}``; the
token endpoint with an OAuth error (``{"error": "invalid_client", "error_description": ...}``);
simple-salesforce raises its own exceptions carrying the status and the raw body. All three are
read here, once, and become a :class:`SalesforceError` that keeps Salesforce's ``error_code``,
``fields`` and HTTP ``status``. Errors are told apart by status and ``errorCode``, never by the
words of a message.

A failure of one record inside a Collections or Bulk API 2.0 write is not an exception: it comes
back as a :class:`RecordError` in that record's result (see :mod:`.results`).

No token, consumer secret or request body is ever part of a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.retry import parse_retry_after
from airflow_provider_b1.utils.tls import (
    is_certificate_rejection,
    is_pin_mismatch,
    is_transport_drop,
    never_sent,
)

_RETRYABLE_STATUS = frozenset({500, 502, 503, 504})

QUERY_CODES = frozenset(
    {
        "MALFORMED_QUERY",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_QUERY_FILTER_OPERATOR",
        "INVALID_QUERY_LOCATOR",
        "QUERY_TOO_COMPLICATED",
        "NON_QUERYABLE_OBJECT",
    }
)
"""``errorCode`` values of a query (or a field list) Salesforce cannot run."""

TRANSIENT_CODES = frozenset({"SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "UNKNOWN_EXCEPTION"})
"""``errorCode`` values that may go away when the same call is made again."""

PERMISSION_CODES = frozenset(
    {
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
        "FUNCTIONALITY_NOT_ENABLED",
    }
)


@dataclass(frozen=True)
class RecordError:
    """One of Salesforce's ``{message, errorCode|statusCode, fields}`` items.

    The error of one record in a write's results, and each item of a :class:`SalesforceError`.

    :param error_code: Salesforce's code (``DUPLICATE_VALUE``, ``REQUIRED_FIELD_MISSING``...).
    :param message: Salesforce's message.
    :param fields: the fields it names, when it names any.
    """

    error_code: str
    message: str
    fields: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        named = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.error_code}: {self.message}{named}"

    @classmethod
    def from_item(cls, item: Any) -> RecordError:
        """Read one item of an error array (REST uses ``errorCode``, Collections ``statusCode``)."""
        if not isinstance(item, Mapping):
            return cls("UNKNOWN", str(item)[:500])
        code = item.get("errorCode") or item.get("statusCode") or item.get("error_code") or "UNKNOWN"
        fields = item.get("fields") or ()
        if isinstance(fields, str):
            fields = (fields,)
        return cls(str(code), str(item.get("message") or "").strip(), tuple(str(f) for f in fields))


def error_items(body: Any) -> list[RecordError]:
    """The items of a Salesforce error body: an array, a single object, or nothing readable."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            return []
    if isinstance(body, Mapping):
        body = [body]
    if not isinstance(body, list):
        return []
    return [RecordError.from_item(item) for item in body if isinstance(item, Mapping)]


class SalesforceError(B1ProviderError):
    """A failure talking to Salesforce.

    :param message: one sentence naming the cause and the fix.
    :param status: HTTP status of the answer, when there was one.
    :param error_code: the first ``errorCode`` Salesforce gave (or the OAuth ``error``).
    :param fields: the fields the first error names.
    :param errors: every item of Salesforce's error array.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        fields: Sequence[str] = (),
        errors: Sequence[RecordError] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.fields = tuple(fields)
        self.errors = tuple(errors)


class SalesforcePermanentError(SalesforceError, PermanentError):
    """A failure that no retry can fix (a refused request, configuration, permission)."""


class SalesforceTransientError(SalesforceError, RetryableError):
    """A failure that may go away when the same call is made again later (5xx, reset, lock)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SalesforceAuthError(SalesforcePermanentError):
    """The token endpoint refused the consumer key or secret (or the connected app's set-up)."""


class SalesforceSessionError(SalesforcePermanentError):
    """Salesforce refused a freshly obtained token (401 ``INVALID_SESSION_ID`` after the one renewal)."""


class SalesforceLimitError(SalesforcePermanentError):
    """The org's daily API requests are (nearly) spent.

    :ivar used: requests used in the last 24 hours, when known.
    :ivar limit: the org's daily allowance, when known.
    """

    def __init__(self, message: str, *, used: int | None = None, limit: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.used = used
        self.limit = limit


class SalesforceApiLimitReached(SalesforceLimitError):
    """The hook stopped before a call would take the org's API usage past ``api_limit_share``."""


class SalesforceRequestLimitExceeded(SalesforceLimitError):
    """Salesforce refused a call: 403 ``REQUEST_LIMIT_EXCEEDED`` (the org's whole allowance is spent)."""


class SalesforceQueryError(SalesforcePermanentError):
    """Salesforce cannot run a query or read a field list: malformed SOQL, an unknown field or object."""


class SalesforceNotFoundError(SalesforcePermanentError):
    """404: no such record, object or resource."""


class SalesforcePermissionError(SalesforcePermanentError):
    """403: the integration user may not do this (or the org has no API access)."""


class SalesforceBadRequestError(SalesforcePermanentError):
    """Salesforce refused the request as a whole (400, 405, 409, 415...)."""


class SalesforceServerError(SalesforceTransientError):
    """Salesforce failed (5xx, ``SERVER_UNAVAILABLE``, ``UNABLE_TO_LOCK_ROW``)."""


class SalesforceUnreachableError(SalesforceTransientError):
    """No answer (DNS, refused or reset connection, timeout)."""


class SalesforceTLSError(SalesforcePermanentError):
    """The server's certificate could not be verified."""


class SalesforceAmbiguousWriteError(SalesforcePermanentError):
    """A write that is not safe to repeat was sent but its outcome is unknown (5xx or reset after
    sending). Never retried blindly: look the records up first."""


class SalesforceBulkJobError(SalesforcePermanentError):
    """A Bulk API 2.0 job failed, was aborted, or did not finish in time.

    :ivar job_id: the job's id, for Salesforce's Bulk Data Load Jobs page.
    """

    def __init__(self, message: str, *, job_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job_id = job_id


class SalesforcePagingError(SalesforcePermanentError):
    """Salesforce's paging would never end (the same ``nextRecordsUrl`` twice, endless empty pages)."""


class SalesforceSchemaError(SalesforcePermanentError):
    """Objects or fields a flow needs do not exist in the org (or are hidden from the integration user).

    :ivar missing_objects: objects the org does not have.
    :ivar missing_fields: ``{object: [field, ...]}`` of the fields it does not have.
    """

    def __init__(
        self,
        message: str,
        *,
        missing_objects: Sequence[str] = (),
        missing_fields: Mapping[str, Sequence[str]],
    ) -> None:
        super().__init__(message)
        self.missing_objects = list(missing_objects)
        self.missing_fields = {k: list(v) for k, v in missing_fields.items()}


# -- replies -> errors ---------------------------------------------------------------------------


def _said(errors: Sequence[RecordError]) -> str:
    """``CODE: message (fields)`` of Salesforce's first errors, for a message."""
    if not errors:
        return ""
    text = "; ".join(" ".join(str(e).split())[:300] for e in errors[:3])
    return f" {text.rstrip('.')}"


def error_from_reply(
    status: int,
    body: Any,
    what: str,
    *,
    repeatable: bool = True,
    headers: Mapping[str, str] | None = None,
) -> SalesforceError:
    """The typed error of a failed REST reply.

    A 401 reaches here only after the hook obtained a new token and sent the call once more.

    :param status: HTTP status.
    :param body: the reply's body (bytes, or already decoded JSON).
    :param what: the call, as messages name it (``reading Account``).
    :param repeatable: whether the call may be sent again; a write that is not, and that failed
        with a 5xx, becomes :class:`SalesforceAmbiguousWriteError`.
    :param headers: the reply's headers (``Retry-After``).
    """
    errors = error_items(body)
    first = errors[0] if errors else None
    code = first.error_code if first else None
    common: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "fields": first.fields if first else (),
        "errors": errors,
    }
    said = _said(errors)
    http = f"HTTP {status}{':' if said else ''}{said}"
    if code == "REQUEST_LIMIT_EXCEEDED":
        return SalesforceRequestLimitExceeded(
            f"Salesforce refused {what}: the org has spent its daily API requests ({http}); wait for the "
            "rolling 24-hour window to free requests, or ask Salesforce for a higher allowance.",
            **common,
        )
    if status == 401 or code == "INVALID_SESSION_ID":
        return SalesforceSessionError(
            f"Salesforce refused a freshly obtained access token for {what} ({http}); check that the "
            "connected app's client-credentials run-as user is active and may use the API, and that the My "
            "Domain URL is the org's.",
            **common,
        )
    if status == 429:
        # Refused before anything was done: safe to send again, a write included.
        wait = parse_retry_after((headers or {}).get("Retry-After"))
        return SalesforceServerError(
            f"Salesforce throttled {what} ({http}); it is retried after a backoff.",
            retry_after=wait,
            **common,
        )
    if status in _RETRYABLE_STATUS or code in TRANSIENT_CODES:
        if not repeatable:
            return SalesforceAmbiguousWriteError(
                f"Salesforce failed on {what} ({http}) after it was sent; it may or may not have been applied, "
                "so it is not repeated: look the records up before sending them again.",
                **common,
            )
        wait = parse_retry_after((headers or {}).get("Retry-After"))
        return SalesforceServerError(
            f"Salesforce failed on {what} ({http}); it is retried, and if it persists check "
            "status.salesforce.com.",
            retry_after=wait,
            **common,
        )
    if code in QUERY_CODES:
        return SalesforceQueryError(
            f"Salesforce cannot run {what} ({http}); correct the SOQL or the object and field names (the "
            "integration user must also be able to see them).",
            **common,
        )
    if status == 404 or code == "NOT_FOUND":
        return SalesforceNotFoundError(
            f"Salesforce does not know the target of {what} ({http}); check the object name or the record id.",
            **common,
        )
    if status == 403 or code in PERMISSION_CODES:
        return SalesforcePermissionError(
            f"Salesforce refused {what} for want of permission ({http}); give the connected app's run-as user "
            "the permission (API Enabled, object and field access) it needs.",
            **common,
        )
    if 400 <= status < 500:
        return SalesforceBadRequestError(
            f"Salesforce refused {what} ({http}); correct the request's values.", **common
        )
    return SalesforcePermanentError(f"Salesforce answered {http} to {what}.", **common)


def error_from_response(
    response: requests.Response, what: str, *, repeatable: bool = True
) -> SalesforceError:
    """The typed error of a failed ``requests`` reply (see :func:`error_from_reply`)."""
    return error_from_reply(
        response.status_code, response.content, what, repeatable=repeatable, headers=response.headers
    )


def error_from_simple_salesforce(exc: Exception, what: str, *, repeatable: bool = True) -> SalesforceError:
    """The typed error of an exception simple-salesforce raised for a failed reply.

    simple-salesforce keeps the status and the raw body (``exc.status``, ``exc.content``); its own
    message (URL and body) is not reused.
    """
    status = getattr(exc, "status", None)
    content = getattr(exc, "content", b"")
    if not isinstance(status, int):
        return SalesforcePermanentError(f"Salesforce failed on {what} ({type(exc).__name__}).")
    return error_from_reply(status, content, what, repeatable=repeatable)


def token_error_from_response(response: requests.Response, token_url: str) -> SalesforceError:
    """The typed error of a failed token request, naming which part of the connection is wrong.

    Salesforce's token endpoint answers 400 with ``invalid_client_id`` (unknown consumer key),
    ``invalid_client`` (wrong consumer secret), ``invalid_grant`` (the connected app has no
    client-credentials run-as user, or the flow is off), ``unsupported_grant_type``.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, Mapping) else {}
    code = str(body.get("error") or "").strip() or None
    description = str(body.get("error_description") or "").strip()
    said = f": {code}{' - ' + description[:200] if description else ''}" if code else ""
    common: dict[str, Any] = {"status": status, "error_code": code}
    if status in _RETRYABLE_STATUS or status == 429:
        return SalesforceServerError(
            f"Salesforce's token endpoint {token_url} failed (HTTP {status}{said}); it is retried, and if it "
            "persists check status.salesforce.com.",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            **common,
        )
    if code == "invalid_client_id":
        return SalesforceAuthError(
            f"Salesforce's token endpoint {token_url} does not know the consumer key (HTTP {status}{said}); "
            "put the connected app's consumer key into the connection's Consumer key field (a new app takes "
            "up to 10 minutes to become usable).",
            **common,
        )
    if code == "invalid_client":
        return SalesforceAuthError(
            f"Salesforce's token endpoint {token_url} refused the consumer secret (HTTP {status}{said}); put "
            "the connected app's consumer secret into the connection's Consumer secret field.",
            **common,
        )
    if code in ("invalid_grant", "unsupported_grant_type", "unauthorized_client"):
        return SalesforceAuthError(
            f"Salesforce's token endpoint {token_url} refused the client-credentials flow (HTTP {status}{said}); "
            "enable the Client Credentials Flow on the connected app and give it a run-as user.",
            **common,
        )
    if status in (400, 401, 403):
        return SalesforceAuthError(
            f"Salesforce's token endpoint {token_url} refused the consumer key and secret (HTTP {status}{said}); "
            "check both fields of the connection and that the host is the org's My Domain URL.",
            **common,
        )
    return SalesforcePermanentError(
        f"Salesforce's token endpoint {token_url} answered HTTP {status}{said}; check that the host is the "
        "org's My Domain URL (https://<domain>.my.salesforce.com).",
        **common,
    )


def transport_error(
    exc: requests.RequestException, where: str, what: str, *, repeatable: bool = True
) -> SalesforceError:
    """The typed error of a call that got no answer.

    :param exc: what requests raised.
    :param where: the server's URL, named in the message.
    :param what: the call, as messages name it.
    :param repeatable: whether the call may be sent again after it may have reached Salesforce;
        one that is not becomes :class:`SalesforceAmbiguousWriteError` unless it was never sent.
    """
    if isinstance(exc, requests.exceptions.SSLError) and not is_transport_drop(exc):
        if is_pin_mismatch(exc) or is_certificate_rejection(exc):
            return SalesforceTLSError(
                f"The TLS certificate of {where} could not be verified during {what}; set the connection's CA "
                "bundle to the PEM that signs it (only a sandbox or a TLS-inspecting proxy needs one)."
            )
        return SalesforceTLSError(
            f"The TLS handshake with {where} failed during {what}; check that the host is an https URL of the "
            "org's My Domain and trust its certificate with a CA bundle if it is not publicly signed."
        )
    kind = type(exc).__name__
    if not repeatable and not never_sent(exc):
        return SalesforceAmbiguousWriteError(
            f"The connection to Salesforce at {where} broke during {what} ({kind}) after it was sent; it may or "
            "may not have been applied, so it is not repeated: look the records up before sending them again."
        )
    return SalesforceUnreachableError(
        f"Salesforce at {where} did not answer {what} ({kind}); it is retried, and if it persists check the "
        "network and the connection's My Domain URL."
    )
