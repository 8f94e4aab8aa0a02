"""The SOQL the sandbox understands: parse, bind to the org's schema, run, and print rows.

Supported::

    SELECT <items> FROM <Object> [alias]
      [WHERE <condition>] [ORDER BY <field> [ASC|DESC] [NULLS FIRST|LAST], ...]
      [LIMIT n] [OFFSET n]

Items: fields, parent fields through relationships (``Account.AccountNumber``,
``Opportunity.Account.Name``; printed nested, ``"Account": {"attributes": ..., ...}`` or
``null``), child subqueries (``(SELECT Id FROM OpportunityLineItems WHERE ... ORDER BY ...
LIMIT n)``; printed ``{"totalSize", "done", "records"}`` or ``null`` when empty), ``COUNT()``
(alone: ``totalSize`` is the count, no records), ``COUNT(field) [alias]`` (one
``AggregateResult`` row, ``expr0`` unless aliased) and ``FIELDS(ALL|STANDARD|CUSTOM)`` (ALL and
CUSTOM need ``LIMIT`` of at most 200, as in the real org).

Conditions: ``= != <> < > <= >=``, ``IN (...)``, ``NOT IN (...)`` (lists of literals or a
semi-join ``(SELECT field FROM Object ...)``), ``LIKE`` (``%`` and ``_``, case-insensitive),
``AND``/``OR``/``NOT`` and parentheses; AND and OR may not be mixed at one level without
parentheses (SOQL refuses that). Literals: ``'strings'`` with backslash escapes, numbers,
``true``/``false``, ``null``, dates ``2024-01-01``, date-times ``2024-01-01T00:00:00Z`` (also
``+00:00``, ``+0000``, fractions of a second), and the date literals ``TODAY YESTERDAY TOMORROW
THIS_MONTH LAST_MONTH THIS_YEAR LAST_90_DAYS LAST_N_DAYS:n NEXT_N_DAYS:n N_DAYS_AGO:n`` (UTC
days). Text comparisons ignore case; ids compare in their 18-character form (15 accepted).

Errors are :class:`SoqlError` with the real codes: ``MALFORMED_QUERY`` (syntax, literal of the
wrong type), ``INVALID_FIELD`` (unknown field or relationship, long text in WHERE/ORDER BY),
``INVALID_TYPE`` (unknown object or child relationship), ``INVALID_QUERY_FILTER_OPERATOR``
(a malformed id literal). Messages quote the query with a caret under the culprit and ``ERROR
at Row:r:Column:c``, as Salesforce prints them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.sandbox.salesforce import ids
from airflow_provider_b1.sandbox.salesforce.schema import (
    NUMBER,
    Field,
    SObject,
    parse_datetime,
    to_csv,
    to_json,
)


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- tokens ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),:])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "FALSE",
    "GROUP",
    "HAVING",
    "WITH",
    "FOR",
    "USING",
    "INCLUDES",
    "EXCLUDES",
    "TYPEOF",
}
DATE_LITERALS = {
    "TODAY",
    "YESTERDAY",
    "TOMORROW",
    "THIS_MONTH",
    "LAST_MONTH",
    "THIS_YEAR",
    "LAST_90_DAYS",
}
DATE_LITERALS_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}


@dataclass
class Token:
    kind: str
    text: str
    pos: int
    value: Any = None

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise _error(text, pos, "MALFORMED_QUERY", f"unexpected token: '{text[pos]}'")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind != "ws":
            token = Token(kind, raw, pos)
            if kind == "string":
                token.value = _unescape(text, pos, raw[1:-1])
            out.append(token)
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _unescape(text: str, pos: int, body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in "%_":
                out.append("\\" + nxt)  # kept escaped: LIKE reads it as a literal wildcard
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 4
            else:
                raise _error(text, pos + i + 1, "MALFORMED_QUERY", f"Invalid string literal: '\\{nxt}'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _error(text: str, pos: int, code: str, message: str) -> SoqlError:
    """A SoqlError whose message quotes the query with a caret, as Salesforce does."""
    before = text[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    col = pos - line_start + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    caret = " " * (col - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{col}\n{message}")


# -- syntax ------------------------------------------------------------------------------------


@dataclass
class Literal:
    kind: str  # string number date datetime boolean null dateliteral
    value: Any
    text: str
    pos: int


@dataclass
class FieldPath:
    parts: list[str]
    pos: int
    # bound:
    chain: list[Field] = field(default_factory=list)  # references walked, then the field itself

    @property
    def target(self) -> Field:
        return self.chain[-1]

    @property
    def name(self) -> str:
        """The canonical dotted name (``Account.AccountNumber``)."""
        names = [f.relationship_name for f in self.chain[:-1]] + [self.chain[-1].name]
        return ".".join(str(n) for n in names)


@dataclass
class Count:
    path: FieldPath | None
    alias: str | None
    pos: int


@dataclass
class FieldsFn:
    which: str
    pos: int


@dataclass
class Compare:
    path: FieldPath
    op: str
    value: Literal


@dataclass
class InList:
    path: FieldPath
    values: list[Literal]
    negate: bool
    subquery: Query | None = None


@dataclass
class Like:
    path: FieldPath
    pattern: Literal
    regex: re.Pattern | None = None


@dataclass
class Logic:
    op: str  # AND, OR
    items: list[Any]


@dataclass
class Not:
    item: Any


@dataclass
class OrderItem:
    path: FieldPath
    desc: bool
    nulls_last: bool


@dataclass
class Query:
    text: str
    items: list[Any]
    sobject: str
    sobject_pos: int
    alias: str | None = None
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    # bound:
    obj: SObject | None = None
    child: Any = None  # ChildRelationship of a subquery


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.tokens[min(self.i + n, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def fail(self, tok: Token | None = None, message: str | None = None) -> SoqlError:
        tok = tok or self.tok
        if message is None:
            message = "unexpected token: <EOF>" if tok.kind == "end" else f"unexpected token: '{tok.text}'"
        return _error(self.text, tok.pos, "MALFORMED_QUERY", message)

    def is_kw(self, word: str, tok: Token | None = None) -> bool:
        return (tok or self.tok).upper == word

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.fail()
        return self.advance()

    def expect(self, text: str) -> Token:
        if self.tok.text != text or self.tok.kind not in ("punct", "op"):
            raise self.fail()
        return self.advance()

    def parse(self) -> Query:
        query = self.query(top=True)
        if self.tok.kind != "end":
            raise self.fail()
        return query

    def query(self, top: bool) -> Query:
        self.expect_kw("SELECT")
        items = [self.select_item(top)]
        while self.tok.text == ",":
            self.advance()
            items.append(self.select_item(top))
        self.expect_kw("FROM")
        obj = self.tok
        if obj.kind != "ident" or obj.upper in KEYWORDS:
            raise self.fail()
        self.advance()
        query = Query(self.text, items, obj.text, obj.pos)
        if self.tok.kind == "ident" and self.tok.upper not in KEYWORDS and "." not in self.tok.text:
            query.alias = self.advance().text
        if self.is_kw("WHERE"):
            self.advance()
            query.where = self.condition()
        if self.is_kw("WITH") or self.is_kw("GROUP") or self.is_kw("HAVING") or self.is_kw("USING"):
            raise self.fail(message=f"{self.tok.text.upper()} is not supported by this sandbox")
        if self.is_kw("ORDER"):
            self.advance()
            self.expect_kw("BY")
            query.order.append(self.order_item())
            while self.tok.text == ",":
                self.advance()
                query.order.append(self.order_item())
        if self.is_kw("LIMIT"):
            self.advance()
            query.limit = self.integer()
        if self.is_kw("OFFSET"):
            self.advance()
            query.offset = self.integer()
        if self.is_kw("FOR"):
            raise self.fail()
        return query

    def integer(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not re.fullmatch(r"\d+", tok.text):
            raise self.fail()
        self.advance()
        return int(tok.text)

    def select_item(self, top: bool) -> Any:
        tok = self.tok
        if tok.text == "(" and tok.kind == "punct":
            if not top:
                raise self.fail()
            self.advance()
            sub = self.query(top=False)
            self.expect(")")
            return sub
        if tok.kind != "ident" or tok.upper in KEYWORDS:
            raise self.fail()
        if tok.upper == "COUNT" and self.peek().text == "(":
            self.advance()
            self.advance()
            path = None
            if self.tok.text != ")":
                path = self.path()
            self.expect(")")
            alias = None
            if self.tok.kind == "ident" and self.tok.upper not in KEYWORDS:
                alias = self.advance().text
            return Count(path, alias, tok.pos)
        if tok.upper == "FIELDS" and self.peek().text == "(":
            self.advance()
            self.advance()
            which = self.tok
            if which.upper not in ("ALL", "STANDARD", "CUSTOM"):
                raise self.fail()
            self.advance()
            self.expect(")")
            return FieldsFn(which.upper, tok.pos)
        return self.path()

    def path(self) -> FieldPath:
        tok = self.tok
        if tok.kind != "ident" or tok.upper in KEYWORDS:
            raise self.fail()
        self.advance()
        return FieldPath(tok.text.split("."), tok.pos)

    def order_item(self) -> OrderItem:
        path = self.path()
        desc = False
        if self.is_kw("ASC") or self.is_kw("DESC"):
            desc = self.advance().upper == "DESC"
        nulls_last = desc
        if self.is_kw("NULLS"):
            self.advance()
            if self.tok.upper not in ("FIRST", "LAST"):
                raise self.fail()
            nulls_last = self.advance().upper == "LAST"
        return OrderItem(path, desc, nulls_last)

    def condition(self) -> Any:
        first = self.unary()
        if not (self.is_kw("AND") or self.is_kw("OR")):
            return first
        op = self.tok.upper
        items = [first]
        while self.is_kw("AND") or self.is_kw("OR"):
            if self.tok.upper != op:
                raise self.fail()  # AND and OR mixed without parentheses
            self.advance()
            items.append(self.unary())
        return Logic(op, items)

    def unary(self) -> Any:
        if self.is_kw("NOT"):
            self.advance()
            return Not(self.unary())
        if self.tok.text == "(" and self.tok.kind == "punct":
            self.advance()
            inner = self.condition()
            self.expect(")")
            return inner
        path = self.path()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            return Compare(path, "!=" if tok.text == "<>" else tok.text, self.literal())
        if self.is_kw("LIKE"):
            self.advance()
            return Like(path, self.literal())
        negate = False
        if self.is_kw("NOT"):
            self.advance()
            negate = True
            if not self.is_kw("IN"):
                raise self.fail()
        if self.is_kw("IN"):
            self.advance()
            self.expect("(")
            if self.is_kw("SELECT"):
                sub = self.query(top=False)
                self.expect(")")
                return InList(path, [], negate, sub)
            values = [self.literal()]
            while self.tok.text == ",":
                self.advance()
                values.append(self.literal())
            self.expect(")")
            return InList(path, values, negate)
        raise self.fail()

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return Literal("string", tok.value, tok.text, tok.pos)
        if tok.kind == "number":
            self.advance()
            return Literal("number", float(tok.text), tok.text, tok.pos)
        if tok.kind == "date":
            self.advance()
            try:
                dt.date.fromisoformat(tok.text)
            except ValueError:
                raise self.fail(
                    tok, f"line 1:{tok.pos} no viable alternative at character '{tok.text}'"
                ) from None
            return Literal("date", tok.text, tok.text, tok.pos)
        if tok.kind == "datetime":
            ms = parse_datetime(tok.text)
            if ms is None or not re.search(r"(Z|[+-]\d{2}:?\d{2})$", tok.text):
                raise self.fail(tok, f"line 1:{tok.pos} no viable alternative at character '{tok.text}'")
            self.advance()
            return Literal("datetime", ms, tok.text, tok.pos)
        if tok.kind == "ident":
            word = tok.upper
            if word in ("TRUE", "FALSE"):
                self.advance()
                return Literal("boolean", word == "TRUE", tok.text, tok.pos)
            if word == "NULL":
                self.advance()
                return Literal("null", None, tok.text, tok.pos)
            if word in DATE_LITERALS:
                self.advance()
                return Literal("dateliteral", (word, 0), tok.text, tok.pos)
            if word in DATE_LITERALS_N and self.peek().text == ":":
                self.advance()
                self.advance()
                n = self.integer()
                return Literal("dateliteral", (word, n), f"{tok.text}:{n}", tok.pos)
        raise self.fail()


def parse(text: str) -> Query:
    """The syntax tree of one SOQL query; :class:`SoqlError` when it does not parse."""
    if not text or not text.strip():
        raise SoqlError("MALFORMED_QUERY", "A query is required")
    return _Parser(text).parse()


# -- binding -----------------------------------------------------------------------------------


def _no_column(query: Query, pos: int, name: str, obj: str) -> SoqlError:
    return _error(
        query.text,
        pos,
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{obj}'. If you are attempting to use a custom field, be "
        "sure to append the '__c' after the custom field name. Please reference your WSDL or the "
        "describe call for the appropriate names.",
    )


def _bind_path(query: Query, path: FieldPath, obj: SObject, schema: dict[str, SObject]) -> None:
    parts = list(path.parts)
    if query.alias and len(parts) > 1 and parts[0].lower() == query.alias.lower():
        parts = parts[1:]
    if len(parts) > 6:
        raise _error(query.text, path.pos, "MALFORMED_QUERY", "Relationships are followed at most 5 levels")
    chain: list[Field] = []
    current = obj
    for rel in parts[:-1]:
        ref = current.relationships.get(rel.lower())
        if ref is None:
            raise _error(
                query.text,
                path.pos,
                "INVALID_FIELD",
                f"Didn't understand relationship '{rel}' in field path. If you are attempting to use a "
                "custom relationship, be sure to append the '__r' after the custom relationship name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
            )
        chain.append(ref)
        current = schema[ref.reference_to[0]]
    target = current.field(parts[-1])
    if target is None:
        raise _no_column(query, path.pos, parts[-1], current.name)
    chain.append(target)
    path.chain = chain


def bind(query: Query, schema: dict[str, SObject], *, parent: SObject | None = None) -> Query:
    """Resolve the query's object, fields and relationships against ``schema`` (in place)."""
    if parent is None:
        obj = next((o for o in schema.values() if o.name.lower() == query.sobject.lower()), None)
        if obj is None:
            raise _error(
                query.text,
                query.sobject_pos,
                "INVALID_TYPE",
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom "
                "object, be sure to append the '__c' after the entity name. Please reference your WSDL "
                "or the describe call for the appropriate names.",
            )
    else:
        child = parent.children.get(query.sobject.lower())
        if child is None:
            raise _error(
                query.text,
                query.sobject_pos,
                "INVALID_TYPE",
                f"Didn't understand relationship '{query.sobject}' in FROM part of query call. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the appropriate "
                "names.",
            )
        query.child = child
        obj = schema[child.child]
    query.obj = obj
    expanded: list[Any] = []
    for item in query.items:
        if isinstance(item, FieldsFn):
            if (
                parent is None
                and item.which in ("ALL", "CUSTOM")
                and (query.limit is None or query.limit > 200)
            ):
                raise _error(
                    query.text,
                    item.pos,
                    "MALFORMED_QUERY",
                    "The SOQL FIELDS function must have a LIMIT of at most 200",
                )
            for f in obj.fields.values():
                if item.which == "ALL" or (item.which == "CUSTOM") == f.custom:
                    expanded.append(FieldPath([f.name], item.pos, [f]))
        else:
            expanded.append(item)
    query.items = expanded
    counts = [i for i in query.items if isinstance(i, Count)]
    if counts:
        if len(query.items) > 1:
            first = query.items[0] if not isinstance(query.items[0], Count) else query.items[1]
            pos = getattr(first, "pos", getattr(first, "sobject_pos", 0))
            raise _error(
                query.text,
                pos,
                "MALFORMED_QUERY",
                "Field must be grouped or aggregated: " + (getattr(first, "parts", ["?"])[-1]),
            )
        count = counts[0]
        if count.path is not None:
            _bind_path(query, count.path, obj, schema)
        if parent is not None:
            raise _error(query.text, count.pos, "MALFORMED_QUERY", "COUNT() is not allowed in a subquery")
    seen: set[str] = set()
    for item in query.items:
        if isinstance(item, FieldPath):
            if not item.chain:
                _bind_path(query, item, obj, schema)
            key = item.name.lower()
            if key in seen:
                raise _error(
                    query.text, item.pos, "MALFORMED_QUERY", f"duplicate field selected: {item.name}"
                )
            seen.add(key)
        elif isinstance(item, Query):
            bind(item, schema, parent=obj)
            key = item.child.name.lower()
            if key in seen:
                raise _error(
                    query.text, item.sobject_pos, "MALFORMED_QUERY", f"duplicate field selected: {key}"
                )
            seen.add(key)
    if query.where is not None:
        _bind_condition(query, query.where, obj, schema)
    for order in query.order:
        _bind_path(query, order.path, obj, schema)
        if order.path.target.long_text:
            raise _error(
                query.text,
                order.path.pos,
                "INVALID_FIELD",
                f"field '{order.path.target.name}' can not be sorted in a query call",
            )
    if query.offset is not None and query.offset > 2000:
        raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
    return query


