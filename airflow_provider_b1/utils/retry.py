"""The retry policy every hook uses: tenacity, exponential backoff with jitter, ``Retry-After`` honoured.

A hook raises :class:`~airflow_provider_b1.exceptions.RetryableError` (or a subclass) for what
may succeed later (connection errors, 502/503/504, 429) and anything else for what will not.
The policy is bounded both in attempts and in total time, so no loop can run forever.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import time
from dataclasses import dataclass

import tenacity

from airflow_provider_b1.exceptions import RetryableError

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None) -> float | None:
    """Read an HTTP ``Retry-After`` value as seconds to wait from now.

    Both forms of RFC 9110 are understood: a number of seconds (``"7"``, also ``"0.5"``) and an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, measured against this machine's clock). The
    result is never negative: a date in the past, or a negative number, means "now".

    :param value: the header's value (``response.headers.get("Retry-After")``).
    :return: seconds, or ``None`` when the header is missing or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # an HTTP-date is GMT even when it fails to say so
            moment = moment.replace(tzinfo=dt.timezone.utc)
        seconds = moment.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a hook retries a retryable failure.

    :param max_attempts: attempts in all, the first one included.
    :param max_elapsed: seconds after which no new attempt starts.
    :param initial_wait: first backoff in seconds; doubled each time, with jitter.
    :param max_wait: upper bound of one backoff, also the cap of a server's ``Retry-After``.
    """

    max_attempts: int = 6
    max_elapsed: float = 300.0
    initial_wait: float = 0.5
    max_wait: float = 30.0

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), self.max_wait)
        return tenacity.wait_exponential_jitter(
            multiplier=self.initial_wait, max=self.max_wait, jitter=self.initial_wait
        )(state)

    def retrying(self, retry_on: type[BaseException] | tuple[type[BaseException], ...] = RetryableError):
        """Return a :class:`tenacity.Retrying` that retries ``retry_on`` under this policy.

        Use as ``for attempt in policy.retrying(): with attempt: ...`` or ``policy.retrying()(fn)``.
        The last exception is re-raised as it was (``reraise=True``), never wrapped.
        """
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(retry_on),
            stop=tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_after_delay(self.max_elapsed),
            wait=self._wait,
            reraise=True,
            before_sleep=_log_retry,
        )


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    # str(exc) is safe: our exceptions never carry secrets.
    log.warning("Attempt %d failed (%s); retrying in %.1f s", state.attempt_number, exc, wait)


DEFAULT_POLICY = RetryPolicy()
