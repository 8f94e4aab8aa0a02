"""What the hook knows about SAP Business One entity sets: one table, declared, not scattered.

Each entry says how a record is addressed (key and key type), how an incremental read finds
what changed (its update stamp) and which property usually holds a foreign system's id for it
(its dedupe field, used by :meth:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook.upsert`). The
facts are those of the Service Layer's ``$metadata``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntitySpec:
    """What the hook must know about an entity set.

    :param key: key property.
    :param key_type: ``int`` (rendered bare, ``Orders(22)``) or ``str`` (quoted, ``Items('A')``).
    :param cursor: ``"datetime"`` (``UpdateDate`` + ``UpdateTime``), ``"date"`` (``UpdateDate``
        only) or ``None`` (no update stamp: read in full every time).
    :param dedupe: the property that usually holds a foreign system's id for this entity
        (documents: ``NumAtCard``, the customer/vendor reference), or ``None`` when the key
        itself is the natural key (business partners, items) or there is no such property.
    """

    key: str
    key_type: type = str
    cursor: str | None = "datetime"
    dedupe: str | None = None

    @property
    def has_update_time(self) -> bool:
        """Whether records carry ``UpdateTime`` next to ``UpdateDate``."""
        return self.cursor == "datetime"


_DOCUMENT = EntitySpec("DocEntry", int, dedupe="NumAtCard")
# Payments have no NumAtCard in $metadata; CounterReference is their reference field.
_PAYMENT = EntitySpec("DocEntry", int, dedupe="CounterReference")

ENTITIES: dict[str, EntitySpec] = {
    "BusinessPartners": EntitySpec("CardCode", str),
    "Items": EntitySpec("ItemCode", str),
    "Orders": _DOCUMENT,
    "Invoices": _DOCUMENT,
    "CreditNotes": _DOCUMENT,
    "DeliveryNotes": _DOCUMENT,
    "PurchaseOrders": _DOCUMENT,
    "PurchaseInvoices": _DOCUMENT,
    "PurchaseCreditNotes": _DOCUMENT,
    "PurchaseDeliveryNotes": _DOCUMENT,
    "Quotations": _DOCUMENT,
    "IncomingPayments": _PAYMENT,
    "VendorPayments": _PAYMENT,
    "JournalEntries": EntitySpec("JdtNum", int, cursor="date"),
    "ChartOfAccounts": EntitySpec("Code", str, cursor=None),
    "ProfitCenters": EntitySpec("CenterCode", str, cursor=None),
    "Dimensions": EntitySpec("DimensionCode", int, cursor=None),
    "DistributionRules": EntitySpec("FactorCode", str, cursor=None),
    "Warehouses": EntitySpec("WarehouseCode", str, cursor=None),
}

TEST_AREAS: tuple[tuple[str, str], ...] = (
    ("business partners", "BusinessPartners"),
    ("sales orders", "Orders"),
    ("purchase orders", "PurchaseOrders"),
    ("invoices", "Invoices"),
    ("items", "Items"),
    ("inventory", "Warehouses"),
    ("journal entries", "JournalEntries"),
    ("chart of accounts", "ChartOfAccounts"),
    ("payments", "IncomingPayments"),
    ("delivery notes", "DeliveryNotes"),
)
"""Data areas that :meth:`SapB1Hook.test_connection` probes, with the entity that stands for each."""


def entity_spec(entity: str) -> EntitySpec:
    """The declared spec of an entity set.

    :param entity: entity set name, e.g. ``"Orders"``.
    :raises KeyError: with a clear message when the entity is not declared in :data:`ENTITIES`.
    """
    try:
        return ENTITIES[entity]
    except KeyError:
        raise KeyError(
            f"Entity {entity!r} is not declared in ENTITIES (key, key type, update stamp); add it there."
        ) from None
