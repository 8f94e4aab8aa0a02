"""Issue 8: values typed as SAP's $metadata types them, and writes checked against the same types.

Over HTTPS to the running sandbox, as a third-party client would call it.
"""

from __future__ import annotations

import uuid

YES_NO = {"tYES", "tNO"}
PRINT_STATUS = {"psNo", "psYes", "psAmended"}
DOCUMENT_STATUS = {"bost_Open", "bost_Close", "bost_Paid", "bost_Delivered"}
DOCUMENTS = ("Orders", "Invoices", "DeliveryNotes", "PurchaseOrders", "PurchaseInvoices")

# SAP's $metadata (SAPB1 schema), written down independently of the sandbox's declarations:
# enumeration members and integer properties of what the sandbox serves.
ENUMS_BY_ENTITY: dict[str, dict[str, set[str]]] = {
    "Document": {
        "DocType": {"dDocument_Items", "dDocument_Service"},
        "Printed": PRINT_STATUS,
        "DocumentStatus": DOCUMENT_STATUS,
        "Cancelled": YES_NO,
        "HandWritten": YES_NO,
        "Confirmed": YES_NO,
        "PartialSupply": YES_NO,
        "CancelStatus": {"csYes", "csNo", "csCancellation"},
        "DocumentSubType": {
            "bod_None",
            "bod_InvoiceExempt",
            "bod_DebitMemo",
            "bod_Bill",
            "bod_ExemptBill",
            "bod_PurchaseDebitMemo",
            "bod_ExportInvoice",
            "bod_GSTTaxInvoice",
            "bod_GSTDebitMemo",
            "bod_RefundVoucher",
        },
        "AuthorizationStatus": {
            "dasWithout",
            "dasPending",
            "dasApproved",
            "dasRejected",
            "dasGenerated",
            "dasGeneratedbyAuthorizer",
            "dasCancelled",
        },
        "DocumentDelivery": {"ddtNoneSeleted", "ddtCreateOnlineDocument", "ddtPostToAribaNetwork"},
    },
    "DocumentLine": {
        "LineStatus": DOCUMENT_STATUS,
        "TaxType": {"tt_Yes", "tt_No", "tt_UseTax", "tt_OffsetTax"},
        "LineType": {"dlt_Regular", "dlt_Alternative"},
        "TaxLiable": YES_NO,
    },
    "BusinessPartner": {
        "CardType": {"cCustomer", "cSupplier", "cLid"},
        "Valid": YES_NO,
        "Frozen": YES_NO,
    },
    "BPAddress": {"AddressType": {"bo_ShipTo", "bo_BillTo"}},
    "Item": {
        "InventoryItem": YES_NO,
        "SalesItem": YES_NO,
        "PurchaseItem": YES_NO,
        "Valid": YES_NO,
        "Frozen": YES_NO,
        "ItemType": {"itItems", "itLabor", "itTravel", "itFixedAssets"},
    },
    "Payment": {
        "DocType": {"rCustomer", "rAccount", "rSupplier"},
        "Printed": YES_NO,  # BoYesNoEnum on payments, unlike documents
        "Cancelled": YES_NO,
        "LocalCurrency": YES_NO,
        "AuthorizationStatus": {
            "pasWithout",
            "pasPending",
            "pasApproved",
            "pasRejected",
            "pasGenerated",
            "pasGeneratedbyAuthorizer",
            "pasCancelled",
        },
    },
    "PaymentInvoice": {"InvoiceType": {"it_Invoice", "it_PurchaseInvoice"}},
    "JournalEntry": {"Printed": PRINT_STATUS, "AutoVAT": YES_NO, "OriginalJournal": {"ttJournalEntry"}},
    "ChartOfAccount": {
        "ActiveAccount": YES_NO,
        "FrozenFor": YES_NO,
        "CashAccount": YES_NO,
        "ExternalReconNo": set(),  # not an enumeration: an Edm.Int32
        "AccountType": {"at_Revenues", "at_Expenses", "at_Other"},
    },
    "ProfitCenter": {"Active": YES_NO},
    "Dimension": {"IsActive": YES_NO},
}
INTEGERS_BY_ENTITY: dict[str, set[str]] = {
    "Document": {"DocEntry", "DocNum", "Series", "PaymentGroupCode", "SalesPersonCode", "DataVersion"},
    "DocumentLine": {"LineNum", "DocEntry", "BaseType", "SalesPersonCode"},
    "BusinessPartner": {"GroupCode", "PayTermsGrpCode", "PriceListNum", "DataVersion"},
    "BPAddress": {"RowNum"},
    "Item": {"ItemsGroupCode", "Manufacturer", "UoMGroupEntry", "DataVersion"},
    "Payment": {"DocEntry", "DocNum", "Series"},
    "PaymentInvoice": {"LineNum", "DocEntry", "DocLine", "InstallmentId"},
    "JournalEntry": {"JdtNum", "Number", "Series"},
    "JournalEntryLine": {"Line_ID"},
    "ChartOfAccount": {"ExternalReconNo", "AccountLevel"},
    "ProfitCenter": {"InWhichDimension"},
    "Dimension": {"DimensionCode"},
}
ENTITY_TYPES = {
    **dict.fromkeys(DOCUMENTS, "Document"),
    "BusinessPartners": "BusinessPartner",
    "Items": "Item",
    "IncomingPayments": "Payment",
    "VendorPayments": "Payment",
    "JournalEntries": "JournalEntry",
    "ChartOfAccounts": "ChartOfAccount",
    "ProfitCenters": "ProfitCenter",
    "Dimensions": "Dimension",
}
CHILD_TYPES = {
    "DocumentLines": "DocumentLine",
    "BPAddresses": "BPAddress",
    "PaymentInvoices": "PaymentInvoice",
    "JournalEntryLines": "JournalEntryLine",
}


