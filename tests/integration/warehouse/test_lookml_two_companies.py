"""The LookML in ``lookml/`` run against a real PostgreSQL warehouse holding two SAP companies
whose keys collide (the same partners, items, accounts, profit centres, documents and journal
entries in both), loaded by the warehouse loader into a schema of its own (the LookML's
``sap_b1.`` tables are read there).

Parsed with ``lkml`` and rendered as Looker renders it (``lookml_sql``): the model's includes
resolve to every view file and every explore names included views; every view has a company
dimension, a primary key with the company in it, and every join matches on the company; every
view's table and every dimension's and measure's SQL runs, in the view alone and in each explore
that holds it (with its sql_always_where and always_filter); the datagroups' triggers run; no
many_to_one join changes an explore's row count. A join that forgot the company would match each
row twice here: every join's company condition is taken out in turn to show that the check
catches it. Every primary key is unique with both companies loaded, and the sales explore's
revenue and document count are each company's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from lookml_sql import (
    LookMLError,
    Model,
    OutOfContext,
    Renderer,
    explore_from,
    explore_where,
    fan_outs,
    load_model,
    without_company,
)
from wh_records import invoice, partner, postgres_connection

from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.loader import PostgresLoader
from airflow_provider_b1.warehouse.schema import DEFAULT_COMPANY

MODEL = Path(__file__).resolve().parents[3] / "lookml" / "b1_warehouse.model.lkml"
EU = "sap_b1_eu"
COMPANY_DBS = {DEFAULT_COMPANY: "SBODEMOUS", EU: "SBODEMOEU"}
CENTRES = {f"PC{n}": n for n in range(1, 6)}  # one profit centre in each of the five dimensions


def _document(doc_entry: int, *, lines: int, account: str, **overrides) -> dict:
    """A document whose lines carry a profit centre in every dimension and a known account."""
    record = invoice(doc_entry, lines=lines, card_code=f"C{doc_entry % 2 + 1}", wide=False, **overrides)
    for line in record["DocumentLines"]:
        line |= {"AccountCode": account, "CostingCode": "PC1"}
        line |= {f"CostingCode{n}": f"PC{n}" for n in range(2, 6)}
    return record


def _company_records(company: str) -> dict[str, list[dict]]:
    """One company's records: the same keys in both companies, other amounts and line counts."""
    eu = company == EU
    lines = 3 if eu else 2
    accounts = [
        ("4", None, 1, "at_Revenues"),
        ("410000", "4", 2, "at_Revenues"),
        ("5", None, 1, "at_Expenses"),
        ("510000", "5", 2, "at_Expenses"),
    ]
    return {
        "BusinessPartners": [partner(code) for code in ("C1", "C2")],
        "Items": [
            {"ItemCode": f"I{n:05d}", "ItemName": f"Item {n} of {company}", "InventoryItem": "tYES"}
            for n in range(8)
        ],
        "ChartOfAccounts": [
            {
                "Code": code,
                "Name": f"Account {code}",
                "FatherAccountKey": father,
                "AccountLevel": level,
                "AccountType": kind,
                "ActiveAccount": "tYES" if level == 2 else "tNO",
            }
            for code, father, level, kind in accounts
        ],
        "Dimensions": [
            {"DimensionCode": n, "DimensionName": f"Dimension {n}", "IsActive": "tYES"} for n in range(1, 6)
        ],
        "ProfitCenters": [
            {
                "CenterCode": code,
                "CenterName": f"Centre {code}",
                "InWhichDimension": n,
                "Active": "tYES",
                "EffectiveFrom": "2024-01-01",
            }
            for code, n in CENTRES.items()
        ],
        # the second company's invoice 3 is cancelled: the explore's sql_always_where leaves it out
        "Invoices": [
            _document(n, lines=lines, account="410000", **({"Cancelled": "tYES"} if eu and n == 3 else {}))
            for n in (1, 2, 3)
        ],
        "PurchaseInvoices": [_document(n, lines=lines, account="510000") for n in (1, 2)],
        "PurchaseOrders": [_document(n, lines=lines, account="510000") for n in (1, 2)],
        "JournalEntries": [
            {
                "JdtNum": n,
                "ReferenceDate": f"2024-0{n}-15",
                "UpdateDate": f"2024-0{n}-15",
                "JournalEntryLines": [
                    {
                        "Line_ID": 0,
                        "AccountCode": "410000",
                        "Debit": 0,
                        "Credit": 100 * n + eu,
                        "CostingCode": "PC1",
                        "CostingCode2": "PC2",
                    },
                    {
                        "Line_ID": 1,
                        "AccountCode": "510000",
                        "Debit": 100 * n + eu,
                        "Credit": 0,
                        "CostingCode": "PC1",
                        "CostingCode2": "PC2",
                    },
                ],
            }
            for n in (1, 2)
        ],
        "IncomingPayments": [
            {
                "DocEntry": n,
                "DocNum": n,
                "DocDate": "2024-02-01",
                "DocType": "rCustomer",
                "CardCode": "C1",
                "CashSum": 10 * n,
                "TransferSum": 5,
                "Cancelled": "tNO",
                "PaymentInvoices": [
                    {"LineNum": 0, "DocEntry": n, "InvoiceType": "it_Invoice", "SumApplied": 10}
                ],
            }
            for n in (1, 2)
        ],
    }


