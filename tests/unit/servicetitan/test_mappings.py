"""A company's ServiceTitan -> SAP mapping is checked when it is read, naming what is wrong."""

from __future__ import annotations

import json

import pytest

from airflow_provider_b1.servicetitan.mappings import MappingError, load_mappings, parse_mappings


def test_a_mapping_file_in_yaml_or_json_is_read_with_its_defaults(tmp_path):
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text('gl_accounts:\n  "4000": "421001"\npayment_types:\n  Cash: {cash: "111001"}\n')
    json_file = tmp_path / "map.json"
    json_file.write_text(
        json.dumps({"gl_accounts": {"4000": "421001"}, "payment_types": {"Cash": {"cash": "111001"}}})
    )
    for path in (yaml_file, json_file):
        mappings = load_mappings(str(path))
        assert mappings.account_for({"number": "4000"}) == "421001"
        assert mappings.payment_account_for("Cash").kind == "cash"
        assert mappings.card_code_for(42) == "ST42"
        assert mappings.invoice_id_field == "NumAtCard"
        assert (mappings.changed_after_posting, mappings.credit_memo_lines) == ("fail", "base_document")
        assert not mappings.credit_and_repost


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"gl_acounts": {}}, "unknown keys gl_acounts"),
        ({"card_code": "ST"}, "must contain {id}"),
        ({"card_code": "SERVICETITAN-CUSTOMER-{id}"}, "SAP codes are 1 to 15 characters"),
        ({"invoice_id_field": "Comments"}, "must be NumAtCard or a user field"),
        ({"payment_types": {"Cash": {"bank": "1"}}}, "payment_types['Cash'] must be"),
        ({"gl_accounts": {"4000": ""}}, "gl_accounts must map names to non-empty SAP codes"),
        (
            {"changed_after_posting": "repost"},
            "changed_after_posting 'repost' must be one of fail, credit_and_repost",
        ),
        ({"credit_memo_lines": "based"}, "credit_memo_lines 'based' must be one of base_document, copy"),
    ],
)
def test_a_wrong_mapping_is_refused_naming_the_key(document, says):
    with pytest.raises(MappingError, match="the mapping") as refused:
        parse_mappings(document)
    assert says in str(refused.value)


def test_an_unmapped_account_business_unit_or_payment_type_is_named():
    mappings = parse_mappings({"gl_accounts": {"4000": "421001"}, "business_units": {"HVAC": "OPS"}})
    with pytest.raises(LookupError, match=r"GL account 4999 \(Rebates\) has no SAP account"):
        mappings.account_for({"number": "4999", "name": "Rebates"})
    with pytest.raises(LookupError, match="business unit Plumbing has no profit centre"):
        mappings.profit_centre_for({"id": 3, "name": "Plumbing"})
    assert mappings.profit_centre_for({"id": 3, "name": "HVAC"}) == "OPS"
    with pytest.raises(LookupError, match="payment type 'Bitcoin' has no account"):
        mappings.payment_account_for("Bitcoin")


def test_a_seed_csv_links_existing_partners(tmp_path):
    seed = tmp_path / "seed.csv"
    seed.write_text("customer_id,CardCode\n17,C20000\n18,C20001\n")
    assert dict(parse_mappings({"seed_csv": str(seed)}).seeded) == {"17": "C20000", "18": "C20001"}
    seed.write_text("17\n")
    with pytest.raises(MappingError, match="line 1 must be <customer id>,<CardCode>"):
        parse_mappings({"seed_csv": str(seed)})


def test_an_invoice_changed_after_posting_can_be_credited_and_posted_again():
    mappings = parse_mappings({"changed_after_posting": "credit_and_repost", "credit_memo_lines": "copy"})
    assert mappings.credit_and_repost
    assert mappings.credit_memo_lines == "copy"


SHARED = {
    "gl_accounts": {"4000": "421001", "4100": "411001"},
    "business_units": {"HVAC": "OPS"},
    "tax_code": "EX",
    "payment_types": {"Cash": {"cash": "111001"}},
}