def _bind_condition(query: Query, cond: Any, obj: SObject, schema: dict[str, SObject]) -> None:
    if isinstance(cond, Logic):
        for item in cond.items:
            _bind_condition(query, item, obj, schema)
        return
    if isinstance(cond, Not):
        _bind_condition(query, cond.item, obj, schema)
        return
    _bind_path(query, cond.path, obj, schema)
    f = cond.path.target
    if f.long_text:
        raise _error(
            query.text,
            cond.path.pos,
            "INVALID_FIELD",
            f"field '{f.name}' can not be filtered in a query call",
        )
    if isinstance(cond, Compare):
        cond.value = _check_literal(query, f, cond.value, cond.op)
    elif isinstance(cond, Like):
        if not (f.is_text or f.type in ("id", "reference")) or cond.pattern.kind != "string":
            raise _error(
                query.text, cond.pattern.pos, "MALFORMED_QUERY", f"invalid operator on field '{f.name}': LIKE"
            )
        cond.regex = _like_regex(cond.pattern.value)
    elif isinstance(cond, InList):
        if cond.subquery is not None:
            bind(cond.subquery, schema)
            sub_items = cond.subquery.items
            if len(sub_items) != 1 or not isinstance(sub_items[0], FieldPath):
                raise _error(
                    query.text,
                    cond.subquery.sobject_pos,
                    "MALFORMED_QUERY",
                    "A semi-join selects exactly one field",
                )
            if f.type not in ("id", "reference") or sub_items[0].target.type not in ("id", "reference"):
                raise _error(
                    query.text,
                    cond.path.pos,
                    "MALFORMED_QUERY",
                    "semi join sub-selects are only allowed on id fields",
                )
        else:
            cond.values = [_check_literal(query, f, v, "IN") for v in cond.values]