class Warehouse:
    """The loaded warehouse's schema and an autocommit connection: a failing query spoils nothing."""

    def __init__(self, pg_database: dict, schema: str) -> None:
        self.schema = schema
        self.conn = postgres_connection(pg_database)
        self.conn.autocommit = True
        self.conn.execute("SET statement_timeout = '10s'")

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.conn.execute(sql).fetchall()]

    def count(self, sql: str) -> int:
        return self.rows(sql)[0][0]

    def error(self, sql: str) -> str | None:
        """Why PostgreSQL refuses ``sql`` (None when it runs)."""
        try:
            self.conn.execute(sql).fetchall()
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        return None


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model(MODEL)


@pytest.fixture(scope="module")
def warehouse(pg_database) -> Iterator[Warehouse]:
    schema = f"lk_{secrets.token_hex(4)}"
    for company, company_db in COMPANY_DBS.items():
        loader = PostgresLoader(postgres_connection(pg_database), schema, company=company)
        try:
            loader.ensure_schema()
            for entity, records in _company_records(company).items():
                result = loader.load_page(ENTITIES[entity], records)
                assert result.count("created") == len(records), (company, entity, result.counts)
            loader.record_company(company_db)
        finally:
            loader.close()
    found = Warehouse(pg_database, schema)
    try:
        yield found
    finally:
        found.conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        found.conn.close()


def test_the_model_includes_its_views_and_every_explore_matches_on_the_company(model):
    views_dir = MODEL.parent / "views"
    assert {p.name for files in model.includes.values() for p in files} == {
        p.name for p in views_dir.glob("*.view.lkml")
    }
    assert set(model.views) == {p.name.removesuffix(".view.lkml") for p in views_dir.glob("*.view.lkml")}
    assert model.persist_with in model.datagroups
    for view in model.views.values():
        assert "company" in view.fields, view.name
        assert view.primary_key is not None, view.name
        assert "company" in (view.primary_key.sql or ""), view.name
        trigger = view.derived.get("datagroup_trigger")
        assert trigger is None or trigger in model.datagroups, view.name
    for explore in model.explores.values():
        assert explore.persist_with is None or explore.persist_with in model.datagroups
        for alias, view in explore.aliases.items():
            assert view in model.views, f"{explore.name}.{alias}: no view {view}"
        assert "dim_company" in explore.aliases.values(), explore.name
        for join in explore.joins:
            assert f"${{{join.name}.company}}" in join.sql_on, f"{explore.name}.{join.name}: {join.sql_on}"
            assert join.relationship in ("many_to_one", "one_to_one"), f"{explore.name}.{join.name}"


def test_the_warehouse_holds_both_companies_in_every_view(model, warehouse):
    for name in model.views:
        table = Renderer(model, {name: name}, warehouse.schema).table(name)
        rows = warehouse.rows(f"SELECT company, count(*) FROM {table} GROUP BY 1 ORDER BY 1")
        assert [company for company, _ in rows] == sorted(COMPANY_DBS), (name, rows)


def _field_problems(
    model: Model,
    aliases: dict[str, str],
    from_sql: str,
    where: str | None,
    error: Callable[[str], str | None],
    schema: str,
    checked: set[str],
    context: str,
) -> list[str]:
    """Run every field of every alias (in one query per alias and kind, field by field when it
    fails); fields referring to views not in ``aliases`` are left to the explores that join them."""
    renderer = Renderer(model, aliases, schema)
    tail = f"{from_sql}\nWHERE {where}" if where else from_sql
    problems: list[str] = []
    for alias, view_name in aliases.items():
        for kind in ("dimension", "measure"):
            columns: dict[str, str] = {}
            for f in model.views[view_name].fields.values():
                if f.kind != kind:
                    continue
                try:
                    sql = (
                        renderer.dimension(alias, f.name)
                        if kind == "dimension"
                        else renderer.measure(alias, f.name)
                    )
                except OutOfContext:
                    continue
                except LookMLError as exc:
                    problems.append(f"{context}: {alias}.{f.name}: {exc}")
                    continue
                columns[f"{view_name}.{f.name}"] = sql
            if not columns:
                continue
            listed = ",\n  ".join(f'{sql} AS "{label}"' for label, sql in columns.items())
            if error(f"SELECT\n  {listed}\n{tail}") is None:
                checked.update(columns)
                continue
            for label, sql in columns.items():
                why = error(f"SELECT {sql}\n{tail}")
                if why is None:
                    checked.add(label)
                else:
                    problems.append(f"{context}: {alias} ({label}): {why}\n    SELECT {sql}")
    return problems


