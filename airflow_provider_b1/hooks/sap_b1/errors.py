"""SAP Business One Service Layer errors: the typed exceptions and how replies map onto them.

Every message names the cause and the fix in one sentence. None carries a password, session
id or cookie: messages are built from the status, SAP's code and SAP's own message text only,
and transport errors are summarised instead of repeating urllib3's nested reprs.

Three families, by what a retry can do: :class:`~airflow_provider_b1.exceptions.RetryableError`
(the server is down, busy or restarting: the same call may succeed later),
:class:`~airflow_provider_b1.exceptions.PermanentError` (refused credentials, an unknown company,
a locked user, an untrusted certificate, a missing authorisation: no retry can fix them, and a
retried login even counts towards the user's lock-out), and the rest (business refusals, not
found, conflicts, ambiguous writes), which the caller decides about.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.retry import parse_retry_after
from airflow_provider_b1.utils.tls import (
    _chain,
    is_certificate_rejection,
    is_pin_mismatch,
    is_transport_drop,
)

# Re-exported for code that imports it from here; it lives with the other transport checks.
from airflow_provider_b1.utils.tls import never_sent as never_sent

SESSION_EXPIRED_CODES: frozenset[int] = frozenset({301, -5002})
"""Codes of "invalid session or session already timeout" (401): log in again, retry once."""

NOT_FOUND_CODES: frozenset[int] = frozenset({-2028})
CONFLICT_CODES: frozenset[int] = frozenset({-2039})
PERMISSION_CODES: frozenset[int] = frozenset({804})

LOGIN_FAILED_CODES: frozenset[int] = frozenset({100000027, -304})
"""Wrong user name or password."""

COMPANY_CODES: frozenset[int] = frozenset({-1102, -111, -4008, 100000048})
"""Company database unknown to the Service Layer (wrong name, or wrong case)."""

LOCKED_CODES: frozenset[int] = frozenset({10000962, -1107, -4010, 100000053})
"""SAP user locked after repeated failures, or deactivated."""

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})

LOCK_OUT_NOTE = (
    "retrying would count towards SAP's lock-out of the user (SAP locks a user after a few refused "
    "logins in a row), so fix the connection first."
)
"""Why a refused login is never tried again, said in every such error."""


class SapB1Error(B1ProviderError):
    """An error reported by, or on the way to, the SAP Business One Service Layer.

    :param message: one sentence naming the cause and the fix.
    :param status: HTTP status, when a reply arrived.
    :param code: SAP's error code: an ``int`` when numeric (v1 sends numbers, v2 numeric
        strings), else the string as sent.
    :param sap_message: SAP's own message text.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        sap_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.status = status
        self.code = code
        self.sap_message = sap_message
        self.retry_after = retry_after


class SapB1LoginError(SapB1Error, PermanentError):
    """Login refused: wrong user name, password or company database."""


class SapB1CompanyError(SapB1LoginError):
    """The company database named in the connection is unknown to the Service Layer."""


class SapB1UserLockedError(SapB1LoginError):
    """The SAP user is locked (or deactivated) and must be unlocked by an administrator."""


class SapB1LoginBusyError(SapB1Error, RetryableError):
    """Another task held the login lock for longer than a login may take; worth trying again later.

    The wait itself already took the whole login budget, so the hook's own retries leave it to
    the task's retries instead of waiting again.
    """


class SapB1SessionExpiredError(SapB1Error, RetryableError):
    """The session was refused again right after a fresh login (401 with code 301 or -5002).

    SAP refused the request before doing anything, so it is safe to send again, even a write:
    the hook's retry policy sends it again with a fresh session, a bounded number of times.
    """


class SapB1UnauthorizedError(SapB1Error):
    """401 without SAP's session codes: something between the worker and SAP asks for credentials."""


class SapB1RequestTooLongError(SapB1Error):
    """The request line is longer than the Service Layer's web server accepts (Apache: 8,190 bytes; 414).

    Raised before sending when the hook can tell, or from the server's 414. A lookup by a value
    this long cannot be made in a URL at all: the record that needs it fails alone.
    """


class SapB1BusinessError(SapB1Error):
    """SAP refused the request on business grounds (code -10 and friends): fix the data."""


class SapB1NotFoundError(SapB1Error):
    """The entity or record does not exist (404, code -2028)."""


class SapB1ConflictError(SapB1Error):
    """The record changed since it was read (412, code -2039 ETag mismatch)."""


class SapB1PermissionError(SapB1Error, PermanentError):
    """The SAP user lacks the authorisation for this data (403, code 804)."""


class SapB1TLSError(SapB1Error, PermanentError):
    """The Service Layer's certificate was not trusted (or not the pinned one), or the TLS handshake failed.

    A connection dropped in the middle of TLS is not this error but :class:`SapB1UnreachableError`.
    """


class SapB1UnreachableError(SapB1Error, RetryableError):
    """No connection to the Service Layer (refused, timed out, reset before the request left)."""


class SapB1ServerError(SapB1Error, RetryableError):
    """The Service Layer answered 429, 502, 503 or 504: worth trying again later."""


