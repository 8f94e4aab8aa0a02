"""What the warehouse reads from SAP Business One and where each field lands: one declaration per entity.

Each :class:`EntitySpec` says which SAP entity it reads, with which ``$select``, into which table
(and which child tables for nested collections such as ``DocumentLines``), column by column; the
entity's key and update stamp are the hook's one table of SAP entities. Everything else (the select list, the row mapping, the
COPY column lists, the merge statements, the reconciliation queries) is derived from these
declarations, so adding a field is one line here plus a migration in :mod:`.schema`.

A record that cannot be mapped (no key, a malformed date, a missing ``DocTotal``) raises
:class:`RecordError` with a reason a person can act on; the loader records it as failed and
loads the rest of the page.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any, Literal

import msgspec
from msgspec.json import encode as _msgspec_encode

from airflow_provider_b1.hooks.sap_b1.entities import entity_spec as sap_entity_spec

CursorKind = Literal["datetime", "date", "none"]


class RecordError(ValueError):
    """A SAP record that cannot be loaded as it is; the message says why (no data values beyond the key)."""


# Converters: value as SAP sent it -> value as the warehouse stores it. They are called millions
# of times on a large load, so each is a couple of type checks and nothing more.


def _text(value: Any, field_name: str) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (int, float)):
        return str(value)
    raise RecordError(f"{field_name} is not text ({type(value).__name__})")


#: What the warehouse's ``INTEGER`` columns hold (PostgreSQL's; SQLite's would hold more).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: Amounts are ``NUMERIC(19, 6)``, as in SAP's own database: below 10^13 in size, 6 decimal places.
NUM_LIMIT = 10**13
NUM_SCALE = 6
_NUM_LIMIT_DECIMAL = Decimal(NUM_LIMIT)
_MICRO = Decimal(1).scaleb(-NUM_SCALE)


def _int(value: Any, field_name: str) -> Any:
    if value is None:
        return None
    number = value
    kind = type(value)
    if (
        (kind is str and value.strip().lstrip("-").isdigit())
        or (kind is float and value.is_integer())
        or (kind is Decimal and value.is_finite() and value == value.to_integral_value())
    ):
        number = int(value)
    if type(number) is not int:
        raise RecordError(f"{field_name} {value!r} is not an integer")
    if not INT_MIN <= number <= INT_MAX:
        raise RecordError(
            f"{field_name} {number} is outside what the warehouse's integer columns hold (±{INT_MAX})"
        )
    return number


def _num(value: Any, field_name: str) -> Any:
    """An amount kept exactly, or :class:`RecordError`: JSON numbers arrive as ``int``, or as
    :class:`~decimal.Decimal` with every digit SAP sent (records mapped from their bytes), or as
    ``float`` (records given as dicts)."""
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        if -NUM_LIMIT < value < NUM_LIMIT:
            return value
        return _check_amount(Decimal(value), value, field_name)
    if kind is Decimal:
        return _check_amount(value, value, field_name)
    if kind is float:
        if value - value != 0.0:
            raise RecordError(f"{field_name} {value!r} is not a finite number")
        if not (-NUM_LIMIT < value < NUM_LIMIT and exact_number(repr(value)).__class__ is float):
            _check_amount(Decimal(repr(value)), value, field_name)
        return value
    if kind is str:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise RecordError(f"{field_name} {value!r} is not a number") from None
        return _check_amount(number, value, field_name)
    raise RecordError(f"{field_name} {value!r} is not a number")


def exact_number(text: str) -> float | Decimal | None:
    """A JSON number with a fraction or an exponent, as SAP sent it: a float when the float is
    exactly that number and has at most 6 decimal places (at most 15 significant digits, which
    a float always keeps), else a :class:`~decimal.Decimal` with every digit (the mapper then checks
    it); ``None`` for a text that is no number.

    The decoder's hook for such numbers (most amounts take the first branch: a length and a scan),
    and the check of a float's ``repr``.
    """
    length = len(text)
    if length <= 16:
        point = text.find(".")
        if point > 0 and length - point <= NUM_SCALE + 1 and "e" not in text and "E" not in text:
            return float(text)
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _check_amount(number: Decimal, value: Any, field_name: str) -> Decimal:
    shown = repr(value) if type(value) is str else str(value)
    if not number.is_finite():
        raise RecordError(f"{field_name} {shown} is not a finite number")
    if not -_NUM_LIMIT_DECIMAL < number < _NUM_LIMIT_DECIMAL:
        raise RecordError(
            f"{field_name} {shown} is too large: the warehouse keeps amounts below {NUM_LIMIT} in size "
            f"(13 digits before the point, {NUM_SCALE} after, as SAP does)"
        )
    if number.as_tuple().exponent < -NUM_SCALE and number != number.quantize(_MICRO):
        raise RecordError(
            f"{field_name} {shown} has more than {NUM_SCALE} decimal places: the warehouse keeps amounts "
            f"to {NUM_SCALE}, as SAP does"
        )
    return number


def _date(value: Any, field_name: str) -> Any:
    # v1 sends "2024-05-01", v2 "2024-05-01T00:00:00Z": the day is the first ten characters.
    if value is None or value == "":
        return None
    if type(value) is str:
        day = value[:10]
        try:
            date.fromisoformat(day)
        except ValueError:
            raise RecordError(f"{field_name} {value!r} is not a date") from None
        if len(value) > 10 and value[10] not in "T ":
            raise RecordError(f"{field_name} {value!r} is not a date")
        return day
    raise RecordError(f"{field_name} {value!r} is not a date")


def _time(value: Any, field_name: str) -> Any:
    if value is None or value == "":
        return None
    if type(value) is str:
        try:
            time.fromisoformat(value)
        except ValueError:
            raise RecordError(f"{field_name} {value!r} is not a time of day") from None
        return value
    raise RecordError(f"{field_name} {value!r} is not a time of day")


def _yes_no(value: Any, field_name: str) -> Any:
    if value is None or type(value) is bool:
        return value
    if value == "tYES":
        return True
    if value == "tNO":
        return False
    raise RecordError(f"{field_name} {value!r} is not tYES/tNO")


def _active(value: Any, field_name: str) -> Any:
    # ChartOfAccounts' ActiveAccount and friends: tYES/tNO, some versions "Y"/"N".
    if value in ("Y", "y"):
        return True
    if value in ("N", "n"):
        return False
    return _yes_no(value, field_name)


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "text": _text,
    "int": _int,
    "num": _num,
    "date": _date,
    "time": _time,
    "bool": _yes_no,
    "active": _active,
}


@dataclass(frozen=True)
class Column:
    """One warehouse column filled from one SAP field.

    :param name: column name in the warehouse.
    :param source: SAP property; for a child table, a property of the child row, or
        ``"^Property"`` for a property of the parent record (denormalised onto lines).
    :param kind: one of :data:`CONVERTERS` (``text``, ``int``, ``num``, ``date``, ``time``,
        ``bool`` for tYES/tNO, ``active``).
    :param required: a null value makes the record fail (keys, ``DocTotal``).
    """

    name: str
    source: str
    kind: str = "text"
    required: bool = False


def C(name: str, source: str, kind: str = "text", *, required: bool = False) -> Column:
    """Shorthand for :class:`Column` that keeps the declarations one line each."""
    if kind not in CONVERTERS:
        raise ValueError(f"Unknown column kind {kind!r}")
    return Column(name, source, kind, required)


@dataclass(frozen=True)
class ChildTable:
    """A nested SAP collection loaded into its own table, replaced whole when the parent changes.

    :param collection: the SAP collection property, e.g. ``DocumentLines``.
    :param table: the warehouse table.
    :param parent_key_column: the column holding the parent's key.
    :param columns: the other columns; ``key_columns`` name the child's own key among them.
    """

    collection: str
    table: str
    parent_key_column: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return (self.parent_key_column, *(c.name for c in self.columns))

    def column_kinds(self, parent_key_kind: str) -> tuple[str, ...]:
        """Kinds of :attr:`column_names`, the parent key's first."""
        return (parent_key_kind, *(c.kind for c in self.columns))


