"""The Salesforce mapping: checked when the DAG is parsed, every problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_b1.salesforce.mapping import SalesforceMappingError, load_mapping, parse_mapping
from airflow_provider_b1.salesforce.values import failures, salesforce_form, sap_form

DAG_MAPPING = Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml"


def test_the_example_mapping_parses_and_names_every_salesforce_field_it_uses():
    mapping = load_mapping(DAG_MAPPING)
    fields = mapping.salesforce_fields()
    assert {"AccountNumber", "Name", "Phone", "SAP_Open_Balance__c"} <= set(fields["Account"])
    assert {"SAP_Order_Number__c", "SAP_Payment_Status__c"} <= set(fields["Opportunity"])
    assert [f.owner for f in mapping.fields if f.salesforce == "Phone"] == ["sap"]


def test_every_problem_is_named_before_any_run():
    with pytest.raises(SalesforceMappingError) as caught:
        parse_mapping(
            {
                "accounts": {
                    "fields": {"Name": {"sap": "CardNam"}, "Phone": {"sap": "Phone1", "owner": "both"}},
                    "colour": "red",
                },
                "orders": {"id_field": "DocNum", "due_days": -1},
                "balances": {"account": {"open_balance": "Not a field!"}},
            },
            where="mapping file m.yaml",
        )
    message = str(caught.value)
    assert message.startswith("mapping file m.yaml: ")
    for expected in (
        "accounts.colour",
        "no field 'CardNam'",
        "owner must be salesforce or sap, not 'both'",
        "maps nothing to CardName",
        "orders.id_field must be NumAtCard or a U_ field, not 'DocNum'",
        "orders.due_days",
        "balances.account.open_balance: 'Not a field!'",
    ):
        assert expected in message


def test_a_card_code_pattern_that_cannot_fit_fifteen_characters_fails_at_parse_time():
    with pytest.raises(SalesforceMappingError, match="1 to 15 characters"):
        parse_mapping({"accounts": {"card_code": "SALESFORCE-{id}"}})


def test_new_partners_get_the_same_code_for_the_same_account_every_time():
    mapping = parse_mapping({})
    first = mapping.card_code_for("001000000000001AAA")
    assert first == mapping.card_code_for("001000000000001")  # 15 or 18 characters: one account
    assert first != mapping.card_code_for("001000000000002AAA")
    assert first.startswith("SF")
    assert len(first) == 10


def test_the_org_is_checked_against_what_the_mapping_needs():
    mapping = load_mapping(DAG_MAPPING)
    described = {
        "Account": {
            name: {"type": "string"}
            for name in (
                "AccountNumber",
                "Name",
                "Website",
                "BillingStreet",
                "BillingCity",
                "BillingPostalCode",
            )
        }
        | {"Phone": {"type": "phone"}, "SAP_Open_Balance__c": {"type": "string"}},
    }
    problems = mapping.check_against(described)
    assert "the org has no Opportunity object" in problems
    assert "Account.SAP_Open_Balance__c is a string field; the mapping puts number in it" in problems
    assert "Account.SAP_Credit_Limit__c does not exist in the org" in problems


def test_values_compare_in_salesforce_form_and_fail_when_sap_cannot_hold_them():
    mapping = load_mapping(DAG_MAPPING)
    name = next(f for f in mapping.fields if f.sap == "CardName")
    assert salesforce_form(name, "  Acme  ") == "Acme"
    assert sap_form(name, None) == ""
    with pytest.raises(ValueError, match="Name is 101 characters long; SAP's CardName takes at most 100"):
        sap_form(name, "x" * 101)


def test_salesforce_refusals_are_read_per_record():
    results = [
        {"id": "001A", "success": True, "errors": []},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "X",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required",
                    "fields": ["Name"],
                }
            ],
        },
    ]
    assert failures(results) == {1: "REQUIRED_FIELD_MISSING: Required (Name)"}


INVOICES = {
    "object": "SAP_Invoice__c",
    "external_id": "SAP_Doc_Entry__c",
    "account": "Account__c",
    "opportunity": "Opportunity__c",
    "fields": {
        "DocNum": "Name",
        "DocTotal": "Total__c",
        "DocumentStatus": "Status__c",
        "U_Region": "Region__c",
    },
}


def test_the_invoices_section_is_optional_and_parsed_into_the_fields_it_reads_and_writes():
    assert load_mapping(DAG_MAPPING).invoices is None
    invoices = parse_mapping({"invoices": INVOICES}).invoices
    assert invoices is not None
    assert (invoices.sobject, invoices.external_id, invoices.account, invoices.opportunity) == (
        "SAP_Invoice__c",
        "SAP_Doc_Entry__c",
        "Account__c",
        "Opportunity__c",
    )
    # DocumentStatus is shown as Cancelled for a cancelled invoice: Cancelled is read with it.
    assert invoices.sap_fields() == [
        "DocEntry",
        "CardCode",
        "DocNum",
        "DocTotal",
        "DocumentStatus",
        "U_Region",
        "Cancelled",
    ]
    assert parse_mapping({"invoices": INVOICES}).salesforce_fields()["SAP_Invoice__c"] == {
        "SAP_Doc_Entry__c": "external_id",
        "Account__c": "reference:Account",
        "Opportunity__c": "reference:Opportunity",
        "Name": "text",
        "Total__c": "number",
        "Status__c": "text",
        "Region__c": "text",
    }
    without = parse_mapping({"invoices": {**INVOICES, "opportunity": None}}).invoices
    assert without is not None
    assert without.opportunity is None


def test_every_problem_of_the_invoices_section_is_named_at_parse_time():
    with pytest.raises(SalesforceMappingError) as caught:
        parse_mapping(
            {
                "invoices": {
                    "object": "Invoice Object",
                    "account": "Account__c",
                    "fields": {"DocTotal": "Total__c", "GrossProfit": "Profit__c", "DocNum": "Account__c"},
                    "colour": "red",
                }
            }
        )
    message = str(caught.value)
    for expected in (
        "invoices.colour",
        "invoices.object: 'Invoice Object' is not a Salesforce object name",
        "invoices.external_id is required (the Salesforce field)",
        "SAP invoices have no field 'GrossProfit'",
        "invoices.fields.DocNum: Account__c is already written by invoices.account",
    ):
        assert expected in message
    with pytest.raises(SalesforceMappingError, match="invoices must be a mapping"):
        parse_mapping({"invoices": ["SAP_Invoice__c"]})


def test_the_invoice_object_is_checked_against_the_org():
    mapping = parse_mapping({"invoices": INVOICES})
    fits = {
        "SAP_Doc_Entry__c": {"type": "string", "externalId": True},
        "Account__c": {"type": "reference", "referenceTo": ["Account"]},
        "Opportunity__c": {"type": "reference", "referenceTo": ["Opportunity"]},
        "Name": {"type": "string"},
        "Total__c": {"type": "currency"},
        "Status__c": {"type": "picklist"},
        "Region__c": {"type": "string"},
    }
    base = {"Account": {"AccountNumber": {"type": "string"}}, "Opportunity": {}}
    assert mapping.check_against({**base, "SAP_Invoice__c": fits}) == []
    missing = mapping.check_against(base)
    assert len(missing) == 1
    assert missing[0].startswith(
        "the org has no SAP_Invoice__c object (invoices.object: Salesforce's Invoice"
    )
    assert "Revenue Cloud" in missing[0]
    wrong = {
        **fits,
        "SAP_Doc_Entry__c": {"type": "string"},
        "Account__c": {"type": "reference", "referenceTo": ["Contact"]},
        "Total__c": {"type": "string"},
        "Status__c": {"type": "picklist", "createable": True, "updateable": False},
    }
    del wrong["Region__c"]
    assert mapping.check_against({**base, "SAP_Invoice__c": wrong}) == [
        "SAP_Invoice__c.SAP_Doc_Entry__c is not marked External ID; the invoices are upserted by it",
        "SAP_Invoice__c.Account__c is a reference field (to Contact); the mapping puts a reference to Account in it",
        "SAP_Invoice__c.Total__c is a string field; the mapping puts number in it",
        "SAP_Invoice__c.Status__c cannot be written by the API user (not createable or not updateable)",
        "SAP_Invoice__c.Region__c does not exist in the org",
    ]
