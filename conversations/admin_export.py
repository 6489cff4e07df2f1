"""Export of the conversations matching the admin's current filters (docs/review.md, "Export by
filter"): the admin URLs below, wired into ``ConversationAdmin.get_urls``."""

from __future__ import annotations

from typing import Any


def urls(model_admin: Any) -> list[Any]:
    return []