def _type_name(f: Field) -> str:
    return {"datetime": "dateTime", "int": "integer", "percent": "double", "currency": "currency"}.get(
        f.type, f.type
    )


def _check_literal(query: Query, f: Field, lit: Literal, op: str) -> Literal:
    """The literal checked against the field's type (ids normalized to 18 characters)."""
    if lit.kind == "null":
        return lit
    kind = f.type
    quoted_msg = (
        f"value of filter criterion for field '{f.name}' must be of type {_type_name(f)} and should not "
        "be enclosed in quotes"
    )
    if kind in ("id", "reference"):
        if lit.kind != "string":
            raise _error(
                query.text,
                lit.pos,
                "MALFORMED_QUERY",
                f"value of filter criterion for field '{f.name}' must be of type id and should be enclosed in quotes",
            )
        canonical = ids.normalize(lit.value)
        if canonical is None:
            raise _error(
                query.text, lit.pos, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.value}"
            )
        return Literal("string", canonical, lit.text, lit.pos)
    if f.is_text:
        if lit.kind != "string":
            raise _error(
                query.text,
                lit.pos,
                "MALFORMED_QUERY",
                f"value of filter criterion for field '{f.name}' must be of type string and should be enclosed in "
                "quotes",
            )
        return lit
    if kind == "boolean":
        if lit.kind != "boolean":
            raise _error(query.text, lit.pos, "MALFORMED_QUERY", quoted_msg)
        return lit
    if kind in NUMBER:
        if lit.kind != "number":
            raise _error(query.text, lit.pos, "MALFORMED_QUERY", quoted_msg)
        return lit
    if kind == "date":
        if lit.kind not in ("date", "dateliteral"):
            raise _error(query.text, lit.pos, "MALFORMED_QUERY", quoted_msg)
        return lit
    if kind == "datetime":
        if lit.kind not in ("datetime", "dateliteral"):
            raise _error(query.text, lit.pos, "MALFORMED_QUERY", quoted_msg)
        return lit
    return lit


