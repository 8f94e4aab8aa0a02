"""The project's LookML (``lookml/``) read with the ``lkml`` parser and turned into the SQL Looker
runs on PostgreSQL, so a test can run it against a real warehouse.

Only what the project's LookML uses is rendered, the way Looker does it: ``${TABLE}`` is the view's
alias in the query, ``${field}`` and ``${view.field}`` are the referenced field's SQL (a measure's
aggregate inside a ``type: number`` measure), a yesno dimension referenced or filtered on is its
condition, a time dimension group gives one field per timeframe, ``count`` counts distinct primary
keys, a derived table is its SQL in the FROM, and joins are LEFT JOINs in the order their ``sql_on``
needs. Anything else (another field type, timeframe, filter expression or join type) raises
:class:`LookMLError`, so a LookML change this module does not know fails the test instead of
going unchecked.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lkml

#: The schema the LookML names (``sap_b1``); a test maps it onto its own.
LOOKML_SCHEMA = "sap_b1"

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
_TO_ONE = ("many_to_one", "one_to_one")

# Looker's PostgreSQL SQL for each timeframe of a time dimension group.
_TIMEFRAMES = {
    "raw": "{sql}",
    "time": "TO_CHAR({sql}, 'YYYY-MM-DD HH24:MI:SS')",
    "date": "DATE({sql})",
    "week": "TO_CHAR(DATE_TRUNC('week', {sql}), 'YYYY-MM-DD')",
    "month": "TO_CHAR(DATE_TRUNC('month', {sql}), 'YYYY-MM')",
    "quarter": "TO_CHAR(DATE_TRUNC('quarter', {sql}), 'YYYY-MM')",
    "year": "EXTRACT(YEAR FROM {sql})::integer",
}
_DIMENSION_TYPES = ("string", "number", "yesno")
_MEASURE_TYPES = ("count", "count_distinct", "sum", "average", "min", "max", "number")


class LookMLError(Exception):
    """The LookML is wrong, or uses something this renderer does not know."""


class OutOfContext(LookMLError):
    """A field refers to a view the query does not hold (checked where an explore joins it)."""


@dataclass
class Field:
    view: str
    name: str
    kind: str  # "dimension" or "measure"
    type: str
    sql: str | None
    primary_key: bool = False
    timeframe: str | None = None
    filters: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class View:
    name: str
    file: str
    sql_table_name: str | None
    derived_sql: str | None
    derived: dict[str, Any]
    fields: dict[str, Field]

    @property
    def primary_key(self) -> Field | None:
        keys = [f for f in self.fields.values() if f.primary_key]
        return keys[0] if keys else None


@dataclass
class Join:
    name: str
    view: str
    sql_on: str
    relationship: str
    type: str


@dataclass
class Explore:
    name: str
    alias: str
    view: str
    joins: list[Join]
    sql_always_where: str | None
    always_filter: list[tuple[str, str]]
    persist_with: str | None

    @property
    def aliases(self) -> dict[str, str]:
        """Every view of the explore by its alias in the query: the base, then each join."""
        return {self.alias: self.view, **{j.name: j.view for j in self.joins}}


@dataclass
class Model:
    path: Path
    includes: dict[str, list[Path]]
    views: dict[str, View]
    explores: dict[str, Explore]
    datagroups: dict[str, str]
    persist_with: str | None


def _filters(node: dict) -> list[tuple[str, str]]:
    """``filters: [field: "value", ...]`` as lkml parses it (``filters__all``)."""
    found: list[tuple[str, str]] = []
    for group in node.get("filters__all", []):
        for entry in group:
            found += list(entry.items())
    if "filters" in node:
        raise LookMLError(f"the old filters syntax is not rendered: {node['filters']!r}")
    return found


def _view(parsed: dict, file: str) -> View:
    name = parsed["name"]
    fields: dict[str, Field] = {}

    def add(f: Field) -> None:
        if f.name in fields:
            raise LookMLError(f"view {name} declares the field {f.name} twice")
        fields[f.name] = f

    for d in parsed.get("dimensions", []):
        add(
            Field(
                name,
                d["name"],
                "dimension",
                d.get("type", "string"),
                d.get("sql"),
                d.get("primary_key") == "yes",
            )
        )
    for g in parsed.get("dimension_groups", []):
        if g.get("type") != "time":
            raise LookMLError(f"{name}.{g['name']}: dimension group type {g.get('type')!r} is not rendered")
        for timeframe in g.get("timeframes", []):
            add(
                Field(
                    name, f"{g['name']}_{timeframe}", "dimension", "time", g.get("sql"), timeframe=timeframe
                )
            )
    for m in parsed.get("measures", []):
        add(Field(name, m["name"], "measure", m.get("type", "count"), m.get("sql"), filters=_filters(m)))
    derived = parsed.get("derived_table", {})
    return View(name, file, parsed.get("sql_table_name"), derived.get("sql"), derived, fields)


def load_model(path: Path) -> Model:
    """The model file and the views its ``include`` globs bring in (``/`` is the project's root,
    the model's folder here); an include matching no file is an error, as in Looker."""
    model = lkml.load(path.read_text())
    root = path.parent  # the LookML project's root: the model's folder, so relative includes start there too
    includes: dict[str, list[Path]] = {}
    views: dict[str, View] = {}
    for pattern in model.get("includes", []):
        matched = sorted(root.glob(pattern.lstrip("/")))
        if not matched:
            raise LookMLError(f"include {pattern!r} matches no file")
        includes[pattern] = matched
        for file in matched:
            for parsed in lkml.load(file.read_text()).get("views", []):
                if parsed["name"] in views:
                    raise LookMLError(f"view {parsed['name']} is declared twice")
                views[parsed["name"]] = _view(parsed, file.name)
    explores: dict[str, Explore] = {}
    for e in model.get("explores", []):
        view = e.get("from") or e.get("view_name") or e["name"]
        joins = [
            Join(
                j["name"],
                j.get("from", j["name"]),
                j.get("sql_on", ""),
                j.get("relationship", "many_to_one"),
                j.get("type", "left_outer"),
            )
            for j in e.get("joins", [])
        ]
        always = _filters(e["always_filter"]) if "always_filter" in e else []
        explores[e["name"]] = Explore(
            e["name"],
            e.get("view_name") or e["name"],
            view,
            joins,
            e.get("sql_always_where"),
            always,
            e.get("persist_with"),
        )
    datagroups = {d["name"]: d.get("sql_trigger", "") for d in model.get("datagroups", [])}
    return Model(path, includes, views, explores, datagroups, model.get("persist_with"))


def without_company(model: Model, explore: str, join: str) -> Model:
    """A copy of ``model`` whose ``join`` in ``explore`` no longer matches on the company: the
    mistake the fan-out check is there to catch."""
    changed = copy.deepcopy(model)
    target = next(j for j in changed.explores[explore].joins if j.name == join)
    company = r"\$\{\w+\.company\}\s*=\s*\$\{\w+\.company\}"
    sql_on = re.sub(rf"{company}\s+AND\s+|\s+AND\s+{company}", "", target.sql_on)
    if sql_on == target.sql_on:  # the company is all it matches on
        sql_on = re.sub(company, "TRUE", sql_on)
    if sql_on == target.sql_on:
        raise LookMLError(f"{explore}.{join} does not match on the company: {target.sql_on}")
    target.sql_on = sql_on
    return changed


class Renderer:
    """The SQL of fields in one query's context: ``aliases`` maps each alias to its view."""

    def __init__(self, model: Model, aliases: dict[str, str], schema: str = LOOKML_SCHEMA) -> None:
        self.model = model
        self.aliases = aliases
        self.schema = schema

    def qualify(self, sql: str) -> str:
        """The LookML's ``sap_b1.`` tables in the schema the test loaded."""
        return re.sub(rf"\b{LOOKML_SCHEMA}\.", f"{self.schema}.", sql)

    def view(self, alias: str) -> View:
        if alias not in self.aliases:
            raise OutOfContext(f"unknown view {alias!r} here (in: {', '.join(self.aliases)})")
        name = self.aliases[alias]
        if name not in self.model.views:
            raise LookMLError(f"view {name!r} (as {alias}) is not included")
        return self.model.views[name]

    def table(self, alias: str) -> str:
        """``<table> AS alias`` for the FROM: the table, or the derived table's SQL."""
        view = self.view(alias)
        if view.derived_sql is not None:
            return f"({self.qualify(view.derived_sql)}) AS {alias}"
        if not view.sql_table_name:
            raise LookMLError(f"view {view.name} has neither sql_table_name nor derived_table")
        return f"{self.qualify(view.sql_table_name)} AS {alias}"

    def field(self, alias: str, name: str) -> Field:
        view = self.view(alias)
        if name not in view.fields:
            raise LookMLError(f"unknown field {alias}.{name} (view {view.name})")
        return view.fields[name]

    def _expand(self, alias: str, sql: str, within: str, seen: tuple[str, ...]) -> str:
        def replace(match: re.Match) -> str:
            first, second = match.groups()
            if second is None:
                if first == "TABLE":
                    return alias
                target_alias, name = alias, first
            else:
                if second == "SQL_TABLE_NAME":
                    return self.table(first).rsplit(" AS ", 1)[0]
                target_alias, name = first, second
            target = self.field(target_alias, name)
            if within == "dimension" and target.kind == "measure":
                raise LookMLError(f"dimension SQL refers to the measure {target_alias}.{name}")
            return f"({self.condition(target_alias, name, seen) if target.kind == 'dimension' else self.measure(target_alias, name, seen)})"

        return self.qualify(_REFERENCE.sub(replace, sql))

    def condition(self, alias: str, name: str, seen: tuple[str, ...] = ()) -> str:
        """A dimension's SQL as other SQL sees it (a yesno dimension's is its condition)."""
        key = f"{alias}.{name}"
        if key in seen:
            raise LookMLError(f"circular reference: {' -> '.join((*seen, key))}")
        f = self.field(alias, name)
        if f.kind != "dimension":
            raise LookMLError(f"{key} is not a dimension")
        if f.type not in (*_DIMENSION_TYPES, "time"):
            raise LookMLError(f"{key}: dimension type {f.type!r} is not rendered")
        sql = f.sql if f.sql is not None else f"${{TABLE}}.{name}"
        sql = self._expand(alias, sql, "dimension", (*seen, key))
        if f.timeframe is not None:
            if f.timeframe not in _TIMEFRAMES:
                raise LookMLError(f"{key}: timeframe {f.timeframe!r} is not rendered")
            sql = _TIMEFRAMES[f.timeframe].format(sql=f"({sql})")
        return sql

    def dimension(self, alias: str, name: str) -> str:
        """A dimension as Looker selects it."""
        sql = self.condition(alias, name)
        if self.field(alias, name).type == "yesno":
            return f"CASE WHEN {sql} THEN 'Yes' ELSE 'No' END"
        return sql

    def filter(self, alias: str, name: str, value: str) -> str:
        """A filter's condition: yes/no on a yesno dimension, else one value (or ``-value``)."""
        f = self.field(alias, name)
        sql = self.condition(alias, name)
        if f.type == "yesno":
            if value.lower() not in ("yes", "no"):
                raise LookMLError(f"yesno filter {alias}.{name}: {value!r}")
            held = f"COALESCE(({sql}), FALSE)"
            return held if value.lower() == "yes" else f"NOT {held}"
        if re.search(r"[,%<>\[\]]|^(NULL|-NULL|EMPTY)$", value):
            raise LookMLError(f"filter expression {value!r} on {alias}.{name} is not rendered")
        if value.startswith("-"):
            return f"({sql}) <> '{value[1:]}'"
        return f"({sql}) = '{value}'"

    def measure(self, alias: str, name: str, seen: tuple[str, ...] = ()) -> str:
        """A measure's aggregate."""
        key = f"{alias}.{name}"
        if key in seen:
            raise LookMLError(f"circular reference: {' -> '.join((*seen, key))}")
        f = self.field(alias, name)
        if f.kind != "measure":
            raise LookMLError(f"{key} is not a measure")
        if f.type not in _MEASURE_TYPES:
            raise LookMLError(f"{key}: measure type {f.type!r} is not rendered")
        seen = (*seen, key)
        if f.type == "number":
            if f.filters:
                raise LookMLError(f"{key}: a type: number measure takes no filters")
            return self._expand(alias, f.sql or "NULL", "measure", seen)
        if f.type == "count":
            pk = self.view(alias).primary_key
            value = self.condition(alias, pk.name, seen) if pk else "1"
        else:
            if f.sql is None:
                raise LookMLError(f"{key}: type {f.type} needs sql")
            value = self._expand(alias, f.sql, "dimension", seen)
        if f.filters:
            conditions = " AND ".join(self.filter(*self._filter_field(alias, n), v) for n, v in f.filters)
            value = f"CASE WHEN {conditions} THEN {value} ELSE NULL END"
        if f.type == "count":
            return f"COUNT(DISTINCT {value})" if self.view(alias).primary_key else f"COUNT({value})"
        if f.type == "count_distinct":
            return f"COUNT(DISTINCT {value})"
        if f.type == "sum":
            return f"COALESCE(SUM({value}), 0)"
        return {"average": "AVG", "min": "MIN", "max": "MAX"}[f.type] + f"({value})"

    def _filter_field(self, alias: str, name: str) -> tuple[str, str]:
        return tuple(name.split(".", 1)) if "." in name else (alias, name)  # type: ignore[return-value]


def explore_from(
    model: Model, explore: Explore, joins: list[str] | None = None, schema: str = LOOKML_SCHEMA
) -> str:
    """The FROM clause of ``explore`` with ``joins`` (all when ``None``, plus those their
    ``sql_on`` needs), in the order Looker writes them: each after the joins it refers to."""
    renderer = Renderer(model, explore.aliases, schema)
    by_name = {j.name: j for j in explore.joins}
    wanted = list(by_name) if joins is None else list(joins)
    ordered: list[Join] = []

    def place(name: str, path: tuple[str, ...]) -> None:
        if name == explore.alias or any(j.name == name for j in ordered):
            return
        if name not in by_name:
            raise LookMLError(f"explore {explore.name}: no view {name!r}")
        if name in path:
            raise LookMLError(
                f"explore {explore.name}: joins refer to each other: {' -> '.join((*path, name))}"
            )
        for first, second in _REFERENCE.findall(by_name[name].sql_on):
            if second and first != name:
                place(first, (*path, name))
        ordered.append(by_name[name])

    for name in wanted:
        place(name, ())
    parts = [f"FROM {renderer.table(explore.alias)}"]
    for join in ordered:
        kind = {"left_outer": "LEFT JOIN", "inner": "INNER JOIN"}.get(join.type)
        if kind is None:
            raise LookMLError(f"{explore.name}.{join.name}: join type {join.type!r} is not rendered")
        if not join.sql_on.strip():
            raise LookMLError(f"{explore.name}.{join.name}: no sql_on")
        on = renderer._expand(explore.alias, join.sql_on, "dimension", ())
        parts.append(f"{kind} {renderer.table(join.name)} ON {on}")
    return "\n".join(parts)


def explore_where(model: Model, explore: Explore, schema: str = LOOKML_SCHEMA) -> str | None:
    """The explore's ``sql_always_where`` and ``always_filter`` defaults, as one condition."""
    renderer = Renderer(model, explore.aliases, schema)
    conditions = []
    if explore.sql_always_where:
        conditions.append(f"({renderer._expand(explore.alias, explore.sql_always_where, 'dimension', ())})")
    for name, value in explore.always_filter:
        alias, field_name = renderer._filter_field(explore.alias, name)
        conditions.append(renderer.filter(alias, field_name, value))
    return " AND ".join(conditions) or None


def fan_outs(model: Model, explore: Explore, run_count, schema: str = LOOKML_SCHEMA) -> list[str]:
    """Each many_to_one / one_to_one join (with the joins it needs) that changes the explore's row
    count, and the explore with all its joins: Looker's sums would count rows twice.
    ``run_count(sql)`` returns ``SELECT count(*) ...``'s answer."""
    base = run_count(f"SELECT count(*) {explore_from(model, explore, [], schema)}")
    problems = []
    to_one = [j.name for j in explore.joins if j.relationship in _TO_ONE]
    for name in to_one:
        rows = run_count(f"SELECT count(*) {explore_from(model, explore, [name], schema)}")
        if rows != base:
            problems.append(f"{explore.name}: joining {name} makes {rows} rows of {base}")
    if len(to_one) == len(explore.joins):
        rows = run_count(f"SELECT count(*) {explore_from(model, explore, None, schema)}")
        if rows != base:
            problems.append(f"{explore.name}: all joins make {rows} rows of {base}")
    return problems
