"""`/cds-services/` with a trailing slash and `//` in paths reach the service, CORS preflights included
(issue 10: the sandbox's preflight got a 404/308 and it showed "All clear!"), and a JWT whose `aud` is the
URL as invoked, extra slashes and all, is accepted."""
from __future__ import annotations

import json

import pytest

from cds_service.paths import normalise_path
from service_helpers import PV, SIGN, full_prefetch, hook_body
from support.client_key import signed_token as token

ORIGIN = "https://sandbox.cds-hooks.org"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}

DISCOVERY_SPELLINGS = ["/cds-services/", "//cds-services", "/cds-services//", "///cds-services///"]
SERVICE_SPELLINGS = [f"/cds-services/{PV}/", f"/cds-services//{PV}", f"//cds-services//{PV}//"]
FEEDBACK_SPELLINGS = [f"/cds-services/{SIGN}/feedback/", f"/cds-services//{SIGN}//feedback"]


def raw(client, method: str, path: str, **kwargs):
    """Send `path` as the PATH_INFO a WSGI server gives (the test client would read `//x` as a host)."""
    return client.open("/", method=method, environ_overrides={"PATH_INFO": path}, **kwargs)


@pytest.mark.parametrize("path,expected", [
    ("/cds-services/", "/cds-services"), ("//cds-services//x//", "/cds-services/x"), ("/", "/"), ("//", "/"),
    ("/cds-services/x", "/cds-services/x"), ("", "/"),
])
def test_normalise_path(path, expected):
    assert normalise_path(path) == expected


@pytest.mark.parametrize("path", DISCOVERY_SPELLINGS + SERVICE_SPELLINGS + FEEDBACK_SPELLINGS)
def test_preflight_of_every_spelling_is_2xx_with_cors(client, path):
    response = raw(client, "OPTIONS", path, headers=PREFLIGHT)
    assert 200 <= response.status_code < 300 and "Location" not in response.headers
    assert response.headers["Access-Control-Allow-Origin"] in ("*", ORIGIN)


@pytest.mark.parametrize("path", DISCOVERY_SPELLINGS)
def test_discovery_answers_with_a_trailing_or_doubled_slash(client, path):
    response = raw(client, "GET", path)
    assert response.status_code == 200 and response.get_json()["services"]


@pytest.mark.parametrize("path", SERVICE_SPELLINGS)
def test_hook_call_answers_with_a_trailing_or_doubled_slash(client, fake_evaluate, path):
    response = raw(client, "POST", path, data=json.dumps(hook_body(prefetch=full_prefetch())),
                   content_type="application/json")
    assert response.status_code == 200 and response.get_json()["cards"]


def test_an_unknown_service_is_still_404(client):
    assert raw(client, "POST", "/cds-services//no-such-service/", data="{}",
               content_type="application/json").status_code == 404


# ---------------------------------------------------------------- aud = the URL as invoked

@pytest.fixture
def secured_app(secured_app_for, fake_evaluate):
    return secured_app_for(public_base_url="http://localhost")


@pytest.mark.parametrize("path", [f"/cds-services//{PV}", f"/cds-services/{PV}/", f"/cds-services/{PV}"])
def test_token_for_the_url_as_invoked_is_accepted(secured_app, path):
    response = raw(secured_app.test_client(), "POST", path, data=json.dumps(hook_body(prefetch=full_prefetch())),
                   content_type="application/json", headers={"Authorization": f"Bearer {token('http://localhost' + path)}"})
    assert response.status_code == 200


def test_token_for_another_spelling_than_the_one_invoked_is_refused(secured_app):
    path = f"/cds-services//{PV}"
    response = raw(secured_app.test_client(), "POST", path, data=json.dumps(hook_body(prefetch=full_prefetch())),
                   content_type="application/json",
                   headers={"Authorization": f"Bearer {token(f'http://localhost/cds-services/{PV}/')}"})
    assert response.status_code == 401
