"""The seeded tenant: a few users (one without the bot installed), two teams with channels, and
a Workflows webhook per channel. Ids are stable (derived from the tenant id), so tests and a
person trying things out can name them."""

from __future__ import annotations

import uuid
from typing import Any

_NAMESPACE = uuid.UUID("0b7c1f52-7a4e-4f0e-9d59-2b1e6c3f8a41")

USERS: list[dict[str, Any]] = [
    # (display name, UPN, mail, bot installed for the user)
    {
        "displayName": "Ada Lovelace",
        "upn": "ada@contoso.example",
        "mail": "ada@contoso.example",
        "installed": True,
    },
    {
        "displayName": "Grace Hopper",
        "upn": "grace.hopper@contoso.example",
        "mail": "grace@contoso.example",
        "installed": True,
    },
    {
        "displayName": "Alan Turing",
        "upn": "alan@contoso.example",
        "mail": "alan@contoso.example",
        "installed": False,
    },
    {"displayName": "Katherine Johnson", "upn": "katherine@contoso.example", "mail": None, "installed": True},
]

CHANNELS: list[dict[str, str]] = [
    {"team": "Finance", "name": "General"},
    {"team": "Finance", "name": "Approvals"},
    {"team": "Operations", "name": "Alerts"},
]


def _id(tenant_id: str, *parts: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, "|".join((tenant_id, *parts)))


def users(tenant_id: str) -> list[dict[str, Any]]:
    """Graph users of the tenant, each with its Teams user id (``29:...``) and whether the bot is installed."""
    out = []
    for user in USERS:
        object_id = str(_id(tenant_id, "user", user["upn"]))
        out.append(
            {
                "id": object_id,
                "displayName": user["displayName"],
                "userPrincipalName": user["upn"],
                "mail": user["mail"],
                "teams_id": "29:1" + _id(tenant_id, "teams-user", object_id).hex,
                "installed": user["installed"],
            }
        )
    return out


def channels(tenant_id: str) -> list[dict[str, Any]]:
    """Channels of the tenant, each with its team's id (a Graph group id), its conversation id
    (``19:...@thread.tacv2``) and its Workflows webhook (id and signature)."""
    out = []
    for channel in CHANNELS:
        key = _id(tenant_id, "channel", channel["team"], channel["name"])
        out.append(
            {
                **channel,
                "team_id": str(_id(tenant_id, "team", channel["team"])),
                "conversation_id": f"19:{key.hex}@thread.tacv2",
                "workflow_id": _id(tenant_id, "workflow", key.hex).hex,
                "sig": _id(tenant_id, "sig", key.hex).hex + _id(tenant_id, "sig2", key.hex).hex[:11],
            }
        )
    return out
