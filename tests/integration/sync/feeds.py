"""An in-memory system of records as a source of the sync engine, in its two orders.

``keyset``: records in ``(modified, key)`` order, read strictly after a :class:`KeysetCursor`
(Salesforce's ``SystemModstamp`` + ``Id``). ``token``: a server-ordered export whose pages each
end with an opaque continuation token (ServiceTitan's ``continueFrom``). Both can fail after a
given number of pages, as a source that drops mid-read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_b1.sync import KeysetCursor, Page, Source, TableSink, TokenCursor


class Feed(Source):
    system = "feed"

    def __init__(self, records: Sequence[dict] = (), *, order: str = "keyset", page_size: int = 10) -> None:
        self.records: dict[str, dict] = {r["key"]: dict(r) for r in records}
        self.order = order
        self.page_size = page_size
        self.fail_after: int | None = None
        self.pages_read = 0

    def put(self, key: str, **fields: Any) -> None:
        self.records[key] = {"key": key, **fields}

    def _sorted(self) -> list[dict]:
        return sorted(self.records.values(), key=lambda r: (r["modified"], r["key"]))

    def read(self, stream, start, *, until) -> Iterator[Page]:
        rows = self._sorted()
        if self.order == "keyset":
            rows = [r for r in rows if start is None or start.is_new((r["modified"], r["key"]))]
            offset = 0
        else:
            offset = int(start.token.removeprefix("pos-")) if start is not None else 0
            rows = rows[offset:]
        for index in range(0, len(rows), self.page_size):
            if self.fail_after is not None and self.pages_read >= self.fail_after:
                raise ConnectionError("the feed dropped the connection")
            page = rows[index : index + self.page_size]
            self.pages_read += 1
            if self.order == "keyset":
                reached = KeysetCursor((page[-1]["modified"], page[-1]["key"]))
            else:
                reached = TokenCursor(f"pos-{offset + index + len(page)}")
            yield Page(page, reached=reached, resumable=True)

    def read_keys(self, stream, keys) -> Iterator[Page]:
        found = [self.records[k] for k in keys if k in self.records]
        if found:
            yield Page(found)


def amount_row(record: dict) -> dict:
    """The mapping every test target uses: a bad amount fails its record."""
    amount = record.get("amount")
    if not isinstance(amount, (int, float)) or amount < 0:
        raise ValueError(f"amount {amount!r} is not a positive number")
    return {"key": record["key"], "name": record.get("name"), "amount": amount}


def table_sink(database, conn=None, *, schema=None, cls=TableSink) -> TableSink:
    """The test target: table ``thing`` (``key``, ``name``, ``amount``) as ``cls``, a TableSink."""
    return cls(
        conn if conn is not None else database.connect(),
        "thing",
        key="key",
        columns={"name": "text", "amount": "num"},
        map=amount_row,
        schema=schema,
        system="target",
        database=database,
    )


def records(n: int, *, start: int = 0, minute: int = 0) -> list[dict]:
    return [
        {
            "key": f"k{i:04d}",
            "name": f"thing {i}",
            "amount": i,
            "modified": f"2024-05-01T10:{minute:02d}:{i % 60:02d}",
        }
        for i in range(start, start + n)
    ]
