"""Seeded, deterministic field-service data for the ServiceTitan imitation.

About a year of a home-services contractor's books, ending a day before the anchor date
(today, UTC, unless configured), so that nothing generated falls inside the exports' 15-minute
lag: business units, customers (residential and commercial, some inactive, a few merged into
others through ``mergedToId``, names with apostrophes, quotes and non-ASCII letters), invoices
of 1-6 items booked to a small fixed chart of income accounts, and payments (full, partial, a
second payment settling a partial one, one check paying several invoices, overpayments leaving
an unapplied amount, deposits applied to nothing).

Records are plain dicts in the shape the API serves. Money is a string with two decimals
(``"120.00"``); for every generated invoice ``sum(items.total) = subTotal``, ``subTotal +
salesTax = total`` and ``total - sum(appliedAmount of payments applied to it) = balance``.
A customer's ``balance`` (a JSON number, as ServiceTitan's CRM serves it) is the sum of its
invoices' balances. Timestamps are UTC: ``modifiedOn``/``createdOn`` as .NET writes them (up to
seven fraction digits, trailing zeros dropped, ``Z``), dates as ``"2024-03-05T00:00:00Z"``.

Everything follows from ``(seed, sizes, anchor date)``: the same inputs give byte-identical
records.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
# Sums of seeded amounts as large as a double allows (1e308), still exact to the cent.
WIDE = Context(prec=1000, Emax=999_999, Emin=-999_999)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000

ENTITIES = ("customers", "invoices", "payments", "business-units")

# The chart of accounts items are booked to (ServiceTitan does not expose the chart itself).
GL_ACCOUNTS: dict[str, dict[str, Any]] = {
    "service": {
        "id": 61001,
        "name": "Service Revenue",
        "number": "4000",
        "type": "Income",
        "detailType": "ServiceFeeIncome",
    },
    "membership": {
        "id": 61002,
        "name": "Maintenance Agreements",
        "number": "4010",
        "type": "Income",
        "detailType": "ServiceFeeIncome",
    },
    "parts": {
        "id": 61003,
        "name": "Parts & Materials",
        "number": "4100",
        "type": "Income",
        "detailType": "SalesOfProductIncome",
    },
    "equipment": {
        "id": 61004,
        "name": "Equipment Sales",
        "number": "4200",
        "type": "Income",
        "detailType": "SalesOfProductIncome",
    },
    "discounts": {
        "id": 61005,
        "name": "Discounts Given",
        "number": "4900",
        "type": "Income",
        "detailType": "DiscountsRefundsGiven",
    },
}
PAYMENT_GL_ACCOUNT = {
    "id": 61100,
    "name": "Undeposited Funds",
    "number": "1200",
    "type": "Asset",
    "detailType": "UndepositedFunds",
}


@dataclass(frozen=True)
class Sku:
    id: int
    code: str
    name: str
    type: str
    price: str
    taxable: bool
    gl: str
    quantity: str = "one"  # one | hours | count | pounds
    cost: str = "0.00"


CATALOG: tuple[Sku, ...] = (
    Sku(71001, "SVC-DIAG", "Diagnostic Fee", "Service", "89.00", False, "service"),
    Sku(71002, "SVC-TUNEUP-AC", "AC Tune-Up", "Service", "129.00", False, "service"),
    Sku(71003, "SVC-TUNEUP-FURN", "Furnace Tune-Up", "Service", "119.00", False, "service"),
    Sku(71004, "SVC-DRAIN-MAIN", "Drain Cleaning - Main Line", "Service", "189.00", False, "service"),
    Sku(
        71005, "SVC-LABOR", "Labor - Standard Rate (per hour)", "Service", "115.00", False, "service", "hours"
    ),
    Sku(71006, "SVC-AFTERHRS", "After-Hours Surcharge", "Service", "75.00", False, "service"),
    Sku(71007, "SVC-WH-FLUSH", "Water Heater Flush", "Service", "149.00", False, "service"),
    Sku(71008, "SVC-PANEL-INSP", "Electrical Panel Inspection", "Service", "99.00", False, "service"),
    Sku(
        72001, "MA-COMFORT-CLUB", "Comfort Club Membership - Annual", "Service", "199.00", False, "membership"
    ),
    Sku(
        72002,
        "MA-COMM-PM-QTR",
        "Commercial PM Agreement - Quarterly",
        "Service",
        "450.00",
        False,
        "membership",
    ),
    Sku(73001, "PRT-CAP-45-5", "Capacitor 45/5 MFD 440V", "Material", "38.50", True, "parts", "one", "11.20"),
    Sku(73002, "PRT-CONT-30A", "Contactor 30A 24V Coil", "Material", "42.75", True, "parts", "one", "13.05"),
    Sku(
        73003,
        "PRT-FILTER-16X25",
        "Air Filter 16x25x1 (each)",
        "Material",
        "12.40",
        True,
        "parts",
        "count",
        "3.10",
    ),
    Sku(
        73004,
        "PRT-FLEXHOSE",
        'Braided Flex Hose 3/8" x 20"',
        "Material",
        "14.95",
        True,
        "parts",
        "count",
        "4.25",
    ),
    Sku(73005, "PRT-PTRAP", 'PVC P-Trap 1-1/2"', "Material", "9.80", True, "parts", "count", "2.15"),
    Sku(
        73006,
        "PRT-BREAKER-20A",
        "Circuit Breaker 20A Single Pole",
        "Material",
        "24.60",
        True,
        "parts",
        "count",
        "7.90",
    ),
    Sku(
        73007,
        "PRT-R410A",
        "Refrigerant R-410A (per lb)",
        "Material",
        "85.00",
        True,
        "parts",
        "pounds",
        "18.00",
    ),
    Sku(73008, "PRT-TSTAT-WIFI", "Wi-Fi Thermostat", "Material", "249.00", True, "parts", "one", "96.00"),
    Sku(
        74001,
        "EQ-WH-50G-GAS",
        "50 Gal Gas Water Heater",
        "Equipment",
        "1450.00",
        True,
        "equipment",
        "one",
        "610.00",
    ),
    Sku(
        74002,
        "EQ-AC-3T-16S",
        "3 Ton AC Condenser 16 SEER",
        "Equipment",
        "3895.00",
        True,
        "equipment",
        "one",
        "1720.00",
    ),
    Sku(
        74003,
        "EQ-DISPOSAL-75",
        "Garbage Disposal 3/4 HP",
        "Equipment",
        "329.00",
        True,
        "equipment",
        "one",
        "118.00",
    ),
)
DISCOUNT = Sku(75001, "DISC-MEMBER-15", "Member Discount 15%", "Service", "0.00", False, "discounts")
WARRANTY = Sku(71009, "SVC-WARRANTY", "Warranty Call - No Charge", "Service", "0.00", False, "service")
SERVICES = [s for s in CATALOG if s.gl == "service"]
MEMBERSHIPS = [s for s in CATALOG if s.gl == "membership"]
PARTS = [s for s in CATALOG if s.gl == "parts"]
EQUIPMENT = [s for s in CATALOG if s.gl == "equipment"]

BUSINESS_UNITS = (
    # name, official name, market, tax rate
    ("HVAC - Residential Service", "Lone Star Comfort Services LLC", "Residential", "0.0825"),
    ("HVAC - Commercial Service", "Lone Star Comfort Services LLC", "Commercial", "0.0825"),
    ("Plumbing - Residential", "Lone Star Plumbing & Drain LLC", "Residential", "0.0775"),
    ("Plumbing - Commercial", "Lone Star Plumbing & Drain LLC", "Commercial", "0.0775"),
    ("Electrical - Service", "Lone Star Electric Co.", "Both", "0.0825"),
    ("Generators - Legacy", "Lone Star Electric Co.", "Both", "0.0825"),
    ("HVAC - Install & Replacement", "Lone Star Comfort Services LLC", "Residential", "0.0825"),
    ("Drain & Sewer", "Lone Star Plumbing & Drain LLC", "Both", "0.0725"),
)
LEGACY_UNIT = 5  # index of the business unit that is inactive (used only early in the year)

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "María", "José", "Zoë", "Renée", "François", "Björn", "Søren", "Łukasz", "Chloé",
    "Mónica", "Siobhán", "Ngọc", "Đặng", "Anaïs", "Jürgen", "Dana", "Chris",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernández", "López", "O'Brien", "O'Connor", "D'Angelo", "McAllister", "Müller",
    "Nguyễn", "Núñez", "Ångström", "Lefèvre", "Kowalski", "Schröder", "Peña", "Dvořák",
    "St. John", "Van der Berg", "Smith-Jones", "Anderson", "Taylor", "Thomas", "Moore",
)  # fmt: skip
COMPANY_PATTERNS = (
    "{last} Property Management",
    "{last}'s Bakery",
    "Café {first}",
    "{last} & Sons Construction",
    "St. Mary's Episcopal Church",
    "Niño's Taquería",
    'The "Corner" Store',
    "Oak Street Apartments, LLC",
    "{last} Dental Group",
    "Häagen Plaza Retail",
    "{last} Family Dentistry, P.C.",
    "Bob's Burgers #2",
)
STREETS = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pecan St", "Guadalupe St",
    "Congress Ave", "Lamar Blvd", "Burnet Rd", "Riverside Dr", "Avenida de la Paz",
)  # fmt: skip
CITIES = (
    ("Austin", "TX", "787", 30.27, -97.74),
    ("Round Rock", "TX", "786", 30.51, -97.68),
    ("San Marcos", "TX", "786", 29.88, -97.94),
    ("Georgetown", "TX", "786", 30.63, -97.68),
    ("Pflugerville", "TX", "786", 30.44, -97.62),
)
STAFF = ("Dana Whitfield", "Marco Peña", "Office - Renée", "Tech: J. O'Neil", "Lucía Ortega")
PAYMENT_TYPES = (("Check", 1, 0.35), ("Credit Card", 2, 0.45), ("Cash", 3, 0.08), ("ACH", 4, 0.12))
JOB_TYPES = {
    "service": "Service",
    "membership": "Maintenance",
    "equipment": "Install",
    "warranty": "Warranty",
}


# ---------------------------------------------------------------------------------------------
# Money and time


def money(value: Decimal) -> str:
    """``Decimal('120') -> "120.00"`` (half up, as ServiceTitan rounds)."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def dec(value: Any) -> Decimal | None:
    """A money value as served (string or number) as a Decimal; None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    # Beyond what any ledger holds (and what WIDE can add to the cent): not an amount.
    return number if number.is_finite() and number.adjusted() <= 400 else None


def fmt_ts(us: int, style: str = "dotnet") -> str:
    """Microseconds since the epoch -> ``2024-03-05T17:42:10.123456Z``.

    ``dotnet`` writes seven fraction digits with trailing zeros dropped (no fraction at all on
    a whole second), as System.Text.Json does; ``millis`` always writes three.
    """
    moment = EPOCH + dt.timedelta(microseconds=us)
    head = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if style == "millis":
        return f"{head}.{moment.microsecond // 1000:03d}Z"
    frac = f"{moment.microsecond * 10:07d}".rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def fmt_date(us: int) -> str:
    """Microseconds since the epoch -> the day it falls on, as ``2024-03-05T00:00:00Z``."""
    return (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT00:00:00Z")


_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_ts(text: Any) -> int | None:
    """An RFC 3339 timestamp or a bare date (UTC when no offset is given) -> microseconds since
    the epoch; None when ``text`` is not one."""
    if not isinstance(text, str):
        return None
    match = _TS.fullmatch(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone.utc,
        )
    except ValueError:
        return None
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def to_us(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------------
# Invoices: items and totals, shared by the generator and by mutations


def item_total(quantity: Decimal, price: Decimal) -> Decimal:
    return (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)


def make_item(
    item_id: int,
    sku: Sku,
    quantity: Decimal,
    price: Decimal,
    unit: dict[str, Any],
    order: int,
    stamp: str,
    day: str,
) -> dict[str, Any]:
    cost = Decimal(sku.cost)
    return {
        "id": item_id,
        "description": sku.name,
        "quantity": money(quantity),
        "cost": money(cost),
        "totalCost": money(item_total(quantity, cost)),
        "inventoryLocation": "Main Warehouse" if sku.type != "Service" else None,
        "price": money(price),
        "type": sku.type,
        "skuName": sku.code,
        "skuId": sku.id,
        "total": money(item_total(quantity, price)),
        "inventory": sku.type != "Service",
        "taxable": sku.taxable,
        "generalLedgerAccount": dict(GL_ACCOUNTS[sku.gl]),
        "costOfSaleAccount": None,
        "assetAccount": None,
        "membershipTypeId": 3001 if sku.gl == "membership" else None,
        "itemGroup": None,
        "displayName": sku.name,
        "soldHours": money(quantity) if sku.quantity == "hours" else None,
        "modifiedOn": stamp,
        "serviceDate": day,
        "order": order,
        "businessUnit": dict(unit),
    }


def retotal(invoice: dict[str, Any], tax_rate: Decimal, applied: Decimal) -> None:
    """Recompute ``subTotal``, ``salesTax``, ``total`` and ``balance`` from the items."""
    sub = Decimal(0)
    taxable = Decimal(0)
    for item in invoice["items"]:
        line = Decimal(item["total"])
        sub += line
        if item.get("taxable"):
            taxable += line
    tax = (max(taxable, Decimal(0)) * tax_rate).quantize(CENT, rounding=ROUND_HALF_UP)
    total = sub + tax
    invoice["subTotal"] = money(sub)
    invoice["salesTax"] = money(tax)
    invoice["total"] = money(total)
    invoice["balance"] = money(total - applied)
    invoice["salesTaxCode"] = {
        "id": 9001,
        "name": f"Sales Tax {tax_rate * 100:.2f}%",
        "taxRate": float(tax_rate),
    }


# ---------------------------------------------------------------------------------------------
# The generator


@dataclass
class Dataset:
    """Generated records per entity (``customers``, ``invoices``, ``payments``,
    ``business-units``), each list in the order the records were last modified."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tax_rates: dict[int, Decimal] = field(default_factory=dict)
    anchor: dt.date = dt.date(2025, 1, 1)


