"""What the ServiceTitan hook's sandbox tests share: the sandbox's credentials and a quick retry policy."""

from __future__ import annotations

from airflow_provider_b1.utils.retry import RetryPolicy

# The sandbox's one client, application and tenant (ServiceTitanSandboxConfig's defaults).
CLIENT_ID = "b1-client"
CLIENT_SECRET = "b1-secret-st-4f9c2a7e1d"
APP_KEY = "ak1.sandbox4b1provider7k2m9q3x8w"
TENANT = "1000001"

FAST_RETRIES = RetryPolicy(max_attempts=12, max_elapsed=60, initial_wait=0.02, max_wait=0.3)
