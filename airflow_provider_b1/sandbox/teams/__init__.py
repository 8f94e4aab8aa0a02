"""An imitation of the Microsoft Teams surfaces the provider speaks to: a Workflows webhook, the
Microsoft identity platform's token endpoint (Bot Framework and Graph tokens), the Bot Connector
API (proactive 1:1 chats, posts, updates) and Graph user lookups, for tests and first tries.

Independent of :mod:`airflow_provider_b1.hooks`: it shares no protocol code with them, so the
two implementations check each other. Production code never imports it.
"""

from __future__ import annotations

from airflow_provider_b1.sandbox.teams.app import TeamsSandbox, TeamsSandboxConfig, create_app

__all__ = ["TeamsSandbox", "TeamsSandboxConfig", "create_app"]