@dataclass(frozen=True)
class EntitySpec:
    """Everything the warehouse knows about one SAP entity.

    The SAP key and update stamp are not declared here: they are the hook's facts about the
    entity (:data:`airflow_provider_b1.hooks.sap_b1.ENTITIES`), read through :attr:`key_field`
    and :attr:`cursor`.

    :param entity: the Service Layer entity set, e.g. ``Invoices``.
    :param table: the warehouse table the records land in (one row per record).
    :param key_column: that table's key column.
    :param columns: the table's mapped columns (the key first).
    :param children: nested collections loaded into their own tables.
    :param amount_column: the column summed by reconciliation (``doc_total``), if any.
    :param partner_column: the column naming a business partner; a partner the warehouse does not
        know yet is added as an *inferred* row of ``dim_business_partner`` (see the loader).
    :param inferred_flag: the column set to false when a real record replaces an inferred one.
    :param deletable: SAP lets its records be deleted (not only closed or cancelled): the table has
        a ``deleted_at`` column, set by the deletion check (:mod:`.deletions`) for a key SAP no
        longer holds and cleared by the load that brings the key back.
    """

    entity: str
    table: str
    key_column: str
    columns: tuple[Column, ...]
    children: tuple[ChildTable, ...] = ()
    amount_column: str | None = None
    partner_column: str | None = None
    inferred_flag: str | None = None
    deletable: bool = False

    @property
    def key_field(self) -> str:
        """The SAP key property (``DocEntry``, ``CardCode``...), from the hook's entity table."""
        return sap_entity_spec(self.entity).key

    @property
    def cursor(self) -> CursorKind:
        """``datetime`` (UpdateDate + UpdateTime), ``date`` (UpdateDate only) or ``none`` (no update
        stamp: read in full every run), from the hook's entity table."""
        return sap_entity_spec(self.entity).cursor or "none"

    @property
    def key_kind(self) -> str:
        return self.columns[0].kind

    @property
    def amount_field(self) -> str | None:
        """The SAP property behind :attr:`amount_column`."""
        for column in self.columns:
            if column.name == self.amount_column:
                return column.source
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        """Columns written for each record: the mapped ones, then ``raw`` and ``payload_hash``."""
        extra = (self.inferred_flag,) if self.inferred_flag else ()
        return (*(c.name for c in self.columns), *extra, "raw", "payload_hash")

    def select(self, extra: Iterable[str] = ()) -> list[str]:
        """The ``$select`` list: every property the columns read, the collections, then ``extra``."""
        fields: list[str] = []
        for name in (
            *(c.source for c in self.columns),
            *(child.collection for child in self.children),
            *extra,
        ):
            if name not in fields:
                fields.append(name)
        return fields

    def key_of(self, record: dict) -> Any:
        """The record's key, converted, or :class:`RecordError` when it has none."""
        value = CONVERTERS[self.key_kind](record.get(self.key_field), self.key_field)
        if value is None:
            raise RecordError(f"{self.key_field} is missing")
        return value

    @property
    def column_kinds(self) -> tuple[str, ...]:
        """Kinds of :attr:`column_names`, ``raw`` and ``payload_hash`` included."""
        extra = ("bool",) if self.inferred_flag else ()
        return (*(c.kind for c in self.columns), *extra, "text", "hash")

    @cached_property
    def map(self) -> Callable[[dict], MappedRecord]:
        """Map one SAP record to its row and child rows, or raise :class:`RecordError`.

        A function compiled from the declarations (see :func:`_compile_mapper`): called once
        per record on loads of millions, it does in straight-line code what a loop over the
        columns would do with a dozen times the interpreter overhead.
        """
        return _dict_mapper(self)

    @cached_property
    def map_raw(self) -> Callable[[msgspec.Raw | bytes], MappedRecord]:
        """:attr:`map` for a record still encoded, as :meth:`SapB1Hook.iter_pages` yields with ``raw=True``.

        Only the mapped properties are decoded (into a struct generated from the declarations);
        the rest of the record is skipped unbuilt, and ``raw`` is the record as SAP sent it with
        the whitespace taken out. A record whose shape the struct refuses (a collection that is
        not a list of objects...) goes through :attr:`map`, which names the problem.
        """
        return _raw_mapper(self)


