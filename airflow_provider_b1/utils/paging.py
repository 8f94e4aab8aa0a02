"""Paging shared by every hook: one loop, one paginator per protocol, no read that loops forever.

A paginator is a small object that knows one protocol's paging (OData next links, Salesforce's
``nextRecordsUrl``, ServiceTitan's ``hasMore``/``continueFrom``, Looker's offsets). It turns a
response into a :class:`Page`: what the page carries and the next request, or ``None`` when
there is none. :func:`paginate` sends the requests and guards the loop, so each paginator stays a
few lines and none of them has to prove on its own that it terminates.

The guard stops a read that would never end, with a message naming the server and what was
read: the same next request twice, :data:`MAX_EMPTY_PAGES` empty pages in a row that still
point further, or more pages than an optional cap.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import requests

from airflow_provider_b1.exceptions import B1ProviderError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

MAX_EMPTY_PAGES = 3
"""Pages in a row with no record but a next request, after which a read is declared stuck."""

DEFAULT_HINT = "check the sort order and the server's paging settings"


class PagingLoopError(B1ProviderError):
    """The server's paging would never end (a repeated next request, empty pages, the page cap)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One response as a paginator reads it.

    :param content: what the page carries, in whatever form the hook wants to hand on (decoded
        records, or the records still encoded).
    :param empty: whether the page holds no record (empty pages are not handed on).
    :param next: the next request, ``None`` when this was the last page. Whatever the hook's
        ``send`` takes (a URL, a token, an offset); it must be hashable, as the loop guard
        remembers every one it has seen.
    """

    content: T
    empty: bool
    next: Hashable | None


class Paginator(Protocol[T_co]):
    """Reads one protocol's pages: implement :meth:`read` and, optionally, :attr:`hint`."""

    hint: str
    """Says what to check when the guard stops a read (e.g. ``check the $orderby ...``)."""

    def read(self, response: requests.Response) -> Page[T_co]:
        """Turn a response into its page and the next request (``None``: no more pages).

        :param response: a successful response of the previous request.
        """
        ...


def paginate(
    send: Callable[[Hashable | None], requests.Response],
    paginator: Paginator[T],
    *,
    source: str,
    what: str,
    max_pages: int | None = None,
    max_empty_pages: int = MAX_EMPTY_PAGES,
    error: Callable[[str], Exception] = PagingLoopError,
) -> Iterator[T]:
    """Send requests page after page and yield each non-empty page's content, until the last page.

    :param send: sends one request and returns its successful response (retries and errors are
        its business); called with ``None`` for the first request, then with each page's
        :attr:`Page.next`.
    :param paginator: reads the protocol's pages.
    :param source: the server, as messages name it (``"The Service Layer"``).
    :param what: what is being read, as messages name it (``"Invoices"``).
    :param max_pages: refuse to read more pages than this (``None``: no cap).
    :param max_empty_pages: empty pages in a row, each pointing further, after which the read
        is declared stuck.
    :param error: builds the exception the guard raises from its message (a hook passes its
        own error class).
    :raises PagingLoopError: (or what ``error`` builds) when the guard stops the read.
    """
    hint = getattr(paginator, "hint", None) or DEFAULT_HINT
    request: Hashable | None = None
    seen: set[Hashable] = set()
    pages = 0
    empty_in_a_row = 0
    while True:
        page = paginator.read(send(request))
        pages += 1
        if not page.empty:
            empty_in_a_row = 0
            yield page.content
        elif page.next is not None:
            empty_in_a_row += 1
            if empty_in_a_row >= max_empty_pages:
                raise error(
                    f"{source} sent {empty_in_a_row} empty pages of {what} in a row, each with a next link; "
                    "the read stops instead of looping (check the server's paging settings)."
                )
        if page.next is None:
            return
        if page.next in seen:
            raise error(
                f"{source} sent the same next link twice while reading {what}; the read stops instead of "
                f"looping forever ({hint})."
            )
        if max_pages is not None and pages >= max_pages:
            raise error(
                f"{source} still had more pages of {what} after {pages}, the most this read may take; the "
                f"read stops instead of looping forever ({hint}, or raise the page cap)."
            )
        seen.add(page.next)
        request = page.next
