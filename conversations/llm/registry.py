"""The models on offer and the provider that serves each, read from settings at call time."""

from __future__ import annotations

import threading

from django.conf import settings

from .base import ChatProvider, ModelInfo
from .exceptions import LLMError
from .spark import SparkProvider

# Context windows and max_tokens: docs/spark-protocol.md, "Models and context windows".
SPARK_MODELS: dict[str, tuple[str, int, int]] = {
    "lite": ("Spark Lite", 8192, 4096),
    "general": ("Spark Lite", 8192, 4096),
    "generalv3": ("Spark Pro", 8192, 8192),
    "pro-128k": ("Spark Pro-128K", 131072, 4096),
    "generalv3.5": ("Spark Max", 8192, 8192),
    "max-32k": ("Spark Max-32K", 32768, 8192),
    "4.0Ultra": ("Spark 4.0 Ultra", 8192, 8192),
}
_UNKNOWN_MODEL_DEFAULTS = (8192, 4096)

_lock = threading.Lock()
_providers: dict[tuple[object, ...], ChatProvider] = {}


class UnknownModel(LLMError):
    code = "unknown_model"
    status_code = 400
    default_detail = "Unknown model."


def available_models() -> list[ModelInfo]:
    models = []
    for model_id in settings.SPARK_MODELS:
        label, window, max_tokens = SPARK_MODELS.get(model_id, (model_id, *_UNKNOWN_MODEL_DEFAULTS))
        models.append(
            ModelInfo(
                id=model_id,
                label=label,
                provider="spark",
                context_window=window,
                max_tokens=max_tokens,
            )
        )
    return models


def model_info(model_id: str) -> ModelInfo:
    for info in available_models():
        if info.id == model_id:
            return info
    raise UnknownModel(f"Unknown model {model_id!r}.")


def is_known_model(model_id: str) -> bool:
    return model_id in settings.SPARK_MODELS


def spark_api_keys() -> dict[str, str]:
    """The APIPassword for each model: a per-model override, else the shared one under ``*``."""
    keys = {model: key for model, key in settings.SPARK_API_PASSWORDS.items() if key}
    if settings.SPARK_API_PASSWORD:
        keys["*"] = settings.SPARK_API_PASSWORD
    return keys


def is_configured(model_id: str) -> bool:
    keys = spark_api_keys()
    return bool(keys.get(model_id) or keys.get("*"))


def any_model_configured() -> bool:
    return any(is_configured(info.id) for info in available_models())


def provider_for(model_id: str) -> ChatProvider:
    """The shared provider for a model. One instance (and one HTTP session) per configuration."""
    keys = spark_api_keys()
    config = (
        "spark",
        settings.SPARK_BASE_URL,
        tuple(sorted(keys.items())),
        float(settings.LLM_CONNECT_TIMEOUT),
        float(settings.LLM_READ_TIMEOUT),
    )
    with _lock:
        provider = _providers.get(config)
        if provider is None:
            provider = SparkProvider(
                base_url=settings.SPARK_BASE_URL,
                api_keys=keys,
                connect_timeout=float(settings.LLM_CONNECT_TIMEOUT),
                read_timeout=float(settings.LLM_READ_TIMEOUT),
                pool_size=int(settings.LLM_POOL_SIZE),
            )
            _providers[config] = provider
        return provider