def _like_regex(pattern: str) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


# -- running -----------------------------------------------------------------------------------


class Source:
    """What a query reads: the store implements these."""

    def rows(self, obj: str, include_deleted: bool) -> Iterable[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def lookup(self, record_id: str | None) -> dict[str, Any] | None:  # pragma: no cover
        raise NotImplementedError


def _date_range(word: str, n: int, now_ms: int, as_datetime: bool) -> tuple[Any, Any]:
    """[start, end) of a date literal, in dates (ISO strings) or milliseconds."""
    today = (dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=now_ms)).date()
    one = dt.timedelta(days=1)
    if word == "TODAY":
        start, end = today, today + one
    elif word == "YESTERDAY":
        start, end = today - one, today
    elif word == "TOMORROW":
        start, end = today + one, today + 2 * one
    elif word == "THIS_MONTH":
        start = today.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    elif word == "LAST_MONTH":
        end = today.replace(day=1)
        start = (end - one).replace(day=1)
    elif word == "THIS_YEAR":
        start, end = dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1)
    elif word == "LAST_90_DAYS":
        start, end = today - 90 * one, today + one
    elif word == "LAST_N_DAYS":
        start, end = today - n * one, today + one
    elif word == "NEXT_N_DAYS":
        start, end = today + one, today + (n + 1) * one
    else:  # N_DAYS_AGO
        start, end = today - n * one, today - (n - 1) * one
    if as_datetime:
        epoch = dt.date(1970, 1, 1)
        return ((start - epoch).days * 86_400_000, (end - epoch).days * 86_400_000)
    return (start.isoformat(), end.isoformat())


