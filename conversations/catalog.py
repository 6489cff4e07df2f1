"""The models on offer and the provider that serves each: the environment's Spark models plus the
providers and models staff keep in the database (admin, ``manage.py load_providers``).

docs/providers.md tells how the two combine. In short:

- ``SPARK_MODELS`` (with ``SPARK_BASE_URL``, ``SPARK_API_PASSWORD`` and its per-model overrides)
  describes a provider named ``spark`` that is not a row: ``make run`` plus a key in ``.env`` is
  still all a newcomer needs. Spark X models (``spark-x``, ``x1``) are served from ``/v2``.
- Enabled ``Provider`` rows with their enabled ``ChatModel`` rows come next; a model row with the
  id of an environment model replaces it.

The catalog is built once and kept in memory: the send path reads it without a query. A change
in admin reaches this process at once (model signals) and the other workers within
``CATALOG_REFRESH_SECONDS``: at most that often, one small query compares the tables' row counts
and last change times with the ones the catalog was built from.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DatabaseError, connection
from django.db.models.signals import post_delete, post_save

from chatsite import crypto

from .llm import dialects
from .llm.base import ChatMessage, ChatOptions, ChatProvider, ModelInfo
from .llm.exceptions import LLMConfigurationError, LLMError, LLMNotConfigured
from .llm.openai_compatible import OpenAICompatibleProvider
from .llm.spark import SparkProvider
from .models import ChatModel, Provider

logger = logging.getLogger(__name__)

ENV_PROVIDER = "spark"

# The Spark models the environment can name: label, context window, output limit, and what they
# can do (docs/spark-protocol.md, "Models and context windows"; docs/providers.md, "Spark").
_WEB_SEARCH = {"web_search": True}
_X = {"reasoning": True, "reasoning_switch": True, "temperature_default": 1.2}
SPARK_MODELS: dict[str, tuple[str, int, int, dict[str, Any]]] = {
    "lite": ("Spark Lite", 8192, 4096, {}),
    "general": ("Spark Lite", 8192, 4096, {}),
    "generalv3": ("Spark Pro", 8192, 8192, _WEB_SEARCH),
    "pro-128k": ("Spark Pro-128K", 131072, 4096, _WEB_SEARCH),
    "generalv3.5": ("Spark Max", 8192, 8192, _WEB_SEARCH),
    "max-32k": ("Spark Max-32K", 32768, 8192, _WEB_SEARCH),
    "4.0Ultra": ("Spark 4.0 Ultra", 8192, 8192, _WEB_SEARCH),
    "spark-x": ("Spark X1.5", 65536, 65535, _X),
    "x1": ("Spark X1", 65536, 65535, _X),
}
SPARK_V2_MODELS = frozenset({"spark-x", "x1"})
_UNKNOWN_MODEL_DEFAULTS = (8192, 4096)


class UnknownModel(LLMError):
    code = "unknown_model"
    status_code = 400
    default_detail = "Unknown model."


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """How to reach one provider. ``keys`` maps a wire model id (or ``*``) to its key."""

    key: str  # "env:spark", "env:spark-v2" or "db:<pk>"
    name: str
    label: str
    dialect: str
    base_url: str
    connect_timeout: float
    read_timeout: float
    keys: Mapping[str, str] = field(repr=False, default_factory=dict)
    # Set when a stored key cannot be decrypted: that provider's replies fail with it.
    key_error: str = ""

    def has_key_for(self, wire_id: str) -> bool:
        if self.key_error:
            return False
        return (
            bool(self.keys.get(wire_id) or self.keys.get("*"))
            or not dialects.get(self.dialect).needs_key
        )

    def identity(self) -> tuple[object, ...]:
        return (
            self.dialect,
            self.base_url,
            tuple(sorted(self.keys.items())),
            self.connect_timeout,
            self.read_timeout,
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    models: dict[str, ModelInfo]  # in the picker's order
    providers: dict[str, ProviderConfig]
    provider_of: dict[str, str]  # model id -> provider key
    version: tuple[object, ...] = ()

    def model(self, model_id: str) -> ModelInfo:
        info = self.models.get(model_id)
        if info is None:
            raise UnknownModel(f"Unknown model {model_id!r}.")
        return info

    def provider_config(self, model_id: str) -> ProviderConfig:
        return self.providers[self.provider_of[model_id]]

    def is_configured(self, model_id: str) -> bool:
        info = self.models.get(model_id)
        return info is not None and self.provider_config(model_id).has_key_for(info.wire_id)

    def default_model(self) -> str:
        for info in self.models.values():
            if info.default:
                return info.id
        if settings.DEFAULT_MODEL in self.models:
            return str(settings.DEFAULT_MODEL)
        return next(iter(self.models), str(settings.DEFAULT_MODEL))


# -- building ----------------------------------------------------------------------------------


def _env_providers() -> tuple[list[ModelInfo], list[ProviderConfig], dict[str, str]]:
    keys = {model: key for model, key in settings.SPARK_API_PASSWORDS.items() if key}
    if settings.SPARK_API_PASSWORD:
        keys["*"] = settings.SPARK_API_PASSWORD
    timeouts = float(settings.LLM_CONNECT_TIMEOUT), float(settings.LLM_READ_TIMEOUT)
    v1 = ProviderConfig(
        "env:spark", ENV_PROVIDER, dialects.SPARK.label, "spark", settings.SPARK_BASE_URL,
        *timeouts, keys=keys,
    )  # fmt: skip
    v2_url = settings.SPARK_X_BASE_URL or re.sub(
        r"/v1/?$", "/v2", str(settings.SPARK_BASE_URL).rstrip("/")
    )
    v2 = ProviderConfig(
        "env:spark-v2", ENV_PROVIDER, dialects.SPARK.label, "spark", v2_url, *timeouts, keys=keys
    )
    models, provider_of = [], {}
    for order, model_id in enumerate(settings.SPARK_MODELS):
        label, window, max_tokens, extra = SPARK_MODELS.get(
            model_id, (model_id, *_UNKNOWN_MODEL_DEFAULTS, {})
        )
        models.append(
            ModelInfo(
                id=model_id,
                label=label,
                provider=ENV_PROVIDER,
                provider_label=dialects.SPARK.label,
                dialect="spark",
                context_window=window,
                max_tokens=max_tokens,
                order=order,
                **extra,
            )
        )
        provider_of[model_id] = (v2 if model_id in SPARK_V2_MODELS else v1).key
    return models, [v1, v2], provider_of


def _db_provider(row: Provider) -> ProviderConfig:
    dialect = dialects.get(row.dialect)
    keys: dict[str, str] = {}
    key_error = ""
    try:
        if row.api_key_encrypted:
            keys["*"] = row.api_key()
        for model in row.models.all():
            if model.api_key_encrypted:
                keys[model.upstream_id or model.model_id] = model.api_key()
    except crypto.WrongEncryptionKey as exc:
        key_error = str(exc)
        keys = {}
        logger.error("provider %s: %s", row.name, exc)
    return ProviderConfig(
        key=f"db:{row.pk}",
        name=row.name,
        label=row.label or dialect.label,
        dialect=row.dialect,
        base_url=row.base_url,
        connect_timeout=row.connect_timeout or float(settings.LLM_CONNECT_TIMEOUT),
        read_timeout=row.read_timeout or float(settings.LLM_READ_TIMEOUT),
        keys=keys,
        key_error=key_error,
    )


def _db_model(row: ChatModel, provider: ProviderConfig) -> ModelInfo:
    return ModelInfo(
        id=row.model_id,
        label=row.label or row.model_id,
        provider=provider.name,
        provider_label=provider.label,
        dialect=provider.dialect,
        context_window=row.context_window,
        max_tokens=row.max_output,
        upstream_id=row.upstream_id,
        reasoning=row.reasoning,
        reasoning_switch=row.reasoning_switch,
        web_search=row.web_search,
        vision=row.vision,
        temperature_min=row.temperature_min,
        temperature_max=row.temperature_max,
        temperature_default=row.temperature_default,
        default=row.is_default,
        order=1000 + row.order,  # after the environment's, unless ordered otherwise
    )


def _db_version() -> tuple[object, ...]:
    """Row counts and last changes of both tables, in one query."""
    quote = connection.ops.quote_name
    providers, models = (quote(m._meta.db_table) for m in (Provider, ChatModel))
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {providers}), (SELECT MAX(updated_at) FROM {providers}),"  # noqa: S608  # nosec B608 - quoted table names only, no values
        f" (SELECT COUNT(*) FROM {models}), (SELECT MAX(updated_at) FROM {models})"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
    except DatabaseError:
        # Before ``migrate`` the tables do not exist: the environment's models alone.
        return ("no-tables",)
    return tuple(row or ())


def build(version: tuple[object, ...] | None = None) -> Catalog:
    version = _db_version() if version is None else version
    models, configs, provider_of = _env_providers()
    by_id = {info.id: info for info in models}
    providers = {config.key: config for config in configs}
    if version != ("no-tables",):
        rows = Provider.objects.filter(enabled=True).prefetch_related("models")
        for row in rows:
            config = _db_provider(row)
            providers[config.key] = config
            for model in row.models.all():
                if model.enabled:
                    by_id[model.model_id] = _db_model(model, config)
                    provider_of[model.model_id] = config.key
    ordered = dict(sorted(by_id.items(), key=lambda item: (item[1].order, item[0])))
    return Catalog(models=ordered, providers=providers, provider_of=provider_of, version=version)


# -- the process's catalog ----------------------------------------------------------------------

_lock = threading.Lock()
_state: dict[str, Any] = {"catalog": None, "checked": 0.0}
_instances: dict[str, tuple[tuple[object, ...], ChatProvider]] = {}


def current() -> Catalog:
    """The catalog, rebuilt when the tables changed (checked at most every
    ``CATALOG_REFRESH_SECONDS``) or this process saved a provider or model."""
    catalog: Catalog | None = _state["catalog"]
    now = time.monotonic()
    if catalog is not None and now - _state["checked"] < settings.CATALOG_REFRESH_SECONDS:
        return catalog
    version = _db_version()
    if catalog is None or version != catalog.version:
        catalog = build(version)
    with _lock:
        _state["catalog"] = catalog
        _state["checked"] = now
    return catalog


def invalidate(**_: Any) -> None:
    with _lock:
        _state["catalog"] = None


_ENV_SETTINGS = frozenset(
    {
        "SPARK_MODELS",
        "SPARK_BASE_URL",
        "SPARK_X_BASE_URL",
        "SPARK_API_PASSWORD",
        "SPARK_API_PASSWORDS",
        "LLM_CONNECT_TIMEOUT",
        "LLM_READ_TIMEOUT",
        "LLM_POOL_SIZE",
        "DEFAULT_MODEL",
        "ENCRYPTION_KEY",
    }
)


def _setting_changed(*, setting: str, **_: Any) -> None:
    if setting in _ENV_SETTINGS:
        invalidate()


setting_changed.connect(_setting_changed, dispatch_uid="catalog-settings")
for _model in (Provider, ChatModel):
    post_save.connect(invalidate, sender=_model, dispatch_uid=f"catalog-save-{_model.__name__}")
    post_delete.connect(invalidate, sender=_model, dispatch_uid=f"catalog-delete-{_model.__name__}")


def _unreadable_key() -> LLMConfigurationError:
    return LLMConfigurationError(
        "The provider's stored API key cannot be decrypted. Ask an administrator.",
        code="provider_key_unreadable",
    )


def _client(
    config: ProviderConfig, *, pool_size: int, read_timeout: float | None = None
) -> ChatProvider:
    client_class = SparkProvider if config.dialect == "spark" else OpenAICompatibleProvider
    return client_class(
        base_url=config.base_url,
        api_keys=config.keys,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout if read_timeout is None else read_timeout,
        pool_size=pool_size,
        dialect=dialects.get(config.dialect),
        name=config.name,
    )


def provider_for(model_id: str, catalog: Catalog | None = None) -> ChatProvider:
    """The shared client for a model's provider: one instance (one HTTP session) per provider
    configuration, replaced when the configuration changes."""
    catalog = catalog or current()
    config = catalog.provider_config(model_id)
    if config.key_error:
        raise _unreadable_key()
    identity = config.identity()
    with _lock:
        entry = _instances.get(config.key)
        if entry is not None and entry[0] == identity:
            return entry[1]
        provider = _client(config, pool_size=int(settings.LLM_POOL_SIZE))
        _instances[config.key] = (identity, provider)
        return provider


def require_configured(model_id: str, catalog: Catalog | None = None) -> ModelInfo:
    """The model's info; raises ``UnknownModel`` or ``LLMNotConfigured`` (no key)."""
    catalog = catalog or current()
    info = catalog.model(model_id)
    if not catalog.is_configured(model_id):
        config = catalog.provider_config(model_id)
        if config.key_error:
            raise _unreadable_key()
        raise LLMNotConfigured()
    return info


