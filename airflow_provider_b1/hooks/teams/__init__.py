"""Microsoft Teams: hooks posting Adaptive Cards through a Workflows webhook or a bot, their
tokens and typed errors.

Each concern has its own module: :mod:`.auth` (Bot Framework and Graph tokens shared by a
worker's processes), :mod:`.errors` (typed failures) and :mod:`.hook` (the two connection types).
"""

from __future__ import annotations

from airflow_provider_b1.hooks.teams.auth import BOT_SCOPE, GRAPH_SCOPE, AccessToken, TeamsTokenAuth
from airflow_provider_b1.hooks.teams.errors import (
    TeamsAuthError,
    TeamsBadRequestError,
    TeamsError,
    TeamsForbiddenError,
    TeamsNotFoundError,
    TeamsRateLimitedError,
    TeamsServerError,
    TeamsTLSError,
    TeamsUnreachableError,
)
from airflow_provider_b1.hooks.teams.hook import TeamsBotHook, TeamsHook, TeamsWebhookHook, message_of

__all__ = [
    "BOT_SCOPE",
    "GRAPH_SCOPE",
    "AccessToken",
    "TeamsAuthError",
    "TeamsBadRequestError",
    "TeamsBotHook",
    "TeamsError",
    "TeamsForbiddenError",
    "TeamsHook",
    "TeamsNotFoundError",
    "TeamsRateLimitedError",
    "TeamsServerError",
    "TeamsTLSError",
    "TeamsTokenAuth",
    "TeamsUnreachableError",
    "TeamsWebhookHook",
    "message_of",
]
