"""ServiceTitan's failures as typed errors, each one sentence naming the cause and the fix.

ServiceTitan answers errors as RFC 7807 problem+json (``{type, title, status, traceId,
errors}``); its token endpoint answers OAuth errors (``{"error": "invalid_client"}``). Both are
read here, once. The ``traceId`` is kept on the error (ServiceTitan support asks for it); no
token, secret or app key is ever part of a message.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.retry import parse_retry_after
from airflow_provider_b1.utils.tls import is_certificate_rejection, is_transport_drop

_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*seconds?\b", re.IGNORECASE)
_RETRYABLE = frozenset({500, 502, 503, 504})


class ServiceTitanError(B1ProviderError):
    """A failure talking to ServiceTitan.

    :param message: one sentence naming the cause and the fix.
    :param status: HTTP status of the answer, when there was one.
    :param title: ServiceTitan's own ``title`` (problem+json) or OAuth ``error``.
    :param trace_id: ServiceTitan's ``traceId``, for its support.
    :param retry_after: seconds ServiceTitan asked us to wait (429), when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str | None = None,
        trace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.trace_id = trace_id
        self.retry_after = retry_after


class ServiceTitanAuthError(ServiceTitanError, PermanentError):
    """The token endpoint refused the client id / secret (or the token kept being refused)."""


class ServiceTitanAppKeyError(ServiceTitanError, PermanentError):
    """The API refused the application key (``ST-App-Key``)."""


class ServiceTitanTenantError(ServiceTitanError, PermanentError):
    """The tenant id is unknown, or the tenant has not connected this application."""


class ServiceTitanPermissionError(ServiceTitanError, PermanentError):
    """The application may not read or write this resource (HTTP 403): a missing API scope."""


class ServiceTitanNotFoundError(ServiceTitanError):
    """ServiceTitan answered 404 for an existing tenant: no such record or endpoint."""


