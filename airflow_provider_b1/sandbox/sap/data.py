"""Seeded, deterministic company data for the Service Layer imitation.

Every record is kept as a compact core (a Python list holding only the properties that vary)
and widened to the Service Layer's full shape when it is serialized; ``$select`` builds only
what it names. Document lines are kept as small tuples of indexes into shared tables until a
write touches the document, after which they are plain dicts.

Money: ``LineTotal``, ``VatSum`` and ``DocTotal`` are in the local currency (USD), as in SAP;
``Price`` is in the document currency and ``DocTotalFc`` carries the foreign total.
``DocTotal = sum(LineTotal) + VatSum`` always holds for generated documents.

``CreditNotes``, ``Drafts`` and ``ApprovalRequests`` start empty: only clients write them. A
document's ``PaidToDate`` is derived for generated records (a closed, not cancelled invoice was
paid in full by a generated payment) and kept among the extras once a write touches it.

Dates are ISO strings (``"2024-05-01"``) in the server's zone; ``UpdateTime`` and ``CreateTime``
are ``"HH:MM:SS"`` wall-clock strings in the same zone. Generated records span the year before
the anchor date (today in the server's zone unless configured) and were all last updated before
the anchor date, so anything stamped "now" by a write or a mutation is newer than all of them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import math
import random
from collections.abc import Callable, Iterable
from decimal import Decimal
from operator import itemgetter
from typing import Any

from airflow_provider_b1.sandbox.sap import schema

LOCAL_CURRENCY = "USD"
CURRENCIES = (
    ("USD", 0.80, 1.0),
    ("EUR", 0.08, 1.09),
    ("CAD", 0.05, 0.74),
    ("GBP", 0.04, 1.27),
    ("MXN", 0.03, 0.058),
)
SALES_TAX = (("EX", 0.0), ("TX8", 0.0825), ("TX5", 0.05))
WAREHOUSES = ("01", "02", "WEST", "EAST")
PRICE_LISTS = ((1, 1.0), (2, 0.82), (3, 1.15))

GENERATED_DOCUMENTS = ("Orders", "Invoices", "DeliveryNotes", "PurchaseOrders", "PurchaseInvoices")
"""Document entity sets the generator fills (in this order: the seed's random stream depends on it)."""
DOCUMENT_ENTITIES = (*GENERATED_DOCUMENTS, "CreditNotes")
"""Document entity sets clients write (``CreditNotes`` starts empty)."""
SALES_DOCUMENTS = ("Orders", "Invoices", "DeliveryNotes", "CreditNotes")
OBJECT_CODES = {
    "Orders": "oOrders",
    "Invoices": "oInvoices",
    "CreditNotes": "oCreditNotes",
    "DeliveryNotes": "oDeliveryNotes",
    "PurchaseOrders": "oPurchaseOrders",
    "PurchaseInvoices": "oPurchaseInvoices",
}
#: SAP's object type numbers (``ObjectType`` of an approval request, ``BaseType`` of a line).
OBJECT_TYPES = {
    "Orders": "17",
    "Invoices": "13",
    "CreditNotes": "14",
    "DeliveryNotes": "15",
    "PurchaseOrders": "22",
    "PurchaseInvoices": "18",
}
DOCNUM_BASE = {
    "Orders": 20000,
    "Invoices": 100000,
    "CreditNotes": 200000,
    "DeliveryNotes": 40000,
    "PurchaseOrders": 60000,
    "PurchaseInvoices": 80000,
    "Drafts": 900000,
    "IncomingPayments": 500000,
    "VendorPayments": 700000,
}
#: Documents that payments settle: closed and not cancelled means paid in full in generated data.
PAYABLE_DOCUMENTS = ("Invoices", "PurchaseInvoices")

_GUARDED = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError)
INDEXED = frozenset(("NumAtCard", "CounterReference"))
"""Properties looked up by value (a client's dedupe field): equality filters on them use an index."""
_EVERY = object()
_ODD = object()
"""Index entry of the rows whose value cannot be a dictionary key (seeded hostile values)."""


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or None when a hostile value seeded into the row breaks the derivation."""
    try:
        return fn(*args)
    except _GUARDED:
        return None


# ---------------------------------------------------------------------------------------------
# Entity sets


class Entity:
    """One entity set: its compact rows, how to widen them, and a change counter.

    A row is ``[core values..., version, extras]``: ``version`` is the record's DataVersion and
    ``extras`` a dict of properties written by clients that are not part of the core (or None).

    Look-ups that need not see every row: :meth:`key_range` bisects the rows in key order, and
    :meth:`lookup` finds the rows holding given values of an :data:`INDEXED` property through an
    index built on first use. A write names the record it changed (``touch(key)``): until a
    rebuild, such records are candidates of every look-up; a write that names none (or too many
    written records) drops the indexes.
    """

    def __init__(
        self,
        name: str,
        *,
        key: str,
        object_name: str,
        template: schema.Template,
        columns: list[str],
        computed: dict[str, Callable[[list], Any]] | None = None,
        collections: dict[str, Callable[[list, bool], list]] | None = None,
    ) -> None:
        self.name = name
        self.key = key
        self.object_name = object_name
        self.template = template
        self.columns = columns
        self.col = {c: i for i, c in enumerate(columns)}
        self.ver = len(columns)
        self.ext = len(columns) + 1
        self.key_index = self.col[key]
        self.computed = computed or {}
        self.collections = collections or {}
        self.date_props = template.props_of(schema.DATE)
        self.date_set = set(self.date_props)
        self.rows: dict[Any, list] = {}
        self._sorted: list[list] | None = None
        self._keys: list[Any] = []
        self._indexes: dict[str, dict[Any, Any]] = {}
        self._dirty: set[Any] = set()
        self.version = 0
        self.next_entry = 1
        self.corrupted: dict[Any, tuple[str, dict[str, Any]]] = {}
        self._tmpl = {"@odata.etag": None, **template}
        self.setup(self.computed, self.collections)

    def setup(
        self,
        computed: dict[str, Callable[[list], Any]],
        collections: dict[str, Callable[[list, bool], list]],
    ) -> None:
        """Declare derived properties and child collections (both may refer to the row layout)."""
        self.computed = computed
        self.collections = collections
        self._scalar_core = [(c, i) for c, i in self.col.items() if c not in collections]
        self._getters = self._build_getters()

    # -- storage ---------------------------------------------------------------------------

    def load(self, rows: Iterable[list]) -> None:
        for row in rows:
            self.rows[row[self.key_index]] = row
        self.touch()
        if self.rows and isinstance(next(iter(self.rows)), int):
            self.next_entry = max(self.rows) + 1

    def touch(self, key: Any = _EVERY) -> None:
        """Note a write (of the record ``key``, or of any): cached query results and the key
        order are stale now, and the indexes must look at that record again (or are dropped)."""
        self.version += 1
        self._sorted = None
        if key is _EVERY:
            self._indexes.clear()
            self._dirty.clear()
        elif self._indexes:
            self._dirty.add(key)

    def ordered(self) -> list[list]:
        """All rows in key order (the Service Layer's default order)."""
        if self._sorted is None:
            keys = sorted(self.rows)
            self._sorted = [self.rows[k] for k in keys]
            self._keys = keys
        return self._sorted

    def key_range(
        self, low: Any = None, low_open: bool = False, high: Any = None, high_open: bool = False
    ) -> list[list]:
        """The rows in key order whose keys lie between ``low`` and ``high`` (None: unbounded;
        ``*_open``: that bound excluded), found by bisection."""
        rows = self.ordered()
        keys = self._keys
        start = 0 if low is None else (bisect.bisect_right if low_open else bisect.bisect_left)(keys, low)
        stop = (
            len(keys)
            if high is None
            else (bisect.bisect_left if high_open else bisect.bisect_right)(keys, high)
        )
        return rows[start:stop]

    def lookup(self, prop: str, values: Iterable[Any]) -> list[list]:
        """The rows in key order that may hold one of ``values`` in ``prop`` (one of
        :data:`INDEXED`): all that do, and perhaps some that no longer do (the caller's
        predicate decides)."""
        index = self._indexes.get(prop)
        if len(self._dirty) > max(1000, len(self.rows) // 100):
            self._indexes.clear()
            self._dirty.clear()
            index = None
        if index is None:
            index = self._indexes[prop] = self._build_index(prop)
        keys = set(self._dirty)
        for value in (*values, _ODD):
            try:
                hit = index.get(value)
            except TypeError:
                continue
            if hit is None:
                continue
            if isinstance(hit, list):
                keys.update(hit)
            else:
                keys.add(hit)
        rows = self.rows
        return [rows[k] for k in sorted(keys) if k in rows]

    def _build_index(self, prop: str) -> dict[Any, Any]:
        """Value -> key (a list of keys where several records share it); None is left out."""
        get = self.raw_getter(prop)
        index: dict[Any, Any] = {}
        for key, row in self.rows.items():
            value = get(row)
            if value is None:
                continue
            try:
                hit = index.get(value)
            except TypeError:
                value, hit = _ODD, index.get(_ODD)
            if hit is None:
                index[value] = key
            elif isinstance(hit, list):
                hit.append(key)
            else:
                index[value] = [hit, key]
        return index

    def has_property(self, name: str) -> bool:
        return name in self.template

    def is_date(self, name: str) -> bool:
        """Whether a property holds a day (filters compare such properties by day)."""
        return name in self.date_set

    @property
    def int_keys(self) -> bool:
        return self.template.type_of(self.key) == schema.INT

    # -- reading ---------------------------------------------------------------------------

    def raw_getter(self, name: str) -> Callable[[list], Any]:
        """A function returning a property's stored value (dates as ISO strings) from a row."""
        ext = self.ext
        if name in self.col:
            i = self.col[name]

            def core(row: list) -> Any:
                extras = row[ext]
                if extras is not None and name in extras:
                    return extras[name]
                return row[i]

            return core
        if name in self.computed:
            fn = self.computed[name]

            def computed(row: list) -> Any:
                extras = row[ext]
                if extras is not None and name in extras:
                    return extras[name]
                try:
                    return fn(row)
                except _GUARDED:
                    return None

            return computed
        default = self.template.get(name)

        def wide(row: list) -> Any:
            extras = row[ext]
            if extras is not None:
                return extras.get(name, default)
            return default

        return wide

    def value(self, row: list, name: str) -> Any:
        return self.raw_getter(name)(row)

    def etag(self, row: list) -> str:
        digest = hashlib.sha1(f"{self.name}|{row[self.key_index]}|{row[self.ver]}".encode()).hexdigest()  # noqa: S324
        return f'W/"{digest}"'

    def _build_getters(self) -> dict[str, Callable[[list, bool], Any]]:
        getters: dict[str, Callable[[list, bool], Any]] = {}
        for name in self.template:
            if name in self.collections:
                getters[name] = lambda row, v2, fn=self.collections[name]: _guarded(fn, row, v2)
                continue
            raw = self.raw_getter(name)
            if name in self.date_set:
                getters[name] = lambda row, v2, raw=raw: fmt_date(raw(row), v2)
            else:
                getters[name] = lambda row, v2, raw=raw: raw(row)
        return getters

    def serialize(self, row: list, v2: bool, select: list[str] | None = None) -> dict[str, Any]:
        """The record as the Service Layer sends it, widened only as far as ``select`` asks."""
        if select is not None:
            out: dict[str, Any] = {"@odata.etag": self.etag(row)} if v2 else {}
            getters = self._getters
            for name in select:
                out[name] = getters[name](row, v2)
            return out
        out = self._tmpl.copy()
        if v2:
            out["@odata.etag"] = self.etag(row)
        else:
            del out["@odata.etag"]
        for name, i in self._scalar_core:
            out[name] = row[i]
        try:
            for name, fn in self.computed.items():
                out[name] = fn(row)
        except _GUARDED:  # a seeded hostile value: derive what can be derived
            for name, fn in self.computed.items():
                out[name] = _guarded(fn, row)
        extras = row[self.ext]
        if extras:
            out.update(extras)
        if v2:
            for name in self.date_props:
                value = out[name]
                if value is not None:
                    out[name] = fmt_date(value, True)
        try:
            for name, fn in self.collections.items():
                out[name] = fn(row, v2)
        except _GUARDED:
            for name, fn in self.collections.items():
                out[name] = _guarded(fn, row, v2)
        return out


def fmt_date(value: Any, v2: bool) -> Any:
    """A stored ISO date as v1 (``2024-05-01``) or v2 (``2024-05-01T00:00:00Z``) sends it."""
    if v2 and isinstance(value, str) and len(value) == 10 and value[4] == "-":
        return value + "T00:00:00Z"
    return value


# ---------------------------------------------------------------------------------------------
# Shared tables the compact document lines point into


class Tables:
    """Lookups shared by generated rows: items, accounts, profit-centre combinations."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, float]] = []  # code, name, base price
        self.revenue_accounts: list[str] = []
        self.expense_accounts: list[str] = []
        self.bank_accounts: list[str] = []
        self.postable: set[str] = set()
        self.centres: dict[int, list[str]] = {}
        self.active_centres: dict[int, set[str]] = {}
        self.cc_combos: list[tuple[str, str, str]] = []
        self.partners: dict[str, str] = {}  # CardCode -> CardType


def lazy_lines(row: list, marker: tuple, tables: Tables, sales: bool) -> list[dict[str, Any]]:
    """Rebuild a generated document's lines from the seed kept in its core.

    The header's subtotal and VAT (in cents) are split over the lines, so the lines always add
    up to the header: ``sum(LineTotal) + VatSum == DocTotal``.
    """
    nlines, tax_i, salt, sub_c, vat_c = marker
    rng = random.Random(salt)
    r = rng.random
    weights = [0.2 + r() for _ in range(nlines)]
    wsum = sum(weights)
    totals = [int(sub_c * w / wsum) for w in weights]
    totals[-1] += sub_c - sum(totals)
    tax_code, tax_rate = SALES_TAX[tax_i]
    taxes = [round(c * tax_rate) for c in totals]
    taxes[-1] += vat_c - sum(taxes)
    accounts = tables.revenue_accounts if sales else tables.expense_accounts
    items = tables.items
    combos = tables.cc_combos
    currency, rate, entry = row[9], row[10], row[0]
    foreign = currency != LOCAL_CURRENCY
    open_ = row[11] == "bost_Open"
    out = []
    for ln in range(nlines):
        code, name, _ = items[int(r() * len(items))]
        qty = 1 + int(r() * r() * 20)
        total = totals[ln] / 100
        tax = taxes[ln] / 100
        price = round(total / rate / qty, 4)
        cc = combos[int(r() * len(combos))]
        acct = accounts[int(r() * len(accounts))]
        out.append(
            {
                "LineNum": ln,
                "ItemCode": code,
                "ItemDescription": name,
                "Quantity": float(qty),
                "Price": price,
                "PriceAfterVAT": round(price * (1 + tax_rate), 4),
                "Currency": currency,
                "Rate": rate if foreign else 0.0,
                "WarehouseCode": WAREHOUSES[int(r() * len(WAREHOUSES))],
                "AccountCode": acct,
                "CostingCode": cc[0],
                "TaxCode": tax_code,
                "TaxType": "tt_Yes" if tax_rate else "tt_No",
                "LineTotal": total,
                "TaxPercentagePerRow": tax_rate * 100,
                "TaxTotal": tax,
                "RowTotalFC": round(total / rate, 2) if foreign else 0.0,
                "UnitPrice": price,
                "LineStatus": "bost_Open" if open_ else "bost_Close",
                "LineType": "dlt_Regular",
                "CostingCode2": cc[1],
                "CostingCode3": cc[2],
                "DocEntry": entry,
                "UoMCode": "Manual",
                "InventoryQuantity": float(qty),
                "RemainingOpenQuantity": float(qty) if open_ else 0.0,
                "OpenAmount": total if open_ else 0.0,
                "GrossTotal": round(total + tax, 2),
                "COGSAccountCode": None if sales else acct,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Name pools (apostrophes and non-ASCII letters on purpose)

_FIRST = [
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "James",
    "Ava",
    "Sofía",
    "José",
    "Zoë",
    "Chloé",
    "Björn",
    "Siobhán",
    "Łukasz",
    "Renée",
    "Mateo",
    "Aoife",
    "Günter",
    "Inés",
    "Nuño",
    "Ørjan",
    "Amélie",
    "Dmitri",
    "Hana",
    "Kofi",
    "Priya",
    "Tomás",
    "Élodie",
    "Jürgen",
    "Ana",
    "Wei",
]
_LAST = [
    "Smith",
    "O'Brien",
    "Müller",
    "García",
    "Ñandú",
    "D'Angelo",
    "Johnson",
    "Øberg",
    "Šimić",
    "Nguyen",
    "Brown",
    "O'Connor",
    "Schröder",
    "Martínez",
    "Kowalski",
    "Dubois",
    "Rossi",
    "Jäger",
    "Fernández",
    "Lefèvre",
    "MacDonald",
    "Żak",
    "Ødegaard",
    "Petrović",
    "Lévesque",
    "Silva",
    "Watanabe",
    "Okafor",
    "Haddad",
    "Novák",
    "Cruz",
]
_COMPANY_SUFFIX = (
    "Ltd.",
    "Inc.",
    "GmbH",
    "S.A.",
    "LLC",
    "& Sons",
    "Trading",
    "Supply Co.",
    "Hermanos",
    "SARL",
)
_COMPANY_WORDS = [
    "Acme",
    "Pinnacle",
    "Northwind",
    "Café",
    "Blue",
    "Ridge",
    "Soleil",
    "Brücke",
    "Cañon",
    "L'Étoile",
    "Harbor",
    "Summit",
    "Polar",
    "Evergreen",
    "Königs",
    "Mañana",
    "Prairie",
    "Aurora",
    "Fjord",
    "Delta",
    "Granite",
    "Nordic",
    "Azteca",
    "Lumière",
    "Orchard",
]
_CITIES = (
    ("Chicago", "US", "60601"),
    ("Dallas", "US", "75201"),
    ("New York", "US", "10001"),
    ("Toronto", "CA", "M5H 2N2"),
    ("München", "DE", "80331"),
    ("São Paulo", "BR", "01000-000"),
    ("Querétaro", "MX", "76000"),
    ("Dublin", "IE", "D02 X285"),
    ("Kraków", "PL", "30-001"),
    ("Lyon", "FR", "69001"),
    ("Zürich", "CH", "8001"),
    ("London", "GB", "EC1A 1BB"),
)
_STREETS = ("Main St", "Oak Ave", "Hauptstraße", "Rue de l'Église", "Calle Mayor", "King's Road", "Elm St")
_ITEM_WORDS = [
    "Steel Bracket",
    "Copper Pipe",
    "Café Filter",
    "Valve Assembly",
    "Torque Wrench",
    "LED Panel",
    "Ölfilter",
    "Gasket Set",
    "Thermostat",
    "Circuit Breaker",
    "Pump Motor",
    "Señal Relay",
    "Compressor",
    "Fan Blade",
    "Duct Tape",
    "Sensor Kit",
    "Drill Bit",
    "Safety Gloves",
    "Cable Tie",
    "Control Board",
]
_ITEM_SIZES = ("10mm", "25mm", "Ø50", '1/2"', '3/4"', "XL", "2m", "5kg", "Pro", "Mini")
_UOM = ("Each", "Box", "Kg", "m", "Set")
_MEMOS = (
    "Accrual reversal",
    "Month-end accrual",
    "Bank charges",
    "Payroll allocation",
    "Depreciation run",
    "Reclass O'Hare project costs",
    "FX revaluation",
    "Rückstellung Q-end",
)
_COMMENTS = (
    None,
    None,
    None,
    "Deliver to back door",
    "Customer's PO attached",
    "Net 30, per agreement with O'Neil",
    "Entrega en almacén Ñuñoa",
    "Bitte Lieferschein beilegen (Müller)",
)


# ---------------------------------------------------------------------------------------------
# The generator


class Dataset:
    """All entity sets of one company plus the tables their rows point into."""

    def __init__(self, entities: dict[str, Entity], tables: Tables, anchor: dt.date) -> None:
        self.entities = entities
        self.tables = tables
        self.anchor = anchor


def _currency(r: Callable[[], float]) -> tuple[str, float]:
    x = r()
    acc = 0.0
    for code, weight, rate in CURRENCIES:
        acc += weight
        if x < acc:
            return code, rate
    return CURRENCIES[0][0], CURRENCIES[0][2]


def generate(seed: int, invoices: int, anchor: dt.date) -> Dataset:
    """Build a consistent company: partners, items, accounts, profit centres and documents.

    :param seed: same seed and sizes give identical data.
    :param invoices: number of A/R invoices; other volumes follow from it.
    :param anchor: the day "today" stands for; generated dates fall in the year before it.
    """
    rng = random.Random(seed)
    r = rng.random
    tables = Tables()
    days = [(anchor - dt.timedelta(days=365 - i)).isoformat() for i in range(366 + 90)]
    last_day = 364  # the day before the anchor
    times = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
    work_times = times[7 * 3600 : 19 * 3600]
    nwt = len(work_times)

    entities: dict[str, Entity] = {}

    # -- dimensions and profit centres -----------------------------------------------------
    dim_names = {1: "Department", 2: "Region", 3: "Product Line", 4: "Project", 5: "Channel"}
    centres = {
        1: [
            ("SALES", "Sales"),
            ("ADMIN", "Administration"),
            ("OPS", "Operations"),
            ("MKTG", "Marketing"),
            ("IT", "IT"),
            ("FIN", "Finance"),
        ],
        2: [
            ("NORTH", "North"),
            ("SOUTH", "South"),
            ("EAST", "East"),
            ("WEST", "West"),
            ("INTL", "International"),
        ],
        3: [("HW", "Hardware"), ("SW", "Software"), ("SVC", "Services"), ("PARTS", "Spare Parts")],
        4: [("P-ALPHA", "Project Alpha"), ("P-BETA", "Project Beta")],
        5: [("CH-WEB", "Web shop"), ("CH-RETAIL", "Retail")],
    }
    inactive_centres = {1: [("LEGACY", "Legacy department (closed)")], 2: [("CENTRAL", "Central (merged)")]}
    dims = Entity(
        "Dimensions",
        key="DimensionCode",
        object_name="Dimension",
        template=schema.DIMENSION,
        columns=["DimensionCode", "DimensionName", "IsActive", "DimensionDescription"],
    )
    dims.load([n, f"Dimension {n}", "tYES" if n <= 3 else "tNO", dim_names[n], 1, None] for n in range(1, 6))
    entities["Dimensions"] = dims
    pc_rows = []
    for dim in range(1, 6):
        tables.centres[dim] = [c for c, _ in centres[dim]]
        tables.active_centres[dim] = set(tables.centres[dim])
        for code, name in centres[dim]:
            pc_rows.append([code, name, dim, "tYES", days[0], 1, None])
        for code, name in inactive_centres.get(dim, []):
            pc_rows.append([code, name, dim, "tNO", days[0], 1, None])
    pcs = Entity(
        "ProfitCenters",
        key="CenterCode",
        object_name="ProfitCenter",
        template=schema.PROFIT_CENTER,
        columns=["CenterCode", "CenterName", "InWhichDimension", "Active", "EffectiveFrom"],
    )
    pcs.load(pc_rows)
    entities["ProfitCenters"] = pcs
    tables.cc_combos = [
        (a, b, c) for a in tables.centres[1] for b in tables.centres[2] for c in tables.centres[3]
    ]

    # -- chart of accounts -----------------------------------------------------------------
    groups = {
        1: ("Assets", ("Current Assets", "Fixed Assets", "Other Assets")),
        2: ("Liabilities", ("Current Liabilities", "Long-term Liabilities", "Accruals")),
        3: ("Equity", ("Capital", "Retained Earnings", "Reserves")),
        4: ("Revenues", ("Product Sales", "Service Revenue", "Other Income")),
        5: ("Cost of Sales", ("Materials", "Freight", "Subcontracting")),
        6: ("Operating Expenses", ("Personnel", "Facilities", "Selling")),
        7: ("Other Expenses", ("Financial", "Taxes", "Extraordinary")),
    }
    leaf_words = (
        "Domestic",
        "Export",
        "Intercompany",
        "Misc.",
        "Bank",
        "Petty Cash",
        "Reserve",
        "Adjustments",
    )
    coa_rows = []
    for g, (gname, subs) in groups.items():
        atype = "at_Revenues" if g == 4 else "at_Expenses" if g in (5, 6) else "at_Other"
        coa_rows.append([f"{g}00000", gname, 0.0, "##", None, "tNO", 1, atype, "tNO", 1, None])
        for s, sname in enumerate(subs, 1):
            coa_rows.append([f"{g}{s}0000", sname, 0.0, "##", f"{g}00000", "tNO", 2, atype, "tNO", 1, None])
            for t in range(1, 4):
                title = f"{g}{s}{t}000"
                coa_rows.append(
                    [title, f"{sname} {t}", 0.0, "##", f"{g}{s}0000", "tNO", 3, atype, "tNO", 1, None]
                )
                for n in range(1, 5):
                    code = f"{g}{s}{t}{n:03d}"
                    frozen = "tYES" if n == 4 and t == 3 else "tNO"
                    coa_rows.append(
                        [
                            code,
                            f"{sname} - {leaf_words[(s * 3 + t + n) % len(leaf_words)]} {n}",
                            round((r() - 0.3) * 250000, 2),
                            "##" if r() < 0.8 else LOCAL_CURRENCY,
                            title,
                            "tYES",
                            4,
                            atype,
                            frozen,
                            1,
                            None,
                        ]
                    )
                    tables.postable.add(code)
                    if frozen == "tNO":
                        if g == 4:
                            tables.revenue_accounts.append(code)
                        elif g == 5:
                            tables.expense_accounts.append(code)
                        elif g == 1 and s == 1:
                            tables.bank_accounts.append(code)
    coa = Entity(
        "ChartOfAccounts",
        key="Code",
        object_name="ChartOfAccount",
        template=schema.ACCOUNT,
        columns=[
            "Code",
            "Name",
            "Balance",
            "AcctCurrency",
            "FatherAccountKey",
            "ActiveAccount",
            "AccountLevel",
            "AccountType",
            "FrozenFor",
        ],
        computed={"FormatCode": itemgetter(0)},
    )
    coa.load(coa_rows)
    entities["ChartOfAccounts"] = coa
    rev, nrev = tables.revenue_accounts, len(tables.revenue_accounts)
    exp, nexp = tables.expense_accounts, len(tables.expense_accounts)
    banks = tables.bank_accounts

    # -- items -----------------------------------------------------------------------------
    n_items = max(60, min(2000, invoices // 50))
    item_rows = []
    for i in range(1, n_items + 1):
        code = f"A{i:05d}"
        name = f"{_ITEM_WORDS[int(r() * len(_ITEM_WORDS))]} {_ITEM_SIZES[int(r() * len(_ITEM_SIZES))]}"
        base = round(2 + r() * r() * 900, 2)
        tables.items.append((code, name, base))
        inventory = "tYES" if r() < 0.9 else "tNO"
        created = int(r() * 200)
        updated = min(last_day, created + int(r() * 200))
        prices = [
            {
                "PriceList": pl,
                "Price": round(base * f, 2),
                "Currency": LOCAL_CURRENCY,
                "BasePriceList": 1,
                "Factor": f,
            }
            for pl, f in PRICE_LISTS
        ]
        stock = [
            {
                "WarehouseCode": w,
                "InStock": float(int(r() * 500)),
                "Committed": float(int(r() * 40)),
                "Ordered": float(int(r() * 60)),
                "ItemCode": code,
            }
            for w in WAREHOUSES
        ]
        item_rows.append(
            [
                code,
                name,
                100 + int(r() * 6),
                inventory,
                "tYES",
                "tYES" if r() < 0.95 else "tNO",
                "tYES" if r() < 0.97 else "tNO",
                "tNO" if r() < 0.98 else "tYES",
                _UOM[int(r() * len(_UOM))],
                days[created],
                work_times[int(r() * nwt)],
                days[updated],
                work_times[int(r() * nwt)],
                None,
                prices,
                stock,
                1 + int(r() * 5),
                None,
            ]
        )
    items = Entity(
        "Items",
        key="ItemCode",
        object_name="Item",
        template=schema.ITEM,
        columns=[
            "ItemCode",
            "ItemName",
            "ItemsGroupCode",
            "InventoryItem",
            "SalesItem",
            "PurchaseItem",
            "Valid",
            "Frozen",
            "InventoryUOM",
            "CreateDate",
            "CreateTime",
            "UpdateDate",
            "UpdateTime",
            "U_ExternalId",
            "ItemPrices",
            "ItemWarehouseInfoCollection",
        ],
    )
    items_computed = {
        "DataVersion": itemgetter(items.ver),
        "QuantityOnStock": lambda row: sum(w["InStock"] for w in row[15]),
        "SalesUnit": itemgetter(8),
        "PurchaseUnit": itemgetter(8),
        "DefaultWarehouse": lambda row: "01",
        "ItemType": lambda row: "itItems",
        "IncomeAccount": lambda row: rev[hash_index(row[0], nrev)],
        "ExpanseAccount": lambda row: exp[hash_index(row[0], nexp)],
    }
    items_collections = {
        "ItemPrices": _dict_collection(14, schema.ITEM_PRICE),
        "ItemWarehouseInfoCollection": _dict_collection(15, schema.ITEM_WAREHOUSE),
    }
    items.setup(items_computed, items_collections)
    items.load(item_rows)
    entities["Items"] = items

    # -- business partners -----------------------------------------------------------------
    n_cust = max(40, invoices // 25)
    n_supp = max(15, invoices // 100)
    n_lead = max(5, n_cust // 10)
    bp_rows = []
    customers: list[list] = []
    suppliers: list[list] = []

    def person() -> str:
        return f"{_FIRST[int(r() * len(_FIRST))]} {_LAST[int(r() * len(_LAST))]}"

    def company() -> str:
        if r() < 0.5:
            return f"{_LAST[int(r() * len(_LAST))]} {_COMPANY_SUFFIX[int(r() * len(_COMPANY_SUFFIX))]}"
        return f"{_COMPANY_WORDS[int(r() * len(_COMPANY_WORDS))]} {_COMPANY_SUFFIX[int(r() * len(_COMPANY_SUFFIX))]}"

    for prefix, count, card_type, bucket in (
        ("C", n_cust, "cCustomer", customers),
        ("V", n_supp, "cSupplier", suppliers),
        ("L", n_lead, "cLid", None),
    ):
        for i in range(1, count + 1):
            code = f"{prefix}{i:05d}"
            name = company() if r() < 0.7 else person()
            currency, _ = _currency(r)
            city, country, zipc = _CITIES[int(r() * len(_CITIES))]
            addresses = [
                {
                    "AddressName": "Bill To",
                    "Street": f"{1 + int(r() * 9000)} {_STREETS[int(r() * len(_STREETS))]}",
                    "City": city,
                    "ZipCode": zipc,
                    "Country": country,
                    "AddressType": "bo_BillTo",
                    "BPCode": code,
                    "RowNum": 0,
                }
            ]
            if r() < 0.4:
                addresses.append(
                    {**addresses[0], "AddressName": "Ship To", "AddressType": "bo_ShipTo", "RowNum": 1}
                )
            created = int(r() * 120)
            updated = min(last_day, created + int(r() * 300))
            slug = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())[:12] or "contact"
            row = [
                code,
                name,
                card_type,
                100 + (0 if card_type == "cCustomer" else 1 if card_type == "cSupplier" else 2),
                currency,
                f"+1 312 555 {int(r() * 10000):04d}",
                f"{slug}@example.com" if r() < 0.85 else None,
                f"{int(r() * 90) + 10}-{int(r() * 9000000) + 1000000}",
                "tYES",
                "tNO" if r() < 0.97 else "tYES",
                0.0,
                days[created],
                work_times[int(r() * nwt)],
                days[updated],
                work_times[int(r() * nwt)],
                None,
                addresses,
                1 + int(r() * 4),
                None,
            ]
            bp_rows.append(row)
            tables.partners[code] = card_type
            if bucket is not None:
                bucket.append(row)
    bps = Entity(
        "BusinessPartners",
        key="CardCode",
        object_name="BusinessPartner",
        template=schema.BUSINESS_PARTNER,
        columns=[
            "CardCode",
            "CardName",
            "CardType",
            "GroupCode",
            "Currency",
            "Phone1",
            "EmailAddress",
            "FederalTaxID",
            "Valid",
            "Frozen",
            "CurrentAccountBalance",
            "CreateDate",
            "CreateTime",
            "UpdateDate",
            "UpdateTime",
            "U_ExternalId",
            "BPAddresses",
        ],
    )
    bps_computed = {
        "DataVersion": itemgetter(bps.ver),
        "City": lambda row: row[16][0]["City"] if row[16] else None,
        "Country": lambda row: row[16][0]["Country"] if row[16] else None,
        "ZipCode": lambda row: row[16][0]["ZipCode"] if row[16] else None,
        "Address": lambda row: row[16][0]["Street"] if row[16] else None,
        "DebitorAccount": lambda row: "1120001" if row[2] != "cSupplier" else "2110001",
        "PriceListNum": lambda row: 1,
    }
    bps_collections = {"BPAddresses": _dict_collection(16, schema.BP_ADDRESS)}
    bps.setup(bps_computed, bps_collections)
    bps.load(bp_rows)
    entities["BusinessPartners"] = bps

    # -- documents -------------------------------------------------------------------------
    volumes = {
        "Invoices": invoices,
        "Orders": invoices // 4,
        "DeliveryNotes": invoices // 10,
        "PurchaseOrders": max(20, invoices // 10),
        "PurchaseInvoices": max(20, invoices // 10),
    }
    ncombo = len(tables.cc_combos)
    doc_rows: dict[str, list[list]] = {}
    rates = {c: x for c, _, x in CURRENCIES}
    for ename in GENERATED_DOCUMENTS:
        n = volumes[ename]
        sales = ename in SALES_DOCUMENTS
        partners = customers if sales else suppliers
        npart = len(partners)
        base_num = DOCNUM_BASE[ename]
        salt = (seed * 1_000_003 + GENERATED_DOCUMENTS.index(ename) * 7_919) << 24
        rows = []
        for i in range(1, n + 1):
            partner = partners[int(r() * npart)]
            currency = partner[4]
            rate = 1.0
            if currency != LOCAL_CURRENCY:
                rate = round(rates[currency] * (0.98 + r() * 0.04), 4)
            day = min(last_day, int((i - 1) * 365 / n + r() * 3))
            nlines = 1 + int(r() * 7)
            sub_c = 0
            for _ in range(nlines):
                sub_c += 500 + int(r() * r() * r() * 300000)
            tax_i = int(r() * 3) if sales else 0
            vat_c = round(sub_c * SALES_TAX[tax_i][1])
            age = last_day - day
            x = r()
            cancelled = "tYES" if x < 0.02 else "tNO"
            closed = cancelled == "tYES" or (age > 20 and x < 0.75) or (age > 90 and ename != "Invoices")
            updated = min(last_day, day + int(r() * r() * 40))
            rows.append(
                [
                    i,
                    base_num + i,
                    days[day],
                    days[day + 30],
                    days[day],
                    partner[0],
                    partner[1],
                    (sub_c + vat_c) / 100,
                    vat_c / 100,
                    currency,
                    rate,
                    "bost_Close" if closed else "bost_Open",
                    cancelled,
                    f"PO-{int(r() * 900000) + 100000}" if r() < 0.6 else None,
                    _COMMENTS[int(r() * len(_COMMENTS))],
                    int(r() * 8) + 1 if sales else -1,
                    days[day],
                    work_times[int(r() * nwt)],
                    days[updated],
                    work_times[int(r() * nwt)],
                    None,
                    (nlines, tax_i, salt + i, sub_c, vat_c),
                    1 + int(r() * 3),
                    None,
                ]
            )
        doc_rows[ename] = rows
        entities[ename] = _document_entity(ename, tables)
        entities[ename].load(rows)

    # -- payments applied to invoices ------------------------------------------------------
    for ename, source, card_doc, inv_type in (
        ("IncomingPayments", "Invoices", "rCustomer", "it_Invoice"),
        ("VendorPayments", "PurchaseInvoices", "rSupplier", "it_PurchaseInvoice"),
    ):
        payments = []
        waiting: dict[str, list] = {}
        for inv in doc_rows[source]:
            if inv[12] == "tYES" or inv[11] != "bost_Close":
                continue
            day = _day_index(inv[2], anchor) + int(r() * 40)
            if day > last_day:
                inv[11] = "bost_Open"
                continue
            applied = [inv]
            other = waiting.pop(inv[5], None)
            if other is not None:
                applied.append(other)
            elif r() < 0.25:
                waiting[inv[5]] = inv
                continue
            currency, rate = inv[9], inv[10]
            applied_rows = []
            total_lc = 0.0
            for ln, doc in enumerate(applied):
                applied_rows.append(
                    {
                        "LineNum": ln,
                        "DocEntry": doc[0],
                        "SumApplied": doc[7],
                        "AppliedFC": round(doc[7] / rate, 2) if currency != LOCAL_CURRENCY else 0.0,
                        "AppliedSys": doc[7],
                        "DocRate": rate if currency != LOCAL_CURRENCY else 0.0,
                        "InvoiceType": inv_type,
                    }
                )
                total_lc += doc[7] or 0.0
            total = round(total_lc / rate, 2) if currency != LOCAL_CURRENCY else round(total_lc, 2)
            by_transfer = r() < 0.8
            payments.append(
                [
                    0,
                    0,
                    days[day],
                    card_doc,
                    inv[5],
                    inv[6],
                    0.0 if by_transfer else total,
                    total if by_transfer else 0.0,
                    currency,
                    rate,
                    "tNO" if r() < 0.99 else "tYES",
                    banks[int(r() * len(banks))] if by_transfer else None,
                    None if by_transfer else banks[0],
                    f"Payment for {', '.join(str(d[1]) for d in applied)}",
                    days[day],
                    work_times[int(r() * nwt)],
                    days[min(last_day, day + int(r() * r() * 5))],
                    work_times[int(r() * nwt)],
                    applied_rows,
                    1,
                    None,
                ]
            )
        for inv in waiting.values():
            inv[11] = "bost_Open"
        payments.sort(key=itemgetter(2))
        for n, p in enumerate(payments, 1):
            p[0] = n
            p[1] = DOCNUM_BASE[ename] + n
        entities[ename] = _payment_entity(ename)
        entities[ename].load(payments)

    # Customer balances: what is still open.
    balances: dict[str, float] = {}
    for inv in doc_rows["Invoices"]:
        if inv[11] == "bost_Open" and inv[12] == "tNO":
            balances[inv[5]] = balances.get(inv[5], 0.0) + inv[7]
    for row in customers:
        row[10] = round(balances.get(row[0], 0.0), 2)

    # -- journal entries (manual, balanced) ------------------------------------------------
    n_je = max(50, invoices // 10)
    je_rows = []
    postable = sorted(tables.postable)
    npost = len(postable)
    for i in range(1, n_je + 1):
        day = min(last_day, int((i - 1) * 365 / n_je))
        nlines = 2 + int(r() * 3)
        fc = r() < 0.1
        amounts = [round(10 + r() * r() * 20000, 2) for _ in range(nlines - 1)]
        lines = []
        for ln, amount in enumerate(amounts):
            acct = postable[int(r() * npost)]
            cc = tables.cc_combos[int(r() * ncombo)]
            lines.append(_je_line(ln, acct, amount, 0.0, fc, cc, _MEMOS[int(r() * len(_MEMOS))]))
        acct = banks[int(r() * len(banks))]
        lines.append(
            _je_line(nlines - 1, acct, 0.0, round(sum(amounts), 2), fc, (None, None, None), "Offset")
        )
        je_rows.append(
            [
                i,
                days[day],
                days[day],
                days[day],
                _MEMOS[int(r() * len(_MEMOS))],
                f"JE-{i:06d}",
                None if r() < 0.7 else f"REF-{int(r() * 99999):05d}",
                None if r() < 0.6 else ("ADJ" if r() < 0.5 else "ACC"),
                "ttJournalEntry",
                days[day],
                days[min(last_day, day + int(r() * r() * 10))],
                lines,
                1,
                None,
            ]
        )
    jes = Entity(
        "JournalEntries",
        key="JdtNum",
        object_name="JournalEntry",
        template=schema.JOURNAL_ENTRY,
        columns=[
            "JdtNum",
            "ReferenceDate",
            "DueDate",
            "TaxDate",
            "Memo",
            "Reference",
            "Reference2",
            "TransactionCode",
            "OriginalJournal",
            "CreateDate",
            "UpdateDate",
            "JournalEntryLines",
        ],
    )
    jes_computed = {"DataVersion": itemgetter(jes.ver), "Number": itemgetter(0)}
    jes_collections = {"JournalEntryLines": _dict_collection(11, schema.JOURNAL_LINE)}
    jes.setup(jes_computed, jes_collections)
    jes.load(je_rows)
    entities["JournalEntries"] = jes

    # -- written by clients only: credit memos, drafts held for approval, approval requests --
    entities["CreditNotes"] = _document_entity("CreditNotes", tables)
    entities["Drafts"] = _document_entity("Drafts", tables)
    entities["ApprovalRequests"] = _approval_entity()
    return Dataset(entities, tables, anchor)


def _day_index(iso: str, anchor: dt.date) -> int:
    return 365 - (anchor - dt.date.fromisoformat(iso)).days


def hash_index(text: str, n: int) -> int:
    """A stable small index derived from a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2s(text.encode(), digest_size=4).digest(), "big") % n


def _je_line(
    ln: int, acct: str, debit: float, credit: float, fc: bool, cc: tuple, memo: str
) -> dict[str, Any]:
    return {
        "Line_ID": ln,
        "AccountCode": acct,
        "ShortName": acct,
        "Debit": debit,
        "Credit": credit,
        "FCDebit": round(debit / 1.09, 2) if fc else 0.0,
        "FCCredit": round(credit / 1.09, 2) if fc else 0.0,
        "FCCurrency": "EUR" if fc else None,
        "DebitSys": debit,
        "CreditSys": credit,
        "CostingCode": cc[0],
        "CostingCode2": cc[1],
        "CostingCode3": cc[2],
        "CostingCode4": None,
        "CostingCode5": None,
        "LineMemo": memo,
    }


def _dict_collection(index: int, template: schema.Template) -> Callable[[list, bool], Any]:
    date_props = template.props_of(schema.DATE)

    def serialize(row: list, v2: bool) -> Any:
        children = row[index]
        if not isinstance(children, list):
            return children if children is not None else []
        out = []
        for child in children:
            if not isinstance(child, dict):
                out.append(child)
                continue
            d = template.copy()
            d.update(child)
            if v2:
                for p in date_props:
                    d[p] = fmt_date(d[p], True)
            out.append(d)
        return out

    return serialize


DOCUMENT_COLUMNS = [
    "DocEntry",
    "DocNum",
    "DocDate",
    "DocDueDate",
    "TaxDate",
    "CardCode",
    "CardName",
    "DocTotal",
    "VatSum",
    "DocCurrency",
    "DocRate",
    "DocumentStatus",
    "Cancelled",
    "NumAtCard",
    "Comments",
    "SalesPersonCode",
    "CreateDate",
    "CreateTime",
    "UpdateDate",
    "UpdateTime",
    "U_ExternalId",
    "DocumentLines",
]
LINES = DOCUMENT_COLUMNS.index("DocumentLines")


def document_line_dicts(row: list, tables: Tables, sales: bool) -> list[dict[str, Any]]:
    """A document's lines as dicts of their modelled properties (compact tuples expanded)."""
    lines = row[LINES]
    if isinstance(lines, tuple):
        return lazy_lines(row, lines, tables, sales)
    return lines


def _document_entity(name: str, tables: Tables) -> Entity:
    sales = name in SALES_DOCUMENTS
    line_tmpl = schema.DOCUMENT_LINE
    line_dates = line_tmpl.props_of(schema.DATE)
    ent = Entity(
        name,
        key="DocEntry",
        object_name="Document",
        template=schema.DOCUMENT,
        columns=list(DOCUMENT_COLUMNS),
    )

    def lines(row: list, v2: bool) -> Any:
        cores = document_line_dicts(row, tables, sales)
        if not isinstance(cores, list):
            return cores if cores is not None else []
        out = []
        for core in cores:
            if not isinstance(core, dict):
                out.append(core)
                continue
            d = line_tmpl.copy()
            d.update(core)
            if v2:
                for p in line_dates:
                    if d[p] is not None:
                        d[p] = fmt_date(d[p], True)
            out.append(d)
        return out

    def foreign_total(row: list) -> float | None:
        if row[9] == LOCAL_CURRENCY or row[7] is None:
            return 0.0
        if not is_number(row[7]) or not is_number(row[10]) or not row[10]:
            return None
        return round(row[7] / row[10], 2)

    label = {
        "Orders": "Sales Orders",
        "Invoices": "A/R Invoices",
        "CreditNotes": "A/R Credit Memos",
        "DeliveryNotes": "Deliveries",
        "PurchaseOrders": "Purchase Orders",
        "PurchaseInvoices": "A/P Invoices",
        "Drafts": "Drafts",
    }[name]
    payable = name in PAYABLE_DOCUMENTS

    def paid_to_date(row: list) -> float | None:
        # Written documents keep theirs among the extras; a generated one is either open and
        # unpaid, or closed and paid in full by a generated payment (unless cancelled).
        if payable and row[11] == "bost_Close" and row[12] == "tNO":
            return row[7] if is_number(row[7]) else None
        return 0.0

    ent_computed = {
        "DocType": lambda row: "dDocument_Items",
        # A draft names the document it stands for among its extras (written with the draft).
        "DocObjectCode": (lambda row: None) if name == "Drafts" else (lambda row: OBJECT_CODES[name]),
        "PaidToDate": paid_to_date,
        "PaidToDateSys": paid_to_date,
        "CreationDate": itemgetter(16),
        "DocTime": lambda row: row[17][:5] + ":00" if row[17] else None,
        "DocTotalFc": foreign_total,
        "DocTotalSys": itemgetter(7),
        "VatSumSys": itemgetter(8),
        "JournalMemo": lambda row: f"{label} - {row[5]}",
        "PaymentGroupCode": lambda row: -1,
        "Series": lambda row: 1 if sales else 2,
        "DataVersion": itemgetter(ent.ver),
        "ClosingDate": lambda row: row[18] if row[11] == "bost_Close" else None,
        "DocumentSubType": lambda row: "bod_None",
        "AuthorizationStatus": lambda row: "dasWithout",
        "CancelStatus": lambda row: "csYes" if row[12] == "tYES" else "csNo",
        "DocumentDelivery": lambda row: "ddtNoneSeleted",
    }
    ent_collections = {"DocumentLines": lines}
    ent.setup(ent_computed, ent_collections)
    return ent


PAYMENT_COLUMNS = [
    "DocEntry",
    "DocNum",
    "DocDate",
    "DocType",
    "CardCode",
    "CardName",
    "CashSum",
    "TransferSum",
    "DocCurrency",
    "DocRate",
    "Cancelled",
    "TransferAccount",
    "CashAccount",
    "Remarks",
    "CreateDate",
    "CreateTime",
    "UpdateDate",
    "UpdateTime",
    "PaymentInvoices",
]


def _payment_entity(name: str) -> Entity:
    ent = Entity(
        name,
        key="DocEntry",
        object_name="Payment",
        template=schema.PAYMENT,
        columns=list(PAYMENT_COLUMNS),
    )
    label = "Incoming Payments" if name == "IncomingPayments" else "Outgoing Payments"
    ent_computed = {
        "TaxDate": itemgetter(2),
        "DueDate": itemgetter(2),
        "TransferDate": lambda row: row[2] if row[7] else None,
        "JournalRemarks": lambda row: f"{label} - {row[4]}",
        "DataVersion": itemgetter(ent.ver),
        "Series": lambda row: 15 if name == "IncomingPayments" else 16,
        "AuthorizationStatus": lambda row: "pasWithout",
        "LocalCurrency": lambda row: "tYES" if row[8] == LOCAL_CURRENCY else "tNO",
    }
    ent_collections = {"PaymentInvoices": _dict_collection(18, schema.PAYMENT_INVOICE)}
    ent.setup(ent_computed, ent_collections)
    return ent


APPROVAL_COLUMNS = [
    "Code",
    "ApprovalTemplatesID",
    "ObjectType",
    "IsDraft",
    "ObjectEntry",
    "Status",
    "Remarks",
    "CurrentStage",
    "OriginatorID",
    "CreationDate",
    "CreationTime",
    "DraftEntry",
    "ApprovalRequestLines",
    "ApprovalRequestDecisions",
]


def _approval_entity() -> Entity:
    ent = Entity(
        "ApprovalRequests",
        key="Code",
        object_name="ApprovalRequest",
        template=schema.APPROVAL_REQUEST,
        columns=list(APPROVAL_COLUMNS),
    )
    ent.setup(
        {},
        {
            "ApprovalRequestLines": _dict_collection(12, schema.APPROVAL_REQUEST_LINE),
            "ApprovalRequestDecisions": _dict_collection(13, schema.APPROVAL_REQUEST_DECISION),
        },
    )
    return ent


def new_entity_like(name: str, tables: Tables) -> Entity:
    """An empty entity set of a document or payment kind (used by tests)."""
    if name in DOCUMENT_ENTITIES:
        return _document_entity(name, tables)
    return _payment_entity(name)


def is_number(value: Any) -> bool:
    """A JSON number that adds up: an int or a finite float, not a bool."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def truth(ent: Entity) -> dict[str, Any]:
    """Reconciliation facts about one entity set, as the company holds it.

    ``count`` and ``keys_sha256`` (SHA-256 of the keys in order, one a line) cover every record.
    For entities with ``DocTotal``: ``doc_total_sum`` adds the totals that are JSON numbers (to
    the cent, as a string), ``doc_total_counts`` says how many totals are numbers, nulls and
    anything else, and ``doc_total_non_numeric`` lists the records whose total is neither a
    number nor null (strings such as ``"12,50"`` or ``"1e309"``, booleans...) as
    ``{"key", "value"}`` in key order, so nothing is skipped silently. All three are None for
    entities without ``DocTotal``.
    """
    keys = sorted(ent.rows)
    digest = hashlib.sha256("\n".join(str(k) for k in keys).encode()).hexdigest()
    out: dict[str, Any] = {
        "entity": ent.name,
        "count": len(keys),
        "doc_total_sum": None,
        "doc_total_counts": None,
        "doc_total_non_numeric": None,
        "keys_sha256": digest,
    }
    if "DocTotal" not in ent.col:
        return out
    get = ent.raw_getter("DocTotal")
    acc = Decimal(0)
    nulls = 0
    others = []
    for key in keys:
        value = get(ent.rows[key])
        if is_number(value):
            acc += Decimal(repr(value))
        elif value is None:
            nulls += 1
        else:
            shown = value if not isinstance(value, float) else repr(value)  # NaN/inf have no JSON
            others.append({"key": key, "value": shown})
    out["doc_total_sum"] = str(acc.quantize(Decimal("0.01")))
    out["doc_total_counts"] = {
        "number": len(keys) - nulls - len(others),
        "null": nulls,
        "non_numeric": len(others),
    }
    out["doc_total_non_numeric"] = others
    return out
