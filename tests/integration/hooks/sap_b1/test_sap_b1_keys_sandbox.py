"""Keys are values, never paths: over real HTTPS, every call that addresses a record by key stays in its entity set."""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.sap_b1 import (
    BatchRequest,
    SapB1Hook,
    SapB1NotFoundError,
    entity_path,
)

EVIL = "/../Invoices(5)/x"

# Each of these once changed the URL's meaning: a path level, a query, a fragment, an escape,
# a broken request line; and non-ASCII text must arrive as the same characters.
ODD_KEYS = [
    "Ü-Straße 東京",
    "what?x=1",
    "C#1",
    "100%",
    "50%41",
    "two words",
    "line\nbreak",
    "O'Hara/../x",
]


def _invoice_5(sandbox) -> dict:
    return sandbox.app.state.sandbox.store.entities["Invoices"].rows[5][:]


def test_key_with_slash_stays_inside_its_entity_set(sandbox, connect):
    connect()
    hook = SapB1Hook()
    invoice_before = _invoice_5(sandbox)
    with pytest.raises(SapB1NotFoundError, match="PATCH BusinessPartners"):
        hook.update("BusinessPartners", EVIL, {"Notes": "changed"})
    with pytest.raises(SapB1NotFoundError):
        hook.get("BusinessPartners", EVIL)
    with pytest.raises(SapB1NotFoundError):
        hook.request("DELETE", entity_path("BusinessPartners", EVIL))
    with pytest.raises(SapB1NotFoundError):
        hook.request("POST", entity_path("BusinessPartners", EVIL) + "/Close")
    (reply,) = hook.batch([BatchRequest("PATCH", entity_path("BusinessPartners", EVIL), {"Notes": "x"})])
    assert reply.status == 404
    requests = sandbox.stats()["requests"]
    assert not [label for label in requests if "Invoices" in label], requests
    assert _invoice_5(sandbox) == invoice_before


def test_entity_set_names_are_refused_when_they_are_paths(sandbox, connect):
    connect()
    hook = SapB1Hook()
    for call in (
        lambda: hook.update("BusinessPartners/../Invoices", 5, {"Comments": "x"}),
        lambda: hook.get("Invoices/..", 5),
        lambda: list(hook.iter_pages("BusinessPartners/../Invoices")),
        lambda: hook.count("Orders/../Invoices"),
        lambda: hook.create("BusinessPartners/../Invoices", {"CardCode": "x"}),
    ):
        with pytest.raises(ValueError, match="not an entity set name"):
            call()
    assert sandbox.stats()["requests_total"] == 0


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_keys_with_non_ascii_question_mark_hash_percent_space_and_newline_round_trip(
    sandbox, connect, version
):
    connect(version)
    hook = SapB1Hook()
    partners = hook.count("BusinessPartners")
    for code in ODD_KEYS:
        created = hook.create("BusinessPartners", {"CardCode": code, "CardName": f"name of {code}"})
        assert created["CardCode"] == code
    for code in ODD_KEYS:
        record = hook.get("BusinessPartners", code, select="CardCode,CardName")
        assert (record["CardCode"], record["CardName"]) == (code, f"name of {code}")
        hook.update("BusinessPartners", code, {"Notes": f"notes of {code}"})
        assert hook.get("BusinessPartners", code, select="Notes")["Notes"] == f"notes of {code}"
    replies = hook.batch(
        [
            BatchRequest("PATCH", entity_path("BusinessPartners", code), {"Notes": "batched"})
            for code in ODD_KEYS
        ],
        atomic=False,
    )
    assert [reply.status for reply in replies] == [204] * len(ODD_KEYS)
    for code in ODD_KEYS:
        assert hook.get("BusinessPartners", code, select="Notes")["Notes"] == "batched"
        assert hook.request("DELETE", entity_path("BusinessPartners", code)).status_code == 204
        with pytest.raises(SapB1NotFoundError):
            hook.get("BusinessPartners", code)
    # Nothing else was touched: exactly the seeded partners are left.
    assert hook.count("BusinessPartners") == partners
