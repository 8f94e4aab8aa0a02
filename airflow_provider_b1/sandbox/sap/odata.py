"""The OData subset the Service Layer understands: ``$filter``, ``$select``, ``$orderby``, keys.

Filters are compiled into Python predicates over the sandbox's compact rows. Supported: ``eq ne
lt le gt ge``, ``and or not``, parentheses, ``startswith endswith contains`` (property first) and
``substringof('x', Prop)``; string literals with doubled quotes, numbers, ``true``/``false``/
``null``, and date literals ``'2024-05-01'``, ``'20240501'``, ``datetime'2024-05-01T10:00:00'``
(the time part is ignored: date properties compare by day). String comparison is case
sensitive (as on SAP HANA). Anything else raises :class:`QueryError`.

A compiled predicate may carry ``narrow``: conditions every matching row meets, for the store to
pick candidate rows without looking at all of them (a key range by bisection, an index look-up).
Each is ``(property, "in", values)`` (``eq``, or ``eq`` on one property joined by ``or``) or
``(property, op, value)`` with ``op`` one of ``lt le gt ge``; they come from the comparisons
joined by ``and`` at the top of the filter (never from under ``not``). The predicate itself stays
the judge: candidates are only a superset of the matches, unless the predicate is ``exact`` (it
says nothing more than those conditions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from airflow_provider_b1.sandbox.sap.schema import parse_day

Predicate = Callable[[list], bool]
Narrowing = tuple[tuple[str, str, Any], ...]


def narrowing(pred: Predicate) -> Narrowing:
    """The conditions ``pred`` carries for picking candidate rows (see the module)."""
    return getattr(pred, "narrow", ())


def exact(pred: Predicate) -> bool:
    """Whether ``pred`` says no more than its ``narrow`` conditions (a row meeting them all matches)."""
    return getattr(pred, "exact", False)


def _narrowed(pred: Predicate, narrow: Narrowing, whole: bool) -> Predicate:
    if narrow:
        pred.narrow = narrow  # type: ignore[attr-defined]
        pred.exact = whole  # type: ignore[attr-defined]
    return pred


class QueryError(ValueError):
    """A malformed or unsupported query option (answered 400 / -1000)."""


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<dt>datetime'(?:[^']|'')*')
    |(?P<str>'(?:[^']|'')*')
    |(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
    |(?P<lp>\()
    |(?P<rp>\))
    |(?P<comma>,)
    |(?P<name>[A-Za-z_][A-Za-z0-9_/]*)
    )""",
    re.VERBOSE,
)
_COMPARE = {"eq", "ne", "lt", "le", "gt", "ge"}
_FUNCS = {"startswith", "endswith", "contains", "substringof"}


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryError(
                f"Invalid $filter: unexpected character at position {pos}: {text[pos : pos + 10]!r}"
            )
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def unquote(literal: str) -> str:
    """``'O''Brien'`` -> ``O'Brien``."""
    return literal[1:-1].replace("''", "'")


def normalize_date(text: str) -> str:
    """A date literal as the ISO day it names; time parts are dropped. The day must exist."""
    day = parse_day(text.strip())
    if day is None:
        raise QueryError(f"Invalid date value '{text}'")
    return day


class _Literal:
    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind  # "str", "num", "date", "bool", "null"
        self.value = value


class _Prop:
    def __init__(self, name: str) -> None:
        self.name = name


