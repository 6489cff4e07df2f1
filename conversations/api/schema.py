"""The conversations API's limits in its OpenAPI schema, where serializers cannot state them.

A postprocessing hook (``SPECTACULAR_SETTINGS``): the models on offer (from settings), message and
system prompt lengths, cursor bounds, the refusal of a regenerate with nothing to regenerate (a
conversation's state, which no schema can state), and the shape of one server-sent event in the
``text/event-stream`` answers of sending and regenerating.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chatsite.api.schema import NOT_BLANK, describe_error_codes

SSE_EVENT = {
    "type": "object",
    "description": (
        "One server-sent event: `start` {user_message, assistant_message, notice?}, "
        "`reasoning` {content} (before the answer), `delta` {content}, `references` "
        "{references}, `title` {title} (a new conversation's generated title, just before "
        "`done`), then `done` {message} or `error` {code, detail, message}, which end every "
        "stream. `data` is compact JSON."
    ),
    "properties": {
        "event": {
            "type": "string",
            "enum": ["start", "reasoning", "delta", "references", "done", "error", "title"],
        },
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}

# Raised by conversations/replies.py when the conversation holds no message yet.
REGENERATE_CODES = {
    "nothing_to_regenerate": "There is no reply to regenerate (the conversation has no message)."
}


def _set(schema: dict[str, Any], component: str, field: str, **limits: Any) -> None:
    properties = schema["components"]["schemas"].get(component, {}).get("properties", {})
    if field in properties:
        properties[field].update(limits)


def postprocess(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    for component in ("ConversationInputRequest", "PatchedConversationInputRequest"):
        _set(result, component, "model", enum=list(settings.SPARK_MODELS))
        _set(result, component, "system_prompt", maxLength=settings.MAX_SYSTEM_PROMPT_CHARS)
    # A message must hold something besides whitespace (and no NUL), within MAX_MESSAGE_CHARS.
    _set(
        result,
        "MessageInputRequest",
        "content",
        minLength=1,
        maxLength=settings.MAX_MESSAGE_CHARS,
        pattern=NOT_BLANK,
    )
    bounds = {
        "after": {"minimum": 0},
        "before": {"minimum": 0},
        "limit": {"minimum": 1, "maximum": 200},
        "page": {"minimum": 1},
        "page_size": {"minimum": 1},
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in bounds:
                    parameter["schema"].update(bounds[parameter["name"]])
            if operation.get("operationId") == "conversations_regenerate_create":
                describe_error_codes(operation["responses"]["400"], REGENERATE_CODES)
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None:
                    stream["schema"] = SSE_EVENT
    return result
