"""What the hook reads from ServiceTitan: the record kinds, their paging, their money.

Endpoint knowledge is declared once, in :data:`KINDS`: which API module serves a kind, its
export (the incremental feed) and list endpoints, and which of its fields are money. Paging is
two small paginators on the shared :func:`~airflow_provider_b1.utils.paging.paginate` loop:

* **Exports** (``GET …/export/invoices?from=…``) answer ``{hasMore, continueFrom, data}``:
  ``continueFrom`` goes back as ``from`` while ``hasMore``, and the last one is where the next
  run starts. The last page is handed on even when it is empty, because it carries that token.
* **Lists** (``GET …/invoices?page=1&pageSize=…``) answer ``{page, pageSize, totalCount,
  hasMore, data}``: the page number goes up while ``hasMore``.

Money arrives as strings (``"120.00"``); :func:`money` reads one as an exact
:class:`~decimal.Decimal` and :func:`with_decimals` a whole record's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import requests

from airflow_provider_b1.hooks.servicetitan.errors import ServiceTitanError
from airflow_provider_b1.utils.paging import Page


@dataclass(frozen=True)
class Kind:
    """One kind of ServiceTitan record.

    :param name: the kind (``invoices``).
    :param module: the API module serving it (``accounting``).
    :param export: its export endpoint below the tenant (``export/invoices``).
    :param resource: its list endpoint below the tenant (``invoices``), which takes ``ids``.
    :param money: its money fields.
    :param nested_money: money fields of its lists of parts (``{"items": ("price", "total")}``).
    """

    name: str
    module: str
    export: str
    resource: str
    money: tuple[str, ...] = ()
    nested_money: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "invoices",
            "accounting",
            "export/invoices",
            "invoices",
            money=("subTotal", "salesTax", "total", "balance"),
            nested_money={"items": ("price", "total")},
        ),
        Kind(
            "payments",
            "accounting",
            "export/payments",
            "payments",
            money=("total", "unappliedAmount"),
            nested_money={"appliedTo": ("appliedAmount",)},
        ),
        Kind("customers", "crm", "export/customers", "customers", money=("balance",)),
    )
}
"""The kinds the hook reads by name: exports and lookups by id."""

IDS_PER_REQUEST = 50
"""ServiceTitan's most ids in one ``ids`` parameter."""


def kind_spec(kind: str) -> Kind:
    """The declaration of a kind.

    :raises ValueError: naming the kinds there are.
    """
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"ServiceTitan kind must be one of {', '.join(sorted(KINDS))}, not {kind!r}."
        ) from None


def money(value: Any) -> Decimal | None:
    """ServiceTitan's money (``"120.00"``, also a JSON number) as an exact :class:`~decimal.Decimal`.

    :param value: the field's value; ``None`` or an empty string give ``None``.
    :raises ValueError: for anything that is not a finite amount (naming it).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount of money.")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, (int, float, str)):
        try:
            # str() of a float is its shortest repr: 0.1 stays 0.1, not 0.1000000000000000055...
            amount = Decimal(value.strip() if isinstance(value, str) else str(value))
        except InvalidOperation:
            raise ValueError(f"{str(value)[:40]!r} is not an amount of money.") from None
    else:
        raise ValueError(f"{type(value).__name__} {str(value)[:40]!r} is not an amount of money.")
    if not amount.is_finite():
        raise ValueError(f"{str(value)[:40]!r} is not an amount of money.")
    return amount


def with_decimals(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` with its kind's money fields as :class:`~decimal.Decimal`.

    :param kind: the record's kind (``invoices``).
    :param record: the record as ServiceTitan sent it.
    :raises ValueError: naming the field that holds no amount.
    """
    spec = kind_spec(kind)
    copy = dict(record)
    for name in spec.money:
        if name in copy:
            copy[name] = _field_money(copy[name], name)
    for part, names in spec.nested_money.items():
        values = copy.get(part)
        if isinstance(values, list):
            copy[part] = [
                {
                    **item,
                    **{n: _field_money(item[n], f"{part}[{i}].{n}") for n in names if n in item},
                }
                if isinstance(item, dict)
                else item
                for i, item in enumerate(values)
            ]
    return copy


def _field_money(value: Any, name: str) -> Decimal | None:
    try:
        return money(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def export_from(start: Any) -> str | None:
    """The ``from`` of an export: a continuation token as given, a date or moment as ServiceTitan reads it.

    :param start: ``None`` (from the beginning), a token, a :class:`~datetime.date` or an aware
        :class:`~datetime.datetime` (sent in UTC, ``2024-03-01T00:00:00Z``).
    :raises ValueError: for a naive datetime or a blank token.
    """
    if start is None:
        return None
    if isinstance(start, dt.datetime):
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(
                "An export's start moment needs a time zone (e.g. tzinfo=datetime.timezone.utc)."
            )
        return start.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(start, dt.date):
        return start.isoformat()
    text = str(start).strip()
    if not text:
        raise ValueError("An export's start token is blank; pass None to read from the beginning.")
    return text


@dataclass(frozen=True)
class ExportPage:
    """One page of an export.

    :param records: the page's records, as ServiceTitan sent them.
    :param continue_from: the token that reads on after this page (the cursor to keep).
    :param has_more: whether ServiceTitan has more right now.
    """

    records: list[dict[str, Any]]
    continue_from: str | None
    has_more: bool


def decode(response: requests.Response, what: str) -> dict[str, Any]:
    """The JSON object of a successful answer.

    :raises ServiceTitanError: when the answer is not a JSON object.
    """
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        raise ServiceTitanError(
            f"ServiceTitan answered {what} with something other than a JSON object (HTTP {response.status_code}, "
            f"{response.headers.get('Content-Type') or 'no content type'}); check the connection's api_url.",
            status=response.status_code,
        )
    return body


def _data(body: dict[str, Any], what: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ServiceTitanError(f"ServiceTitan answered {what} with a 'data' that is not a list.")
    return data


class ExportPaginator:
    """``hasMore`` / ``continueFrom`` paging of an export; a page's next request is its token."""

    hint = "ServiceTitan kept handing back the same continueFrom"

    def __init__(self, what: str) -> None:
        self.what = what

    def read(self, response: requests.Response) -> Page[ExportPage]:
        body = decode(response, self.what)
        records = _data(body, self.what)
        token = body.get("continueFrom")
        token = str(token) if token not in (None, "") else None
        has_more = bool(body.get("hasMore"))
        if has_more and token is None:
            raise ServiceTitanError(
                f"ServiceTitan said it has more of {self.what} but sent no continueFrom to read it with."
            )
        following = token if has_more else None
        # The last page is handed on even when empty: it carries the token to start from next time.
        return Page(
            ExportPage(records, token, has_more), empty=not records and following is not None, next=following
        )


class ListPaginator:
    """``page`` / ``hasMore`` paging of a list endpoint; a page's next request is the next page number."""

    hint = "ServiceTitan kept saying hasMore past the last record"

    def __init__(self, what: str, first: int = 1) -> None:
        self.what = what
        self.page = first

    def read(self, response: requests.Response) -> Page[list[dict[str, Any]]]:
        body = decode(response, self.what)
        records = _data(body, self.what)
        number = body.get("page")
        current = int(number) if isinstance(number, int) and not isinstance(number, bool) else self.page
        self.page = current + 1
        following = self.page if body.get("hasMore") else None
        return Page(records, empty=not records, next=following)
