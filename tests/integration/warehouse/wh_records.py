"""Synthetic SAP records shaped like the Service Layer's: wide, nested, with user fields.

Deterministic from their numbers, so a test can build the same record twice, change one field,
or build a bad one on purpose.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

_BASE_DAY = dt.date(2024, 1, 1)

# Real records carry hundreds of properties, most of them null or "tNO"; the loader must keep
# what it was given in ``raw`` without tripping over any of them.
_WIDE = {f"U_Field{i:02d}": None for i in range(12)} | {
    f"Property{i:03d}": ("tNO" if i % 3 == 0 else None) for i in range(60)
}


def rows(loader, sql: str) -> list[tuple]:
    """Rows of a query on a loader's warehouse; ``{s}`` is the schema prefix (none on SQLite)."""
    if loader.dialect == "postgres":
        sql = sql.replace("{s}", f"{loader.schema}.")
        with loader.conn.cursor() as cur:
            cur.execute(sql)
            found = cur.fetchall()
        loader.conn.rollback()
        return [tuple(r) for r in found]
    return [tuple(r) for r in loader.conn.execute(sql.replace("{s}", "")).fetchall()]


def postgres_connection(pg: dict):
    """A psycopg connection to the test session's database (``pg_database`` fixture value)."""
    import psycopg

    return psycopg.connect(pg["dsn"])


def invoice(
    doc_entry: int,
    *,
    lines: int = 5,
    card_code: str | None = None,
    day: int | None = None,
    update_time: str = "13:14:45",
    wide: bool = True,
    **overrides: Any,
) -> dict:
    """A sales invoice with ``lines`` lines whose totals add up to ``DocTotal``."""
    day = doc_entry % 300 if day is None else day
    doc_date = (_BASE_DAY + dt.timedelta(days=day)).isoformat()
    document_lines = []
    for n in range(lines):
        quantity = 1 + (doc_entry + n) % 7
        price = round(10 + ((doc_entry * 31 + n * 17) % 9000) / 100, 2)
        document_lines.append(
            {
                "LineNum": n,
                "ItemCode": f"I{(doc_entry + n) % 500:05d}",
                "ItemDescription": f"Item {(doc_entry + n) % 500}\twith a tab",
                "Quantity": quantity,
                "Price": price,
                "UnitPrice": price,
                "LineTotal": round(quantity * price, 2),
                "Currency": "USD",
                "AccountCode": "410000",
                "TaxCode": "TX",
                "CostingCode": "PC1",
                "CostingCode2": None,
                "CostingCode3": None,
                "CostingCode4": None,
                "CostingCode5": None,
                "WarehouseCode": "01",
                "LineStatus": "bost_Open",
                **({"LineProperty01": None, "LineProperty02": "tNO"} if wide else {}),
            }
        )
    subtotal = round(sum(line["LineTotal"] for line in document_lines), 2)
    vat = round(subtotal * 0.08, 2)
    record = {
        "DocEntry": doc_entry,
        "DocNum": 100000 + doc_entry,
        "DocDate": doc_date + "T00:00:00Z",
        "DocDueDate": doc_date,
        "TaxDate": doc_date,
        "CardCode": card_code or f"C{doc_entry % 200:05d}",
        "CardName": f'Customer {doc_entry % 200}\\ "quoted"',
        "DocTotal": round(subtotal + vat, 2),
        "VatSum": vat,
        "DocCurrency": "USD",
        "DocRate": 1.0,
        "DocumentStatus": "bost_Open",
        "Cancelled": "tNO",
        "NumAtCard": f"EXT-{doc_entry}",
        "Comments": "line one\nline two" if doc_entry % 10 == 0 else None,
        "SalesPersonCode": -1,
        "CreateDate": doc_date,
        "CreateTime": "09:00:00",
        "UpdateDate": doc_date,
        "UpdateTime": update_time,
        "U_ExternalId": f"st-{doc_entry}",
        "DocumentLines": document_lines,
    }
    if wide:
        record |= _WIDE
    record.update(overrides)
    return record


def partner(card_code: str, **overrides: Any) -> dict:
    """A customer business partner."""
    return {
        "CardCode": card_code,
        "CardName": f"Partner {card_code}",
        "CardType": "cCustomer",
        "GroupCode": 100,
        "Currency": "USD",
        "Phone1": None,
        "EmailAddress": f"{card_code.lower()}@example.com",
        "FederalTaxID": None,
        "Valid": "tYES",
        "Frozen": "tNO",
        "CurrentAccountBalance": 0.0,
        "CreateDate": "2024-01-01",
        "CreateTime": "08:00:00",
        "UpdateDate": "2024-01-01",
        "UpdateTime": "08:00:00",
        "U_ExternalId": None,
        "BPAddresses": [{"AddressName": "Bill to", "City": "Chicago"}],
        **overrides,
    }