def test_every_view_and_explore_runs_and_no_join_fans_out(model, warehouse):
    schema, checked, problems = warehouse.schema, set(), []
    for name, view in model.views.items():
        renderer = Renderer(model, {name: name}, schema)
        problems += _field_problems(
            model, {name: name}, f"FROM {renderer.table(name)}", None, warehouse.error, schema, checked, name
        )
        if view.derived.get("indexes"):  # a PDT's indexes name columns of its SQL
            why = warehouse.error(f"SELECT {', '.join(view.derived['indexes'])} FROM {renderer.table(name)}")
            assert why is None, f"{name}: indexes {view.derived['indexes']}: {why}"
    for name, explore in model.explores.items():
        from_sql = explore_from(model, explore, None, schema)
        where = explore_where(model, explore, schema)
        problems += _field_problems(
            model, explore.aliases, from_sql, where, warehouse.error, schema, checked, f"explore {name}"
        )
        problems += fan_outs(model, explore, warehouse.count, schema)
    for name, sql in model.datagroups.items():
        why = warehouse.error(Renderer(model, {}, schema).qualify(sql))
        if why:
            problems.append(f"datagroup {name}: {why}")
    assert problems == [], "\n".join(problems)
    every = {f"{v.name}.{f}" for v in model.views.values() for f in v.fields}
    assert every - checked == set(), "fields no view nor explore could run"

    # and the figures are each company's: revenue by company of the sales explore, cancelled left out
    explore = model.explores["sales_invoice_lines"]
    renderer = Renderer(model, explore.aliases, schema)
    by_company = warehouse.rows(
        f"SELECT {renderer.dimension('dim_company', 'company_db')}, "
        f"{renderer.measure('fact_sales_invoice_line', 'total_revenue')} "
        f"{explore_from(model, explore, None, schema)} WHERE {explore_where(model, explore, schema)} GROUP BY 1"
    )
    expected = {}
    for company, company_db in COMPANY_DBS.items():
        kept = [r for r in _company_records(company)["Invoices"] if r["Cancelled"] == "tNO"]
        expected[company_db] = sum(
            Decimal(str(line["LineTotal"])) for r in kept for line in r["DocumentLines"]
        )
    assert dict(by_company) == expected
    # across both companies, invoice 1 of one company is not invoice 1 of the other
    documents = renderer.measure("fact_sales_invoice_line", "document_count")
    invoices = sum(r["Cancelled"] == "tNO" for c in COMPANY_DBS for r in _company_records(c)["Invoices"])
    assert (
        warehouse.count(
            f"SELECT {documents} {explore_from(model, explore, None, schema)} "
            f"WHERE {explore_where(model, explore, schema)}"
        )
        == invoices
    )


def test_a_join_that_forgets_the_company_is_caught(model, warehouse):
    """Every join, its company condition taken out, doubles rows on this data: the fan-out check
    (and so the test above) catches a join that forgets the company, wherever it is."""
    missed = []
    for name, explore in model.explores.items():
        for join in explore.joins:
            broken = without_company(model, name, join.name)
            problems = fan_outs(broken, broken.explores[name], warehouse.count, warehouse.schema)
            if not any(f"joining {join.name} makes" in p for p in problems):
                missed.append(f"{name}.{join.name}")
    assert missed == []
    assert fan_outs(model, model.explores["sales_invoice_lines"], warehouse.count, warehouse.schema) == []


def test_every_primary_key_is_unique_with_two_companies(model, warehouse):
    for name, view in model.views.items():
        renderer = Renderer(model, {name: name}, warehouse.schema)
        pk = renderer.condition(name, view.primary_key.name)
        rows, distinct, missing = warehouse.rows(
            f"SELECT count(*), count(DISTINCT {pk}), count(*) FILTER (WHERE {pk} IS NULL) "
            f"FROM {renderer.table(name)}"
        )[0]
        assert (distinct, missing) == (rows, 0), f"{name}: {rows} rows, {distinct} keys, {missing} null"
        # the key without its company would collide: the data shares keys across companies
        if name != "dim_company":
            alone = pk.replace(f"{name}.company ||", "")
            assert warehouse.count(f"SELECT count(DISTINCT {alone}) FROM {renderer.table(name)}") < rows, name