def stored_key_problems() -> list[str]:
    """Providers and models whose stored key ``ENCRYPTION_KEY`` cannot decrypt (start-up check)."""
    problems = []
    for row in Provider.objects.exclude(api_key_encrypted=""):
        try:
            row.api_key()
        except crypto.WrongEncryptionKey:
            problems.append(f"provider {row.name!r}")
    for model in ChatModel.objects.exclude(api_key_encrypted="").select_related("provider"):
        try:
            model.api_key()
        except crypto.WrongEncryptionKey:
            problems.append(f"model {model.model_id!r}")
    return problems


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    ok: bool
    summary: str  # what staff read: the latency, or the classified error (never the key)


def test_connection(row: Provider) -> ConnectionTest:
    """One short request to a provider's first model: its latency, or the error as classified."""
    model = row.models.order_by("-enabled", "order", "model_id").first()
    if model is None:
        return ConnectionTest(False, "no model to test with: add one first")
    config = _db_provider(row)
    if config.key_error:
        return ConnectionTest(False, "the stored key cannot be decrypted with ENCRYPTION_KEY")
    client = _client(config, pool_size=1, read_timeout=min(config.read_timeout, 30.0))
    started = time.monotonic()
    try:
        client.complete(
            model=model.upstream_id or model.model_id,
            messages=[ChatMessage("user", "ping")],
            options=ChatOptions(max_tokens=16),
        )
    except LLMError as exc:
        return ConnectionTest(False, f"{exc.code}: {exc.detail}")
    finally:
        client.close()
    elapsed = (time.monotonic() - started) * 1000
    return ConnectionTest(True, f"answered in {elapsed:.0f} ms ({model.model_id})")
