"""Exceptions shared by every part of the provider.

Each external system's hook defines its own subclasses next to its protocol code; they all
derive from :class:`B1ProviderError` so a flow can tell "ours, already explained" from a bug.
Messages never carry a secret, token, session id or cookie.
"""

from __future__ import annotations


class B1ProviderError(Exception):
    """Base class of every error this provider raises on purpose."""


class RetryableError(B1ProviderError):
    """A failure that may succeed if the same call is made again later (5xx, reset, 429).

    :param retry_after: seconds the server asked us to wait, when it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(B1ProviderError):
    """A failure that no retry can fix: refused credentials, a configuration or mapping error, a bad
    param, a reconciliation difference.

    Tasks built on the sync engine fail at once on it, without spending Airflow's retries (which
    would only repeat the failure, and for SAP logins count towards the user's lock-out).
    """