class _Ids:
    """Growing ids with small gaps, as a shared database sequence hands them out."""

    def __init__(self, rng: random.Random, start: int) -> None:
        self.rng = rng
        self.value = start

    def next(self) -> int:
        self.value += self.rng.randint(1, 7)
        return self.value


def _quantity(rng: random.Random, sku: Sku) -> Decimal:
    if sku.quantity == "hours":
        return Decimal(rng.choice((2, 3, 4, 5, 6, 8, 10, 12, 16))) / 4
    if sku.quantity == "count":
        return Decimal(rng.randint(1, 6))
    if sku.quantity == "pounds":
        return Decimal(rng.randint(2, 8)) / 2
    return Decimal(1)


def _address(rng: random.Random) -> dict[str, Any]:
    city, state, zip3, lat, lon = rng.choice(CITIES)
    return {
        "street": f"{rng.randint(100, 9899)} {rng.choice(STREETS)}",
        "unit": rng.choice((None, None, None, None, "Apt 2B", "Suite 140", "#7")),
        "city": city,
        "state": state,
        "zip": f"{zip3}{rng.randint(1, 99):02d}",
        "country": "USA",
        "latitude": round(lat + rng.uniform(-0.08, 0.08), 6),
        "longitude": round(lon + rng.uniform(-0.08, 0.08), 6),
    }