def _problems(type_name: str, record: dict, where: str) -> list[str]:
    out = []
    enums = ENUMS_BY_ENTITY.get(type_name, {})
    integers = INTEGERS_BY_ENTITY.get(type_name, set())
    for prop, value in record.items():
        if value is None:
            continue
        if prop in integers and (type(value) is not int):
            out.append(f"{where}.{prop}={value!r} is not an Edm.Int32")
        elif enums.get(prop) and value not in enums[prop]:
            out.append(f"{where}.{prop}={value!r} is not one of {sorted(enums[prop])}")
        elif prop in CHILD_TYPES and isinstance(value, list):
            for i, child in enumerate(value):
                out.extend(_problems(CHILD_TYPES[prop], child, f"{where}.{prop}[{i}]"))
    return out


def test_printed_is_a_typed_enumeration(sap_https_sessions, sap_control):
    base, v1, v2 = sap_https_sessions
    for entity in (*DOCUMENTS, "JournalEntries"):
        for session, version in ((v1, "v1"), (v2, "v2")):
            values = session.get(
                f"{base}/b1s/{version}/{entity}", params={"$select": "Printed", "$top": "20"}, timeout=30
            ).json()["value"]
            assert values
            assert {v["Printed"] for v in values} <= PRINT_STATUS, (entity, version)
    for entity in ("IncomingPayments", "VendorPayments"):
        values = v2.get(f"{base}/b1s/v2/{entity}?$select=Printed&$top=20", timeout=30).json()["value"]
        assert {v["Printed"] for v in values} <= YES_NO
    # Written as SAP takes it; a yes/no value is not a print status.
    assert v2.patch(f"{base}/b1s/v2/Orders(3)", json={"Printed": "psYes"}, timeout=10).status_code == 204
    assert v2.get(f"{base}/b1s/v2/Orders(3)?$select=Printed", timeout=10).json()["Printed"] == "psYes"
    r = v2.patch(f"{base}/b1s/v2/Orders(3)", json={"Printed": "tYES"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-1000"
    assert "Printed" in r.json()["error"]["message"]


def test_external_recon_no_is_an_integer(sap_https_sessions):
    base, v1, v2 = sap_https_sessions
    for session, version in ((v1, "v1"), (v2, "v2")):
        values = session.get(
            f"{base}/b1s/{version}/ChartOfAccounts",
            params={"$select": "Code,ExternalReconNo"},
            headers={"B1S-PageSize": "0"},
            timeout=30,
        ).json()["value"]
        assert len(values) > 100
        assert all(type(v["ExternalReconNo"]) is int for v in values), values[0]


def test_enumerations_and_integers_are_typed_on_every_entity(sap_https_sessions):
    base, v1, v2 = sap_https_sessions
    problems: list[str] = []
    for entity, type_name in ENTITY_TYPES.items():
        for session, version in ((v1, "v1"), (v2, "v2")):
            r = session.get(f"{base}/b1s/{version}/{entity}?$top=40", timeout=30)
            assert r.status_code == 200, r.text
            for record in r.json()["value"]:
                problems.extend(_problems(type_name, record, f"{version}/{entity}"))
    assert problems == [], problems[:20]


def test_writes_refuse_wrong_enumerations_and_types(sap_https_sessions, sap_control):
    base, v1, v2 = sap_https_sessions
    root = f"{base}/b1s/v2/"
    code = f"E{uuid.uuid4().hex[:8]}"
    cases = [
        ("POST", "BusinessPartners", {"CardCode": code, "CardType": "cCustomr"}, "CardType"),
        ("POST", "BusinessPartners", {"CardCode": code, "Valid": "Y"}, "Valid"),
        ("POST", "BusinessPartners", {"CardCode": code, "GroupCode": "100"}, "GroupCode"),
        ("PATCH", "ChartOfAccounts('111001')", {"ExternalReconNo": "7"}, "ExternalReconNo"),
        ("PATCH", "ChartOfAccounts('111001')", {"ExternalReconNo": 7.5}, "ExternalReconNo"),
        ("PATCH", "Orders(4)", {"DocumentStatus": "Open"}, "DocumentStatus"),
        ("PATCH", "Orders(4)", {"SalesPersonCode": "3"}, "SalesPersonCode"),
        ("PATCH", "Orders(4)", {"SalesPersonCode": True}, "SalesPersonCode"),
        ("PATCH", "Orders(4)", {"DocRate": "1.5"}, "DocRate"),
        ("PATCH", "Orders(4)", {"Comments": 12}, "Comments"),
        ("PATCH", "Orders(4)", {"DocumentLines": [{"LineNum": 0, "Quantity": "2"}]}, "Quantity"),
        ("PATCH", "Orders(4)", {"DocumentLines": [{"LineNum": 0, "LineStatus": "open"}]}, "LineStatus"),
        (
            "POST",
            "Orders",
            {"CardCode": "C00003", "DocType": "I", "DocumentLines": [{"ItemCode": "A00003"}]},
            "DocType",
        ),
    ]
    before = v2.get(root + "Orders(4)", timeout=10).json()
    for method, path, payload, prop in cases:
        r = v2.request(method, root + path, json=payload, timeout=10)
        assert r.status_code == 400, (path, payload, r.status_code, r.text)
        error = r.json()["error"]
        assert error["code"] == "-1000", (payload, error)
        assert prop in error["message"], (payload, error)
    after = v2.get(root + "Orders(4)", timeout=10).json()
    assert after["@odata.etag"] == before["@odata.etag"]  # nothing refused was half-written
    assert v2.get(root + f"BusinessPartners('{code}')", timeout=10).status_code == 404
    # v1 answers the same refusal in its own shape.
    r = v1.patch(f"{base}/b1s/v1/Orders(4)", json={"Cancelled": "yes"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -1000
    assert set(r.json()["error"]["message"]) == {"lang", "value"}
    # The right types are taken: integers for doubles, letters for CardType (names or letters in).
    r = v2.post(
        root + "BusinessPartners", json={"CardCode": code, "CardType": "S", "GroupCode": 101}, timeout=10
    )
    assert r.status_code == 201, r.text
    assert r.json()["CardType"] == "cSupplier"
    assert (
        v2.patch(root + "Orders(4)", json={"DocRate": 1, "SalesPersonCode": 3}, timeout=10).status_code == 204
    )
    r = v2.patch(root + "ChartOfAccounts('111001')", json={"ExternalReconNo": 7}, timeout=10)
    assert r.status_code == 204
    assert (
        v2.get(root + "ChartOfAccounts('111001')?$select=ExternalReconNo", timeout=10).json()[
            "ExternalReconNo"
        ]
        == 7
    )


def test_impossible_dates_and_times_are_refused_on_write(sap_https_sessions, sap_control):
    base, v1, v2 = sap_https_sessions
    root = f"{base}/b1s/v2/"
    order = {"CardCode": "C00003", "DocumentLines": [{"ItemCode": "A00003"}]}
    count = int(v2.get(root + "Orders/$count", timeout=10).text)
    for bad in (
        "2024-02-30",
        "2023-02-29",
        "2024-04-31",
        "2024-13-01",
        "2024-00-10",
        "20240230",
        "2024-02-30T00:00:00Z",
        "2024-05-01T25:00:00Z",
        "tomorrow",
    ):
        r = v2.post(root + "Orders", json={**order, "DocDate": bad}, timeout=10)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "-1000"
        assert "DocDate" in r.json()["error"]["message"]
    assert int(v2.get(root + "Orders/$count", timeout=10).text) == count
    r = v1.patch(f"{base}/b1s/v1/Orders(5)", json={"DocDueDate": "2025-02-29"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -1000
    r = v2.patch(
        root + "Orders(5)", json={"DocumentLines": [{"LineNum": 0, "ShipDate": "2024-06-31"}]}, timeout=10
    )
    assert r.status_code == 400
    for bad in ("24:00:00", "12:60", "12:30:61", "noon"):
        r = v2.patch(root + "Orders(5)", json={"StartDeliveryTime": bad}, timeout=10)
        assert r.status_code == 400, (bad, r.text)
        assert "StartDeliveryTime" in r.json()["error"]["message"]
    # Real days (a leap day included) and times are taken, in the forms SAP takes.
    r = v2.post(
        root + "Orders", json={**order, "DocDate": "2024-02-29", "DocDueDate": "20240331"}, timeout=10
    )
    assert r.status_code == 201, r.text
    assert (r.json()["DocDate"], r.json()["DocDueDate"]) == ("2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z")
    r = v2.patch(
        root + "Orders(5)",
        json={"StartDeliveryTime": "09:30:00", "DocDueDate": "2024-12-31T00:00:00Z"},
        timeout=10,
    )
    assert r.status_code == 204, r.text
