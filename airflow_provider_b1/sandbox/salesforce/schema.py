"""The org's objects, declared as data, and how their values are read, checked and printed.

An object is an :class:`SObject` of :class:`Field` declarations; :func:`build_schema` assembles
the seeded org (User, Account, Opportunity, OpportunityLineItem, Product2, Pricebook2,
PricebookEntry) plus whatever the configuration adds: custom objects (``{"name":
"SAP_Invoice__c", "key_prefix": "a0B", "fields": [...]}``) and custom fields on any object
(``{"Account": [{"name": "Region__c", "type": "picklist", ...}]}``). Without custom fields
(``custom_fields=False``) the standard objects carry none of their ``__c`` fields, as an org
that never installed them.

A field declaration (a dict uses the describe key names) has ``name``, ``type`` (``id string
textarea boolean int double currency percent date datetime reference picklist phone url
email``), ``length`` (text), ``precision``/``scale`` (numbers), ``nillable``, ``createable``,
``updateable``, ``externalId``, ``unique``, ``caseSensitive``, ``referenceTo`` and
``relationshipName`` (references; ``childRelationshipName`` names the parent's side),
``required`` (required on create: not nillable and not defaulted), ``picklistValues``,
``restrictedPicklist``, ``calculated`` (derived by the org, read-only), ``defaultValue``.

Stored values are Python values: ``str`` for text, picklists, ids, references and dates
(``YYYY-MM-DD``), ``bool``, ``int``/``float`` for numbers, and ``int`` milliseconds since the
epoch (UTC) for datetimes. :func:`to_json` prints them as the REST API does (datetimes
``2024-05-01T12:00:00.000+0000``); :func:`to_csv` as Bulk API 2.0 does (``...000Z``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_b1.sandbox.salesforce import ids

TYPES = {
    "id": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "reference": "tns:ID",
    "picklist": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "email": "xsd:string",
}
TEXT = {"string", "textarea", "picklist", "phone", "url", "email"}
NUMBER = {"int", "double", "currency", "percent"}
SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class SchemaError(ValueError):
    """A declaration that does not make sense."""


@dataclass
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    child_relationship_name: str | None = None
    cascade_delete: bool = False
    required: bool = False
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    calculated: bool = False
    defaulted_on_create: bool = False
    default_value: Any = None
    name_field: bool = False
    custom: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise SchemaError(f"{self.name}: unknown field type {self.type!r}; one of {sorted(TYPES)}")
        if not self.label:
            self.label = _label(self.name)
        self.custom = self.custom or self.name.endswith("__c")
        self.reference_to = tuple(self.reference_to)
        self.picklist_values = tuple(self.picklist_values)
        if self.type in ("string", "phone", "url", "email", "picklist") and not self.length:
            self.length = {"phone": 40, "url": 255, "email": 80}.get(self.type, 255)
        if self.type == "textarea" and not self.length:
            self.length = 32000
        if self.type in ("id", "reference"):
            self.length = 18
        if self.type in ("currency", "double", "percent") and not self.precision:
            self.precision, self.scale = 18, 2 if self.type != "double" else 6
        if self.type == "int" and not self.precision:
            self.precision = 9
        if self.type == "boolean":
            self.nillable = False
            self.defaulted_on_create = True
            if self.default_value is None:
                self.default_value = False
        if self.required:
            self.nillable = False
        if self.calculated:
            self.createable = self.updateable = False
        if self.type == "reference" and not self.reference_to:
            raise SchemaError(f"{self.name}: a reference needs referenceTo")
        if self.external_id and self.type not in ("string", "int", "double", "email", "id"):
            raise SchemaError(f"{self.name}: an external id is text, a number or an email")

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Field:
        """A field from a describe-style dict (``externalId``, ``referenceTo``...)."""
        keys = {
            "name": "name",
            "type": "type",
            "label": "label",
            "length": "length",
            "precision": "precision",
            "scale": "scale",
            "nillable": "nillable",
            "createable": "createable",
            "updateable": "updateable",
            "externalId": "external_id",
            "unique": "unique",
            "caseSensitive": "case_sensitive",
            "referenceTo": "reference_to",
            "relationshipName": "relationship_name",
            "childRelationshipName": "child_relationship_name",
            "cascadeDelete": "cascade_delete",
            "required": "required",
            "picklistValues": "picklist_values",
            "restrictedPicklist": "restricted_picklist",
            "calculated": "calculated",
            "defaultValue": "default_value",
            "defaultedOnCreate": "defaulted_on_create",
        }
        unknown = set(spec) - set(keys) - set(keys.values())
        if unknown:
            raise SchemaError(f"Unknown field keys {sorted(unknown)}; known: {sorted(keys)}")
        kwargs = {keys.get(k, k): v for k, v in spec.items()}
        if isinstance(kwargs.get("reference_to"), str):
            kwargs["reference_to"] = (kwargs["reference_to"],)
        values = kwargs.get("picklist_values")
        if values and isinstance(values[0], dict):
            kwargs["picklist_values"] = tuple(v["value"] for v in values)
        return cls(**kwargs)

    @property
    def soap_type(self) -> str:
        return TYPES[self.type]

    @property
    def is_text(self) -> bool:
        return self.type in TEXT

    @property
    def long_text(self) -> bool:
        """A long text area: neither filterable nor sortable in SOQL."""
        return self.type == "textarea" and self.length > 255

    def describe(self) -> dict[str, Any]:
        """This field as ``describe`` lists it (the real key names)."""
        text = self.is_text or self.type in ("id", "reference")
        return {
            "aggregatable": self.type not in ("textarea", "boolean"),
            "autoNumber": False,
            "byteLength": self.length * 3 if text else 0,
            "calculated": self.calculated,
            "caseSensitive": self.case_sensitive,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value if self.type == "boolean" else None,
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": self.precision if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": not self.long_text,
            "groupable": self.type not in ("textarea", "double", "currency", "percent", "datetime"),
            "idLookup": self.type == "id" or self.external_id or self.name_field,
            "label": self.label,
            "length": self.length if text else 0,
            "name": self.name,
            "nameField": self.name_field,
            "nillable": self.nillable,
            "permissionable": self.nillable and self.type != "id" and not self.calculated,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist_values
            ],
            "precision": self.precision if self.type in ("double", "currency", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale if self.type in ("double", "currency", "percent") else 0,
            "soapType": self.soap_type,
            "sortable": not self.long_text,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


@dataclass
class ChildRelationship:
    name: str
    child: str
    field: str
    cascade_delete: bool


@dataclass
class SObject:
    name: str
    key_prefix: str
    label: str = ""
    label_plural: str = ""
    fields: dict[str, Field] = field(default_factory=dict)  # lower-case name -> field
    relationships: dict[str, Field] = field(default_factory=dict)  # lower-case relationship -> field
    children: dict[str, ChildRelationship] = field(default_factory=dict)  # lower-case name -> child
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True

    def add(self, f: Field) -> None:
        key = f.name.lower()
        if key in self.fields:
            raise SchemaError(f"{self.name}.{f.name} is declared twice")
        self.fields[key] = f
        if f.type == "reference":
            rel = f.relationship_name or (f.name[:-3] + "__r" if f.custom else f.name.removesuffix("Id"))
            f.relationship_name = rel
            self.relationships[rel.lower()] = f

    def field(self, name: str) -> Field | None:
        return self.fields.get(name.lower())

    @property
    def name_field(self) -> Field | None:
        for f in self.fields.values():
            if f.name_field:
                return f
        return None

    def global_entry(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "activateable": False,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name == "Account",
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": self.updateable,
            "urls": {"rowTemplate": f"{base}/{{ID}}", "describe": f"{base}/describe", "sobject": base},
        }

    def describe(self, version: str) -> dict[str, Any]:
        entry = self.global_entry(version)
        entry["urls"] = {
            **entry["urls"],
            "compactLayouts": f"/services/data/v{version}/sobjects/{self.name}/describe/compactLayouts",
            "layouts": f"/services/data/v{version}/sobjects/{self.name}/describe/layouts",
        }
        return {
            **entry,
            "childRelationships": [
                {
                    "cascadeDelete": c.cascade_delete,
                    "childSObject": c.child,
                    "deprecatedAndHidden": False,
                    "field": c.field,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": c.name,
                    "restrictedDelete": False,
                }
                for c in self.children.values()
            ],
            "compactLayoutable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [],
            "supportedScopes": [{"label": "All", "name": "everything"}],
        }


_LABELS = {
    "Id": "Record ID",
    "IsDeleted": "Deleted",
    "CreatedDate": "Created Date",
    "CreatedById": "Created By ID",
    "LastModifiedDate": "Last Modified Date",
    "LastModifiedById": "Last Modified By ID",
    "SystemModstamp": "System Modstamp",
}


def _label(name: str) -> str:
    if name in _LABELS:
        return _LABELS[name]
    base = name.removesuffix("__c")
    if base.endswith("Id") and not name.endswith("__c"):
        base = base[:-2] + " ID"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", base.replace("_", " "))
    return " ".join(words.split())


def _system_fields(obj: str) -> list[Field]:
    user = ("User",)
    return [
        Field("Id", "id", nillable=False, createable=False, updateable=False, defaulted_on_create=True),
        Field("IsDeleted", "boolean", createable=False, updateable=False),
        Field(
            "CreatedDate",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
        ),
        Field(
            "CreatedById",
            "reference",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=user,
            relationship_name="CreatedBy",
        ),
        Field(
            "LastModifiedDate",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
        ),
        Field(
            "LastModifiedById",
            "reference",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
            reference_to=user,
            relationship_name="LastModifiedBy",
        ),
        Field(
            "SystemModstamp",
            "datetime",
            nillable=False,
            createable=False,
            updateable=False,
            defaulted_on_create=True,
        ),
    ]


STAGES = (
    ("Prospecting", 10, False, False),
    ("Qualification", 10, False, False),
    ("Needs Analysis", 20, False, False),
    ("Value Proposition", 50, False, False),
    ("Id. Decision Makers", 60, False, False),
    ("Perception Analysis", 70, False, False),
    ("Proposal/Price Quote", 75, False, False),
    ("Negotiation/Review", 90, False, False),
    ("Closed Won", 100, True, True),
    ("Closed Lost", 0, True, False),
)
"""Opportunity stages: (name, default probability, IsClosed, IsWon), as a new org has them."""
STAGE_INFO = {s[0]: s for s in STAGES}

INDUSTRIES = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Food & Beverage",
    "Healthcare",
    "Hospitality",
    "Machinery",
    "Manufacturing",
    "Media",
    "Retail",
    "Technology",
    "Transportation",
    "Utilities",
    "Other",
)
ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
)
PRODUCT_FAMILIES = ("Hardware", "Software", "Services", "Spare Parts", "None")


def _standard(custom_fields: bool) -> list[tuple[SObject, list[Field]]]:
    F = Field
    out: list[tuple[SObject, list[Field]]] = []
    user = SObject("User", "005", "User", "Users", createable=False, updateable=False, deletable=False)
    out.append(
        (
            user,
            [
                F("Username", "string", length=80, required=True, unique=True),
                F(
                    "Name",
                    "string",
                    length=121,
                    createable=False,
                    updateable=False,
                    name_field=True,
                    label="Full Name",
                ),
                F("Email", "email", length=128, required=True),
                F("IsActive", "boolean", label="Active"),
            ],
        )
    )
    account = SObject("Account", "001", "Account", "Accounts")
    account_fields = [
        F("Name", "string", length=255, required=True, name_field=True, label="Account Name"),
        F("AccountNumber", "string", length=40, label="Account Number"),
        F("Phone", "phone", length=40, label="Account Phone"),
        F("Website", "url", length=255),
        F("Industry", "picklist", length=255, picklist_values=INDUSTRIES),
        F("Type", "picklist", length=255, picklist_values=ACCOUNT_TYPES, label="Account Type"),
        F("BillingStreet", "textarea", length=255),
        F("BillingCity", "string", length=40),
        F("BillingPostalCode", "string", length=20, label="Billing Zip/Postal Code"),
        F("BillingState", "string", length=80, label="Billing State/Province"),
        F("BillingCountry", "string", length=80),
        F("Description", "textarea", length=32000, label="Account Description"),
    ]
    if custom_fields:
        account_fields += [
            F("SAP_Card_Code__c", "string", length=15, external_id=True, unique=True, label="SAP Card Code"),
            F("SAP_Open_Balance__c", "currency", precision=16, scale=2, label="SAP Open Balance"),
            F("SAP_Overdue_Balance__c", "currency", precision=16, scale=2, label="SAP Overdue Balance"),
            F("SAP_Credit_Limit__c", "currency", precision=16, scale=2, label="SAP Credit Limit"),
            F("SAP_Last_Payment_Date__c", "date", label="SAP Last Payment Date"),
        ]
    out.append((account, account_fields))
    out.append(
        (
            SObject("Product2", "01t", "Product", "Products"),
            [
                F("Name", "string", length=255, required=True, name_field=True, label="Product Name"),
                F("ProductCode", "string", length=255, label="Product Code"),
                F("Description", "textarea", length=4000, label="Product Description"),
                F("IsActive", "boolean", label="Active"),
                F("Family", "picklist", length=255, picklist_values=PRODUCT_FAMILIES, label="Product Family"),
            ],
        )
    )
    out.append(
        (
            SObject("Pricebook2", "01s", "Price Book", "Price Books"),
            [
                F("Name", "string", length=255, required=True, name_field=True, label="Price Book Name"),
                F("IsActive", "boolean", label="Active"),
                F(
                    "IsStandard",
                    "boolean",
                    createable=False,
                    updateable=False,
                    label="Is Standard Price Book",
                ),
                F("Description", "string", length=255),
            ],
        )
    )
    out.append(
        (
            SObject("PricebookEntry", "01u", "Price Book Entry", "Price Book Entries"),
            [
                F("Name", "string", length=255, calculated=True, name_field=True, label="Product Name"),
                F(
                    "Pricebook2Id",
                    "reference",
                    required=True,
                    updateable=False,
                    reference_to=("Pricebook2",),
                    relationship_name="Pricebook2",
                    child_relationship_name="PricebookEntries",
                    cascade_delete=True,
                    label="Price Book ID",
                ),
                F(
                    "Product2Id",
                    "reference",
                    required=True,
                    updateable=False,
                    reference_to=("Product2",),
                    relationship_name="Product2",
                    child_relationship_name="PricebookEntries",
                    cascade_delete=True,
                    label="Product ID",
                ),
                F("UnitPrice", "currency", required=True, label="List Price"),
                F("IsActive", "boolean", label="Active"),
                F("UseStandardPrice", "boolean"),
                F("ProductCode", "string", length=255, calculated=True, label="Product Code"),
            ],
        )
    )
    opportunity = SObject("Opportunity", "006", "Opportunity", "Opportunities")
    opp_fields = [
        F(
            "AccountId",
            "reference",
            reference_to=("Account",),
            relationship_name="Account",
            child_relationship_name="Opportunities",
            cascade_delete=True,
            label="Account ID",
        ),
        F("Name", "string", length=120, required=True, name_field=True),
        F("Description", "textarea", length=32000),
        F(
            "StageName",
            "picklist",
            length=255,
            required=True,
            picklist_values=tuple(s[0] for s in STAGES),
            restricted_picklist=True,
            label="Stage",
        ),
        F("Amount", "currency", precision=18, scale=2),
        F("Probability", "percent", precision=3, scale=0, defaulted_on_create=True, label="Probability (%)"),
        F("CloseDate", "date", required=True),
        F(
            "Type",
            "picklist",
            length=255,
            picklist_values=("Existing Business", "New Business"),
            label="Opportunity Type",
        ),
        F("IsClosed", "boolean", calculated=True, label="Closed"),
        F("IsWon", "boolean", calculated=True, label="Won"),
        F(
            "Pricebook2Id",
            "reference",
            reference_to=("Pricebook2",),
            relationship_name="Pricebook2",
            label="Price Book ID",
        ),
    ]
    if custom_fields:
        opp_fields += [
            F("SAP_Order_Number__c", "string", length=20, external_id=True, label="SAP Order Number"),
            F("SAP_Draft_Number__c", "string", length=20, label="SAP Draft Number"),
            F("SAP_Order_Status__c", "string", length=40, label="SAP Order Status"),
            F("SAP_Invoiced_Amount__c", "currency", precision=16, scale=2, label="SAP Invoiced Amount"),
            F("SAP_Paid_Amount__c", "currency", precision=16, scale=2, label="SAP Paid Amount"),
            F("SAP_Payment_Status__c", "string", length=40, label="SAP Payment Status"),
        ]
    out.append((opportunity, opp_fields))
    out.append(
        (
            SObject("OpportunityLineItem", "00k", "Opportunity Product", "Opportunity Product"),
            [
                F(
                    "OpportunityId",
                    "reference",
                    required=True,
                    updateable=False,
                    reference_to=("Opportunity",),
                    relationship_name="Opportunity",
                    child_relationship_name="OpportunityLineItems",
                    cascade_delete=True,
                    label="Opportunity ID",
                ),
                F("SortOrder", "int", label="Sort Order"),
                F(
                    "PricebookEntryId",
                    "reference",
                    updateable=False,
                    defaulted_on_create=True,
                    nillable=False,
                    reference_to=("PricebookEntry",),
                    relationship_name="PricebookEntry",
                    child_relationship_name="OpportunityLineItems",
                    label="Price Book Entry ID",
                ),
                F(
                    "Product2Id",
                    "reference",
                    updateable=False,
                    reference_to=("Product2",),
                    relationship_name="Product2",
                    label="Product ID",
                ),
                F(
                    "Name",
                    "string",
                    length=376,
                    calculated=True,
                    name_field=True,
                    label="Opportunity Product Name",
                ),
                F("Quantity", "double", precision=12, scale=2, required=True),
                F("TotalPrice", "currency", precision=18, scale=2, calculated=True, label="Total Price"),
                F("UnitPrice", "currency", precision=18, scale=2, required=True, label="Sales Price"),
                F("ListPrice", "currency", precision=18, scale=2, calculated=True, label="List Price"),
                F("Description", "string", length=255, label="Line Description"),
            ],
        )
    )
    return out


def build_schema(
    *,
    custom_fields: bool = True,
    extra_fields: dict[str, list[dict[str, Any] | Field]] | None = None,
    custom_objects: list[dict[str, Any]] | None = None,
) -> dict[str, SObject]:
    """The org's objects by name: the standard ones, then ``custom_objects``; ``extra_fields``
    adds fields (declarations or dicts) to any of them."""
    objects: dict[str, SObject] = {}
    for obj, declared in _standard(custom_fields):
        for f in _system_fields(obj.name)[:1] + declared + _system_fields(obj.name)[1:]:
            obj.add(f)
        objects[obj.name] = obj
    for spec in custom_objects or []:
        spec = dict(spec)
        name = spec.get("name", "")
        if not name.endswith("__c"):
            raise SchemaError(f"A custom object's name ends with __c: {name!r}")
        prefix = spec.get("key_prefix") or spec.get("keyPrefix")
        if not prefix or len(prefix) != 3:
            raise SchemaError(f"{name}: a custom object needs a 3-character key_prefix (e.g. 'a0B')")
        if any(o.key_prefix == prefix for o in objects.values()):
            raise SchemaError(f"{name}: key prefix {prefix} is taken")
        label = spec.get("label") or _label(name)
        obj = SObject(
            name,
            prefix,
            label,
            spec.get("label_plural") or spec.get("labelPlural") or label + "s",
            custom=True,
        )
        declared = [_as_field(f) for f in spec.get("fields", [])]
        if not any(f.name == "Name" for f in declared):
            declared.insert(0, Field("Name", "string", length=80, name_field=True, label=f"{label} Name"))
        for f in declared:
            if f.name == "Name":
                f.name_field = True
                f.nillable = False
                f.required = False
                f.defaulted_on_create = True  # a text Name left out becomes the record's id
        system = _system_fields(name)
        for f in system[:1] + declared + system[1:]:
            obj.add(f)
        objects[name] = obj
    for obj_name, declared in (extra_fields or {}).items():
        if obj_name not in objects:
            raise SchemaError(f"Custom fields for an unknown object {obj_name!r}")
        for f in declared:
            objects[obj_name].add(_as_field(f))
    for obj in objects.values():
        for f in obj.fields.values():
            for target in f.reference_to:
                if target not in objects:
                    raise SchemaError(f"{obj.name}.{f.name} refers to an unknown object {target!r}")
            if f.type == "reference" and f.child_relationship_name:
                parent = objects[f.reference_to[0]]
                parent.children[f.child_relationship_name.lower()] = ChildRelationship(
                    f.child_relationship_name, obj.name, f.name, f.cascade_delete
                )
    return objects


def _as_field(spec: dict[str, Any] | Field) -> Field:
    return replace(spec) if isinstance(spec, Field) else Field.from_dict(spec)


# -- values ------------------------------------------------------------------------------------


class ValueError_(Exception):
    """A value that does not fit its field; ``json`` tells a body's parse error apart."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_date(text: str) -> str | None:
    m = _DATE.match(text)
    if not m:
        m2 = _DATETIME.match(text)
        if not m2:
            return None
        text = text[:10]
        m = _DATE.match(text)
        if not m:
            return None
    try:
        dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return text