class SapB1AmbiguousWriteError(SapB1Error):
    """A write was sent but its outcome is unknown (reset, timeout or 5xx after sending).

    Never retried blindly: the caller must look the record up by a natural key first.
    """


def normalise_code(code: Any) -> int | str | None:
    """Return SAP's error code as an ``int`` when it is numeric, else as the string sent."""
    if code is None or code == "":
        return None
    if isinstance(code, bool):
        return str(code)
    if isinstance(code, int):
        return code
    text = str(code).strip()
    try:
        return int(text)
    except ValueError:
        return text


def parse_error_body(body: bytes | str | dict | None) -> tuple[int | str | None, str | None]:
    """Read ``(code, message)`` out of a v1 or v2 Service Layer error body.

    v1: ``{"error": {"code": 301, "message": {"lang": "en-us", "value": "..."}}}``;
    v2: ``{"error": {"code": "301", "message": "..."}}``. Anything else gives ``(None, None)``.

    :param body: the raw reply body, or an already decoded document.
    """
    document: Any = body
    if isinstance(body, (bytes, str)):
        try:
            document = json.loads(body) if body else None
        except ValueError:
            return None, None
    if not isinstance(document, dict):
        return None, None
    error = document.get("error")
    if not isinstance(error, dict):
        return None, None
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    text = str(message).strip() if message not in (None, "") else None
    return normalise_code(error.get("code")), text


def _detail(status: int, code: int | str | None, sap_message: str | None) -> str:
    parts = [f"HTTP {status}"]
    if code is not None:
        parts.append(f"SAP code {code}")
    text = ", ".join(parts)
    return f"{text}: {sap_message}" if sap_message else text


def is_session_expired(response: requests.Response) -> bool:
    """Whether a reply says "log in again": 401 with code 301 or -5002 (numeric or string)."""
    if response.status_code != 401:
        return False
    code, _ = parse_error_body(response.content)
    return code in SESSION_EXPIRED_CODES


def error_from_response(
    response: requests.Response, what: str, *, method: str = "GET", repeatable: bool | None = None
) -> SapB1Error:
    """Turn a non-2xx reply into the typed error that explains it, naming the verb that failed.

    :param response: the reply.
    :param what: what was asked, for the message (entity or path, never a query with values
        that could be secret: callers pass the entity path).
    :param method: HTTP verb of the call that failed (``PATCH``, not the ``GET`` it may be
        retried like), named in every message.
    :param repeatable: whether the call may be sent again after it reached the server (default:
        only GET and HEAD): a 5xx after a call that is not is reported as an ambiguous write.
    """
    status = response.status_code
    code, sap_message = parse_error_body(response.content)
    detail = _detail(status, code, sap_message)
    kwargs: dict[str, Any] = {"status": status, "code": code, "sap_message": sap_message}
    safe = method in ("GET", "HEAD") if repeatable is None else repeatable
    call = f"{method} {what}"
    if status == 429 or status in RETRYABLE_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if not safe and status != 429:
            return SapB1AmbiguousWriteError(
                f"The Service Layer answered {call} with {detail}, so whether the write "
                "happened is unknown; look the record up before sending it again.",
                **kwargs,
            )
        return SapB1ServerError(
            f"The Service Layer is overloaded or restarting ({call}: {detail}); "
            "the call is retried with backoff, and if it keeps failing check the Service Layer / Service Manager.",
            retry_after=retry_after,
            **kwargs,
        )
    if status == 414:
        return SapB1RequestTooLongError(
            f"The web server in front of the Service Layer refused {call} because its URL is too long "
            f"({detail}); shorten the filter or the values in it.",
            **kwargs,
        )
    if status == 403 or code in PERMISSION_CODES:
        return SapB1PermissionError(
            f"The SAP user may not {call} ({detail}); grant the user authorisation for it in SAP "
            "(Administration > System Initialization > Authorizations).",
            **kwargs,
        )
    if status == 404 or code in NOT_FOUND_CODES:
        return SapB1NotFoundError(
            f"{call} failed: not found ({detail}); check the entity name and key.", **kwargs
        )
    if status == 412 or code in CONFLICT_CODES:
        return SapB1ConflictError(
            f"{call} failed: the record was changed by someone else since it was read ({detail}); read it "
            "again and re-apply the change.",
            **kwargs,
        )
    if status == 401 and code in SESSION_EXPIRED_CODES:
        return SapB1SessionExpiredError(
            f"The Service Layer refused the session for {call} even after a fresh login ({detail}); the call "
            "is retried with a new session a few times, and if it keeps failing check that the Service Layer "
            "is not being restarted and that the user's licence is assigned.",
            **kwargs,
        )
    if status == 401:
        return SapB1UnauthorizedError(
            f"{call} was refused as unauthorised ({detail}) without SAP's session codes; check that the URL "
            "points at the Service Layer and not at a proxy that asks for its own credentials.",
            **kwargs,
        )
    if 400 <= status < 500:
        return SapB1BusinessError(
            f"SAP rejected {call} ({detail}); fix the request data as SAP's message says.",
            **kwargs,
        )
    if not safe:
        return SapB1AmbiguousWriteError(
            f"The Service Layer failed on {call} ({detail}), so whether the write happened "
            "is unknown; look the record up before sending it again.",
            **kwargs,
        )
    return SapB1Error(
        f"The Service Layer failed on {call} ({detail}); check the Service Layer logs on the SAP server.",
        **kwargs,
    )


