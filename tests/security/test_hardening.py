"""Production settings and response headers: `check --deploy`, CSP, framing, sniffing, referrer,
HSTS behind TLS, secure cookies, and CORS limited to the configured origins under /api/."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.reliability.live import live_server
from tests.support.production import production_env
from tests.support.servers import ChatsiteServer

ROOT = Path(__file__).resolve().parents[2]
APP_ORIGIN = "https://app.example.com"


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return production_env(tmp_path, **{"SIGNUP_MODE": "approval", **extra})


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _check_deploy(_production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("extra", "warning"),
    [
        ({"DJANGO_SECRET_KEY": "short-key"}, "security.W009"),
        ({"DJANGO_DEBUG": "true"}, "security.W018"),
        ({"DJANGO_HTTPS": "false"}, "security.W004"),
        ({"ENCRYPTION_KEY": ""}, "chatsite.W101"),
        ({"SIGNUP_MODE": "open"}, "accounts.W001"),
    ],
    ids=["weak-secret-key", "debug-on", "https-off", "no-encryption-key", "signup-open"],
)
def test_check_deploy_catches_an_unsafe_setting(tmp_path, extra, warning):
    """The check above can fail: each unsafe setting makes it report."""
    result = _check_deploy(_production_env(tmp_path, **extra))
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = _production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    result = _check_deploy(env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


# --- response headers ---------------------------------------------------------------------------


def _csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(
    headers: dict[str, str] | requests.structures.CaseInsensitiveDict,
) -> None:
    csp = _csp(headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["form-action"] == ["'self'"]
    assert not [
        v
        for values in csp.values()
        for v in values
        if v in ("*", "'unsafe-eval'", "http:", "https:")
    ]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    )
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/accounts/signup/",
        "/",
        "/api/models/",
        "/api/auth/me/",
        "/api/nope/",
        "/no-such-page/",
        "/admin/login/",
        "/api/docs/",
    ],
)
def test_security_headers_on_pages_api_and_errors(client, user, path):
    if path in ("/", "/api/docs/"):
        client.force_login(user)
    response = client.get(path)
    assert response.status_code < 500
    assert_security_headers(response)
    assert "Strict-Transport-Security" not in response  # HTTPS is off here


# --- CORS -----------------------------------------------------------------------------------------


def _preflight(client, path: str, origin: str):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/conversations/", "/api/auth/token/"])
def test_cors_answers_a_configured_origin_under_api(client, settings, path):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    response = _preflight(client, path, APP_ORIGIN)
    assert response["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "authorization" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response  # cookies never cross origins
    response = client.get("/api/models/", HTTP_ORIGIN=APP_ORIGIN)
    assert response["Access-Control-Allow-Origin"] == APP_ORIGIN


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "origin"),
    [
        ("/api/conversations/", "https://evil.example"),
        ("/api/conversations/", "null"),
        ("/api/conversations/", "https://app.example.com.evil.example"),
        ("/api/conversations/", "http://app.example.com"),
        ("/accounts/login/", APP_ORIGIN),
        ("/admin/login/", APP_ORIGIN),
        ("/healthz", APP_ORIGIN),
        ("/", APP_ORIGIN),
    ],
)
def test_cors_ignores_other_origins_and_paths_outside_api(client, settings, path, origin):
    settings.CORS_ALLOWED_ORIGINS = [APP_ORIGIN]
    for response in (_preflight(client, path, origin), client.get(path, HTTP_ORIGIN=origin)):
        assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_cors_is_closed_by_default(client):
    response = _preflight(client, "/api/conversations/", APP_ORIGIN)
    assert "Access-Control-Allow-Origin" not in response


# --- the real server behind a TLS proxy ---------------------------------------------------------


@pytest.fixture(scope="module")
def tls_site() -> Iterator[ChatsiteServer]:
    """gunicorn as deployed behind a TLS-terminating proxy (X-Forwarded-Proto), HTTPS on."""
    server = live_server(
        spark_url="http://127.0.0.1:9/v1",
        spark_key="",
        workers=1,
        env={
            "DJANGO_HTTPS": "true",
            "DJANGO_BEHIND_TLS_PROXY": "true",
            "CORS_ALLOWED_ORIGINS": APP_ORIGIN,
        },
    )
    with server:
        yield server


HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.mark.slow
def test_plain_http_is_redirected_to_https(tls_site):
    response = requests.get(f"{tls_site.url}/accounts/login/", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://")


@pytest.mark.slow
def test_health_probe_over_plain_http_is_not_redirected(tls_site):
    response = requests.get(f"{tls_site.url}/healthz", allow_redirects=False, timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.slow
def test_https_responses_carry_hsts_and_secure_cookies(tls_site):
    with requests.Session() as browser:
        browser.headers.update(HTTPS)
        response = browser.get(f"{tls_site.url}/accounts/login/", timeout=10)
        assert response.status_code == 200
        assert_security_headers(response.headers)
        hsts = response.headers["Strict-Transport-Security"]
        assert "max-age=31536000" in hsts
        assert "includeSubDomains" in hsts
        cookie = response.headers["Set-Cookie"]
        assert "csrftoken=" in cookie
        assert "Secure" in cookie
        assert "SameSite=Lax" in cookie

        # Sign up through the form: the session cookie is Secure and HttpOnly too. (The test talks
        # plain HTTP to the backend, so the Secure cookie has to be sent by hand.)
        token = browser.cookies["csrftoken"]
        browser.headers["Cookie"] = f"csrftoken={token}"
        response = browser.post(
            f"{tls_site.url}/accounts/signup/",
            data={
                "csrfmiddlewaretoken": token,
                "username": "tlsuser",
                "password1": "correct-horse-battery-9",
                "password2": "correct-horse-battery-9",
            },
            headers={
                "Referer": f"https://127.0.0.1:{tls_site.port}/accounts/signup/",
                "Origin": f"https://127.0.0.1:{tls_site.port}",
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text[:500]
        session_cookie = [
            c for c in response.raw.headers.getlist("Set-Cookie") if "sessionid=" in c
        ]
        assert session_cookie
        assert "Secure" in session_cookie[0]
        assert "HttpOnly" in session_cookie[0]


@pytest.mark.slow
def test_cors_through_the_real_server(tls_site):
    allowed = requests.options(
        f"{tls_site.url}/api/auth/token/",
        timeout=10,
        headers={**HTTPS, "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    refused = requests.options(
        f"{tls_site.url}/api/auth/token/",
        timeout=10,
        headers={
            **HTTPS,
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert "Access-Control-Allow-Origin" not in refused.headers
    page = requests.get(
        f"{tls_site.url}/accounts/login/", headers={**HTTPS, "Origin": APP_ORIGIN}, timeout=10
    )
    assert "Access-Control-Allow-Origin" not in page.headers