class FilterCompiler:
    """Compile ``$filter`` text against one entity set.

    :param has_property: whether a property exists on the entity.
    :param getter: a function returning a property's stored value from a row.
    :param is_date: whether a property holds a date (compared by ISO day).
    """

    def __init__(
        self,
        has_property: Callable[[str], bool],
        getter: Callable[[str], Callable[[list], Any]],
        is_date: Callable[[str], bool],
        object_name: str = "Entity",
    ) -> None:
        self.has_property = has_property
        self.getter = getter
        self.is_date = is_date
        self.object_name = object_name

    def compile(self, text: str) -> Predicate:
        self.tokens = tokenize(text)
        self.pos = 0
        if not self.tokens:
            raise QueryError("Invalid $filter: empty expression")
        pred = self._or()
        if self.pos != len(self.tokens):
            raise QueryError(f"Invalid $filter: unexpected '{self.tokens[self.pos][1]}'")
        if not callable(pred):
            raise QueryError("Invalid $filter: the expression is not a condition")
        return pred

    # -- recursive descent -----------------------------------------------------------------

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise QueryError("Invalid $filter: unexpected end of expression")
        self.pos += 1
        return tok

    def _keyword(self, word: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "name" and tok[1] == word:
            self.pos += 1
            return True
        return False

    def _or(self) -> Any:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            a, b = self._cond(left), self._cond(right)
            left = _narrowed(
                lambda row, a=a, b=b: a(row) or b(row),
                _any_of(narrowing(a), narrowing(b)),
                exact(a) and exact(b),
            )
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._keyword("and"):
            right = self._not()
            a, b = self._cond(left), self._cond(right)
            left = _narrowed(
                lambda row, a=a, b=b: a(row) and b(row), narrowing(a) + narrowing(b), exact(a) and exact(b)
            )
        return left

    def _not(self) -> Any:
        if self._keyword("not"):
            inner = self._cond(self._not())
            return lambda row: not inner(row)
        return self._comparison()

    def _comparison(self) -> Any:
        left = self._primary()
        tok = self._peek()
        if tok and tok[0] == "name" and tok[1] in _COMPARE:
            self.pos += 1
            right = self._primary()
            return self._compare(left, tok[1], right)
        return left

    def _primary(self) -> Any:
        kind, text = self._next()
        if kind == "lp":
            inner = self._or()
            if self._next()[0] != "rp":
                raise QueryError("Invalid $filter: missing ')'")
            return inner
        if kind == "str":
            return _Literal("str", unquote(text))
        if kind == "dt":
            return _Literal("date", normalize_date(unquote(text[8:])))
        if kind == "num":
            raw = text.rstrip("mMdDfFlL")
            return _Literal("num", float(raw) if any(c in raw for c in ".eE") else int(raw))
        if kind == "name":
            if text in ("true", "false"):
                return _Literal("bool", text == "true")
            if text == "null":
                return _Literal("null", None)
            nxt = self._peek()
            if text in _FUNCS and nxt and nxt[0] == "lp":
                return self._function(text)
            if text in _COMPARE or text in ("and", "or", "not"):
                raise QueryError(f"Invalid $filter: unexpected '{text}'")
            if not self.has_property(text):
                raise QueryError(f"Property '{text}' of '{self.object_name}' is invalid")
            return _Prop(text)
        raise QueryError(f"Invalid $filter: unexpected '{text}'")

    def _function(self, name: str) -> Predicate:
        self._next()  # (
        args = [self._primary()]
        while self._peek() and self._peek()[0] == "comma":
            self._next()
            args.append(self._primary())
        if self._next()[0] != "rp":
            raise QueryError(f"Invalid $filter: missing ')' after {name}")
        if len(args) != 2:
            raise QueryError(f"Invalid $filter: {name} takes two arguments")
        if name == "substringof":
            args.reverse()
        prop, lit = args
        if not isinstance(prop, _Prop) or not isinstance(lit, _Literal) or lit.kind != "str":
            raise QueryError(f"Invalid $filter: {name} needs a property and a string")
        get = self.getter(prop.name)
        needle = lit.value
        if name == "startswith":
            return lambda row: isinstance(v := get(row), str) and v.startswith(needle)
        if name == "endswith":
            return lambda row: isinstance(v := get(row), str) and v.endswith(needle)
        return lambda row: isinstance(v := get(row), str) and needle in v

    def _cond(self, node: Any) -> Predicate:
        if callable(node):
            return node
        if isinstance(node, _Literal) and node.kind == "bool":
            value = node.value
            return lambda row: value
        if isinstance(node, _Prop):
            get = self.getter(node.name)
            return lambda row: get(row) == "tYES" or get(row) is True
        raise QueryError("Invalid $filter: the expression is not a condition")

    def _compare(self, left: Any, op: str, right: Any) -> Predicate:
        if isinstance(left, _Literal) and isinstance(right, _Prop):
            left, right = right, left
            op = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}.get(op, op)
        if not isinstance(left, _Prop) or not isinstance(right, _Literal):
            raise QueryError("Invalid $filter: a comparison needs a property and a value")
        pred = self._comparison_predicate(left, op, right)
        if self.is_date(left.name) or right.kind == "null" or op == "ne":
            return pred
        return _narrowed(
            pred, ((left.name, "in", (right.value,)) if op == "eq" else (left.name, op, right.value),), True
        )

    def _comparison_predicate(self, left: _Prop, op: str, right: _Literal) -> Predicate:
        get = self.getter(left.name)
        value = right.value
        if right.kind == "null":
            if op == "eq":
                return lambda row: get(row) is None
            if op == "ne":
                return lambda row: get(row) is not None
            raise QueryError(f"Invalid $filter: cannot compare '{left.name}' with null using {op}")
        if self.is_date(left.name):
            if right.kind not in ("str", "date"):
                raise QueryError(f"Invalid $filter: '{left.name}' is a date; compare it with a date literal")
            value = normalize_date(value)
            get = _day(get)
        elif right.kind == "date":
            raise QueryError(f"Invalid $filter: '{left.name}' is not a date")
        if op == "eq":
            return lambda row: get(row) == value
        if op == "ne":
            return lambda row: get(row) != value
        cmp = {
            "lt": lambda a, b: a < b,
            "le": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "ge": lambda a, b: a >= b,
        }[op]

        def ordered(row: list) -> bool:
            v = get(row)
            if v is None:
                return False
            try:
                return cmp(v, value)
            except TypeError:
                return False

        return ordered