class ServiceTitanBadRequestError(ServiceTitanError, PermanentError):
    """ServiceTitan rejected the request's parameters or body (400/422)."""

    def __init__(self, message: str, *, errors: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors or {}


class ServiceTitanRateLimitedError(ServiceTitanError, RetryableError):
    """ServiceTitan answered 429; ``retry_after`` holds the wait it asked for."""


class ServiceTitanServerError(ServiceTitanError, RetryableError):
    """ServiceTitan answered 5xx."""


class ServiceTitanUnreachableError(ServiceTitanError, RetryableError):
    """No answer (DNS, refused or reset connection, timeout)."""


class ServiceTitanTLSError(ServiceTitanError, PermanentError):
    """The server's certificate could not be verified."""


class ServiceTitanPagingError(ServiceTitanError, PermanentError):
    """ServiceTitan's paging would never end (the same continuation twice, endless empty pages)."""


def problem(response: requests.Response) -> dict[str, Any]:
    """The problem+json (or OAuth error) body of a failed answer, ``{}`` when there is none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def retry_after_of(response: requests.Response, body: dict[str, Any] | None = None) -> float | None:
    """Seconds a 429 asks for: ``Retry-After``, else the "… N seconds." of the problem's title or detail.

    The longer of the two when both are given: waiting less than either would be refused again.
    """
    header = parse_retry_after(response.headers.get("Retry-After"))
    body = problem(response) if body is None else body
    said = None
    for field in ("title", "detail"):
        text = _text(body.get(field))
        match = _SECONDS.search(text) if text else None
        if match:
            said = float(match.group(1))
            break
    waits = [w for w in (header, said) if w is not None]
    return max(waits) if waits else None


def _said(body: dict[str, Any]) -> str:
    """``: <title> (<detail>)`` as ServiceTitan gave them (they carry no secret), else ``""``."""
    title = _text(body.get("title")) or _text(body.get("error_description")) or _text(body.get("error"))
    detail = _text(body.get("detail"))
    if not title:
        return f": {detail[:200].rstrip('.')}" if detail else ""
    said = f": {title[:200].rstrip('.')}"
    return f"{said} ({detail[:200].rstrip('.')})" if detail else said


def _details(body: dict[str, Any]) -> str:
    errors = body.get("errors")
    if not isinstance(errors, dict) or not errors:
        return ""
    parts = []
    for field, messages in list(errors.items())[:5]:
        if isinstance(messages, list):
            messages = "; ".join(str(m) for m in messages[:3])
        parts.append(f"{field}: {str(messages)[:200]}")
    return " (" + ", ".join(parts) + ")"


def error_from_response(response: requests.Response, what: str, *, tenant: str) -> ServiceTitanError:
    """The typed error of an API call's failed answer (not the token endpoint's).

    A 401 reaches here only after the client's auth obtained a fresh token and sent the call
    once more: the token itself is then not the problem, so it is the app key (or, when
    ServiceTitan says so, the token's application).

    :param response: the failed answer.
    :param what: the call, as messages name it (``reading customers``).
    :param tenant: the tenant id, named in tenant errors.
    """
    status = response.status_code
    body = problem(response)
    said = _said(body)
    common: dict[str, Any] = {
        "status": status,
        "title": _text(body.get("title")),
        "trace_id": _text(body.get("traceId")) or response.headers.get("traceparent"),
    }
    if status == 429:
        wait = retry_after_of(response, body)
        when = f"after the {wait:g} s it asked for" if wait is not None else "after a backoff"
        return ServiceTitanRateLimitedError(
            f"ServiceTitan rate-limited {what} (HTTP 429); it is retried {when}.", retry_after=wait, **common
        )
    if status in _RETRYABLE:
        return ServiceTitanServerError(
            f"ServiceTitan failed on {what} (HTTP {status}{said}); it is retried, and if it persists check "
            "ServiceTitan's status page.",
            **common,
        )
    if status == 401:
        if response.headers.get("WWW-Authenticate"):
            # A bearer challenge to a token the token endpoint has just issued: the two are not
            # the same environment.
            return ServiceTitanAuthError(
                f"ServiceTitan refused a freshly issued access token for {what} (HTTP 401{said}); the token "
                "endpoint and the API are not the same environment: check the connection's environment, "
                "auth_url and api_url.",
                **common,
            )
        return ServiceTitanAppKeyError(
            f"ServiceTitan refused {what} for want of a valid application key (HTTP 401{said}); put the app key "
            "of the application whose client id and secret the connection holds into its App key field.",
            **common,
        )
    if status in (403, 404):
        cause = refusal_cause(body)
        if cause == "app_key":
            return ServiceTitanAppKeyError(
                f"ServiceTitan refused the application key for {what} (HTTP {status}{said}); put the app key of "
                "the application whose client id and secret the connection holds into its App key field.",
                **common,
            )
        if cause == "tenant":
            return ServiceTitanTenantError(
                f"ServiceTitan refused tenant {tenant} for {what} (HTTP {status}{said}); check the connection's "
                "tenant id and that this tenant has connected the application (Settings > Integrations > API "
                "Application Access).",
                **common,
            )
    if status == 403:
        return ServiceTitanPermissionError(
            f"ServiceTitan refused {what} for want of permission (HTTP 403{said}); add the API scope it needs "
            "to the application and have the tenant reconnect it.",
            **common,
        )
    if status == 404:
        return ServiceTitanNotFoundError(
            f"ServiceTitan does not know the target of {what} (HTTP 404{said}); check the id or the path.",
            **common,
        )
    if status in (400, 409, 422):
        return ServiceTitanBadRequestError(
            f"ServiceTitan rejected {what} (HTTP {status}{said}{_details(body)}); correct the request's values.",
            errors=body.get("errors") if isinstance(body.get("errors"), dict) else None,
            **common,
        )
    return ServiceTitanError(f"ServiceTitan answered HTTP {status} to {what}{said}.", **common)


_APP_KEY_WORDS = ("st-app-key", "app key", "app-key", "appkey", "application key")


def refusal_cause(body: dict[str, Any]) -> str | None:
    """What a 403 / 404 problem refuses: ``"app_key"``, ``"tenant"`` or ``None`` (something else).

    ServiceTitan's problem bodies carry no code that tells these apart, only the words of their
    ``title`` and ``detail`` (``"Access denied: the ST-App-Key is not valid."``, ``"The
    application has no access to tenant 42."``); this is the one place that reads them.
    """
    words = " ".join(_text(body.get(f)) or "" for f in ("title", "detail")).lower()
    if any(w in words for w in _APP_KEY_WORDS):
        return "app_key"
    if "tenant" in words:
        return "tenant"
    return None


def token_error_from_response(response: requests.Response, token_url: str) -> ServiceTitanError:
    """The typed error of a failed token request.

    :param response: the token endpoint's failed answer.
    :param token_url: the endpoint, named in the message.
    """
    status = response.status_code
    body = problem(response)
    common: dict[str, Any] = {
        "status": status,
        "title": _text(body.get("error")) or _text(body.get("title")),
        "trace_id": _text(body.get("traceId")),
    }
    if status == 429:
        wait = retry_after_of(response, body)
        when = f"after the {wait:g} s it asked for" if wait is not None else "after a backoff"
        return ServiceTitanRateLimitedError(
            f"ServiceTitan's token endpoint rate-limited the token request (HTTP 429); it is retried {when}.",
            retry_after=wait,
            **common,
        )
    if status in _RETRYABLE:
        return ServiceTitanServerError(
            f"ServiceTitan's token endpoint {token_url} failed (HTTP {status}); it is retried, and if it persists "
            "check ServiceTitan's status page.",
            **common,
        )
    if status in (400, 401, 403):
        return ServiceTitanAuthError(
            f"ServiceTitan's token endpoint {token_url} refused the client id and secret (HTTP {status}"
            f"{_said(body)}); put the client id and secret of this tenant's API application into the "
            "connection's Client ID and Client secret, and pick the environment they were issued for.",
            **common,
        )
    return ServiceTitanError(
        f"ServiceTitan's token endpoint {token_url} answered HTTP {status}{_said(body)}; check the connection's "
        "environment (or auth_url).",
        **common,
    )


def transport_error(exc: requests.RequestException, where: str, what: str) -> ServiceTitanError:
    """The typed error of a call that got no answer.

    :param exc: what requests raised.
    :param where: the server's URL, named in the message.
    :param what: the call, as messages name it.
    """
    if (
        isinstance(exc, requests.exceptions.SSLError)
        and is_certificate_rejection(exc)
        and not is_transport_drop(exc)
    ):
        return ServiceTitanTLSError(
            f"The TLS certificate of {where} could not be verified during {what}; set the connection's CA bundle "
            "to the PEM that signs it (only a sandbox or a proxy needs one)."
        )
    return ServiceTitanUnreachableError(
        f"ServiceTitan at {where} did not answer {what} ({type(exc).__name__}); it is retried, and if it persists "
        "check the network and the connection's environment."
    )
