"""The Looker sandbox's logout paths, over HTTPS, as Looker's own SDK calls them."""

from __future__ import annotations

import pytest
import requests

CLIENT_ID, CLIENT_SECRET = "looker-client-id", "looker-client-secret-1"


def _login(sandbox) -> str:
    r = requests.post(
        f"{sandbox.base_url}/api/4.0/login",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        verify=sandbox.ca_path,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.mark.parametrize("path", ["/api/logout", "/api/4.0/logout"])
@pytest.mark.parametrize("scheme", ["token", "Bearer"])
def test_unversioned_logout_ends_the_session(sandbox, path, scheme):
    token = _login(sandbox)
    headers = {"Authorization": f"{scheme} {token}"}
    me = requests.get(f"{sandbox.base_url}/api/4.0/user", headers=headers, verify=sandbox.ca_path, timeout=10)
    assert me.status_code == 200
    r = requests.delete(f"{sandbox.base_url}{path}", headers=headers, verify=sandbox.ca_path, timeout=10)
    assert r.status_code == 204, r.text
    assert r.content == b""
    me = requests.get(f"{sandbox.base_url}/api/4.0/user", headers=headers, verify=sandbox.ca_path, timeout=10)
    assert me.status_code == 401
    stats = sandbox.stats()
    assert stats["logouts"] == 1
    assert stats["live_tokens"] == 0
    # A second logout with the spent token is refused the way Looker refuses it.
    r = requests.delete(f"{sandbox.base_url}{path}", headers=headers, verify=sandbox.ca_path, timeout=10)
    assert r.status_code == 401
