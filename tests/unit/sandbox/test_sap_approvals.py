"""Approval procedure settings: what the control call accepts, and what a sandbox starts with."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.sap import ApprovalRule, CostModel, SapSandboxConfig
from airflow_provider_b1.sandbox.sap.app import SapSandbox


def test_a_rule_names_documents_a_threshold_and_both_readings_of_the_post():
    rule = ApprovalRule.parse({"entity": "Invoices", "threshold": 10000})
    assert rule == ApprovalRule(("Invoices",), 10000.0)
    assert (rule.post_reply, rule.after_generate, rule.required) == ("error", "generated", 1)
    rule = ApprovalRule.parse(
        {"entity": ["Invoices", "CreditNotes"], "post_reply": "draft", "approvers": {"cfo": "pw"}}
    )
    assert rule.entities == ("Invoices", "CreditNotes")
    assert rule.describe()["approvers"] == ["cfo"]  # never the password
    assert ApprovalRule.parse({}) is None


@pytest.mark.parametrize(
    "body",
    [
        {"threshold": 5},
        {"entity": "BusinessPartners"},
        {"entity": "Invoices", "threshold": "5"},
        {"entity": "Invoices", "post_reply": "201"},
        {"entity": "Invoices", "after_generate": "kept"},
        {"entity": "Invoices", "required": 0},
        {"entity": "Invoices", "approvers": []},
        {"entity": "Invoices", "stage": 2},
    ],
)
def test_bad_approval_settings_are_refused(body):
    with pytest.raises(ValueError):
        ApprovalRule.parse(body)


def test_configured_approvals_and_cost_are_in_force_from_the_start():
    config = SapSandboxConfig(
        invoices=50,
        approvals=ApprovalRule(("Invoices",), 100.0),
        cost=CostModel(write_seconds=0.1, nodes=3),
        approvers={"cfo": "pw"},
    )
    sandbox = SapSandbox(config)
    assert sandbox.store.approval == config.approvals
    assert sandbox.cost is not None
    assert sandbox.cost.model.nodes == 3
    assert sandbox.store.user_keys == {"manager": 1, "cfo": 2}
    assert SapSandbox(SapSandboxConfig(invoices=50)).cost is None
