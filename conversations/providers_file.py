"""``manage.py load_providers FILE``: providers and models as code, in YAML.

The file is read whole and checked before anything is written: an unknown dialect, a key variable
that is not set, a duplicate model id or a wrong type refuses the file with the line at fault, and
the database is left as it was. Keys are named by environment variable (``api_key_env``), never
written in the file; the key read from it is stored encrypted like one typed in admin. Loading the
same file twice changes nothing (docs/providers.md, "Configuration as code").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from .llm import dialects
from .models import ChatModel, Provider

PROVIDER_KEYS = {
    "name", "label", "dialect", "base_url", "api_key_env", "connect_timeout", "read_timeout",
    "enabled", "models",
}  # fmt: skip
MODEL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "upstream_id": str,
    "label": str,
    "context_window": int,
    "max_output": int,
    "reasoning": bool,
    "reasoning_switch": bool,
    "web_search": bool,
    "vision": bool,
    "temperature_min": (int, float),
    "temperature_max": (int, float),
    "temperature_default": (int, float),
    "enabled": bool,
    "order": int,
    "default": bool,
    "api_key_env": str,
}


class ProvidersFileError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)


class _LineLoader(yaml.SafeLoader):
    """Records each mapping's line (1-based) under ``__line__`` and each key's under
    ``__lines__``, so an error names the line at fault."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        str(k): v for k, v in loader.construct_mapping(node, deep=True).items()
    }
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__lines__"] = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


@dataclass
class _Plan:
    providers: list[dict[str, Any]] = field(default_factory=list)


def _check_type(value: Any, expected: type | tuple[type, ...], line: int, name: str) -> None:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ProvidersFileError(line, f"{name} has the wrong type ({type(value).__name__})")


def _secret(name: str, line: int, environ: dict[str, str]) -> str:
    value = environ.get(name, "")
    if not value:
        raise ProvidersFileError(line, f"the key variable {name} is not set in the environment")
    return value


