from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from conversations import catalog
from governance import policy, pricing
from tests.factories import UserFactory
from tests.spark_server import SparkServer

SPARK_KEY = "test-key:test-secret"


@pytest.fixture(scope="session")
def spark_server() -> Iterator[SparkServer]:
    server = SparkServer(passwords={"*": SPARK_KEY}).start()
    yield server
    server.stop()


@pytest.fixture
def spark(spark_server: SparkServer, settings) -> Iterator[SparkServer]:
    """The loopback Spark server, reset, with chatsite pointed at it."""
    spark_server.reset()
    settings.SPARK_BASE_URL = spark_server.url
    settings.SPARK_API_PASSWORD = SPARK_KEY
    settings.LLM_READ_TIMEOUT = 5.0
    settings.LLM_CONNECT_TIMEOUT = 2.0
    yield spark_server
    spark_server.reset()


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    yield
    with contextlib.suppress(Exception):  # tests without a database have no cache table
        cache.clear()
    # A test's providers and models are rolled back with its transaction, which sends no signal.
    catalog.invalidate()
    policy.invalidate()
    pricing.invalidate()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings) -> None:
    # PBKDF2's 10^6 iterations cost ~0.2 s per user; tests don't need the strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