def _customer_name(rng: random.Random, commercial: bool) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if commercial:
        return rng.choice(COMPANY_PATTERNS).format(first=first, last=last)
    return f"{first} {last}"


def generate(
    seed: int,
    *,
    customers: int = 300,
    invoices: int = 2000,
    business_units: int = 6,
    anchor: dt.date,
    timestamp_style: str = "dotnet",
) -> Dataset:
    """About a year of field-service data ending the day before ``anchor``.

    :param seed: the one source of randomness.
    :param customers: number of customers (at least 2).
    :param invoices: number of invoices; payments follow from them (about 0.8 per invoice).
    :param business_units: number of business units (1-8 named, more get numbered names).
    :param anchor: the generated year ends before this day (UTC).
    :param timestamp_style: ``dotnet`` or ``millis`` (see :func:`fmt_ts`).
    """
    rng = random.Random(f"servicetitan:{seed}")
    ts = lambda us: fmt_ts(us, timestamp_style)  # noqa: E731
    end = to_us(dt.datetime(anchor.year, anchor.month, anchor.day, tzinfo=dt.timezone.utc)) - US_PER_DAY
    start = end - 365 * US_PER_DAY

    # -- business units ------------------------------------------------------------------------
    units: list[dict[str, Any]] = []
    unit_meta: list[tuple[str, Decimal]] = []
    tax_rates: dict[int, Decimal] = {}
    unit_ids = _Ids(rng, 1000)
    for n in range(max(1, business_units)):
        name, official, market, rate = BUSINESS_UNITS[n % len(BUSINESS_UNITS)]
        if n >= len(BUSINESS_UNITS):
            name = f"{name} {n // len(BUSINESS_UNITS) + 1}"
        uid = unit_ids.next()
        modified = start - rng.randint(30, 400) * US_PER_DAY + rng.randrange(US_PER_DAY)
        active = n != LEGACY_UNIT
        units.append(
            {
                "id": uid,
                "active": active,
                "name": name,
                "officialName": official,
                "email": f"office+{uid}@lonestar-services.example",
                "currency": "USD",
                "phoneNumber": f"512-555-{uid % 10000:04d}",
                "invoiceHeader": official,
                "invoiceMessage": "Thank you for your business!",
                "defaultTaxRate": float(rate),
                "authorizationParagraph": None,
                "acknowledgementParagraph": None,
                "address": _address(rng),
                "materialSku": None,
                "quickbooksClass": name.split(" - ")[0],
                "accountCode": None,
                "franchiseId": None,
                "conceptCode": None,
                "corporateContractNumber": None,
                "tenant": None,
                "modifiedOn": ts(modified),
                "externalData": None,
                "_mod": modified,
            }
        )
        unit_meta.append((market, Decimal(rate)))
        tax_rates[uid] = Decimal(rate)
    active_units = [i for i, u in enumerate(units) if u["active"]] or [0]

    def unit_for(commercial: bool, when: int) -> int:
        wanted = "Commercial" if commercial else "Residential"
        pool = [i for i in active_units if unit_meta[i][0] in (wanted, "Both")] or active_units
        if len(units) > LEGACY_UNIT and when < start + 90 * US_PER_DAY and rng.random() < 0.15:
            return LEGACY_UNIT
        return rng.choice(pool)

    # -- customers -----------------------------------------------------------------------------
    n_customers = max(2, customers)
    created = sorted(
        (start - rng.randrange(3 * 365 * US_PER_DAY))
        if rng.random() < 0.6
        else start + rng.randrange(end - start)
        for _ in range(n_customers)
    )
    customer_ids = _Ids(rng, 40_000_000)
    custs: list[dict[str, Any]] = []
    for when in created:
        commercial = rng.random() < 0.2
        cid = customer_ids.next()
        modified = when + (
            rng.randrange(max(1, end - when)) if rng.random() < 0.25 else rng.randrange(US_PER_HOUR)
        )
        custs.append(
            {
                "id": cid,
                "active": True,
                "name": _customer_name(rng, commercial),
                "type": "Commercial" if commercial else "Residential",
                "address": _address(rng),
                "customFields": [],
                "balance": 0.0,
                "tagTypeIds": [],
                "doNotMail": rng.random() < 0.1,
                "doNotService": False,
                "createdOn": ts(when),
                "createdById": 5001 + rng.randrange(5),
                "modifiedOn": None,
                "mergedToId": None,
                "externalData": None,
                "_created": when,
                "_mod": modified,
            }
        )
    # A few duplicates were merged into another customer (and so are inactive); a few more
    # customers are simply inactive.
    merged: set[int] = set()
    targets: set[int] = set()
    for index in rng.sample(range(n_customers), max(1, n_customers // 50) if n_customers >= 10 else 0):
        target = rng.randrange(n_customers)
        if target == index or target in merged or index in targets:
            continue
        cust = custs[index]
        cust["active"] = False
        cust["mergedToId"] = custs[target]["id"]
        cust["doNotService"] = True
        stamp = max(cust["_mod"], custs[target]["_created"]) + rng.randrange(1, 30 * US_PER_DAY)
        cust["_mod"] = max(cust["_created"], min(stamp, end - rng.randrange(US_PER_HOUR, US_PER_DAY)))
        merged.add(index)
        targets.add(target)
    for index in rng.sample(range(n_customers), n_customers // 20):
        if index not in merged and index not in targets:
            custs[index]["active"] = False
    weights = [0 if i in merged else (4 if c["type"] == "Commercial" else 1) for i, c in enumerate(custs)]
    cumulative: list[int] = []
    acc = 0
    for w in weights:
        acc += w
        cumulative.append(acc)

    # -- invoices ------------------------------------------------------------------------------
    invoice_days = sorted(start + rng.randrange(end - start - US_PER_DAY) for _ in range(max(0, invoices)))
    invoice_ids = _Ids(rng, 20_000_000)
    item_ids = _Ids(rng, 90_000_000)
    job_ids = _Ids(rng, 30_000_000)
    invs: list[dict[str, Any]] = []
    invoice_meta: list[tuple[int, int, Decimal]] = []  # (customer index, created us, tax rate)
    for when in invoice_days:
        day_us = when - when % US_PER_DAY
        eligible = bisect.bisect_right(created, when)
        if eligible == 0 or cumulative[eligible - 1] == 0:
            eligible = n_customers
        ci = rng.choices(range(eligible), cum_weights=cumulative[:eligible])[0]
        cust = custs[ci]
        commercial = cust["type"] == "Commercial"
        ui = unit_for(commercial, when)
        unit = {"id": units[ui]["id"], "name": units[ui]["name"]}
        rate = unit_meta[ui][1]
        created_us = day_us + rng.randint(14, 23) * US_PER_HOUR + rng.randrange(US_PER_HOUR)
        edited = rng.random() < 0.15
        modified_us = created_us
        if edited:
            modified_us = min(
                created_us + rng.randint(1, 40) * US_PER_DAY, end - rng.randrange(US_PER_HOUR, US_PER_DAY)
            )
            modified_us = max(modified_us, created_us + US_PER_HOUR)
        stamp = ts(modified_us)
        day = fmt_date(when)
        # What was sold.
        roll = rng.random()
        if roll < 0.01:
            kind, skus = "warranty", [WARRANTY]
        elif roll < 0.10:
            kind, skus = "membership", [rng.choice(MEMBERSHIPS)]
            if rng.random() < 0.5:
                skus.append(rng.choice(PARTS))
        elif roll < 0.18:
            kind, skus = (
                "equipment",
                [rng.choice(EQUIPMENT), next(s for s in SERVICES if s.quantity == "hours")],
            )
            skus += rng.sample(PARTS, rng.randint(0, 2))
        else:
            kind = "service"
            skus = [rng.choice(SERVICES)]
            skus += rng.sample(PARTS, rng.choice((0, 0, 1, 1, 2, 3)))
            if rng.random() < 0.3:
                skus.append(next(s for s in SERVICES if s.quantity == "hours"))
        skus = skus[:6]
        lines = []
        for sku in skus:
            price = Decimal(sku.price)
            if sku.type == "Service" and sku.price != "0.00" and rng.random() < 0.1:
                price = (price * Decimal(rng.choice(("0.9", "0.95", "1.1")))).quantize(CENT)
            lines.append((sku, _quantity(rng, sku), price))
        subtotal = sum(item_total(q, p) for _, q, p in lines)
        if (
            len(lines) >= 2
            and len(lines) < 6
            and kind == "service"
            and rng.random() < 0.12
            and subtotal > 100
        ):
            lines.append((DISCOUNT, Decimal(1), -(subtotal * Decimal("0.15")).quantize(CENT)))
        job_id = job_ids.next()
        invoice = {
            "id": invoice_ids.next(),
            "syncStatus": "Pending",
            "summary": lines[0][0].name,
            "referenceNumber": str(job_id % 1_000_000 + 100_000),
            "invoiceDate": day,
            "dueDate": fmt_date(when + (30 * US_PER_DAY if commercial else 0)),
            "subTotal": "0.00",
            "salesTax": "0.00",
            "salesTaxCode": None,
            "total": "0.00",
            "balance": "0.00",
            "invoiceType": None,
            "customer": {"id": cust["id"], "name": cust["name"]},
            "customerAddress": dict(cust["address"]),
            "location": {"id": cust["id"] + 5_000_000, "name": cust["name"]},
            "locationAddress": dict(cust["address"]),
            "businessUnit": unit,
            "termName": "Net 30" if commercial else "Due Upon Receipt",
            "createdBy": rng.choice(STAFF),
            "batch": None,
            "depositedOn": None,
            "createdOn": ts(created_us),
            "modifiedOn": stamp,
            "adjustmentToId": None,
            "job": {"id": job_id, "number": str(job_id % 1_000_000 + 100_000), "type": JOB_TYPES[kind]},
            "projectId": None,
            "royalty": None,
            "employeeInfo": None,
            "commissionEligibilityDate": None,
            "items": [
                make_item(item_ids.next(), sku, q, p, unit, order, stamp if edited else ts(created_us), day)
                for order, (sku, q, p) in enumerate(lines, start=1)
            ],
            "customFields": [],
            "active": True,
            "_mod": modified_us,
        }
        retotal(invoice, rate, Decimal(0))
        invs.append(invoice)
        invoice_meta.append((ci, created_us, rate))

    # -- payments ------------------------------------------------------------------------------
    # (when, customer index, amount, [(invoice index, applied amount)])
    pending: list[tuple[int, int, Decimal, list[tuple[int, Decimal]]]] = []
    grouped: dict[int, list[int]] = {}
    for index, invoice in enumerate(invs):
        ci, created_us, _ = invoice_meta[index]
        total = Decimal(invoice["total"])
        if total <= 0:
            continue
        age_days = (end - created_us) // US_PER_DAY
        if rng.random() < (0.6 if age_days < 20 else 0.07):
            continue  # still open
        commercial = custs[ci]["type"] == "Commercial"
        if commercial and rng.random() < 0.35:
            grouped.setdefault(ci, []).append(index)
            continue
        on_site = not commercial and rng.random() < 0.6
        when = created_us + (rng.randrange(US_PER_HOUR) if on_site else rng.randint(1, 40) * US_PER_DAY)
        if when >= end:
            continue
        roll = rng.random()
        if roll < 0.13:
            part = (total * Decimal(rng.randint(30, 80)) / 100).quantize(CENT)
            pending.append((when, ci, part, [(index, part)]))
            later = when + rng.randint(10, 60) * US_PER_DAY
            if rng.random() < 0.5 and later < end:
                pending.append((later, ci, total - part, [(index, total - part)]))
        elif roll < 0.20:
            extra = Decimal(rng.choice(("5.00", "10.00", "20.00", "0.50", "50.00")))
            pending.append((when, ci, total + extra, [(index, total)]))
        else:
            pending.append((when, ci, total, [(index, total)]))
    for ci, indexes in grouped.items():
        lo = 0
        while lo < len(indexes):
            chunk = indexes[lo : lo + rng.randint(2, 4)]
            lo += len(chunk)
            when = max(invoice_meta[i][1] for i in chunk) + rng.randint(5, 30) * US_PER_DAY
            if when >= end:
                continue
            amounts = [(i, Decimal(invs[i]["total"])) for i in chunk]
            pending.append((when, ci, sum(a for _, a in amounts), amounts))
    for ci in rng.sample(range(n_customers), max(1, n_customers // 100)):
        if ci in merged:
            continue
        when = max(custs[ci]["_created"], start) + rng.randrange(US_PER_DAY, 200 * US_PER_DAY)
        if when < end:
            pending.append((when, ci, Decimal(rng.choice(("100.00", "250.00", "500.00"))), []))
    pending.sort(key=lambda p: p[0])

    payment_ids = _Ids(rng, 60_000_000)
    applied_ids = _Ids(rng, 61_000_000)
    pays: list[dict[str, Any]] = []
    applied_to_invoice: dict[int, Decimal] = {}
    last_applied: dict[int, int] = {}
    for when, ci, amount, applications in pending:
        cust = custs[ci]
        kind, type_id, _ = rng.choices(PAYMENT_TYPES, weights=[w for *_, w in PAYMENT_TYPES])[0]
        applied_sum = sum((a for _, a in applications), Decimal(0))
        modified = when + rng.randrange(60_000_000)
        if rng.random() < 0.03:
            modified = min(when + rng.randint(1, 20) * US_PER_DAY, end - US_PER_HOUR)
        user = rng.choice(STAFF)
        entries = []
        for index, applied in applications:
            invoice = invs[index]
            applied_to_invoice[index] = applied_to_invoice.get(index, Decimal(0)) + applied
            last_applied[index] = max(last_applied.get(index, 0), when)
            entries.append(
                {
                    "appliedId": applied_ids.next(),
                    "appliedTo": invoice["id"],
                    "appliedAmount": money(applied),
                    "appliedOn": ts(when),
                    "appliedBy": user,
                    "appliedToReferenceNumber": invoice["referenceNumber"],
                }
            )
        unit = (
            invs[applications[0][0]]["businessUnit"]
            if applications
            else {"id": units[active_units[0]]["id"], "name": units[active_units[0]]["name"]}
        )
        pays.append(
            {
                "id": payment_ids.next(),
                "syncStatus": "Pending",
                "referenceNumber": str(rng.randint(1000, 99999))
                if kind == "Check"
                else f"{kind[:2].upper()}-{rng.randint(100000, 999999)}",
                "date": fmt_date(when),
                "type": kind,
                "typeId": str(type_id),
                "total": money(amount),
                "unappliedAmount": money(amount - applied_sum),
                "memo": None if applications else "Deposit on account",
                "customer": {"id": cust["id"], "name": cust["name"]},
                "businessUnit": dict(unit),
                "batch": None,
                "createdBy": user,
                "generalLedgerAccount": dict(PAYMENT_GL_ACCOUNT),
                "appliedTo": entries,
                "customFields": [],
                "authCode": f"{rng.randint(0, 999999):06d}" if kind == "Credit Card" else None,
                "checkNumber": str(rng.randint(1000, 9999)) if kind == "Check" else None,
                "createdOn": ts(when),
                "modifiedOn": ts(modified),
                "active": True,
                "_mod": modified,
            }
        )

    # -- balances and stamps that follow from the payments ------------------------------------
    open_by_customer: dict[int, Decimal] = {}
    for index, invoice in enumerate(invs):
        ci, _, rate = invoice_meta[index]
        retotal(invoice, rate, applied_to_invoice.get(index, Decimal(0)))
        if index in last_applied and last_applied[index] > invoice["_mod"]:
            # Applying a payment changes the balance, and with it the invoice's modifiedOn.
            invoice["_mod"] = last_applied[index] + rng.randrange(1, 5_000_000)
            invoice["modifiedOn"] = ts(invoice["_mod"])
        open_by_customer[ci] = open_by_customer.get(ci, Decimal(0)) + Decimal(invoice["balance"])
    for ci, cust in enumerate(custs):
        cust["balance"] = float(money(open_by_customer.get(ci, Decimal(0))))
        cust["modifiedOn"] = ts(cust["_mod"])

    records: dict[str, list[dict[str, Any]]] = {}
    for name, rows in (
        ("business-units", units),
        ("customers", custs),
        ("invoices", invs),
        ("payments", pays),
    ):
        rows.sort(key=lambda r: (r["_mod"], r["id"]))
        for row in rows:
            row.pop("_created", None)
        records[name] = rows
    return Dataset(records=records, tax_rates=tax_rates, anchor=anchor)


def pop_stamp(record: dict[str, Any]) -> int | None:
    """Remove and return the generator's private ``_mod`` (microseconds) from a record."""
    return record.pop("_mod", None)
