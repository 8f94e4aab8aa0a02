from __future__ import annotations

import datetime as dt

from airflow_provider_b1.sandbox.sap.data import (
    DOCUMENT_ENTITIES,
    SALES_DOCUMENTS,
    Dataset,
    generate,
    truth,
)


def _lines(ent, row):
    return ent.serialize(row, False, ["DocumentLines"])["DocumentLines"]


def test_same_seed_same_data(dataset: Dataset):
    again = generate(7, 1500, dt.date(2025, 6, 1))
    for name, ent in dataset.entities.items():
        assert truth(ent) == truth(again.entities[name])
    inv, inv2 = dataset.entities["Invoices"], again.entities["Invoices"]
    assert inv.serialize(inv.rows[17], True) == inv2.serialize(inv2.rows[17], True)


def test_other_seed_other_data(dataset: Dataset):
    other = generate(8, 1500, dt.date(2025, 6, 1))
    a = dataset.entities["Invoices"].serialize(dataset.entities["Invoices"].rows[1], False)
    b = other.entities["Invoices"].serialize(other.entities["Invoices"].rows[1], False)
    assert a != b


def test_volumes_and_width(dataset: Dataset):
    ents = dataset.entities
    assert len(ents["Invoices"].rows) == 1500
    for name in (
        "BusinessPartners",
        "Items",
        "Orders",
        "PurchaseOrders",
        "PurchaseInvoices",
        "DeliveryNotes",
        "IncomingPayments",
        "VendorPayments",
        "JournalEntries",
        "ChartOfAccounts",
        "ProfitCenters",
        "Dimensions",
    ):
        assert ents[name].rows, name
    doc = ents["Invoices"].serialize(ents["Invoices"].rows[1], True)
    assert len(doc) > 150
    assert sum(1 for k in doc if k.startswith("U_")) >= 15
    assert len(doc["DocumentLines"][0]) >= 60
    item = ents["Items"].serialize(next(iter(ents["Items"].rows.values())), True)
    assert len(item) >= 250
    assert item["ItemPrices"]
    assert item["ItemWarehouseInfoCollection"]


def test_documents_are_consistent(dataset: Dataset):
    ents = dataset.entities
    partners = ents["BusinessPartners"].rows
    items = ents["Items"].rows
    accounts = ents["ChartOfAccounts"].rows
    centres = ents["ProfitCenters"].rows
    currencies, cancelled = set(), 0
    for name in DOCUMENT_ENTITIES:
        ent = ents[name]
        wanted = "cCustomer" if name in SALES_DOCUMENTS else "cSupplier"
        for row in list(ent.rows.values())[:300]:
            doc = ent.serialize(row, False)
            assert partners[doc["CardCode"]][2] == wanted
            assert doc["CardName"] == partners[doc["CardCode"]][1]
            currencies.add(doc["DocCurrency"])
            cancelled += doc["Cancelled"] == "tYES"
            lines = doc["DocumentLines"]
            assert 1 <= len(lines) <= 7
            assert round(sum(line["LineTotal"] for line in lines) + doc["VatSum"], 2) == round(
                doc["DocTotal"], 2
            )
            assert round(sum(line["TaxTotal"] for line in lines), 2) == round(doc["VatSum"], 2)
            for line in lines:
                assert line["ItemCode"] in items
                acct = accounts[line["AccountCode"]]
                assert acct[5] == "tYES"  # postable
                want_type = "at_Revenues" if name in SALES_DOCUMENTS else "at_Expenses"
                assert acct[7] == want_type
                for dim, prop in ((1, "CostingCode"), (2, "CostingCode2"), (3, "CostingCode3")):
                    assert centres[line[prop]][2] == dim
            assert doc["DocDate"] <= doc["UpdateDate"] < dataset.anchor.isoformat()
    assert len(currencies) >= 3
    assert cancelled > 0


def test_payments_apply_to_invoices_of_the_same_partner(dataset: Dataset):
    ents = dataset.entities
    for name, source in (("IncomingPayments", "Invoices"), ("VendorPayments", "PurchaseInvoices")):
        ent, src = ents[name], ents[source]
        assert ent.rows
        for row in ent.rows.values():
            pay = ent.serialize(row, False)
            assert pay["PaymentInvoices"]
            for applied in pay["PaymentInvoices"]:
                inv = src.rows[applied["DocEntry"]]
                assert inv[5] == pay["CardCode"]
                assert applied["SumApplied"] == inv[7]


def test_journal_entries_balance(dataset: Dataset):
    ent = dataset.entities["JournalEntries"]
    postable = dataset.tables.postable
    for row in ent.rows.values():
        je = ent.serialize(row, True)
        assert "UpdateTime" not in je
        assert je["UpdateDate"].endswith("T00:00:00Z")
        lines = je["JournalEntryLines"]
        assert round(sum(x["Debit"] for x in lines), 2) == round(sum(x["Credit"] for x in lines), 2)
        assert all(x["AccountCode"] in postable for x in lines)


def test_names_with_apostrophes_and_accents(dataset: Dataset):
    names = [row[1] for row in dataset.entities["BusinessPartners"].rows.values()]
    assert any("'" in n for n in names)
    assert any(not n.isascii() for n in names)


def test_chart_of_accounts_is_a_hierarchy(dataset: Dataset):
    coa = dataset.entities["ChartOfAccounts"].rows
    for row in coa.values():
        if row[4] is not None:
            assert row[4] in coa
            assert coa[row[4]][5] == "tNO"  # parents are titles
            assert coa[row[4]][6] == row[6] - 1


def test_v1_and_v2_date_shapes(dataset: Dataset):
    ent = dataset.entities["Invoices"]
    row = ent.rows[3]
    v1 = ent.serialize(row, False, ["DocDate", "UpdateTime"])
    v2 = ent.serialize(row, True, ["DocDate", "UpdateTime"])
    assert len(v1["DocDate"]) == 10
    assert v2["DocDate"] == v1["DocDate"] + "T00:00:00Z"
    assert v2["@odata.etag"].startswith('W/"')
    assert len(v1["UpdateTime"]) == 8
