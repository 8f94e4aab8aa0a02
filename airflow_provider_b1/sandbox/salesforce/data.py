"""The seeded org: the same seed, sizes and anchor date give the same records and ids.

- Users: the API's integration user and a UI user (the one ``/_sandbox/edit`` acts as).
- Products ``A00001``.. (``ProductCode`` = the SAP sandbox's item codes), each with a standard
  price book entry; a few inactive.
- Accounts: most carry an ``AccountNumber`` that is an SAP customer code, ``C00001``, ``C00002``...
  in order (the SAP sandbox seeds ``C`` + 5 digits); about 8% have none; about 7% carry a code SAP
  does not have (``C09001``...; ``C9xxxx`` for orgs of 9,000 accounts and more). With custom
  fields, about half of the accounts with a known code are already linked: ``SAP_Card_Code__c``
  equals the account number and the ``SAP_*`` balances are filled; the others wait to be linked.
- Opportunities (about two per account) across every stage, about 35% Closed Won and 15% Closed
  Lost; closed ones closed in the past year, open ones close in the next months. About 55% have
  1-4 line items (their ``Amount`` is the items' total); half of the Closed Won ones carry SAP
  order fields, as if already sent.

Creation times fall in the year before the anchor date, in id order; modification times after
them and before the anchor, so every later API write is newer than any seeded stamp.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from typing import Any

from airflow_provider_b1.sandbox.salesforce.schema import (
    ACCOUNT_TYPES,
    INDUSTRIES,
    PRODUCT_FAMILIES,
    STAGES,
    to_ms,
)
from airflow_provider_b1.sandbox.salesforce.store import Store

_WORDS = [
    "Acme",
    "Apex",
    "Atlas",
    "Beacon",
    "Blue",
    "Cedar",
    "Summit",
    "Harbor",
    "Iron",
    "Keystone",
    "Lakeside",
    "Liberty",
    "Maple",
    "Meridian",
    "Northwind",
    "Oak",
    "Pioneer",
    "Prairie",
    "Redwood",
    "Ridge",
    "River",
    "Silver",
    "Sterling",
    "Stone",
    "Sun",
    "Titan",
    "Union",
    "Valley",
    "Vista",
    "Granite",
    "Falcon",
    "Eagle",
    "Horizon",
    "Pinnacle",
    "Crescent",
    "Frontier",
    "Heritage",
    "Lone",
    "Star",
    "Bluebonnet",
]
_SUFFIXES = (
    "Inc.",
    "LLC",
    "Corp.",
    "Co.",
    "Group",
    "Holdings",
    "Partners",
    "Industries",
    "Supply",
    "Services",
)
_CITIES = (
    ("Austin", "TX", "78701"),
    ("Dallas", "TX", "75201"),
    ("Houston", "TX", "77002"),
    ("Chicago", "IL", "60601"),
    ("Denver", "CO", "80202"),
    ("Phoenix", "AZ", "85004"),
    ("Atlanta", "GA", "30303"),
    ("Seattle", "WA", "98101"),
    ("Boston", "MA", "02108"),
    ("Nashville", "TN", "37203"),
)
_STREETS = (
    "Main St",
    "Oak Ave",
    "Congress Ave",
    "Elm St",
    "Market St",
    "Lamar Blvd",
    "Commerce Dr",
    "Park Rd",
)
_ITEMS = (
    "Pump",
    "Valve",
    "Filter",
    "Compressor",
    "Bearing",
    "Gasket",
    "Sensor",
    "Controller",
    "Motor",
    "Coupling",
    "Hose",
    "Thermostat",
    "Relay",
    "Fan",
    "Belt",
)
_SIZES = ("S", "M", "L", "XL", "10mm", "20mm", "1/2in", "3/4in", "Pro", "Lite")
# Stage weights: (stage, weight); about 35% Closed Won and 15% Closed Lost.
_STAGE_WEIGHTS = (
    ("Prospecting", 8),
    ("Qualification", 8),
    ("Needs Analysis", 5),
    ("Value Proposition", 5),
    ("Id. Decision Makers", 4),
    ("Perception Analysis", 4),
    ("Proposal/Price Quote", 8),
    ("Negotiation/Review", 8),
    ("Closed Won", 35),
    ("Closed Lost", 15),
)
DAY_MS = 86_400_000


def _times(rng: random.Random, n: int, start_ms: int, end_ms: int) -> list[int]:
    return sorted(rng.randrange(start_ms, end_ms) for _ in range(n))


def seed_org(
    store: Store,
    *,
    seed: int,
    accounts: int,
    opportunities: int,
    products: int,
    anchor: dt.date,
    custom_fields: bool,
) -> dict[str, int]:
    """Fill an empty store; returns the counts per object."""
    rng = random.Random(seed)
    r = rng.random
    for name in store.counters:  # ids that look lived-in: counters start at a seeded offset
        store.counters[name] = rng.randrange(62**4, 62**5)
    end = to_ms(dt.datetime(anchor.year, anchor.month, anchor.day, tzinfo=dt.timezone.utc)) - 3_600_000
    start = end - 365 * DAY_MS
    setup = start - 30 * DAY_MS

    integration = store.load(
        "User",
        {
            "Username": "integration@b1-sandbox.example",
            "Name": "B1 Integration",
            "Email": "integration@b1-sandbox.example",
            "IsActive": True,
        },
        setup,
        "",
    )
    store.integration_user = integration["Id"]
    integration["CreatedById"] = integration["LastModifiedById"] = integration["Id"]
    ui = store.load(
        "User",
        {
            "Username": "dana.admin@b1-sandbox.example",
            "Name": "Dana Admin",
            "Email": "dana.admin@b1-sandbox.example",
        }
        | {"IsActive": True},
        setup + 1000,
        integration["Id"],
    )
    store.ui_user = ui["Id"]
    admin = ui["Id"]

    standard = store.load(
        "Pricebook2",
        {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True},
        setup + 2000,
        admin,
    )
    product_rows = []
    for i, at in enumerate(_times(rng, products, setup + 3000, start), 1):
        name = f"{_ITEMS[int(r() * len(_ITEMS))]} {_SIZES[int(r() * len(_SIZES))]}"
        product = store.load(
            "Product2",
            {
                "Name": name,
                "ProductCode": f"A{i:05d}",
                "IsActive": r() < 0.95,
                "Family": PRODUCT_FAMILIES[int(r() * len(PRODUCT_FAMILIES))],
                "Description": None,
            },
            at,
            admin,
        )
        price = round(5 + r() * r() * 900, 2)
        entry = store.load(
            "PricebookEntry",
            {
                "Pricebook2Id": standard["Id"],
                "Product2Id": product["Id"],
                "UnitPrice": price,
                "IsActive": product["IsActive"],
            },
            at,
            admin,
        )
        product_rows.append((product, entry))

    # -- accounts ------------------------------------------------------------------------------
    account_rows = []
    names: set[str] = set()
    next_code = 1
    unknown = 1
    for at in _times(rng, accounts, start, end - 60 * DAY_MS):
        kind = r()
        if kind < 0.08:
            number = None
        elif kind < 0.15:
            number = f"C{9000 + unknown:05d}" if accounts < 9000 else f"C9{unknown:04d}"
            unknown += 1
        else:
            number = f"C{next_code:05d}"
            next_code += 1
        name = f"{_WORDS[int(r() * len(_WORDS))]} {_WORDS[int(r() * len(_WORDS))]} {_SUFFIXES[int(r() * len(_SUFFIXES))]}"
        while name in names:
            name = f"{name.rsplit(' ', 1)[0]} {int(r() * 90) + 10} {name.rsplit(' ', 1)[1]}"
        names.add(name)
        city, state, postal = _CITIES[int(r() * len(_CITIES))]
        values: dict[str, Any] = {
            "Name": name,
            "AccountNumber": number,
            "Phone": None if r() < 0.1 else f"({200 + int(r() * 700)}) 555-{int(r() * 10000):04d}",
            "Website": None
            if r() < 0.3
            else f"https://www.{name.split()[0].lower()}{name.split()[1].lower()}.example",
            "Industry": INDUSTRIES[int(r() * len(INDUSTRIES))],
            "Type": ACCOUNT_TYPES[1] if number else ACCOUNT_TYPES[int(r() * len(ACCOUNT_TYPES))],
            "BillingStreet": f"{100 + int(r() * 9000)} {_STREETS[int(r() * len(_STREETS))]}",
            "BillingCity": city,
            "BillingPostalCode": postal,
            "BillingState": state,
            "BillingCountry": "United States",
            "Description": None,
        }
        if (
            custom_fields
            and number
            and not number.startswith("C9")
            and not number.startswith("C09")
            and r() < 0.5
        ):
            open_balance = round(r() * 25000, 2)
            values.update(
                SAP_Card_Code__c=number,
                SAP_Open_Balance__c=open_balance,
                SAP_Overdue_Balance__c=round(open_balance * r() * 0.5, 2),
                SAP_Credit_Limit__c=float(int(r() * 10) * 5000 + 10000),
                SAP_Last_Payment_Date__c=(anchor - dt.timedelta(days=1 + int(r() * 90))).isoformat(),
            )
        modified = min(end - 1, at + int(r() * 60 * DAY_MS))
        account_rows.append(store.load("Account", values | {"LastModifiedDate": modified}, at, admin))

    # -- opportunities and line items ----------------------------------------------------------
    stages = [s for s, w in _STAGE_WEIGHTS for _ in range(w)]
    probabilities = {s[0]: s[1] for s in STAGES}
    account_created = [a["CreatedDate"] for a in account_rows]
    opp_times = _times(rng, opportunities, start + 5 * DAY_MS, end - 30 * DAY_MS)
    line_count = 0
    order_number = 1000
    for at in opp_times:
        stage = stages[int(r() * len(stages))]
        eligible = bisect.bisect_right(account_created, at)
        account = account_rows[int(r() * eligible)] if eligible and r() < 0.97 else None
        closed = stage.startswith("Closed")
        created_day = dt.date(1970, 1, 1) + dt.timedelta(milliseconds=at)
        if closed:
            close = min(anchor - dt.timedelta(days=1), created_day + dt.timedelta(days=5 + int(r() * 90)))
        else:
            close = anchor + dt.timedelta(days=5 + int(r() * 150))
        label = _ITEMS[int(r() * len(_ITEMS))]
        values = {
            "AccountId": account["Id"] if account else None,
            "Name": f"{account['Name'] if account else 'Walk-in'} - {label} order"[:120],
            "StageName": stage,
            "CloseDate": close.isoformat(),
            "Amount": round(500 + r() * 40000, 2),
            "Probability": float(probabilities[stage]),
            "Type": "Existing Business" if r() < 0.6 else "New Business",
            "Pricebook2Id": standard["Id"],
            "Description": None,
        }
        if custom_fields and stage == "Closed Won" and r() < 0.5:
            order_number += 1 + int(r() * 5)
            paid = r()
            values.update(
                SAP_Order_Number__c=str(order_number),
                SAP_Order_Status__c="Closed" if paid > 0.3 else "Open",
                SAP_Invoiced_Amount__c=values["Amount"] if paid > 0.3 else 0.0,
                SAP_Paid_Amount__c=values["Amount"] if paid > 0.6 else round(values["Amount"] * paid, 2),
                SAP_Payment_Status__c="Paid" if paid > 0.6 else "Partially Paid" if paid > 0.3 else "Unpaid",
            )
        modified = min(end - 1, at + int(r() * 20 * DAY_MS))
        opp = store.load("Opportunity", values | {"LastModifiedDate": modified}, at, admin)
        if product_rows and r() < 0.55:
            total = 0.0
            for n in range(1, 2 + int(r() * 4)):
                product, entry = product_rows[int(r() * len(product_rows))]
                qty = float(1 + int(r() * 20))
                price = round(entry["UnitPrice"] * (0.85 + r() * 0.2), 2)
                line = store.load(
                    "OpportunityLineItem",
                    {
                        "OpportunityId": opp["Id"],
                        "PricebookEntryId": entry["Id"],
                        "Product2Id": product["Id"],
                        "Quantity": qty,
                        "UnitPrice": price,
                        "SortOrder": n,
                    },
                    at + n,
                    admin,
                )
                total += line["TotalPrice"]
                line_count += 1
            opp["Amount"] = round(total, 2)
    return {
        "User": 2,
        "Pricebook2": 1,
        "Product2": products,
        "PricebookEntry": products,
        "Account": accounts,
        "Opportunity": opportunities,
        "OpportunityLineItem": line_count,
    }