# Inline fast paths per kind; anything unusual goes to the converter, which decides or raises.
_FAST_PATH = {
    "text": "if {v} is not None and {v}.__class__ is not str: {v} = _text({v}, {label})",
    "int": "if {v} is not None and not ({v}.__class__ is int and _INT_MIN <= {v} <= _INT_MAX): {v} = _int({v}, {label})",
    "num": "if {v} is not None and not ({v}.__class__ is int and -_NUM_LIMIT < {v} < _NUM_LIMIT): {v} = _num({v}, {label})",
}
# Decoded from the record's bytes, a float is exactly what SAP sent (see exact_number): only its
# size is left to check.
_STRUCT_NUM = (
    "if {v} is not None and not (({v}.__class__ is float or {v}.__class__ is int) and -_NUM_LIMIT < {v} < _NUM_LIMIT):"
    " {v} = _num({v}, {label})"
)
_SLOW_PATH = "if {v} is not None: {v} = {converter}({v}, {label})"
_CONVERTER_NAMES = {kind: f"_{kind}_converter" for kind in CONVERTERS}


def _value_lines(var: str, fetch: str, column: Column, label: str, *, structs: bool) -> list[str]:
    label_literal = repr(label)
    template = _STRUCT_NUM if structs and column.kind == "num" else _FAST_PATH.get(column.kind, _SLOW_PATH)
    lines = [
        f"{var} = {fetch}",
        template.format(v=var, label=label_literal, converter=_CONVERTER_NAMES[column.kind]),
    ]
    if column.required:
        lines.append(f"if {var} is None: raise RecordError({label_literal} + ' is null')")
    return lines


