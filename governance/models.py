"""What each user may use and spend: the site's default policy, group policies, a user's own
override, and the prices per model in CNY (docs/governance.md).

Nothing here knows about conversations: the reply engine asks ``policy.py`` for a user's limits
and ``pricing.py`` for a reply's cost, and counts what was used from its own messages.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models

PERIODS = ("day", "week", "month")
KINDS = ("messages", "tokens", "cost_cny")


def _decimal(value: object) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


class Limits(models.Model):
    """Limits per calendar day, week and month: messages, tokens and cost in CNY. Null: no limit
    (for an override: inherit)."""

    day_messages = models.PositiveIntegerField(null=True, blank=True)
    day_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    day_cost_cny = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    week_messages = models.PositiveIntegerField(null=True, blank=True)
    week_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    week_cost_cny = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    month_messages = models.PositiveIntegerField(null=True, blank=True)
    month_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    month_cost_cny = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    updated_at = models.DateTimeField(auto_now=True)

    LIMIT_FIELDS = tuple(f"{period}_{kind}" for period in PERIODS for kind in KINDS)

    class Meta:
        abstract = True

    def limits(self) -> dict[str, int | Decimal | None]:
        return {name: getattr(self, name) for name in self.LIMIT_FIELDS}


class SitePolicy(Limits):
    """The limits of users without a group (one row; its first values come from settings)."""

    class Meta:
        verbose_name = "site default policy"
        verbose_name_plural = "site default policy"

    def __str__(self) -> str:
        return "Site default"

    @classmethod
    def get(cls) -> SitePolicy:
        policy, _ = cls.objects.get_or_create(
            pk=1,
            defaults={
                "day_messages": getattr(settings, "QUOTA_DAILY_MESSAGES", None),
                "day_tokens": getattr(settings, "QUOTA_DAILY_TOKENS", None),
                "month_cost_cny": _decimal(getattr(settings, "QUOTA_MONTHLY_COST_CNY", None)),
            },
        )
        return policy


class GroupPolicy(Limits):
    """A group's models and limits."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="policy")
    # Model ids its members may use; empty: every model on offer.
    allowed_models = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "group policy"
        verbose_name_plural = "group policies"

    def __str__(self) -> str:
        return f"Policy of {self.group}"


class UserPolicy(Limits):
    """A user's own override: each limit set here wins over the group's (null: inherit)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="policy"
    )
    # Model ids this user may use, replacing the group's; empty: the group's.
    allowed_models = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "user override"

    def __str__(self) -> str:
        return f"Override for {self.user}"


class ModelPrice(models.Model):
    """A model's price in CNY per million tokens from ``effective_from`` on. A new price is a new
    row: replies keep the cost at the price in force when they were made."""

    model_id = models.CharField("model", max_length=64, db_index=True)
    input_per_million = models.DecimalField(
        "input (CNY / 1M tokens)",
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(0)],
    )
    output_per_million = models.DecimalField(
        "output (CNY / 1M tokens)",
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(0)],
    )
    cached_input_per_million = models.DecimalField(
        "cached input (CNY / 1M tokens)",
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_id", "effective_from"], name="price_model_effective_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id} from {self.effective_from:%Y-%m-%d}"


class PolicyChange(models.Model):
    """Append-only record of a change to a policy, a price or a user's groups by staff."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.CharField(max_length=200)
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.target} at {self.at:%Y-%m-%d %H:%M}"
