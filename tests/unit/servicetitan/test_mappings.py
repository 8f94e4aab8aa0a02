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