def _compile_mapper(spec: EntitySpec, *, structs: bool) -> Callable[[Any, bytes], MappedRecord]:
    """``map_record(record, raw_bytes)``: the record's fields read from a dict (``structs=False``)
    or from the attributes of the structs of :func:`_record_struct` (``structs=True``)."""

    def fetch(owner: str, name: str) -> str:
        return f"{owner}.{name}" if structs else f"{owner}_get({name!r})"

    body = ["def map_record(record, raw_bytes):"]
    if not structs:
        body += [
            "    if record.__class__ is not dict:",
            "        raise RecordError('the record is a ' + type(record).__name__ + ', not an object')",
            "    record_get = record.get",
        ]
    header_vars: dict[str, str] = {}
    for index, column in enumerate(spec.columns):
        var = f"h{index}"
        header_vars[column.source] = var
        body += [
            "    " + line
            for line in _value_lines(
                var, fetch("record", column.source), column, column.source, structs=structs
            )
        ]
    row_vars = list(header_vars.values()) + (["False"] if spec.inferred_flag else [])
    body += [
        "    nul = b'\\\\u0000' in raw_bytes and _holds_nul(raw_bytes)",
        "    digest = sha256(raw_bytes).hexdigest()",
        "    raw = raw_bytes.decode()",
        f"    row = ({', '.join([*row_vars, 'raw', 'digest'])},)",
        "    children = []",
    ]
    for child_index, child in enumerate(spec.children):
        collection = child.collection
        body += [
            f"    items = {fetch('record', collection)}",
            "    if items is None:",
            "        items = ()",
            "    elif items.__class__ is not list:",
            f"        raise RecordError({collection + ' is not a list'!r})",
            "    rows = []",
            "    seen = set()",
            "    for item in items:",
        ]
        if not structs:
            body += [
                "        if item.__class__ is not dict:",
                f"            raise RecordError({collection!r} + ' holds a ' + type(item).__name__ + ', not an object')",
                "        item_get = item.get",
            ]
        child_vars = ["h0"]
        for index, column in enumerate(child.columns):
            var = f"c{child_index}_{index}"
            if column.source.startswith("^"):
                source = column.source[1:]
                if (
                    source in header_vars
                    and spec.columns[list(header_vars).index(source)].kind == column.kind
                ):
                    # Already converted for the header: reuse, do not convert once per line.
                    body.append(f"        {var} = {header_vars[source]}")
                else:
                    body += [
                        "        " + ln
                        for ln in _value_lines(var, fetch("record", source), column, source, structs=structs)
                    ]
            else:
                label = f"{collection}.{column.source}"
                body += [
                    "        " + ln
                    for ln in _value_lines(var, fetch("item", column.source), column, label, structs=structs)
                ]
            child_vars.append(var)
        names = child.column_names
        key_vars = [child_vars[names.index(k)] for k in child.key_columns]
        key_expr = key_vars[0] if len(key_vars) == 1 else f"({', '.join(key_vars)})"
        body += [
            f"        if {key_expr} in seen:",
            f"            raise RecordError({collection!r} + ' repeats the key ' + repr({key_expr}))",
            f"        seen.add({key_expr})",
            f"        rows.append(({', '.join(child_vars)},))",
            "    children.append(rows)",
        ]
    body.append("    return MappedRecord(h0, row, tuple(children), digest, nul)")
    namespace: dict[str, Any] = {
        "RecordError": RecordError,
        "MappedRecord": MappedRecord,
        "sha256": hashlib.sha256,
        "_text": _text,
        "_int": _int,
        "_num": _num,
        "_holds_nul": holds_nul,
        "_INT_MIN": INT_MIN,
        "_INT_MAX": INT_MAX,
        "_NUM_LIMIT": NUM_LIMIT,
        **{_CONVERTER_NAMES[kind]: converter for kind, converter in CONVERTERS.items()},
    }
    source = "\n".join(body)
    # The source is built from this module's own declarations only, never from data.
    exec(compile(source, f"<warehouse mapper {spec.entity}>", "exec"), namespace)  # noqa: S102
    mapper = namespace["map_record"]
    mapper.__doc__ = f"Map one {spec.entity} record (generated from its EntitySpec)."
    mapper.source = source
    return mapper


