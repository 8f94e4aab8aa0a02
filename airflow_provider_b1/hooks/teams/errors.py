"""Microsoft Teams failures as typed errors, each one sentence naming the cause and the fix.

Three services answer, each in its own shape, all read here once: the identity platform's token
endpoint (``{error, error_description, error_codes}``), the Bot Connector (``{"error": {code,
message}}`` or ``{"message"}``), Graph (``{"error": {code, message}}``) and a Workflows webhook
(``{"error": {code, message}}``). No message carries a token, a secret or a webhook URL: a
webhook is named by its channel label or host only.
"""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.retry import parse_retry_after
from airflow_provider_b1.utils.tls import is_certificate_rejection, is_transport_drop, never_sent

_RETRYABLE = frozenset({500, 502, 503, 504})
DEFAULT_FIX = "check the app id, secret and tenant of the connection"


class TeamsError(B1ProviderError):
    """A failure talking to Microsoft Teams (webhook, Bot Connector, Graph or the token endpoint).

    :param message: one sentence naming the cause and the fix.
    :param status: HTTP status of the answer, when there was one.
    :param code: the service's own error code (``invalid_client``, ``ConversationNotFound``...).
    :param retry_after: seconds the service asked us to wait (429), when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class TeamsAuthError(TeamsError, PermanentError):
    """The token endpoint refused the app id / secret / tenant, or a fresh token was refused."""


class TeamsBadRequestError(TeamsError, PermanentError):
    """The service refused the message or the request (400): not a card, too large, bad member."""


class TeamsForbiddenError(TeamsError, PermanentError):
    """403: the bot is not installed for the user or team, or lacks a permission."""


class TeamsNotFoundError(TeamsError, PermanentError):
    """404: no such webhook, conversation, activity or user."""


class TeamsRateLimitedError(TeamsError, RetryableError):
    """429; ``retry_after`` holds the wait the service asked for."""


class TeamsServerError(TeamsError, RetryableError):
    """5xx."""


class TeamsUnreachableError(TeamsError, RetryableError):
    """No answer (DNS, refused or reset connection, timeout).

    :param sent: whether the request may have reached the service (a post is then not repeated).
    """

    def __init__(self, message: str, *, sent: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class TeamsTLSError(TeamsError, PermanentError):
    """The server's certificate could not be verified."""


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _code_and_message(body: dict[str, Any]) -> tuple[str | None, str | None]:
    error = body.get("error")
    if isinstance(error, dict):
        return _text(error.get("code")), _text(error.get("message"))
    if isinstance(error, str):  # the token endpoint
        description = _text(body.get("error_description")) or ""
        # AAD appends trace and correlation ids: keep the sentence only.
        return error, description.split(" Trace ID:")[0] or None
    return None, _text(body.get("message"))


def _said(code: str | None, message: str | None) -> str:
    """``: <code>: <message>`` as the service gave them (they carry no secret), else ``""``."""
    parts = [p.rstrip(".") for p in (code, message) if p]
    return ": " + ": ".join(parts) if parts else ""


def _text(value: Any) -> str | None:
    return value.strip()[:300] if isinstance(value, str) and value.strip() else None