def test_a_company_section_replaces_the_keys_it_names_wholesale_and_shares_the_rest():
    document = {
        **SHARED,
        "companies": {
            "sap_b1_eu": {"gl_accounts": {"4000": "422001"}, "tax_code": "B1"},
            "SBODEMOUK": {"business_units": {"HVAC": "UK-OPS"}},
        },
    }
    shared = parse_mappings(document)
    assert (shared.account_for({"number": "4100"}), shared.tax_code, shared.company) == ("411001", "EX", None)
    for names in ("sap_b1_eu", ("sap_b1_eu", "SBODEMOEU"), ("sap_b1_other", "sap_b1_eu")):
        eu = parse_mappings(document, company=names)
        assert (eu.account_for({"number": "4000"}), eu.tax_code, eu.company) == ("422001", "B1", "sap_b1_eu")
        # no fallback to the shared GL accounts: the company's chart has no 411001
        with pytest.raises(
            LookupError,
            match=r"GL account 4100 has no SAP account in the mapping's companies\.sap_b1_eu\.gl_accounts",
        ):
            eu.account_for({"number": "4100"})
        assert eu.profit_centre_for({"name": "HVAC"}) == "OPS"  # shared: not named by the company
        assert eu.payment_account_for("Cash").account == "111001"
    # by CompanyDB (the connection id names no section), and a company with no section: the shared
    uk = parse_mappings(document, company=("sap_b1_uk", "SBODEMOUK"))
    assert (uk.profit_centre_for({"name": "HVAC"}), uk.account_for({"number": "4100"})) == (
        "UK-OPS",
        "411001",
    )
    assert parse_mappings(document, company=("sap_b1_default", "SBODEMOUS")) == shared
    # the connection id's section wins over the CompanyDB's
    both = {**document, "companies": {"SBODEMOEU": {"tax_code": "DB"}, "sap_b1_eu": {"tax_code": "ID"}}}
    assert parse_mappings(both, company=("sap_b1_eu", "SBODEMOEU")).tax_code == "ID"


@pytest.mark.parametrize(
    ("companies", "says"),
    [
        ({"sap_b1_eu": {"gl_acounts": {}}}, "unknown keys companies.sap_b1_eu.gl_acounts"),
        ({"sap_b1_eu": {"companies": {}}}, "unknown keys companies.sap_b1_eu.companies"),
        ({"sap_b1_eu": {"gl_accounts": {"4000": ""}}}, "companies.sap_b1_eu.gl_accounts must map names"),
        ({"sap_b1_eu": {"card_code": "ST"}}, "companies.sap_b1_eu.card_code 'ST' must contain {id}"),
        (
            {"sap_b1_eu": {"card_code": "SERVICETITAN-CUSTOMER-{id}"}},
            "companies.sap_b1_eu.card_code 'SERVICETITAN-CUSTOMER-{id}' gives",
        ),
        (
            {"sap_b1_eu": {"payment_types": {"Cash": {"bank": "1"}}}},
            "companies.sap_b1_eu.payment_types['Cash']",
        ),
        (
            {"sap_b1_eu": {"credit_memo_lines": "x"}},
            "companies.sap_b1_eu.credit_memo_lines 'x' must be one of",
        ),
        ({"sap_b1_eu": {"seed_csv": "/nonexistent/seed.csv"}}, "companies.sap_b1_eu.seed_csv /nonexistent"),
        ({"sap_b1_eu": None}, "companies.sap_b1_eu must map mapping keys"),
        (["sap_b1_eu"], "companies must map SAP connection ids"),
    ],
)
def test_a_wrong_company_section_is_refused_naming_the_company_and_key(companies, says):
    from airflow_provider_b1.servicetitan.mappings import check_mappings

    with pytest.raises(MappingError, match="the mapping") as refused:
        check_mappings({**SHARED, "companies": companies})
    assert says in str(refused.value)


def test_section_names_are_checked_against_the_declared_companies_only_where_there_is_a_list(tmp_path):
    from airflow_provider_b1.servicetitan.mappings import check_mappings

    dbs = {"sap_b1_default": "SBODEMOUS", "sap_b1_eu": "SBODEMOEU"}.get
    mapping_file = tmp_path / "map.yaml"
    mapping_file.write_text('gl_accounts: {"4000": "421001"}\ncompanies:\n  sap_b1_ue: {tax_code: B1}\n')
    # no declaration: a file shared by deployments may name another's companies
    assert check_mappings(str(mapping_file)).gl_accounts == {"4000": "421001"}
    with pytest.raises(
        MappingError,
        match=rf"mapping file {mapping_file}: companies\.sap_b1_ue names none of the declared SAP companies \(sap_b1_default, sap_b1_eu; CompanyDBs SBODEMOUS, SBODEMOEU\)",
    ):
        check_mappings(str(mapping_file), ["sap_b1_default", "sap_b1_eu"], company_db=dbs)
    # by connection id or CompanyDB; but not one company twice
    assert check_mappings(
        {"companies": {"sap_b1_eu": {"tax_code": "B1"}, "SBODEMOUS": {"tax_code": "EX"}}},
        ["sap_b1_default", "sap_b1_eu"],
        company_db=dbs,
    )
    with pytest.raises(
        MappingError, match=r"companies\.sap_b1_eu and companies\.SBODEMOEU both name SAP company sap_b1_eu"
    ):
        check_mappings(
            {"companies": {"sap_b1_eu": {"tax_code": "B1"}, "SBODEMOEU": {"tax_code": "EX"}}},
            ["sap_b1_default", "sap_b1_eu"],
            company_db=dbs,
        )