def _dict_mapper(spec: EntitySpec) -> Callable[[dict], MappedRecord]:
    mapper = _compile_mapper(spec, structs=False)

    def map_record(record: dict) -> MappedRecord:
        return mapper(record, _encode_json(record))

    map_record.source = mapper.source  # type: ignore[attr-defined]
    return map_record


def _record_struct(spec: EntitySpec) -> type[msgspec.Struct]:
    """A struct of the properties the mapper reads (any JSON value, ``None`` when absent), with
    one struct per child collection: decoding into it skips every other property unbuilt."""
    children = {
        child.collection: msgspec.defstruct(
            f"{spec.entity}_{child.collection}",
            [(c.source, Any, None) for c in child.columns if not c.source.startswith("^")],
            gc=False,  # decoded JSON cannot form reference cycles: nothing for the collector
        )
        for child in spec.children
    }
    names = [c.source for c in spec.columns]
    names += [c.source[1:] for child in spec.children for c in child.columns if c.source.startswith("^")]
    fields: list[tuple[str, Any, Any]] = [(name, Any, None) for name in dict.fromkeys(names)]
    fields += [(name, list[struct] | None, None) for name, struct in children.items()]  # type: ignore[valid-type]
    return msgspec.defstruct(f"{spec.entity}Record", fields, gc=False)


_format_compact = msgspec.json.format


def _as_sent(raw: msgspec.Raw | bytes) -> bytes:
    """The record's JSON as SAP sent it; an indented reply (a v2 server's) with the whitespace out."""
    data = bytes(raw)
    # Compact JSON holds no raw newline (one inside a string is escaped): a memchr decides.
    return _format_compact(data, indent=-1) if b"\n" in data else data


def _raw_mapper(spec: EntitySpec) -> Callable[[msgspec.Raw | bytes], MappedRecord]:
    from_struct = _compile_mapper(spec, structs=True)
    from_dict = _compile_mapper(spec, structs=False)
    # A number with a fraction is a float only when the float is exactly what SAP sent; else a
    # Decimal with every digit, which the mapper keeps or fails with the reason.
    decode = msgspec.json.Decoder(_record_struct(spec), float_hook=exact_number).decode

    def map_raw(raw: msgspec.Raw | bytes) -> MappedRecord:
        try:
            record = decode(raw)
        except msgspec.ValidationError:
            # Not the shape the struct expects: the dict mapper says what is wrong, and maps it
            # when only the struct was too strict.
            return from_dict(decode_exact(raw), _as_sent(raw))
        except msgspec.DecodeError as exc:
            raise RecordError(f"the record is not valid JSON ({exc})") from None
        return from_struct(record, _as_sent(raw))

    map_raw.source = from_struct.source  # type: ignore[attr-defined]
    return map_raw