def error_from_response(response: requests.Response, what: str, service: str) -> TeamsError:
    """The typed error of a failed webhook, Bot Connector or Graph call.

    A 401 reaches here only after the auth obtained a fresh token and sent the call once more
    (webhooks take none): the credentials themselves are then not accepted by that service.

    :param response: the failed answer.
    :param what: the call, as messages name it (``posting a card to Finance / General``).
    :param service: the service, as messages name it (``the Bot Connector``).
    """
    status = response.status_code
    code, message = _code_and_message(_body(response))
    said = _said(code, message)
    service = service[:1].upper() + service[1:]
    common: dict[str, Any] = {"status": status, "code": code}
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        when = f"after the {wait:g} s it asked for" if wait is not None else "after a backoff"
        return TeamsRateLimitedError(
            f"{service} throttled {what} (HTTP 429); it is retried {when}.", retry_after=wait, **common
        )
    if status in _RETRYABLE:
        return TeamsServerError(f"{service} failed on {what} (HTTP {status}{said}).", **common)
    if status == 401:
        if service == "the Workflows webhook":
            fix = "the webhook URL's signature is wrong or was regenerated: copy the URL from the workflow again"
        else:
            fix = (
                "a freshly issued token was refused: check that the connection's tenant, app id and endpoints "
                "belong together (and, for Graph, that the app has User.Read.All with admin consent)"
            )
        return TeamsAuthError(f"{service} refused {what} (HTTP 401{said}); {fix}.", **common)
    if status == 403:
        return TeamsForbiddenError(
            f"{service} refused {what} (HTTP 403{said}); install the bot for the user or team (a proactive "
            "message needs it), or grant the app the permission.",
            **common,
        )
    if status == 404:
        return TeamsNotFoundError(
            f"{service} does not know the target of {what} (HTTP 404{said}); check the id, the user or the "
            "webhook URL.",
            **common,
        )
    if status in (400, 413, 415, 422):
        return TeamsBadRequestError(f"{service} rejected {what} (HTTP {status}{said}).", **common)
    return TeamsError(f"{service} answered HTTP {status} to {what}{said}.", **common)


_AAD_FIXES = {
    7000215: "the app secret (password) is wrong or expired: create a new client secret",
    7000222: "the app secret (password) has expired: create a new client secret",
    700016: "the app id is not registered in this tenant: check the app id and tenant id",
    90002: "the tenant does not exist: check the tenant id",
    900023: "the tenant id is not a valid tenant id or domain",
    70011: "the scope is not granted to this app",
}


def token_error_from_response(response: requests.Response, token_url: str, who: str) -> TeamsError:
    """The typed error of a failed token request.

    :param response: the token endpoint's failed answer.
    :param token_url: the endpoint, named in the message (it holds no secret).
    :param who: the credentials, as messages name them (``the bot's app id and secret``).
    """
    status = response.status_code
    body = _body(response)
    code, message = _code_and_message(body)
    common: dict[str, Any] = {"status": status, "code": code}
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        when = f"after the {wait:g} s it asked for" if wait is not None else "after a backoff"
        return TeamsRateLimitedError(
            f"The token endpoint {token_url} throttled the token request (HTTP 429); it is retried {when}.",
            retry_after=wait,
            **common,
        )
    if status in _RETRYABLE:
        return TeamsServerError(f"The token endpoint {token_url} failed (HTTP {status}).", **common)
    codes = body.get("error_codes") if isinstance(body.get("error_codes"), list) else []
    fix = next((_AAD_FIXES[c] for c in codes if c in _AAD_FIXES), None)
    said = _said(code, message)
    if status in (400, 401):
        return TeamsAuthError(
            f"The token endpoint {token_url} refused {who} (HTTP {status}{said}); {fix or DEFAULT_FIX}.",
            **common,
        )
    return TeamsError(f"The token endpoint {token_url} answered HTTP {status}{said}.", **common)


def transport_error(exc: requests.RequestException, where: str, what: str) -> TeamsError:
    """The typed error of a call that got no answer.

    :param exc: what requests raised.
    :param where: the server, named in the message (never a webhook URL: its host only).
    :param what: the call, as messages name it.
    """
    if (
        isinstance(exc, requests.exceptions.SSLError)
        and is_certificate_rejection(exc)
        and not is_transport_drop(exc)
    ):
        return TeamsTLSError(
            f"The TLS certificate of {where} could not be verified during {what}; set the connection's CA bundle "
            "to the PEM that signs it (only a sandbox or a proxy needs one)."
        )
    return TeamsUnreachableError(
        f"{where} did not answer {what} ({type(exc).__name__}); check the network and the connection's URLs.",
        sent=not never_sent(exc),
    )