def parse(text: str, environ: dict[str, str] | None = None) -> _Plan:
    """The file checked whole; raises ``ProvidersFileError`` at the first problem."""
    environ = dict(os.environ) if environ is None else environ
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506  # nosec B506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ProvidersFileError(
            mark.line + 1 if mark else None, f"not valid YAML: {exc}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("providers"), list):
        raise ProvidersFileError(1, "the file must hold a list under 'providers:'")
    plan = _Plan()
    names: set[str] = set()
    model_ids: dict[str, int] = {}
    validate_url = URLValidator(schemes=["http", "https"])
    for entry in data["providers"]:
        if not isinstance(entry, dict):
            raise ProvidersFileError(None, "each provider must be a mapping")
        line = entry.pop("__line__")
        lines = entry.pop("__lines__")
        unknown = sorted(set(entry) - PROVIDER_KEYS)
        if unknown:
            raise ProvidersFileError(
                lines[unknown[0]], f"unknown provider field(s): {', '.join(unknown)}"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ProvidersFileError(line, "a provider needs a name")
        if name in names:
            raise ProvidersFileError(line, f"provider {name!r} appears twice")
        names.add(name)
        dialect_name = entry.get("dialect")
        if dialect_name not in dialects.DIALECTS:
            raise ProvidersFileError(
                lines.get("dialect", line),
                f"unknown dialect {dialect_name!r} (one of: {', '.join(dialects.DIALECTS)})",
            )
        dialect = dialects.DIALECTS[dialect_name]
        base_url = entry.get("base_url", dialect.default_base_url)
        try:
            validate_url(base_url)
        except ValidationError:
            raise ProvidersFileError(
                lines.get("base_url", line), f"base_url {base_url!r} is not an http(s) URL"
            ) from None
        key_env = entry.get("api_key_env", "")
        if key_env:
            _check_type(key_env, str, lines["api_key_env"], "api_key_env")
            key = _secret(key_env, lines["api_key_env"], environ)
        elif dialect.needs_key:
            raise ProvidersFileError(line, f"dialect {dialect_name} needs api_key_env")
        else:
            key = ""
        for timeout in ("connect_timeout", "read_timeout"):
            if timeout in entry:
                _check_type(entry[timeout], (int, float), lines[timeout], timeout)
        models = []
        for model in entry.get("models") or []:
            if not isinstance(model, dict):
                raise ProvidersFileError(line, "each model must be a mapping")
            model_line = model.pop("__line__")
            model_lines = model.pop("__lines__")
            unknown = sorted(set(model) - set(MODEL_FIELDS))
            if unknown:
                raise ProvidersFileError(
                    model_lines[unknown[0]], f"unknown model field(s): {', '.join(unknown)}"
                )
            for key_name, value in model.items():
                _check_type(value, MODEL_FIELDS[key_name], model_lines[key_name], key_name)
            model_id = model.get("id")
            if not model_id:
                raise ProvidersFileError(model_line, "a model needs an id")
            if model_id in model_ids:
                raise ProvidersFileError(
                    model_line,
                    f"model id {model_id!r} appears twice (first on line {model_ids[model_id]})",
                )
            model_ids[model_id] = model_line
            if model.get("api_key_env"):
                model["api_key"] = _secret(
                    model["api_key_env"], model_lines["api_key_env"], environ
                )
            models.append(model)
        plan.providers.append(
            {
                "name": name,
                "label": entry.get("label", ""),
                "dialect": dialect_name,
                "base_url": base_url,
                "api_key_env": key_env,
                "api_key": key,
                "connect_timeout": entry.get("connect_timeout"),
                "read_timeout": entry.get("read_timeout"),
                "enabled": entry.get("enabled", True),
                "models": models,
            }
        )
    taken = dict(
        ChatModel.objects.filter(model_id__in=model_ids)
        .exclude(provider__name__in=names)
        .values_list("model_id", "provider__name")
    )
    for model_id, other in taken.items():
        raise ProvidersFileError(
            model_ids[model_id], f"model id {model_id!r} already belongs to provider {other!r}"
        )
    return plan


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _upsert(instance: Any, values: dict[str, Any], key: str, result: LoadResult, label: str) -> Any:
    changed = instance.pk is None
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed = True
    if key:
        try:
            same = instance.api_key_encrypted and instance.api_key() == key
        except Exception:  # noqa: BLE001 - an undecryptable key is replaced
            same = False
        if not same:
            instance.set_api_key(key)
            changed = True
    if instance.pk is None:
        instance.save()
        result.created.append(label)
    elif changed:
        instance.save()
        result.updated.append(label)
    else:
        result.unchanged.append(label)
    return instance


def load(plan: _Plan) -> LoadResult:
    """Upsert the checked file in one transaction: all of it or nothing."""
    result = LoadResult()
    with transaction.atomic():
        for entry in plan.providers:
            provider = Provider.objects.filter(name=entry["name"]).first() or Provider(
                name=entry["name"]
            )
            values = {
                k: entry[k] for k in ("label", "dialect", "base_url", "api_key_env", "enabled")
            }
            values["connect_timeout"] = entry["connect_timeout"]
            values["read_timeout"] = entry["read_timeout"]
            provider = _upsert(
                provider, values, entry["api_key"], result, f"provider {entry['name']}"
            )
            for model in entry["models"]:
                row = ChatModel.objects.filter(model_id=model["id"]).first() or ChatModel(
                    model_id=model["id"]
                )
                values = {
                    "provider_id": provider.pk,
                    "upstream_id": model.get("upstream_id", ""),
                    "label": model.get("label", ""),
                    "context_window": model.get("context_window", 8192),
                    "max_output": model.get("max_output", 4096),
                    "reasoning": model.get("reasoning", False),
                    "reasoning_switch": model.get("reasoning_switch", False),
                    "web_search": model.get("web_search", False),
                    "vision": model.get("vision", False),
                    "temperature_min": float(model.get("temperature_min", 0.0)),
                    "temperature_max": float(
                        model.get(
                            "temperature_max", dialects.DIALECTS[entry["dialect"]].temperature_max
                        )
                    ),
                    "temperature_default": (
                        float(model["temperature_default"])
                        if model.get("temperature_default") is not None
                        else None
                    ),
                    "enabled": model.get("enabled", True),
                    "order": model.get("order", 0),
                    "is_default": model.get("default", False),
                }
                _upsert(row, values, model.get("api_key", ""), result, f"model {model['id']}")
    return result
