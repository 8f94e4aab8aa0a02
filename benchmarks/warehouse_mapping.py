"""CPU per record of mapping SAP invoices for the warehouse, against its floor in the same run.

No server: records are generated once as the JSON bytes a Service Layer sends, then

* **floor**: what any loader must do with a record's bytes at least: decode them
  (msgspec, into dicts) and hash them (SHA-256, the payload hash);
* **map_raw**: the warehouse's mapper (:attr:`EntitySpec.map_raw`): only the mapped properties
  decoded, every amount kept exactly (a fraction a float would not hold exactly becomes a
  Decimal) and checked against ``NUMERIC(19,6)``, integers against ``INTEGER``, NUL looked for,
  the row and child rows built, the hash taken.

Prints microseconds of CPU per record (best of ``--repeats``) and the ratio map_raw / floor, so
that the mapper's own cost cannot creep unseen: ``python -m benchmarks.warehouse_mapping``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time

import msgspec

from airflow_provider_b1.warehouse.entities import ENTITIES


def _invoice(number: int, lines: int, rng: random.Random) -> dict:
    rows = []
    for line in range(lines):
        quantity = rng.randint(1, 9)
        price = round(rng.uniform(5, 900), 2)
        rows.append(
            {
                "LineNum": line,
                "ItemCode": f"I{rng.randint(0, 499):05d}",
                "ItemDescription": f"Item {line} with a 'quote' and é",
                "Quantity": quantity,
                "Price": price,
                "UnitPrice": price,
                "LineTotal": round(quantity * price, 2),
                "AccountCode": "410000",
                "CostingCode": "PC1",
                "WarehouseCode": "01",
                "LineStatus": "bost_Open",
                **{f"LineProperty{n:02d}": None for n in range(40)},
            }
        )
    total = round(sum(r["LineTotal"] for r in rows) * 1.08, 2)
    return {
        "DocEntry": number,
        "DocNum": 100000 + number,
        "DocDate": "2024-05-01T00:00:00Z",
        "DocDueDate": "2024-05-31T00:00:00Z",
        "CardCode": f"C{number % 200:05d}",
        "CardName": f"Customer {number % 200}",
        "DocTotal": total,
        "VatSum": round(total - total / 1.08, 2),
        "DocCurrency": "USD",
        "DocRate": 1.0,
        "DocumentStatus": "bost_Open",
        "Cancelled": "tNO",
        "Comments": None,
        "UpdateDate": "2024-05-01T00:00:00Z",
        "UpdateTime": "13:14:45",
        "DocumentLines": rows,
        **{f"Property{n:03d}": None for n in range(60)},
    }


def _cpu_per_record(fn, records: list[bytes], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for record in records:
            fn(record)
        best = min(best, time.process_time() - started)
    return best / len(records) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=4, help="document lines per invoice")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    rng = random.Random(8)
    records = [msgspec.json.encode(_invoice(n, args.lines, rng)) for n in range(1, args.records + 1)]
    decode, sha256 = msgspec.json.decode, hashlib.sha256

    def floor(raw: bytes) -> None:
        decode(raw)
        sha256(raw).hexdigest()

    map_raw = ENTITIES["Invoices"].map_raw
    floor_us = _cpu_per_record(floor, records, args.repeats)
    mapper_us = _cpu_per_record(map_raw, records, args.repeats)
    size = sum(map(len, records)) / len(records)
    print(
        f"Invoices with {args.lines} lines, {size:,.0f} bytes each, {args.records} records, best of {args.repeats}"
    )
    print(f"  floor (decode + SHA-256)   {floor_us:7.1f} us CPU per record")
    print(f"  map_raw (the mapper)       {mapper_us:7.1f} us CPU per record")
    print(f"  ratio map_raw / floor      {mapper_us / floor_us:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