@dataclass(frozen=True)
class MappedRecord:
    """A record ready to load: its key, its row (``EntitySpec.column_names``), its child rows.

    :param nul: some text of the record holds a NUL character (U+0000): storable in SQLite, not
        in PostgreSQL, whose loader fails the record (:func:`nul_fields` names the fields).
    """

    key: Any
    row: tuple
    children: tuple[list[tuple], ...]
    payload_hash: str
    nul: bool = False


#: JSON to Python with every number's digits kept (a fraction becomes a Decimal).
decode_exact = msgspec.json.Decoder(float_hook=Decimal).decode

# A JSON escape of U+0000: "\u0000" preceded by an even number of backslashes (an odd number
# makes it the text backslash-u-0-0-0-0, which is no NUL at all).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def holds_nul(raw_json: bytes) -> bool:
    """Whether a record's JSON holds a NUL character in some string (a name or a value)."""
    return _NUL_ESCAPE.search(raw_json) is not None


def nul_fields(record: Any, path: str = "") -> list[str]:
    """Where a decoded record holds NUL characters: ``["Comments", "DocumentLines[1].ItemDescription"]``."""
    found: list[str] = []
    if isinstance(record, dict):
        for name, value in record.items():
            where = f"{path}.{name}" if path else str(name)
            if "\x00" in str(name) or (isinstance(value, str) and "\x00" in value):
                found.append(where.replace("\x00", "\\0"))
            elif isinstance(value, (dict, list)):
                found += nul_fields(value, where)
    elif isinstance(record, list):
        for index, value in enumerate(record):
            where = f"{path}[{index}]"
            if isinstance(value, str) and "\x00" in value:
                found.append(where)
            elif isinstance(value, (dict, list)):
                found += nul_fields(value, where)
    return found


def _encode_json(record: dict) -> bytes:
    """A dict record as compact JSON, for ``raw`` and its hash.

    Properties keep the order SAP sent them in, as in the bytes it sent: a Service Layer
    serialises an entity's properties in a fixed order. Encoded by msgspec, several times faster
    than :func:`json.dumps` on wide records: text stays UTF-8 and values JSON cannot hold are
    rendered with :class:`str`.
    """
    return _msgspec_encode(record, enc_hook=str)


def _document(entity: str, table: str) -> EntitySpec:
    return EntitySpec(
        entity=entity,
        table=table,
        key_column="doc_entry",
        columns=(
            C("doc_entry", "DocEntry", "int", required=True),
            C("doc_num", "DocNum", "int"),
            C("doc_date", "DocDate", "date"),
            C("doc_due_date", "DocDueDate", "date"),
            C("tax_date", "TaxDate", "date"),
            C("card_code", "CardCode"),
            C("card_name", "CardName"),
            C("doc_total", "DocTotal", "num", required=True),
            C("vat_sum", "VatSum", "num"),
            C("doc_currency", "DocCurrency"),
            C("doc_rate", "DocRate", "num"),
            C("document_status", "DocumentStatus"),
            C("is_cancelled", "Cancelled", "bool"),
            C("num_at_card", "NumAtCard"),
            C("comments", "Comments"),
            C("sales_person_code", "SalesPersonCode", "int"),
            C("create_date", "CreateDate", "date"),
            C("create_time", "CreateTime", "time"),
            C("update_date", "UpdateDate", "date"),
            C("update_time", "UpdateTime", "time"),
            C("external_id", "U_ExternalId"),
        ),
        children=(
            ChildTable(
                collection="DocumentLines",
                table=f"{table}_line",
                parent_key_column="doc_entry",
                key_columns=("line_num",),
                columns=(
                    C("line_num", "LineNum", "int", required=True),
                    C("doc_date", "^DocDate", "date"),
                    C("card_code", "^CardCode"),
                    C("item_code", "ItemCode"),
                    C("item_description", "ItemDescription"),
                    C("quantity", "Quantity", "num"),
                    C("price", "Price", "num"),
                    C("unit_price", "UnitPrice", "num"),
                    C("line_total", "LineTotal", "num"),
                    C("currency", "Currency"),
                    C("account_code", "AccountCode"),
                    C("tax_code", "TaxCode"),
                    C("vat_group", "VatGroup"),
                    C("costing_code", "CostingCode"),
                    C("costing_code2", "CostingCode2"),
                    C("costing_code3", "CostingCode3"),
                    C("costing_code4", "CostingCode4"),
                    C("costing_code5", "CostingCode5"),
                    C("warehouse_code", "WarehouseCode"),
                    C("line_status", "LineStatus"),
                ),
            ),
        ),
        amount_column="doc_total",
        partner_column="card_code",
    )