def _any_of(a: Narrowing, b: Narrowing) -> Narrowing:
    """What ``a or b`` keeps of the two sides' conditions: values of one property, joined."""
    if len(a) == 1 and len(b) == 1 and a[0][1] == b[0][1] == "in" and a[0][0] == b[0][0]:
        return ((a[0][0], "in", a[0][2] + b[0][2]),)
    return ()


def _day(get: Callable[[list], Any]) -> Callable[[list], Any]:
    def day(row: list) -> Any:
        v = get(row)
        if isinstance(v, str) and len(v) > 10:
            return v[:10]
        return v

    return day


def parse_select(text: str, has_property: Callable[[str], bool], object_name: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise QueryError("Invalid $select: no properties")
    for name in names:
        if name == "*":
            raise QueryError("Invalid $select: '*' is not supported here; omit $select instead")
        if not has_property(name):
            raise QueryError(f"Property '{name}' of '{object_name}' is invalid")
    return list(dict.fromkeys(names))


def parse_orderby(text: str, has_property: Callable[[str], bool], object_name: str) -> list[tuple[str, bool]]:
    """``"DocDate desc, DocEntry"`` -> ``[("DocDate", True), ("DocEntry", False)]``."""
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise QueryError(f"Invalid $orderby: '{part.strip()}'")
        name = words[0]
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise QueryError(f"Invalid $orderby direction '{words[1]}'")
        if not has_property(name):
            raise QueryError(f"Property '{name}' of '{object_name}' is invalid")
        keys.append((name, direction == "desc"))
    return keys


def sort_rows(rows: list[list], keys: list[tuple[Callable[[list], Any], bool]]) -> list[list]:
    """Stable multi-key sort; nulls sort first ascending (as SQL Server and HANA do)."""
    out = list(rows)
    for get, desc in reversed(keys):

        def key(row: list, get: Callable[[list], Any] = get) -> tuple:
            v = get(row)
            if v is None:
                return (0, 0)
            if isinstance(v, (int, float)):
                return (1, v)
            return (2, str(v))

        out.sort(key=key, reverse=desc)
    return out


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_NAME = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*")
_NUMBER_KEY = re.compile(r"\s*(-?\d+)\s*\)")


def parse_resource(path: str) -> tuple[str, Any, str | None] | None:
    """``Invoices(22)/Close`` -> ``("Invoices", 22, "Close")``; ``BusinessPartners('O''B')``
    -> ``("BusinessPartners", "O'B", None)``; a bare set has key ``None``. Returns None when the
    path is not an entity path.

    ``path`` is already percent-decoded, so a quoted key may hold anything (``/``, ``)``, a
    newline, NUL): the key literal is read quote by quote, never by pattern over the path.
    ``Orders(DocEntry=22)`` names the key property and is read the same way.
    """
    m = _NAME.match(path)
    if m is None:
        return None
    name, pos = m.group(), m.end()
    key: Any = None
    if pos < len(path) and path[pos] == "(":
        key, pos = _read_key(path, pos + 1)
    if pos == len(path):
        return name, key, None
    if path[pos] != "/":
        return None
    return name, key, path[pos + 1 :]


def _read_key(path: str, pos: int) -> tuple[Any, int]:
    """The key literal starting at ``pos`` (after the opening parenthesis) and the position after
    the closing one."""
    named = _KEY_NAME.match(path, pos)
    if named is not None:
        pos = named.end()
    while pos < len(path) and path[pos] == " ":
        pos += 1
    if path.startswith("'", pos):
        chars = []
        i = pos + 1
        while True:
            end = path.find("'", i)
            if end < 0:
                raise QueryError(f"Invalid key {path[pos - 1 :]!r}: unterminated string")
            chars.append(path[i:end])
            if path.startswith("'", end + 1):
                chars.append("'")
                i = end + 2
                continue
            i = end + 1
            break
        while i < len(path) and path[i] == " ":
            i += 1
        if not path.startswith(")", i):
            raise QueryError(f"Invalid key {path[pos - 1 :]!r}: ')' expected after the string")
        return "".join(chars), i + 1
    number = _NUMBER_KEY.match(path, pos)
    if number is None:
        raise QueryError(f"Invalid key {path[pos - 1 :]!r}")
    return int(number.group(1)), number.end()


def key_literal(key: Any) -> str:
    """A key as it appears in a URL: ``22`` or ``'O''Brien'``."""
    if isinstance(key, int):
        return str(key)
    return "'" + str(key).replace("'", "''") + "'"
