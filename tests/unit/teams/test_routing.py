"""Routing rules: read from the DAG's file or a document, every problem named at once, and which
destinations each document reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_b1.teams.routing import Destination, RoutingError, load_routing, parse_routing

DAG_ROUTING = Path(__file__).resolve().parents[3] / "dags" / "teams_routing.yaml"
CHANNEL = "19:12b442916c8351f288939fa1ec3b99d3@thread.tacv2"


def _order(**fields):
    return {"DocEntry": 1, "CardCode": "V1", "DocTotal": 500.0, "DocCurrency": "USD", **fields}


def test_the_dags_routing_file_is_valid_and_names_its_destinations():
    routing = load_routing(DAG_ROUTING)
    assert routing.digest_over == 20
    keys = {d.key for d in routing.destinations}
    assert "webhook:b1_teams_webhook_default" in keys
    assert "bot:b1_teams_bot_default:ada@contoso.example" in keys


def test_every_problem_is_named_at_once():
    with pytest.raises(RoutingError) as raised:
        parse_routing(
            {
                "digest_over": 0,
                "colour": "red",
                "rules": [
                    {"documents": ["SalesOrders"], "to": [{"webhook": "x"}]},
                    {"amount": {"min": "lots"}, "to": [{"channel": "general"}]},
                    {"partner_groups": ["abc"], "to": []},
                    {"to": [{"user": "not a user"}, {"webhook": "a", "user": "b@c.d"}]},
                ],
            },
            where="routing file r.yaml",
        )
    message = str(raised.value)
    assert message.startswith("routing file r.yaml has 9 problems")
    for expected in (
        "digest_over must be a whole number",
        "colour: unknown key",
        "unknown ['SalesOrders']",
        "amount.min must be a number",
        "'general' is not a channel's conversation id",
        "'abc' is not a whole number",
        "to must list at least one destination",
        "'not a user' is neither an e-mail",
        "name exactly one of webhook, channel or user",
    ):
        assert expected in message


def test_a_document_reaches_the_union_of_the_rules_it_matches_each_destination_once():
    routing = parse_routing(
        {
            "rules": [
                {"name": "all", "to": [{"webhook": None}]},
                {
                    "name": "large, group 101, branch 2, centre CC1",
                    "documents": ["PurchaseOrders"],
                    "amount": {"min": 1000, "max": 5000, "in": "document"},
                    "partner_groups": [101],
                    "branches": [2],
                    "profit_centres": ["CC1"],
                    "to": [{"webhook": None}, {"user": "Ada@Contoso.example"}, {"channel": CHANNEL}],
                },
            ]
        }
    )
    matching = _order(
        DocTotal=900.0,
        DocTotalFc=1200.0,
        DocCurrency="EUR",
        BPL_IDAssignedToInvoice=2,
        DocumentLines=[{"CostingCode": "CC2"}, {"CostingCode": "CC1"}],
    )
    found = routing.route("PurchaseOrders", matching, 101)
    assert found == [
        Destination("webhook", "b1_teams_webhook_default"),
        Destination("bot", "b1_teams_bot_default", "ada@contoso.example"),
        Destination("bot", "b1_teams_bot_default", CHANNEL),
    ]
    assert found[1].is_user
    assert not found[2].is_user
    # each condition alone keeps the document to the first rule
    for changed, group in (
        ({"DocTotalFc": 6000.0}, 101),
        ({"BPL_IDAssignedToInvoice": 3}, 101),
        ({"DocumentLines": [{"CostingCode": "CC9"}]}, 101),
        ({}, 7),
    ):
        assert len(routing.route("PurchaseOrders", {**matching, **changed}, group)) == 1
    assert len(routing.route("VendorPayments", matching, 101)) == 1


def test_amounts_in_local_currency_use_doctotal_and_payments_their_total():
    routing = parse_routing(
        {"rules": [{"amount": {"min": 1000}, "to": [{"webhook": "finance"}]}], "connections": {"bot": "b"}}
    )
    assert routing.route("PurchaseOrders", _order(DocTotal=1000, DocTotalFc=10)) == [
        Destination("webhook", "finance")
    ]
    assert routing.route("PurchaseOrders", _order(DocTotal=999.99)) == []
    payment = {"DocEntry": 5, "CashSum": 600, "TransferSum": 500}
    assert routing.route("VendorPayments", payment) == [Destination("webhook", "finance")]
    assert not routing.needs_partner_groups


def test_a_rule_naming_companies_takes_only_their_documents_named_by_connection_or_companydb():
    routing = parse_routing(
        {
            "rules": [
                {"name": "all", "documents": ["PurchaseOrders"], "to": [{"webhook": "all"}]},
                {"name": "eu", "companies": ["sbodemoeu", "sap_b1_uk"], "to": [{"webhook": "eu"}]},
            ]
        }
    )
    (rule,) = [r for r in routing.rules if r.name == "eu"]
    assert rule.companies == frozenset({"sbodemoeu", "sap_b1_uk"})

    def reached(*company):
        return [d.conn_id for d in routing.route("PurchaseOrders", _order(), None, company)]

    assert reached("sap_b1_eu", "SBODEMOEU") == ["all", "eu"]  # by CompanyDB, whatever its case
    assert reached("sap_b1_uk", None) == ["all", "eu"]  # by connection id, CompanyDB unknown
    assert reached("sap_b1_default", "SBODEMOUS") == ["all"]
    assert reached() == ["all"]  # a caller naming no company: no rule on companies matches

    with pytest.raises(RoutingError) as raised:
        parse_routing({"rules": [{"companies": ["sap b1 eu", 7], "to": [{"webhook": "x"}]}]})
    assert "'sap b1 eu' is not a SAP company" in str(raised.value)
    assert "7 is not a SAP company" in str(raised.value)
    with pytest.raises(RoutingError, match="companies is empty"):
        parse_routing({"rules": [{"companies": [], "to": [{"webhook": "x"}]}]})