def login_error_from_response(
    response: requests.Response, company: str | None, user: str | None
) -> SapB1Error:
    """Turn a refused ``POST Login`` into a login, company or locked-user error.

    :param response: the reply to the login.
    :param company: company database asked for (not a secret: it names what to fix).
    :param user: user name (not a secret).
    """
    status = response.status_code
    code, sap_message = parse_error_body(response.content)
    detail = _detail(status, code, sap_message)
    kwargs: dict[str, Any] = {"status": status, "code": code, "sap_message": sap_message}
    if status in RETRYABLE_STATUSES:
        return SapB1ServerError(
            f"The Service Layer could not log in right now ({detail}); the login is retried, and if it keeps "
            "failing check the Service Layer / Service Manager.",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            **kwargs,
        )
    if code in LOCKED_CODES:
        return SapB1UserLockedError(
            f"The SAP user {user!r} is locked ({detail}); an administrator must unlock the user in SAP "
            "(Administration > Setup > General > Users) before the connection can log in. Not retried: "
            f"{LOCK_OUT_NOTE}",
            **kwargs,
        )
    if code in COMPANY_CODES:
        return SapB1CompanyError(
            f"The Service Layer does not know the company database {company!r} ({detail}); fix the "
            "connection's company database (schema): company database names are case-sensitive.",
            **kwargs,
        )
    if status >= 500:
        return SapB1Error(
            f"The Service Layer failed during login ({detail}); check the Service Layer logs and the "
            "SLD / license service on the SAP server.",
            **kwargs,
        )
    return SapB1LoginError(
        f"Login to company {company!r} as {user!r} failed ({detail}); check the user name and password "
        f"and the company database (names are case-sensitive). Not retried: {LOCK_OUT_NOTE}",
        **kwargs,
    )


def transport_error(
    exc: requests.RequestException,
    base_url: str,
    *,
    method: str,
    sent: bool,
    repeatable: bool | None = None,
    what: str | None = None,
) -> SapB1Error:
    """Turn a requests / urllib3 exception into one explained error, without urllib3's frames.

    :param exc: the exception.
    :param base_url: the Service Layer root, named in the message so the user sees where.
    :param method: HTTP verb of the call, named in the message.
    :param sent: whether the request may have reached the server. A write that may have reached
        it becomes :class:`SapB1AmbiguousWriteError`; everything else that a retry may fix is
        :class:`SapB1UnreachableError`.
    :param repeatable: whether the call may be sent again after it reached the server (default:
        only GET and HEAD).
    :param what: the entity or path of the call, for the message.
    """
    safe = method in ("GET", "HEAD") if repeatable is None else repeatable
    call = f"{method} {what}" if what else method
    if isinstance(exc, requests.exceptions.SSLError) and not is_transport_drop(exc):
        if is_pin_mismatch(exc):
            return SapB1TLSError(
                f"The Service Layer at {base_url} presented a certificate whose SHA-256 fingerprint differs from "
                "the pinned one; if the certificate was renewed on purpose, pin the new fingerprint "
                "(extra cert_fingerprint), otherwise treat it as an interception attempt.",
            )
        if is_certificate_rejection(exc):
            return SapB1TLSError(
                f"The Service Layer at {base_url} presented a certificate that is not trusted; trust the "
                "certificate with a CA bundle (extra ca_bundle) or a pinned SHA-256 fingerprint "
                "(extra cert_fingerprint) in the connection.",
            )
        return SapB1TLSError(
            f"The TLS handshake with {base_url} failed ({type(_root(exc)).__name__}); check that the URL's "
            "scheme and port match the Service Layer (https on 50000, http on 50001) and trust the "
            "certificate with a CA bundle or a pinned fingerprint.",
        )
    kind = type(_root(exc)).__name__
    if not sent:
        return SapB1UnreachableError(
            f"Cannot connect to the Service Layer at {base_url} for {call} ({kind}); check that the Service Layer / "
            "Service Manager is running and that port 50000 is reachable from the worker.",
        )
    if safe:
        return SapB1UnreachableError(
            f"The connection to the Service Layer at {base_url} broke during {call} ({kind}); the call is "
            "retried, and if it keeps failing check the Service Layer / Service Manager and the network.",
        )
    return SapB1AmbiguousWriteError(
        f"The connection to {base_url} broke after {call} was sent ({kind}), so whether the write "
        "happened is unknown; look the record up before sending it again.",
    )


def _reasons(exc: BaseException) -> list[Any]:
    return list(_chain(exc))


def _root(exc: BaseException) -> BaseException:
    """The innermost exception, for a short type name in messages (``ConnectionResetError``)."""
    innermost: BaseException = exc
    for item in _reasons(exc):
        if isinstance(item, BaseException) and not isinstance(item, requests.RequestException):
            innermost = item
    return innermost
