"""The ServiceTitan hook without a server: connection shape, URLs, parameters, registration, form."""

from __future__ import annotations

import datetime as dt

import pytest
from st_unit_helpers import APP_KEY, CLIENT_SECRET, TENANT

from airflow_provider_b1.connections import CONNECTION_TYPES, ui_field_behaviour
from airflow_provider_b1.get_provider_info import get_provider_info
from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
from airflow_provider_b1.hooks.servicetitan.hook import ServiceTitanHook as DirectHook


def test_production_is_the_default_environment(st_connection):
    st_connection()
    settings = ServiceTitanHook().settings
    assert settings.environment == "production"
    assert settings.token_url == "https://auth.servicetitan.io/connect/token"
    assert settings.api_url == "https://api.servicetitan.io"
    assert settings.rate_limit == 60
    assert settings.redis_url is None
    assert settings.verify is True


def test_integration_environment_uses_the_integration_hosts(st_connection):
    st_connection(environment="Integration")
    settings = ServiceTitanHook().settings
    assert settings.token_url == "https://auth-integration.servicetitan.io/connect/token"
    assert settings.api_url == "https://api-integration.servicetitan.io"


def test_url_overrides_replace_the_environments_hosts(st_connection):
    st_connection(api_url="https://127.0.0.1:8443/", auth_url="https://127.0.0.1:8443")
    settings = ServiceTitanHook().settings
    assert settings.api_url == "https://127.0.0.1:8443"
    assert settings.token_url == "https://127.0.0.1:8443/connect/token"


def test_an_auth_url_that_already_names_the_token_endpoint_is_kept(st_connection):
    st_connection(auth_url="https://proxy.example/connect/token")
    assert ServiceTitanHook().settings.token_url == "https://proxy.example/connect/token"


def test_an_unknown_environment_is_refused_with_the_choices(st_connection):
    st_connection(environment="staging")
    with pytest.raises(ValueError, match="production or integration, not 'staging'"):
        _ = ServiceTitanHook().settings


def test_missing_fields_are_named_together_without_any_secret(st_connection):
    st_connection(login="", password=None, tenant_id=" ", app_key=None)
    with pytest.raises(ValueError) as caught:
        _ = ServiceTitanHook().settings
    message = str(caught.value)
    for named in ("client id (login)", "client secret (password)", "tenant_id", "app_key"):
        assert named in message


@pytest.mark.parametrize("value", ["fast", "0", "-3", "60.5"])
def test_a_rate_limit_that_is_not_a_whole_positive_number_is_refused(st_connection, value):
    st_connection(rate_limit=value)
    with pytest.raises(ValueError, match="rate_limit must be a whole number"):
        _ = ServiceTitanHook().settings


def test_the_rate_limit_comes_from_the_extra_or_the_constructor(st_connection):
    st_connection(rate_limit="30")
    assert ServiceTitanHook().settings.rate_limit == 30
    assert ServiceTitanHook(rate_limit=12).settings.rate_limit == 12


def test_a_tenant_id_that_is_not_a_number_is_refused(st_connection):
    st_connection(tenant_id="acme")
    with pytest.raises(ValueError, match="tenant_id must be the tenant's number"):
        _ = ServiceTitanHook().settings


def test_a_bad_api_url_is_refused(st_connection):
    st_connection(api_url="api.servicetitan.io")
    with pytest.raises(ValueError, match="api_url must be an http"):
        _ = ServiceTitanHook().settings


def test_verify_tls_that_is_neither_true_nor_false_is_refused(st_connection):
    st_connection(verify_tls="flase")
    with pytest.raises(ValueError, match="verify_tls must be true or false"):
        _ = ServiceTitanHook().settings


def test_settings_repr_shows_no_secret(st_connection):
    st_connection(redis_url="redis://:redis-pass-123@cache:6379/0")
    text = repr(ServiceTitanHook().settings)
    for secret in (CLIENT_SECRET, APP_KEY, "redis-pass-123"):
        assert secret not in text


