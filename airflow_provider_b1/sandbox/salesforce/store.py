"""The org's records, their writes with the org's checks, and the change log behind CDC.

Records live per object as dicts of stored values (see :mod:`.schema`), every field present.
A deleted record stays, with ``IsDeleted`` true, for ``queryAll`` and undelete.

Writes go through a :class:`Transaction` (one per API call, or per 200 rows of a Bulk job)::

    with store.lock:
        txn = store.transaction(user_id=store.integration_user)
        try:
            new_id = txn.insert("Account", {"Name": "Acme"})
        except RecordError as exc:
            ...                       # exc.code, exc.message, exc.fields: the per-record error
        txn.commit()                  # or txn.rollback() (allOrNone)

Every record a transaction writes gets the same stamp (``LastModifiedDate`` and
``SystemModstamp``), taken from a strictly increasing millisecond clock (:meth:`Store.tick`).
The checks, in the org's order: fields not writable (``INVALID_FIELD_FOR_INSERT_UPDATE``),
parent look-ups by external id, values (``STRING_TOO_LONG``, ``NUMBER_OUTSIDE_VALID_RANGE``,
``INVALID_EMAIL_ADDRESS``, ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), references
(``MALFORMED_ID``, ``INVALID_CROSS_REFERENCE_KEY``, ``ENTITY_IS_DELETED``), required fields
(``REQUIRED_FIELD_MISSING``), validation rules (``FIELD_CUSTOM_VALIDATION_EXCEPTION``), the
duplicate rule on Account names when switched on (``DUPLICATES_DETECTED``), unique fields
(``DUPLICATE_VALUE``). The org derives ``IsClosed``/``IsWon`` (and a default ``Probability``)
from the stage, line items' ``TotalPrice``, ``ListPrice``, ``Product2Id``/``PricebookEntryId``
from each other, and an opportunity's ``Amount`` from its line items. Deleting a record deletes
the children whose relationship cascades (Account -> Opportunity -> OpportunityLineItem);
undeleting restores them.

Change log (the source a Change Data Capture / Pub/Sub imitation streams from)
-----------------------------------------------------------------------------

Each committed change of a record of an object in ``cdc_objects`` (Account and Opportunity by
default) is a :class:`Change`: ``seq`` (an integer, increasing by one per change over the
store's life, never reused), ``object``, ``record_ids`` (one id: changes are not merged across
records; group by ``transaction_key`` to merge), ``change_type`` (``CREATE``, ``UPDATE``,
``DELETE``, ``UNDELETE``), ``changed_fields`` (UPDATE: the fields whose value changed, plus
``LastModifiedDate``; CREATE: every field with a non-null value, which a CDC event carries in
its payload while its ``changedFields`` stays empty; DELETE/UNDELETE: empty), ``commit_timestamp``
(ms), ``transaction_key`` (shared by the changes of one transaction), ``sequence_number``
(1-based position within the transaction), ``commit_user`` (the integration user for API writes,
the UI user for ``/_sandbox/edit``), ``origin`` (``"api"`` or ``"ui"``) and ``record`` (the full
record after the change, as the REST API prints it, without ``attributes``). Several changes of
one record in one transaction are folded into one (a CREATE stays a CREATE).

- ``store.changes_after(seq, objects=None, limit=None) -> list[Change]``: the retained changes
  with a sequence above ``seq`` (``-1`` or ``0`` for all), oldest first, optionally only of
  these objects.
- ``store.wait_for_change(seq, timeout) -> bool``: blocks (releasing the lock) until a change
  above ``seq`` exists or ``timeout`` seconds pass; True when there is one. Built on
  ``store.changed``, a ``threading.Condition`` over ``store.lock`` notified on every commit, so
  a streaming server can wait in its own thread.
- ``store.last_seq`` (0 before any change) and ``store.first_retained_seq()`` (the oldest seq
  still held, or ``last_seq + 1`` when none is): a replay from before ``first_retained_seq() -
  1`` has lost changes, as a replay id older than the retention does in Salesforce.
- Retention: changes older than ``change_retention_seconds`` (default 72 h) are dropped
  whenever the log is written or read.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.sandbox.salesforce import ids
from airflow_provider_b1.sandbox.salesforce.schema import (
    STAGE_INFO,
    Field,
    SObject,
    check,
    normalize_number,
    to_json,
)
from airflow_provider_b1.sandbox.salesforce.soql import Runner, Source, compile_condition


class RecordError(Exception):
    """A record the org refuses: ``code`` (statusCode), ``message``, ``fields``."""

    def __init__(
        self, code: str, message: str, fields: list[str] | None = None, extra: dict | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []
        self.extra = extra or {}

    def as_collection_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields, **self.extra}

    def as_rest_error(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": self.fields, **self.extra}


@dataclass
class Change:
    seq: int
    object: str
    record_ids: list[str]
    change_type: str
    changed_fields: list[str]
    commit_timestamp: int
    transaction_key: str
    sequence_number: int
    commit_user: str
    origin: str
    record: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "object": self.object,
            "record_ids": list(self.record_ids),
            "change_type": self.change_type,
            "changed_fields": list(self.changed_fields),
            "commit_timestamp": self.commit_timestamp,
            "transaction_key": self.transaction_key,
            "sequence_number": self.sequence_number,
            "commit_user": self.commit_user,
            "origin": self.origin,
            "record": self.record,
        }


@dataclass
class ValidationRule:
    """An org validation rule: the write fails with ``message`` when the rule fires.

    Fires when ``error_when`` (a SOQL WHERE condition on the record after the write) holds, when
    a field of ``min_digits`` (``{"Phone": 7}``) is set with fewer digits, when a field of
    ``pattern`` (``{"Website": "^https://"}``) is set and does not match, or when ``check``
    (a Python predicate on the record dict) returns True. ``error_field`` is where the error
    shows (its ``fields``).
    """

    object: str
    name: str
    message: str
    error_field: str | None = None
    error_when: str | None = None
    min_digits: dict[str, int] = field(default_factory=dict)
    pattern: dict[str, str] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], bool] | None = None
    active: bool = True

    @classmethod
    def from_any(cls, spec: ValidationRule | dict[str, Any]) -> ValidationRule:
        return spec if isinstance(spec, ValidationRule) else cls(**spec)

    def as_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "name": self.name,
            "message": self.message,
            "error_field": self.error_field,
            "error_when": self.error_when,
            "min_digits": dict(self.min_digits),
            "pattern": dict(self.pattern),
            "check": None if self.check is None else getattr(self.check, "__name__", "callable"),
            "active": self.active,
        }


DEFAULT_VALIDATION_RULES = (
    ValidationRule(
        object="Account",
        name="Phone_Has_Seven_Digits",
        message="Phone must have at least 7 digits",
        error_field="Phone",
        min_digits={"Phone": 7},
    ),
)

ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


def _unique_key(f: Field, value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str) and not f.case_sensitive:
        return value.casefold()
    return value


class Store(Source):
    """All records of one org, its clock and change log. Hold ``lock`` around every use."""

    def __init__(
        self,
        schema: dict[str, SObject],
        *,
        cdc_objects: Iterable[str] = ("Account", "Opportunity"),
        change_retention_seconds: float = 72 * 3600,
        validation_rules: Iterable[ValidationRule | dict[str, Any]] = DEFAULT_VALIDATION_RULES,
        duplicate_rule_account_name: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.schema = schema
        self.by_prefix = {o.key_prefix: o for o in schema.values()}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in schema}
        self.counters: dict[str, int] = {name: 0 for name in schema}
        self.unique: dict[tuple[str, str], dict[Any, set[str]]] = {
            (o.name, f.name): {}
            for o in schema.values()
            for f in o.fields.values()
            if f.unique or f.external_id
        }
        self.cascaded: dict[str, str] = {}  # child id deleted with -> parent id
        self.cdc_objects = set(cdc_objects)
        self.change_retention_seconds = float(change_retention_seconds)
        self.duplicate_rule_account_name = duplicate_rule_account_name
        self.set_validation_rules(validation_rules)
        self._clock = clock
        self._last_ms = 0
        self.changes: deque[Change] = deque()
        self.last_seq = 0
        self.integration_user = ""
        self.ui_user = ""

    # -- clock -------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return max(int(self._clock() * 1000), self._last_ms)

    def tick(self) -> int:
        """A new stamp, strictly after every earlier one."""
        self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        return self._last_ms

    # -- configuration -----------------------------------------------------------------------

    def set_validation_rules(self, rules: Iterable[ValidationRule | dict[str, Any]]) -> None:
        compiled = []
        for spec in rules:
            rule = ValidationRule.from_any(spec)
            obj = self.schema.get(rule.object)
            if obj is None:
                raise ValueError(f"Validation rule {rule.name}: unknown object {rule.object!r}")
            for name in [*rule.min_digits, *rule.pattern] + ([rule.error_field] if rule.error_field else []):
                if obj.field(name) is None:
                    raise ValueError(f"Validation rule {rule.name}: {rule.object} has no field {name!r}")
            condition = compile_condition(rule.error_when, obj, self.schema) if rule.error_when else None
            patterns = {k: re.compile(v) for k, v in rule.pattern.items()}
            compiled.append((rule, condition, patterns))
        self.validation_rules = compiled

    # -- reading -----------------------------------------------------------------------------

    def object_of(self, record_id: str) -> SObject | None:
        return self.by_prefix.get(record_id[:3])

    def rows(self, obj: str, include_deleted: bool) -> Iterable[dict[str, Any]]:
        table = self.tables[obj]
        if include_deleted:
            return list(table.values())
        return [r for r in table.values() if not r["IsDeleted"]]

    def lookup(self, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        obj = self.by_prefix.get(record_id[:3])
        if obj is None:
            return None
        return self.tables[obj.name].get(record_id)

    def get(self, obj: str, record_id: str) -> dict[str, Any] | None:
        """A record of ``obj`` by 15- or 18-character id (deleted ones included)."""
        canonical = ids.normalize(record_id)
        if canonical is None:
            return None
        return self.tables[obj].get(canonical)

    def find(self, obj: str, field_name: str, value: Any) -> list[str]:
        """Ids of the live records whose unique or external-id field equals ``value``."""
        o = self.schema[obj]
        f = o.field(field_name)
        if f is None:
            return []
        key = _unique_key(f, value)
        if key is None:
            return []
        index = self.unique.get((obj, f.name))
        if index is not None:
            return sorted(index.get(key, ()))
        return [r["Id"] for r in self.rows(obj, False) if _unique_key(f, r[f.name]) == key]

    def printed(
        self, obj: str, record: dict[str, Any], fields: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """The record as the REST API prints it, without ``attributes``."""
        o = self.schema[obj]
        chosen = o.fields.values() if fields is None else [o.fields[n.lower()] for n in fields]
        return {f.name: to_json(f, record.get(f.name)) for f in chosen}

    def truth(self, obj: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [self.printed(obj, r) for r in self.rows(obj, include_deleted)]

    # -- loading (seed data, no checks) ------------------------------------------------------

    def new_id(self, obj: str) -> str:
        self.counters[obj] += 1
        return ids.make_id(self.schema[obj].key_prefix, self.counters[obj])

    def load(self, obj: str, values: dict[str, Any], stamp: int, user: str) -> dict[str, Any]:
        """Add a seeded record as is (derived fields computed), without checks or change log."""
        o = self.schema[obj]
        record = self._blank(o)
        record.update(values)
        record["Id"] = record.get("Id") or self.new_id(obj)
        record.setdefault("CreatedDate", stamp)
        record["CreatedDate"] = record["CreatedDate"] or stamp
        record["LastModifiedDate"] = record.get("LastModifiedDate") or stamp
        record["SystemModstamp"] = record.get("SystemModstamp") or record["LastModifiedDate"]
        record["CreatedById"] = record.get("CreatedById") or user
        record["LastModifiedById"] = record.get("LastModifiedById") or user
        self._derive(o, record, None, set(values))
        self.tables[obj][record["Id"]] = record
        self._index(o, record)
        return record

    def _blank(self, o: SObject) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for f in o.fields.values():
            record[f.name] = f.default_value if f.type == "boolean" else None
        return record

    def _index(self, o: SObject, record: dict[str, Any]) -> None:
        if record["IsDeleted"]:
            return
        for (obj, name), index in self.unique.items():
            if obj == o.name:
                key = _unique_key(o.fields[name.lower()], record[name])
                if key is not None:
                    index.setdefault(key, set()).add(record["Id"])

    def _unindex(self, o: SObject, record: dict[str, Any]) -> None:
        for (obj, name), index in self.unique.items():
            if obj == o.name:
                key = _unique_key(o.fields[name.lower()], record[name])
                if key is not None and key in index:
                    index[key].discard(record["Id"])
                    if not index[key]:
                        del index[key]

    # -- derived values ----------------------------------------------------------------------

    def _derive(
        self, o: SObject, record: dict[str, Any], before: dict[str, Any] | None, given: set[str]
    ) -> None:
        if o.name == "Opportunity":
            stage = STAGE_INFO.get(record.get("StageName") or "")
            if stage is not None:
                record["IsClosed"], record["IsWon"] = stage[2], stage[3]
                stage_changed = before is None or before.get("StageName") != record["StageName"]
                if "Probability" not in given and stage_changed:
                    record["Probability"] = float(stage[1])
        elif o.name == "OpportunityLineItem":
            qty, price = record.get("Quantity"), record.get("UnitPrice")
            record["TotalPrice"] = round(qty * price, 2) if qty is not None and price is not None else None
            entry = self.lookup(record.get("PricebookEntryId"))
            if entry is not None:
                record["ListPrice"] = entry["UnitPrice"]
                record["Product2Id"] = entry["Product2Id"]
            opp = self.lookup(record.get("OpportunityId"))
            product = self.lookup(record.get("Product2Id"))
            if opp is not None and product is not None:
                record["Name"] = f"{opp['Name']} {product['Name']}"[:376]
        elif o.name == "PricebookEntry":
            product = self.lookup(record.get("Product2Id"))
            if product is not None:
                record["Name"], record["ProductCode"] = product["Name"], product["ProductCode"]

    def opportunity_amounts(self, opp_ids: set[str]) -> dict[str, float]:
        """The line items' total of each of these opportunities that has live line items."""
        totals: dict[str, float] = {}
        for r in self.tables["OpportunityLineItem"].values():
            opp_id = r["OpportunityId"]
            if opp_id in opp_ids and not r["IsDeleted"] and r["TotalPrice"] is not None:
                totals[opp_id] = totals.get(opp_id, 0.0) + r["TotalPrice"]
        return {k: round(v, 2) for k, v in totals.items()}

    # -- transactions ------------------------------------------------------------------------

    def transaction(self, user_id: str | None = None, origin: str = "api") -> Transaction:
        return Transaction(self, user_id or self.integration_user, origin)

    def _log(self, entries: list[Change]) -> None:
        for entry in entries:
            self.last_seq += 1
            entry.seq = self.last_seq
            self.changes.append(entry)
        self._prune()
        if entries:
            self.changed.notify_all()

    def _prune(self) -> None:
        horizon = self.now_ms() - int(self.change_retention_seconds * 1000)
        while self.changes and self.changes[0].commit_timestamp < horizon:
            self.changes.popleft()

    def changes_after(
        self, seq: int, objects: Iterable[str] | None = None, limit: int | None = None
    ) -> list[Change]:
        """Retained changes with ``seq`` above the given one, oldest first (see the module doc)."""
        with self.lock:
            self._prune()
            wanted = set(objects) if objects else None
            out = []
            for change in self.changes:
                if change.seq <= seq or (wanted is not None and change.object not in wanted):
                    continue
                out.append(change)
                if limit is not None and len(out) >= limit:
                    break
            return out

    def first_retained_seq(self) -> int:
        with self.lock:
            self._prune()
            return self.changes[0].seq if self.changes else self.last_seq + 1

    def wait_for_change(self, seq: int, timeout: float) -> bool:
        """Wait until a change above ``seq`` is logged (True) or ``timeout`` seconds pass (False)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.last_seq > seq, timeout=max(0.0, timeout))


class Transaction:
    """The writes of one call: one stamp, all-or-nothing on :meth:`rollback`."""

    def __init__(self, store: Store, user_id: str, origin: str) -> None:
        self.store = store
        self.user = user_id
        self.origin = origin
        self.stamp = store.tick()
        self.key = str(uuid.uuid4())
        self.before: dict[str, tuple[str, dict[str, Any] | None]] = {}  # id -> (object, record before)
        self.pending: dict[str, Change] = {}
        self.counter_start = dict(store.counters)
        self.cascaded_before = dict(store.cascaded)
        self.done = False
        self.written = 0
        self.rollup: set[str] = set()  # opportunities whose line items changed

    # -- public writes -----------------------------------------------------------------------

    def insert(
        self,
        obj: str,
        values: dict[str, Any],
        refs: dict[str, tuple[str, Any]] | None = None,
        *,
        allow_save: bool = False,
    ) -> str:
        """Create a record; its id. Raises :class:`RecordError`."""
        o = self.store.schema[obj]
        values = dict(values)
        if "Id" in values:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
            )
        self._check_writable(o, values, create=True)
        self._resolve_refs(o, values, refs)
        record = self._prepare(o, None, values, allow_save)
        record["Id"] = self.store.new_id(obj)
        if o.custom and record.get("Name") in (None, "") and o.field("Name") is not None:
            record["Name"] = record["Id"]  # a text Name left out becomes the record's id
        self._apply(o, None, record, values)
        return record["Id"]

    def update(
        self,
        obj: str,
        record_id: Any,
        values: dict[str, Any],
        refs: dict[str, tuple[str, Any]] | None = None,
        *,
        allow_save: bool = False,
    ) -> str:
        o = self.store.schema[obj]
        current = self._existing(o, record_id)
        values = {k: v for k, v in values.items() if k != "Id"}
        self._check_writable(o, values, create=False)
        self._resolve_refs(o, values, refs)
        record = self._prepare(o, current, values, allow_save)
        self._apply(o, current, record, values)
        return record["Id"]

    def upsert(
        self,
        obj: str,
        ext_field: str,
        ext_value: Any,
        values: dict[str, Any],
        refs: dict[str, tuple[str, Any]] | None = None,
        *,
        allow_save: bool = False,
    ) -> tuple[str, bool]:
        """Create or update by an external id (or ``Id``): (id, created)."""
        o = self.store.schema[obj]
        if ext_field == "Id":
            if ext_value in (None, ""):
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
            return self.update(obj, ext_value, values, refs, allow_save=allow_save), False
        f = o.fields[ext_field.lower()]
        if ext_value in (None, ""):
            raise RecordError("MISSING_ARGUMENT", f"{f.name} not specified")
        matches = self.store.find(obj, f.name, ext_value)
        if len(matches) > 1:
            raise RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"{f.name}: more than one record found for external id field: {matches}",
                [f.name],
            )
        values = dict(values)
        values[f.name] = values.get(f.name, ext_value)
        if matches:
            return self.update(obj, matches[0], values, refs, allow_save=allow_save), False
        return self.insert(obj, values, refs, allow_save=allow_save), True

    def delete(self, obj: str | None, record_id: Any) -> str:
        canonical = ids.normalize(record_id)
        o = self.store.object_of(canonical) if canonical else None
        if canonical is None or o is None:
            raise RecordError("MALFORMED_ID", f"malformed id {record_id}", [])
        if obj is not None and o.name != obj:
            raise RecordError("NOT_FOUND", "The requested resource does not exist")
        record = self.store.tables[o.name].get(canonical)
        if record is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if record["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        if not o.deletable:
            raise RecordError(
                "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", []
            )
        self._delete(o, record, cascade_from=None)
        return canonical

    def undelete(self, obj: str, record_id: Any) -> str:
        o = self.store.schema[obj]
        record = self.store.get(obj, record_id)
        if record is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if not record["IsDeleted"]:
            raise RecordError("UNDELETE_FAILED", "Entity is not in the recycle bin")
        for (unique_obj, name), index in self.store.unique.items():
            if unique_obj == obj:
                key = _unique_key(o.fields[name.lower()], record[name])
                if key is not None and index.get(key):
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: {sorted(index[key])[0]}",
                    )
        self._undelete(o, record)
        return record["Id"]

    # -- commit / rollback -------------------------------------------------------------------

    def commit(self) -> list[Change]:
        if self.done:
            return []
        if self.rollup:
            self._roll_up()
        self.done = True
        entries = list(self.pending.values())
        for n, entry in enumerate(entries, 1):
            entry.sequence_number = n
        self.store._log(entries)
        return entries

    def rollback(self) -> None:
        if self.done:
            return
        self.done = True
        store = self.store
        for record_id, (obj, previous) in reversed(list(self.before.items())):
            o = store.schema[obj]
            table = store.tables[obj]
            current = table.get(record_id)
            if current is not None:
                store._unindex(o, current)
            if previous is None:
                table.pop(record_id, None)
            else:
                table[record_id] = previous
                store._index(o, previous)
        store.counters.update(self.counter_start)
        store.cascaded.clear()
        store.cascaded.update(self.cascaded_before)
        self.pending.clear()

    # -- internals ---------------------------------------------------------------------------

    def _existing(self, o: SObject, record_id: Any) -> dict[str, Any]:
        canonical = ids.normalize(record_id)
        if canonical is None:
            raise RecordError(
                "MALFORMED_ID", f"{o.label} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        if canonical[:3] != o.key_prefix:
            raise RecordError(
                "MALFORMED_ID", f"{o.label} ID: id value of incorrect type: {record_id}", ["Id"]
            )
        record = self.store.tables[o.name].get(canonical)
        if record is None:
            raise RecordError("NOT_FOUND", "The requested resource does not exist")
        if record["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _check_writable(self, o: SObject, values: dict[str, Any], create: bool) -> None:
        refused = []
        for name in values:
            f = o.fields[name.lower()]
            if not (f.createable if create else f.updateable):
                refused.append(f.name)
        if refused:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(refused)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                refused,
            )

    def _resolve_refs(
        self, o: SObject, values: dict[str, Any], refs: dict[str, tuple[str, Any]] | None
    ) -> None:
        for ref_name, (ext_name, ext_value) in (refs or {}).items():
            ref = o.fields[ref_name.lower()]
            parent = self.store.schema[ref.reference_to[0]]
            ext = parent.fields[ext_name.lower()]
            if ext.type == "id":
                found = [i] if (i := ids.normalize(ext_value)) and i in self.store.tables[parent.name] else []
            else:
                found = self.store.find(parent.name, ext.name, ext_value)
            if not found:
                raise RecordError(
                    "INVALID_FIELD",
                    f"Foreign key external ID: {ext_value} not found for field {ext.name} in entity {parent.name}",
                    [],
                )
            if len(found) > 1:
                raise RecordError(
                    "INVALID_FIELD",
                    f"Foreign key external ID: {ext_value} found multiple times for field {ext.name} in entity "
                    f"{parent.name}",
                    [],
                )
            values[ref.name] = found[0]

    def _prepare(
        self, o: SObject, current: dict[str, Any] | None, values: dict[str, Any], allow_save: bool
    ) -> dict[str, Any]:
        store = self.store
        for name, value in list(values.items()):
            f = o.fields[name.lower()]
            problem = check(f, value)
            if problem is not None:
                raise RecordError(problem[0], problem[1], [f.name])
            values[name] = normalize_number(f, value)
            if f.type == "reference" and value is not None:
                values[name] = self._check_reference(f, value)
        record = dict(current) if current is not None else store._blank(o)
        for name, value in values.items():
            record[o.fields[name.lower()].name] = value
        if o.name == "OpportunityLineItem" and current is None:
            self._line_item_product(record)
        missing = [
            f.name
            for f in o.fields.values()
            if not f.nillable
            and f.createable
            and not f.defaulted_on_create
            and record.get(f.name) in (None, "")
            and (current is None or f.name in values)
        ]
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        store._derive(o, record, current, set(values))
        runner = Runner(store, store.now_ms(), include_deleted=False)
        for rule, condition, patterns in store.validation_rules:
            if rule.object != o.name or not rule.active:
                continue
            fired = False
            for name, digits in rule.min_digits.items():
                value = record.get(o.fields[name.lower()].name)
                if value not in (None, "") and len(re.sub(r"\D", "", str(value))) < digits:
                    fired = True
            for name, pattern in patterns.items():
                value = record.get(o.fields[name.lower()].name)
                if value not in (None, "") and not pattern.search(str(value)):
                    fired = True
            if condition is not None and condition(runner, record):
                fired = True
            if rule.check is not None and rule.check(dict(record)):
                fired = True
            if fired:
                where = [o.fields[rule.error_field.lower()].name] if rule.error_field else []
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, where)
        if o.name == "Account" and store.duplicate_rule_account_name and not allow_save:
            name = (record.get("Name") or "").strip().casefold()
            matches = [
                r["Id"]
                for r in store.rows("Account", False)
                if r["Id"] != record.get("Id") and (r["Name"] or "").strip().casefold() == name
            ]
            if matches and (current is None or "Name" in values):
                raise RecordError(
                    "DUPLICATES_DETECTED",
                    "Use one of these records?",
                    [],
                    {"duplicateResult": _duplicate_result(matches)},
                )
        for (unique_obj, name), index in store.unique.items():
            if unique_obj != o.name:
                continue
            f = o.fields[name.lower()]
            if not f.unique:
                continue
            key = _unique_key(f, record[f.name])
            holders = index.get(key, set()) - {record.get("Id")} if key is not None else set()
            if holders:
                raise RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value on record with id: {sorted(holders)[0]}",
                    [],
                )
        return record

    def _check_reference(self, f: Field, value: Any) -> str:
        canonical = ids.normalize(value)
        if canonical is None:
            raise RecordError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name])
        targets = {self.store.schema[t].key_prefix for t in f.reference_to}
        if canonical[:3] not in targets:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"field integrity exception: unknown ({f.label}: id value of incorrect type: {value})",
                [f.name],
            )
        target = self.store.lookup(canonical)
        if target is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if target["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [f.name])
        return canonical

    def _line_item_product(self, record: dict[str, Any]) -> None:
        store = self.store
        entry = store.lookup(record.get("PricebookEntryId"))
        product_id = record.get("Product2Id")
        if entry is None and product_id:
            standard = next((r for r in store.rows("Pricebook2", False) if r["IsStandard"]), None)
            entry = next(
                (
                    r
                    for r in store.rows("PricebookEntry", False)
                    if r["Product2Id"] == product_id
                    and standard is not None
                    and r["Pricebook2Id"] == standard["Id"]
                ),
                None,
            )
            if entry is None:
                raise RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "field integrity exception: unknown (no standard price is defined for this product)",
                    ["Product2Id"],
                )
            record["PricebookEntryId"] = entry["Id"]
        if entry is None:
            raise RecordError(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [PricebookEntryId]",
                ["PricebookEntryId"],
            )
        if product_id and entry["Product2Id"] != product_id:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId, Product2Id (the price book entry is for another product)",
                ["PricebookEntryId", "Product2Id"],
            )

    def _remember(self, o: SObject, record_id: str, previous: dict[str, Any] | None) -> None:
        if record_id not in self.before:
            self.before[record_id] = (o.name, dict(previous) if previous is not None else None)

    def _apply(
        self, o: SObject, current: dict[str, Any] | None, record: dict[str, Any], given: dict[str, Any]
    ) -> None:
        store = self.store
        record_id = record["Id"]
        self._remember(o, record_id, current)
        if current is None:
            record["CreatedDate"] = self.stamp
            record["CreatedById"] = self.user
        record["LastModifiedDate"] = record["SystemModstamp"] = self.stamp
        record["LastModifiedById"] = self.user
        if current is not None:
            store._unindex(o, current)
        store.tables[o.name][record_id] = record
        store._index(o, record)
        self.written += 1
        if current is None:
            self._note(
                o, record, "CREATE", [f.name for f in o.fields.values() if record.get(f.name) is not None]
            )
        else:
            changed = [
                f.name
                for f in o.fields.values()
                if current.get(f.name) != record.get(f.name)
                and f.name not in ("SystemModstamp", "LastModifiedById")
            ]
            if "LastModifiedDate" not in changed:
                changed.append("LastModifiedDate")
            self._note(o, record, "UPDATE", changed)
        if o.name == "Product2" and current is not None:
            entries = store.schema["PricebookEntry"]
            for entry in list(store.tables["PricebookEntry"].values()):
                if entry["Product2Id"] == record_id:
                    self._remember(entries, entry["Id"], entry)
                    store.tables["PricebookEntry"][entry["Id"]] = {
                        **entry,
                        "Name": record["Name"],
                        "ProductCode": record["ProductCode"],
                    }
        if o.name == "OpportunityLineItem" and record["OpportunityId"]:
            self.rollup.add(record["OpportunityId"])

    def _roll_up(self) -> None:
        """Opportunities take their line items' total as Amount (at commit, one pass)."""
        store = self.store
        o = store.schema["Opportunity"]
        amounts = store.opportunity_amounts(self.rollup)
        for opp_id in sorted(self.rollup):
            opp = store.lookup(opp_id)
            amount = amounts.get(opp_id)
            if opp is None or opp["IsDeleted"] or amount is None or amount == opp["Amount"]:
                continue
            self._remember(o, opp_id, opp)
            updated = dict(opp)
            updated["Amount"] = amount
            updated["LastModifiedDate"] = updated["SystemModstamp"] = self.stamp
            updated["LastModifiedById"] = self.user
            store.tables["Opportunity"][opp_id] = updated
            self._note(o, updated, "UPDATE", ["Amount", "LastModifiedDate"])
        self.rollup.clear()

    def _note(self, o: SObject, record: dict[str, Any], kind: str, changed: list[str]) -> None:
        store = self.store
        if o.name not in store.cdc_objects:
            return
        record_id = record["Id"]
        entry = self.pending.get(record_id)
        printed = store.printed(o.name, record)
        if entry is None:
            self.pending[record_id] = Change(
                seq=0,
                object=o.name,
                record_ids=[record_id],
                change_type=kind,
                changed_fields=list(changed),
                commit_timestamp=self.stamp,
                transaction_key=self.key,
                sequence_number=0,
                commit_user=self.user,
                origin=self.origin,
                record=printed,
            )
            return
        entry.record = printed
        if entry.change_type == "CREATE" and kind == "UPDATE":
            entry.changed_fields = [f.name for f in o.fields.values() if record.get(f.name) is not None]
            return
        if kind == "UPDATE" and entry.change_type == "UPDATE":
            entry.changed_fields += [n for n in changed if n not in entry.changed_fields]
            return
        entry.change_type = kind
        entry.changed_fields = list(changed)

    def _delete(self, o: SObject, record: dict[str, Any], cascade_from: str | None) -> None:
        store = self.store
        for child in o.children.values():
            child_obj = store.schema[child.child]
            for row in list(store.tables[child.child].values()):
                if row[child.field] != record["Id"] or row["IsDeleted"]:
                    continue
                if child.cascade_delete:
                    self._delete(child_obj, row, cascade_from=record["Id"])
        self._remember(o, record["Id"], record)
        store._unindex(o, record)
        deleted = dict(record)
        deleted["IsDeleted"] = True
        deleted["LastModifiedDate"] = deleted["SystemModstamp"] = self.stamp
        deleted["LastModifiedById"] = self.user
        store.tables[o.name][record["Id"]] = deleted
        if cascade_from is not None:
            store.cascaded[record["Id"]] = cascade_from
        self.written += 1
        self._note(o, deleted, "DELETE", [])
        if o.name == "OpportunityLineItem" and record["OpportunityId"]:
            self.rollup.add(record["OpportunityId"])

    def _undelete(self, o: SObject, record: dict[str, Any]) -> None:
        store = self.store
        self._remember(o, record["Id"], record)
        restored = dict(record)
        restored["IsDeleted"] = False
        restored["LastModifiedDate"] = restored["SystemModstamp"] = self.stamp
        restored["LastModifiedById"] = self.user
        store.tables[o.name][record["Id"]] = restored
        store._index(o, restored)
        store.cascaded.pop(record["Id"], None)
        self.written += 1
        self._note(o, restored, "UNDELETE", [])
        for child_id, parent_id in list(store.cascaded.items()):
            if parent_id == record["Id"]:
                child = store.lookup(child_id)
                if child is not None and child["IsDeleted"]:
                    self._undelete(store.object_of(child_id), child)  # type: ignore[arg-type]


def _duplicate_result(matches: list[str]) -> dict[str, Any]:
    return {
        "allowSave": False,
        "duplicateRule": "Standard_Account_Duplicate_Rule",
        "duplicateRuleEntityType": "Account",
        "errorMessage": None,
        "matchResults": [
            {
                "entityType": "Account",
                "errors": [],
                "matchEngine": "FuzzyMatchEngine",
                "matchRecords": [
                    {
                        "additionalInformation": [],
                        "fieldDiffs": [],
                        "matchConfidence": 100.0,
                        "record": {"attributes": {"type": "Account"}, "Id": m},
                    }
                    for m in matches
                ],
                "rule": "Standard_Account_Match_Rule_v1_0",
                "size": len(matches),
                "success": True,
            }
        ],
    }