def _key(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.is_text:
        return value.casefold()
    return value


class Runner:
    """Runs bound queries against a :class:`Source` at the moment ``now_ms``."""

    def __init__(self, source: Source, now_ms: int, include_deleted: bool) -> None:
        self.source = source
        self.now_ms = now_ms
        self.include_deleted = include_deleted
        self._semi: dict[int, set[str]] = {}

    def value(self, record: dict[str, Any] | None, path: FieldPath) -> Any:
        for ref in path.chain[:-1]:
            if record is None:
                return None
            record = self.source.lookup(record.get(ref.name))
        if record is None:
            return None
        return record.get(path.target.name)

    def matches(self, record: dict[str, Any], cond: Any) -> bool:
        if cond is None:
            return True
        if isinstance(cond, Logic):
            if cond.op == "AND":
                return all(self.matches(record, c) for c in cond.items)
            return any(self.matches(record, c) for c in cond.items)
        if isinstance(cond, Not):
            return not self.matches(record, cond.item)
        f = cond.path.target
        value = self.value(record, cond.path)
        if isinstance(cond, Like):
            return (
                value is not None and cond.regex is not None and cond.regex.fullmatch(str(value)) is not None
            )
        if isinstance(cond, InList):
            if cond.subquery is not None:
                key = id(cond)
                if key not in self._semi:
                    sub = cond.subquery
                    path = sub.items[0]
                    self._semi[key] = {v for r in self.select(sub) if (v := self.value(r, path)) is not None}
                found = value is not None and value in self._semi[key]
            else:
                found = value is not None and any(self._compare(f, value, "=", lit) for lit in cond.values)
            if cond.negate:
                return not found
            return found
        return self._compare(f, value, cond.op, cond.value)

    def _compare(self, f: Field, value: Any, op: str, lit: Literal) -> bool:
        if lit.kind == "null":
            if op == "=":
                return value is None
            if op == "!=":
                return value is not None
            return False
        if lit.kind == "dateliteral":
            if value is None:
                return op == "!="
            start, end = _date_range(lit.value[0], lit.value[1], self.now_ms, f.type == "datetime")
            inside = start <= value < end
            return {
                "=": inside,
                "!=": not inside,
                "<": value < start,
                "<=": value < end,
                ">": value >= end,
                ">=": value >= start,
            }[op]
        if value is None:
            return op == "!="
        left, right = _key(f, value), lit.value
        if f.is_text:
            right = str(right).casefold()
        if op == "=":
            return left == right
        if op == "!=":
            return left != right
        try:
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        except TypeError:
            return False

    def select(self, query: Query, rows: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The matching records, ordered, after OFFSET and LIMIT."""
        assert query.obj is not None
        if rows is None:
            rows = self.source.rows(query.obj.name, self.include_deleted)
        found = [r for r in rows if self.matches(r, query.where)]
        for order in reversed(query.order):
            f = order.path.target
            null_key = (1,) if order.nulls_last != order.desc else (-1,)

            def sort_key(
                r: dict[str, Any], path: FieldPath = order.path, f: Field = f, nk: tuple = null_key
            ) -> Any:
                v = self.value(r, path)
                return nk if v is None else (0, _key(f, v))

            found.sort(key=sort_key, reverse=order.desc)
        start = query.offset or 0
        end = None if query.limit is None else start + query.limit
        return found[start:end]


# -- printing ----------------------------------------------------------------------------------


def attributes(obj: str, record_id: str | None, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": obj}
    if record_id:
        out["url"] = f"/services/data/v{version}/sobjects/{obj}/{record_id}"
    return out


class Printer:
    """Prints rows of a bound query as the REST API (JSON) or Bulk API 2.0 (CSV) does."""

    def __init__(self, runner: Runner, version: str, schema: dict[str, SObject]) -> None:
        self.runner = runner
        self.version = version
        self.schema = schema

    def children_by_parent(
        self, sub: Query, parents: list[dict[str, Any]]
    ) -> dict[str, list[dict[str, Any]]]:
        child = sub.child
        wanted = {p["Id"] for p in parents}
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in self.runner.source.rows(child.child, self.runner.include_deleted):
            parent_id = row.get(child.field)
            if parent_id in wanted:
                grouped.setdefault(parent_id, []).append(row)
        return grouped

    def json_rows(self, query: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        subs = {id(s): self.children_by_parent(s, rows) for s in query.items if isinstance(s, Query)}
        return [self.json_row(query, r, subs) for r in rows]

    def json_row(
        self, query: Query, record: dict[str, Any], subs: dict[int, dict[str, list]]
    ) -> dict[str, Any]:
        assert query.obj is not None
        out: dict[str, Any] = {"attributes": attributes(query.obj.name, record.get("Id"), self.version)}
        for item in query.items:
            if isinstance(item, FieldPath):
                self._put(out, record, item.chain)
            elif isinstance(item, Query):
                kids = self.runner.select(item, subs[id(item)].get(record["Id"], []))
                out[item.child.name] = (
                    {"totalSize": len(kids), "done": True, "records": self.json_rows(item, kids)}
                    if kids
                    else None
                )
        return out

    def _put(self, out: dict[str, Any], record: dict[str, Any] | None, chain: list[Field]) -> None:
        if len(chain) == 1:
            f = chain[0]
            out[f.name] = to_json(f, record.get(f.name)) if record is not None else None
            return
        ref = chain[0]
        key = str(ref.relationship_name)
        parent = self.runner.source.lookup(record.get(ref.name)) if record is not None else None
        if parent is None:
            out.setdefault(key, None)
            return
        nested = out.get(key)
        if nested is None:
            nested = out[key] = {
                "attributes": attributes(self._type_of(parent, ref), parent.get("Id"), self.version)
            }
        self._put(nested, parent, chain[1:])

    def _type_of(self, record: dict[str, Any], ref: Field) -> str:
        prefix = str(record.get("Id", ""))[:3]
        for name in ref.reference_to:
            if self.schema[name].key_prefix == prefix:
                return name
        return ref.reference_to[0]

    @staticmethod
    def csv_header(query: Query) -> list[str]:
        return [item.name for item in query.items if isinstance(item, FieldPath)]

    def csv_row(self, query: Query, record: dict[str, Any]) -> list[str]:
        return [
            to_csv(item.target, self.runner.value(record, item))
            for item in query.items
            if isinstance(item, FieldPath)
        ]


def count_only(query: Query) -> Count | None:
    """The query's COUNT item when it is an aggregate query."""
    if len(query.items) == 1 and isinstance(query.items[0], Count):
        return query.items[0]
    return None


def compile_condition(text: str, obj: SObject, schema: dict[str, SObject]) -> Callable[[Runner, dict], bool]:
    """A WHERE condition (validation rules are declared this way) as a predicate on records."""
    query = bind(parse(f"SELECT Id FROM {obj.name} WHERE {text}"), schema)
    return lambda runner, record: runner.matches(record, query.where)