def test_a_module_path_is_placed_below_the_tenant(st_connection):
    st_connection()
    hook = ServiceTitanHook()
    assert hook.url("crm/customers") == f"https://api.servicetitan.io/crm/v2/tenant/{TENANT}/customers"
    assert hook.url("accounting/export/invoices") == (
        f"https://api.servicetitan.io/accounting/v2/tenant/{TENANT}/export/invoices"
    )
    assert hook.url("/crm/v2/tenant/9/customers") == "https://api.servicetitan.io/crm/v2/tenant/9/customers"
    with pytest.raises(ValueError, match="<module>/<resource>"):
        hook.url("customers")


def test_parameters_are_sent_as_servicetitan_reads_them():
    params = ServiceTitanHook._params(
        {
            "includeTotal": True,
            "active": False,
            "modifiedOnOrAfter": dt.datetime(2024, 3, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=-6))),
            "from": dt.date(2024, 3, 1),
            "ids": [3, 1, 2],
            "page": 2,
            "skip": None,
        }
    )
    assert params == {
        "includeTotal": "true",
        "active": "false",
        "modifiedOnOrAfter": "2024-03-01T14:00:00Z",
        "from": "2024-03-01",
        "ids": "3,1,2",
        "page": "2",
    }


def test_a_naive_datetime_parameter_is_refused():
    with pytest.raises(ValueError, match="needs a time zone"):
        ServiceTitanHook._params({"modifiedBefore": dt.datetime(2024, 3, 1)})


def test_page_size_outside_servicetitans_range_is_refused():
    with pytest.raises(ValueError, match=r"1\.\.5000"):
        ServiceTitanHook(page_size=5001)


def test_connection_test_names_the_missing_field_instead_of_raising(st_connection):
    st_connection(app_key=None)
    ok, message = ServiceTitanHook().test_connection()
    assert not ok
    assert "app_key" in message


def test_servicetitan_is_a_registered_connection_type_with_its_form():
    info = get_provider_info()
    declared = next(c for c in info["connection-types"] if c["connection-type"] == "servicetitan")
    assert declared["hook-class-name"] == "airflow_provider_b1.hooks.servicetitan.ServiceTitanHook"
    assert declared["hook-name"] == "ServiceTitan" == ServiceTitanHook.hook_name
    assert ServiceTitanHook.conn_type == "servicetitan"
    assert DirectHook is ServiceTitanHook
    assert ServiceTitanHook.get_ui_field_behaviour() == declared["ui-field-behaviour"]
    assert any(h["python-modules"] == ["airflow_provider_b1.hooks.servicetitan"] for h in info["hooks"])


def test_form_hides_the_port_it_does_not_use_and_relabels_the_credentials():
    servicetitan = next(c for c in CONNECTION_TYPES if c["connection-type"] == "servicetitan")
    behaviour = ui_field_behaviour(servicetitan)
    assert "port" in behaviour["hidden-fields"]
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client secret"}
    assert set(servicetitan["conn-fields"]) == {
        "environment",
        "tenant_id",
        "app_key",
        "api_url",
        "auth_url",
        "verify_tls",
        "ca_bundle",
        "rate_limit",
        "redis_url",
    }
    secrets = {
        name for name, f in servicetitan["conn-fields"].items() if f["schema"].get("format") == "password"
    }
    assert secrets == {"app_key", "redis_url"}


def test_connection_test_names_a_missing_permission_in_one_sentence(st_connection, monkeypatch):
    from st_unit_helpers import response

    from airflow_provider_b1.hooks.servicetitan.errors import error_from_response

    st_connection()
    hook = ServiceTitanHook()
    monkeypatch.setattr(hook, "get_token", lambda: "a-token-value")

    def refuse(path, params=None, *, what=None):
        reply = response(
            403, {"title": "Forbidden", "status": 403, "detail": "Scope tn.crm.customers:r missing."}
        )
        raise error_from_response(reply, what or path, tenant=TENANT)

    monkeypatch.setattr(hook, "get_json", refuse)
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("ServiceTitan refused reading customers for want of permission (HTTP 403")
    assert "add the API scope" in message


def test_a_connection_that_cannot_work_fails_the_task_at_once(st_connection):
    from airflow_provider_b1.exceptions import PermanentError

    st_connection(environment="staging")
    with pytest.raises(PermanentError):
        _ = ServiceTitanHook().settings