def parse_datetime(text: str) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 date-time (UTC without an offset)."""
    m = _DATETIME.match(text)
    if not m:
        if _DATE.match(text):
            d = parse_date(text)
            return None if d is None else to_ms(dt.datetime.fromisoformat(d).replace(tzinfo=dt.timezone.utc))
        return None
    try:
        moment = dt.datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6] or 0))
    except ValueError:
        return None
    ms = int((m[7] or "0")[:3].ljust(3, "0"))
    zone = m[8]
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:]))
    moment = moment.replace(tzinfo=dt.timezone.utc) - dt.timedelta(minutes=offset)
    return to_ms(moment) + ms


def to_ms(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(milliseconds=1)


def format_datetime(ms: int, style: str = "rest") -> str:
    moment = EPOCH + dt.timedelta(milliseconds=ms)
    head = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}"
    return head + ("Z" if style == "csv" else "+0000")


def _round(f: Field, number: float) -> float | int:
    if f.type == "int":
        return int(number)
    value = round(number, f.scale) if f.type != "double" else number
    if f.scale == 0 and f.type != "double":
        return float(int(value))
    return value


def _number_in_range(f: Field, number: float) -> bool:
    if not math.isfinite(number):
        return False
    if f.type == "int":
        return abs(number) < 2**31
    whole = f.precision - f.scale
    return abs(number) < 10**whole


def from_json(f: Field, value: Any) -> Any:
    """A JSON body's value for ``f`` as stored; raises :class:`ValueError_` when it cannot be
    read as that type (the API answers ``JSON_PARSER_ERROR`` for the whole request)."""
    if value is None:
        return None
    kind = f.type
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError_(f"Cannot deserialize instance of boolean from {_token(value)} value {value}")
    if kind in NUMBER:
        if isinstance(value, bool):
            raise ValueError_(f"Cannot deserialize instance of {kind} from {_token(value)} value {value}")
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            try:
                return float(value.strip()) if kind != "int" else int(value.strip())
            except ValueError:
                pass
        raise ValueError_(
            f"Cannot deserialize instance of {kind} from {_token(value)} value {value} or request may be "
            "missing a required field"
        )
    if kind == "date":
        if isinstance(value, str) and (parsed := parse_date(value)) is not None:
            return parsed
        raise ValueError_(
            f"Cannot deserialize instance of date from {_token(value)} value {value} or request may be "
            "missing a required field"
        )
    if kind == "datetime":
        if isinstance(value, str) and (parsed_ms := parse_datetime(value)) is not None:
            return parsed_ms
        raise ValueError_(
            f"Cannot deserialize instance of datetime from {_token(value)} value {value} or request may be "
            "missing a required field"
        )
    if isinstance(value, (dict, list)):
        raise ValueError_(f"Cannot deserialize instance of {kind} from {_token(value)}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if kind not in ("id", "reference") else str(value)
    return str(value)


def _token(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "START_ARRAY"


def from_csv(f: Field, text: str) -> Any:
    """A Bulk API 2.0 cell for ``f`` as stored (``#N/A`` is null); raises :class:`ValueError_`
    (``INVALID_TYPE_ON_FIELD_IN_RECORD`` for that record) when it does not parse."""
    if text == "#N/A":
        return None
    kind = f.type
    bad = ValueError_(f"{f.label}: value not of required type: {text}")
    if kind == "boolean":
        low = text.strip().lower()
        if low in ("true", "1", "yes", "y"):
            return True
        if low in ("false", "0", "no", "n"):
            return False
        raise bad
    if kind in NUMBER:
        try:
            return int(text) if kind == "int" else float(text.replace(",", ""))
        except ValueError:
            raise bad from None
    if kind == "date":
        parsed = parse_date(text.strip())
        if parsed is None:
            raise bad
        return parsed
    if kind == "datetime":
        parsed_ms = parse_datetime(text.strip())
        if parsed_ms is None:
            raise bad
        return parsed_ms
    return text


def check(f: Field, value: Any) -> tuple[str, str] | None:
    """(statusCode, message) when a readable value is still not allowed in ``f``."""
    if value is None:
        return None
    if f.type in NUMBER:
        if not _number_in_range(f, float(value)):
            return (
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{f.label}: value outside of valid range on numeric field: {value}",
            )
        return None
    if f.is_text:
        if len(value) > f.length:
            shown = value if len(value) <= 300 else value[:300] + "..."
            return ("STRING_TOO_LONG", f"{f.label}: data value too large: {shown} (max length={f.length})")
        if f.type == "email" and value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            return ("INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}")
        if f.type == "picklist" and f.restricted_picklist and value not in f.picklist_values:
            return (
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.label}: bad value for restricted picklist field: {value}",
            )
    return None


def normalize_number(f: Field, value: Any) -> Any:
    if value is None or f.type not in NUMBER:
        return value
    return _round(f, float(value))


def to_json(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "datetime":
        return format_datetime(value)
    return value


def to_csv(f: Field, value: Any) -> str:
    if value is None:
        return ""
    if f.type == "datetime":
        return format_datetime(value, "csv")
    if f.type == "boolean":
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value)) if f.scale == 0 else repr(value)
    return str(value)


def valid_id_for(record_id: Any, prefixes: set[str]) -> str | None:
    """The canonical id when it is an id of one of these objects' prefixes, else None."""
    canonical = ids.normalize(record_id)
    if canonical is None or canonical[:3] not in prefixes:
        return None
    return canonical


#: An invoice object for orgs without Revenue Cloud's ``Invoice``: a custom object with an External
#: ID text field for SAP's ``DocEntry`` and references to the account and the opportunity. Give it
#: to the sandbox (``custom_objects``) to try the mapping's ``invoices`` section.
SAP_INVOICE_OBJECT: dict[str, Any] = {
    "name": "SAP_Invoice__c",
    "key_prefix": "a0B",
    "label": "SAP Invoice",
    "fields": [
        {"name": "SAP_Doc_Entry__c", "type": "string", "length": 20, "externalId": True, "unique": True},
        {
            "name": "Account__c",
            "type": "reference",
            "referenceTo": ["Account"],
            "relationshipName": "Account__r",
            "childRelationshipName": "SAP_Invoices__r",
        },
        {
            "name": "Opportunity__c",
            "type": "reference",
            "referenceTo": ["Opportunity"],
            "relationshipName": "Opportunity__r",
            "childRelationshipName": "SAP_Invoices__r",
        },
        {"name": "Invoice_Date__c", "type": "date"},
        {"name": "Due_Date__c", "type": "date"},
        {"name": "Total__c", "type": "currency"},
        {"name": "Paid__c", "type": "currency"},
        {
            "name": "Status__c",
            "type": "picklist",
            "picklistValues": ["Open", "Closed", "Paid", "Delivered", "Cancelled"],
            "restrictedPicklist": True,
        },
    ],
}
