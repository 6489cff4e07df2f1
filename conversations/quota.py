"""Quotas on the send path: hold a reply's estimate against its owner's limits inside the turn's
transaction, refuse (429 ``quota_exceeded``) or lower the reply's maximum when it does not fit,
and charge the real usage when the reply ends (docs/governance.md, "Quotas").

The hold needs no write of its own: it is two columns of the reply row the turn already inserts,
and the turn's transaction serialises one user's sends (PostgreSQL locks the user's row, SQLite
every write), so simultaneous sends see each other's holds and cannot overspend together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chatsite.errors import AppError
from governance import periods as calendar
from governance.models import ModelPrice
from governance.policy import EffectivePolicy
from governance.pricing import cost

from .selectors import Used

# What the refusal names, in the request's language (the API and the page show it as is).
LIMIT_NAMES = {
    ("day", "messages"): gettext_lazy("daily message limit"),
    ("day", "tokens"): gettext_lazy("daily token limit"),
    ("day", "cost_cny"): gettext_lazy("daily spending limit"),
    ("week", "messages"): gettext_lazy("weekly message limit"),
    ("week", "tokens"): gettext_lazy("weekly token limit"),
    ("week", "cost_cny"): gettext_lazy("weekly spending limit"),
    ("month", "messages"): gettext_lazy("monthly message limit"),
    ("month", "tokens"): gettext_lazy("monthly token limit"),
    ("month", "cost_cny"): gettext_lazy("monthly spending limit"),
}

# A reply is not worth starting with room for fewer tokens than this.
MIN_REPLY_TOKENS = 256


class QuotaExceeded(AppError):
    status_code = 429
    code = "quota_exceeded"
    default_detail = "Your usage limit is reached."

    def __init__(
        self, *, period: calendar.Period, kind: str, limit: Any, used: Any, now: datetime
    ) -> None:
        remaining = max(limit - used, 0)
        super().__init__(
            _("Your %(limit)s is reached; it resets at %(time)s.")
            % {
                "limit": LIMIT_NAMES[(period.name, kind)],
                "time": period.resets_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
            },
            extra={
                "period": period.name,
                "kind": kind,
                "limit": _json(limit),
                "used": _json(used),
                "remaining": _json(remaining),
                "resets_at": period.resets_at.isoformat(),
            },
        )
        self.retry_after = max(int((period.resets_at - now).total_seconds()), 1)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def _json(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True, slots=True)
class Hold:
    tokens: int
    cost_cny: Decimal | None
    max_tokens: int  # the reply's maximum, lowered to what remains when it had to be


def hold(
    policy: EffectivePolicy,
    used: dict[str, Used],
    periods: list[calendar.Period],
    *,
    prompt_tokens: int,
    max_output: int,
    price: ModelPrice | None,
    now: datetime,
) -> Hold:
    """The reply's hold, or ``QuotaExceeded`` for the first limit it cannot fit in."""
    allowed = max_output
    for period in periods:
        spent = used[period.name]
        limit = policy.limits[f"{period.name}_messages"]
        if limit is not None and spent.messages + 1 > limit:
            raise QuotaExceeded(
                period=period, kind="messages", limit=limit, used=spent.messages, now=now
            )
        limit = policy.limits[f"{period.name}_tokens"]
        if limit is not None:
            room = int(limit) - spent.tokens - prompt_tokens
            if room < MIN_REPLY_TOKENS:
                raise QuotaExceeded(
                    period=period, kind="tokens", limit=limit, used=spent.tokens, now=now
                )
            allowed = min(allowed, room)
        limit = policy.limits[f"{period.name}_cost_cny"]
        if limit is not None and price is not None:
            # An unpriced model's cost is unknown: only its tokens count (admin warns about it).
            prompt_cost = cost(price, prompt_tokens=prompt_tokens, completion_tokens=0) or 0
            left = Decimal(limit) - spent.cost_cny - prompt_cost
            per_token = price.output_per_million / Decimal(1_000_000)
            room = math.floor(left / per_token) if per_token > 0 else allowed
            if left <= 0 or room < MIN_REPLY_TOKENS:
                raise QuotaExceeded(
                    period=period, kind="cost_cny", limit=limit, used=spent.cost_cny, now=now
                )
            allowed = min(allowed, room)
    return Hold(
        tokens=prompt_tokens + allowed,
        cost_cny=cost(price, prompt_tokens=prompt_tokens, completion_tokens=allowed),
        max_tokens=allowed,
    )