def _payment(entity: str, table: str) -> EntitySpec:
    return EntitySpec(
        entity=entity,
        table=table,
        key_column="doc_entry",
        columns=(
            C("doc_entry", "DocEntry", "int", required=True),
            C("doc_num", "DocNum", "int"),
            C("doc_date", "DocDate", "date"),
            C("doc_type", "DocType"),
            C("card_code", "CardCode"),
            C("card_name", "CardName"),
            C("cash_sum", "CashSum", "num"),
            C("transfer_sum", "TransferSum", "num"),
            C("doc_currency", "DocCurrency"),
            C("doc_rate", "DocRate", "num"),
            C("is_cancelled", "Cancelled", "bool"),
            C("transfer_account", "TransferAccount"),
            C("cash_account", "CashAccount"),
            C("remarks", "Remarks"),
            C("update_date", "UpdateDate", "date"),
            C("update_time", "UpdateTime", "time"),
        ),
        children=(
            ChildTable(
                collection="PaymentInvoices",
                table=f"{table}_invoice",
                parent_key_column="doc_entry",
                key_columns=("line_num",),
                columns=(
                    C("line_num", "LineNum", "int", required=True),
                    C("invoice_doc_entry", "DocEntry", "int"),
                    C("invoice_type", "InvoiceType"),
                    C("sum_applied", "SumApplied", "num"),
                ),
            ),
        ),
        partner_column="card_code",
    )


