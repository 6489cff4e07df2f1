"""Branches (docs/architecture.md, "Branches"): edit and regenerate add siblings, and the user
moves between them.

Messages form a tree through ``Message.parent``. The **active branch** is the path from a root to
the leaf the user last chose, and it is stored as the messages whose ``replaced`` flag is false:
every listing, count and the history sent to the model read ``replaced=False`` in ``seq`` order,
so they stay one indexed query whatever the number of branches. Moving to another branch flips
the flag on the messages that leave and join the path, in the caller's transaction. Nothing else
about a message ever changes: review needs the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from accounts.models import User
from chatsite.errors import AppError, Conflict, NotFound

from .models import Conversation, Message


@dataclass(frozen=True, slots=True)
class Node:
    id: UUID
    parent_id: UUID | None
    seq: int
    role: str
    replaced: bool


def tree(conversation_id: Any) -> dict[UUID, Node]:
    """Every message of the conversation as a node, in one query (ids and flags only)."""
    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("id", "parent_id", "seq", "role", "replaced")
    )
    return {row[0]: Node(*row) for row in rows}


def path_to(nodes: dict[UUID, Node], leaf_id: UUID) -> list[UUID]:
    """The ids from the root to ``leaf_id``, in order (a cycle, which the schema cannot make,
    would stop the walk rather than loop)."""
    path: list[UUID] = []
    seen: set[UUID] = set()
    current: UUID | None = leaf_id
    while current is not None and current not in seen and current in nodes:
        seen.add(current)
        path.append(current)
        current = nodes[current].parent_id
    path.reverse()
    return path


def newest_leaf(nodes: dict[UUID, Node], message_id: UUID) -> UUID:
    """The most recent message at or under ``message_id``: where moving to that sibling leads
    (children always come after their parent, so the newest descendant is a leaf)."""
    children: dict[UUID | None, list[Node]] = {}
    for node in nodes.values():
        children.setdefault(node.parent_id, []).append(node)
    newest = nodes[message_id]
    stack = [message_id]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child.seq > newest.seq:
                newest = child
            stack.append(child.id)
    return newest.id


def activate(conversation_id: Any, leaf_id: UUID, nodes: dict[UUID, Node] | None = None) -> None:
    """Make the path to ``leaf_id`` the active branch. Call inside the turn's transaction."""
    nodes = nodes if nodes is not None else tree(conversation_id)
    path = set(path_to(nodes, leaf_id))
    leaving = [n.id for n in nodes.values() if not n.replaced and n.id not in path]
    joining = [pk for pk in path if nodes[pk].replaced]
    if leaving:
        Message.objects.filter(pk__in=leaving).update(replaced=True)
    if joining:
        Message.objects.filter(pk__in=joining).update(replaced=False)


def message_in(conversation: Conversation, message_id: Any, *, field: str) -> Message:
    """A message named by a request (``field``): 404 when it does not exist or is another user's,
    400 ``invalid_parent`` when it is in another conversation of the same user."""
    try:
        message = Message.objects.select_related("conversation").get(pk=message_id)
    except (Message.DoesNotExist, ValidationError, ValueError):
        raise NotFound("Message not found.") from None
    if message.conversation_id != conversation.pk:
        if message.conversation.user_id != conversation.user_id:
            raise NotFound("Message not found.")
        raise AppError(
            f"{field} must be a message of this conversation.",
            code="invalid_parent",
            extra={"field": field},
        )
    return message


def siblings(messages: Iterable[Message]) -> dict[UUID, list[UUID]]:
    """For each message, the ids of it and its siblings in order (one query for a page)."""
    messages = list(messages)
    if not messages:
        return {}
    conversation_id = messages[0].conversation_id
    parents = {m.parent_id for m in messages}
    rows = Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    if None in parents:
        rows = rows.filter(parent_id__in=parents - {None}) | rows.filter(parent__isnull=True)
    else:
        rows = rows.filter(parent_id__in=parents)
    by_parent: dict[UUID | None, list[UUID]] = {}
    for pk, parent_id in rows.values_list("id", "parent_id"):
        by_parent.setdefault(parent_id, []).append(pk)
    return {m.id: by_parent.get(m.parent_id, [m.id]) for m in messages}


def branch_select(*, conversation: Conversation, message_id: Any) -> tuple[UUID, int]:
    """Show the branch of ``message_id`` (``PUT …/branch/``): the active branch becomes the path
    to the newest message at or under it, and stays so across reloads. Returns the new leaf and
    the active branch's length. Refused with 409 while a reply is being written (the reply
    belongs to the branch it was asked on)."""
    target = message_in(conversation, message_id, field="message")
    with transaction.atomic():
        if connection.features.has_select_for_update:
            # The owner's row, as a turn locks it: no turn is saved while the branch moves.
            User.objects.select_for_update().filter(pk=conversation.user_id).values_list(
                "pk"
            ).first()
        nodes = tree(conversation.pk)
        if Message.objects.filter(
            conversation_id=conversation.pk, status=Message.Status.STREAMING
        ).exists():
            raise Conflict(
                "A reply is being written in this conversation: switch branches once it is done.",
                code="reply_in_progress",
            )
        leaf = newest_leaf(nodes, target.pk)
        activate(conversation.pk, leaf, nodes)
    return leaf, len(path_to(nodes, leaf))
