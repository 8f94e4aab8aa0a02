"""The org's daily API requests: read on every reply, and a guard that stops before a share of them.

Every REST reply carries ``Sforce-Limit-Info: api-usage=N/M``: the org's API requests in the last
24 hours and its allowance (the same count every user and integration of the org draws from).
When it is spent, every API call of the org is refused with 403 ``REQUEST_LIMIT_EXCEEDED``, the
org's own users' integrations included. A connection may therefore use at most a share of it
(``api_limit_share``, 80 % by default): :class:`ApiLimitGuard` reads the header on every reply
(a response hook of the hook's ``requests.Session``, so simple-salesforce's calls are seen too)
and :class:`GuardedAdapter` refuses to send a call that would take the usage past the share,
with :class:`~airflow_provider_b1.hooks.salesforce.errors.SalesforceApiLimitReached`.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from airflow_provider_b1.hooks.salesforce.errors import SalesforceApiLimitReached
from airflow_provider_b1.utils.tls import TlsAdapter

log = logging.getLogger(__name__)

_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")

DEFAULT_SHARE = 0.8
"""Share of the org's daily API requests a connection may use unless it says otherwise."""


class ApiUsage(NamedTuple):
    """The org's API requests in the last 24 hours, as the latest reply said.

    :param used: requests used.
    :param max: the org's daily allowance.
    """

    used: int
    max: int

    @property
    def share(self) -> float:
        """``used / max`` (0 when the allowance is 0)."""
        return self.used / self.max if self.max else 0.0

    @property
    def remaining(self) -> int:
        """Requests left in the rolling 24 hours."""
        return max(self.max - self.used, 0)


def parse_limit_info(value: str | None) -> ApiUsage | None:
    """Read ``api-usage=N/M`` from a ``Sforce-Limit-Info`` header (``None`` when absent or unreadable).

    ``per-app-api-usage=...`` in the same header is not the org's count and is ignored.
    """
    if not value:
        return None
    match = _API_USAGE.search(value)
    if not match:
        return None
    return ApiUsage(int(match.group(1)), int(match.group(2)))


def _percent(share: float) -> str:
    """``80`` for 0.8, ``80.5`` for 0.805: a connection's share as a person typed it."""
    return f"{share * 100:.1f}".rstrip("0").rstrip(".")


class ApiLimitGuard:
    """Keeps the org's latest API usage and refuses calls that would take it past ``share``.

    :param share: the part of the org's daily requests this connection may use (0 < share <= 1).
    """

    def __init__(self, share: float = DEFAULT_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"api_limit_share must be above 0 and at most 1, not {share!r}.")
        self.share = share
        self._usage: ApiUsage | None = None
        self._lock = threading.Lock()

    @property
    def usage(self) -> ApiUsage | None:
        """The org's usage as the latest reply said, ``None`` before the first reply."""
        return self._usage

    def observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """A ``requests`` response hook: remember the usage a reply reports."""
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            with self._lock:
                self._usage = usage
        return response

    def allowed(self) -> int | None:
        """The most requests this connection lets the org reach, ``None`` before the first reply."""
        usage = self._usage
        if usage is None:
            return None
        return int(usage.max * self.share)

    def check(self, calls: int = 1, *, what: str = "the next call") -> None:
        """Raise when ``calls`` more requests would take the org past the share.

        :param calls: how many requests are about to be made.
        :param what: the call, as the message names it.
        :raises SalesforceApiLimitReached: naming the usage, the share and what to do.
        """
        usage = self._usage
        if usage is None or usage.max <= 0:
            return
        allowed = usage.max * self.share
        if usage.used + calls <= allowed:
            return
        now = (
            f"Salesforce org at {usage.share * 100:.1f}% of its daily API requests ({usage.used}/{usage.max})"
        )
        limit = f"the {_percent(self.share)}% this connection allows (api_limit_share)"
        if usage.used > allowed:
            message = (
                f"{now}, over {limit}; stopping before {what} so that the org's own users are not starved"
            )
        else:
            message = (
                f"{now}; {what} would take it past {limit}; stopping before the org's own users are starved"
            )
        raise SalesforceApiLimitReached(
            message + " (raise api_limit_share, or run again when the rolling 24 hours free requests).",
            used=usage.used,
            limit=usage.max,
        )


class GuardedAdapter(TlsAdapter):
    """A :class:`~airflow_provider_b1.utils.tls.TlsAdapter` that asks the guard before each send.

    Mounted for every API call of the hook's session (the token request has its own, plain
    adapter: it does not count against the org's API requests). The check happens in the adapter,
    so it also covers calls simple-salesforce makes and the re-send after a renewed token.

    :param guard: the connection's :class:`ApiLimitGuard`.
    """

    def __init__(self, guard: ApiLimitGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.guard.check(what=f"{request.method} {urlsplit(request.url or '').path}")
        return super().send(request, **kwargs)