_SPECS: tuple[EntitySpec, ...] = (
    EntitySpec(
        entity="BusinessPartners",
        table="dim_business_partner",
        key_column="card_code",
        columns=(
            C("card_code", "CardCode", required=True),
            C("card_name", "CardName"),
            C("card_type", "CardType"),
            C("group_code", "GroupCode", "int"),
            C("currency", "Currency"),
            C("phone", "Phone1"),
            C("email", "EmailAddress"),
            C("federal_tax_id", "FederalTaxID"),
            C("is_valid", "Valid", "bool"),
            C("is_frozen", "Frozen", "bool"),
            C("balance", "CurrentAccountBalance", "num"),
            C("create_date", "CreateDate", "date"),
            C("create_time", "CreateTime", "time"),
            C("update_date", "UpdateDate", "date"),
            C("update_time", "UpdateTime", "time"),
            C("external_id", "U_ExternalId"),
        ),
        inferred_flag="is_inferred",
        deletable=True,
    ),
    EntitySpec(
        entity="Items",
        table="dim_item",
        key_column="item_code",
        columns=(
            C("item_code", "ItemCode", required=True),
            C("item_name", "ItemName"),
            C("items_group_code", "ItemsGroupCode", "int"),
            C("is_inventory_item", "InventoryItem", "bool"),
            C("is_sales_item", "SalesItem", "bool"),
            C("is_purchase_item", "PurchaseItem", "bool"),
            C("is_valid", "Valid", "bool"),
            C("is_frozen", "Frozen", "bool"),
            C("inventory_uom", "InventoryUOM"),
            C("create_date", "CreateDate", "date"),
            C("update_date", "UpdateDate", "date"),
            C("update_time", "UpdateTime", "time"),
        ),
        deletable=True,
    ),
    EntitySpec(
        entity="ChartOfAccounts",
        table="dim_gl_account",
        key_column="account_code",
        columns=(
            C("account_code", "Code", required=True),
            C("account_name", "Name"),
            C("balance", "Balance", "num"),
            C("currency", "AcctCurrency"),
            C("father_account_code", "FatherAccountKey"),
            C("is_postable", "ActiveAccount", "active"),
            C("account_level", "AccountLevel", "int"),
            C("account_type", "AccountType"),
            C("is_frozen", "FrozenFor", "active"),
        ),
        deletable=True,
    ),
    EntitySpec(
        entity="ProfitCenters",
        table="dim_profit_center",
        key_column="center_code",
        columns=(
            C("center_code", "CenterCode", required=True),
            C("center_name", "CenterName"),
            C("dimension_code", "InWhichDimension", "int"),
            C("is_active", "Active", "active"),
            C("effective_from", "EffectiveFrom", "date"),
        ),
        deletable=True,
    ),
    EntitySpec(
        entity="Dimensions",
        table="dim_dimension",
        key_column="dimension_code",
        columns=(
            C("dimension_code", "DimensionCode", "int", required=True),
            C("dimension_name", "DimensionName"),
            C("is_active", "IsActive", "active"),
            C("description", "DimensionDescription"),
        ),
    ),
    _document("Invoices", "fact_sales_invoice"),
    _document("PurchaseInvoices", "fact_purchase_invoice"),
    _document("PurchaseOrders", "fact_purchase_order"),
    EntitySpec(
        entity="JournalEntries",
        table="fact_journal_entry",
        key_column="jdt_num",
        columns=(
            C("jdt_num", "JdtNum", "int", required=True),
            C("reference_date", "ReferenceDate", "date"),
            C("due_date", "DueDate", "date"),
            C("tax_date", "TaxDate", "date"),
            C("memo", "Memo"),
            C("reference", "Reference"),
            C("reference2", "Reference2"),
            C("transaction_code", "TransactionCode"),
            C("original_journal", "OriginalJournal"),
            C("update_date", "UpdateDate", "date"),
        ),
        children=(
            ChildTable(
                collection="JournalEntryLines",
                table="fact_journal_entry_line",
                parent_key_column="jdt_num",
                key_columns=("line_id",),
                columns=(
                    C("line_id", "Line_ID", "int", required=True),
                    C("reference_date", "^ReferenceDate", "date"),
                    C("account_code", "AccountCode"),
                    C("short_name", "ShortName"),
                    C("debit", "Debit", "num"),
                    C("credit", "Credit", "num"),
                    C("fc_debit", "FCDebit", "num"),
                    C("fc_credit", "FCCredit", "num"),
                    C("fc_currency", "FCCurrency"),
                    C("costing_code", "CostingCode"),
                    C("costing_code2", "CostingCode2"),
                    C("costing_code3", "CostingCode3"),
                    C("costing_code4", "CostingCode4"),
                    C("costing_code5", "CostingCode5"),
                    C("line_memo", "LineMemo"),
                ),
            ),
        ),
    ),
    _payment("IncomingPayments", "fact_incoming_payment"),
    _payment("VendorPayments", "fact_vendor_payment"),
)

#: Every entity the warehouse loads, by SAP entity set name.
ENTITIES: dict[str, EntitySpec] = {spec.entity: spec for spec in _SPECS}

#: Entities whose records SAP deletes outright: master data not yet used by a transaction. SAP
#: refuses to delete documents, payments and journal entries (they are closed, cancelled or
#: reversed, and stay as records flagged so) and the five fixed cost-accounting dimensions.
DELETABLE: tuple[str, ...] = tuple(spec.entity for spec in _SPECS if spec.deletable)

#: Where inferred business partners go (see :attr:`EntitySpec.partner_column`).
PARTNER_ENTITY = "BusinessPartners"


def entity_spec(entity: str) -> EntitySpec:
    """Return the declaration of ``entity`` or a clear error naming the known ones."""
    try:
        return ENTITIES[entity]
    except KeyError:
        raise ValueError(f"The warehouse does not load {entity!r}; known: {', '.join(ENTITIES)}") from None
