"""A reply's cost in CNY at the price in force when it was made (docs/governance.md)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save

from .models import ModelPrice

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.000001")  # costs are kept to a millionth of a yuan


def cost(
    price: ModelPrice | None, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> Decimal | None:
    """None for an unpriced model: its tokens still count, its cost is unknown."""
    if price is None:
        return None
    cached = min(cached_tokens, prompt_tokens) if price.cached_input_per_million is not None else 0
    total = (
        Decimal(prompt_tokens - cached) * price.input_per_million
        + Decimal(cached) * (price.cached_input_per_million or Decimal(0))
        + Decimal(completion_tokens) * price.output_per_million
    ) / MILLION
    return total.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP)


# -- prices in memory ----------------------------------------------------------------------------
# The send path and every reply's final write read the price in force; prices change rarely, so
# they are kept in memory and re-read when the table changed (checked at most every
# POLICY_REFRESH_SECONDS, or at once in this process through the signals below).

_lock = threading.Lock()
_state: dict[str, Any] = {"prices": None, "version": None, "checked": 0.0}


def _version() -> tuple[object, ...]:
    row = ModelPrice.objects.aggregate(n=Count("pk"), changed=Max("updated_at"))
    return (row["n"], row["changed"])


def _prices() -> dict[str, list[ModelPrice]]:
    now = time.monotonic()
    prices = _state["prices"]
    if prices is not None and now - _state["checked"] < settings.POLICY_REFRESH_SECONDS:
        return prices
    version = _version()
    if prices is None or version != _state["version"]:
        prices = {}
        for price in ModelPrice.objects.order_by("model_id", "-effective_from"):
            prices.setdefault(price.model_id, []).append(price)
    with _lock:
        _state.update(prices=prices, version=version, checked=now)
    return prices


def cached_price_in_force(model_id: str, at: datetime) -> ModelPrice | None:
    for price in _prices().get(model_id, ()):
        if price.effective_from <= at:
            return price
    return None


def invalidate(**_: Any) -> None:
    with _lock:
        _state["prices"] = None


post_save.connect(invalidate, sender=ModelPrice, dispatch_uid="prices-save")
post_delete.connect(invalidate, sender=ModelPrice, dispatch_uid="prices-delete")
setting_changed.connect(invalidate, dispatch_uid="prices-settings")
