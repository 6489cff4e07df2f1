"""Every dialect of docs/providers.md, through the real path: a provider row, the API, the reply
engine, the one OpenAI-compatible client, and the loopback stand-in speaking that dialect.

For each dialect: a streamed reply saved with usage, a reasoning reply (where the dialect has
one), the reasoning switch, each error class, an error inside the stream, a failing finish
reason, and a drop before ``[DONE]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conversations.models import ChatModel, Conversation, Message, Provider
from tests.factories import ConversationFactory, MessageFactory
from tests.support.api import parse_sse
from tests.upstream import ALL_DIALECTS, DEFAULT_REASONING, MultiDialectServer

pytestmark = pytest.mark.django_db

# The stand-in's "spark-x" is the product's spark dialect on /v2.
PRODUCT_DIALECT = {"spark-x": "spark"}
UPSTREAM_ID = {"spark": "lite", "spark-x": "spark-x"}
NO_KEY = {"ollama", "vllm"}  # local servers: no key configured at all
THINKING = [d for d in ALL_DIALECTS if d != "spark"]  # Spark v1 models do not reason
REPLY = "[[reply:alpha beta gamma delta]]"

# Our code for each error class; Spark keeps its own numeric codes (docs/spark-protocol.md).
EXPECTED_CODE = {
    "auth": {"upstream_auth"},
    "balance": {"upstream_quota_exhausted", "11200", "11201"},
    "rate_limit": {"upstream_rate_limited", "11202", "11203", "10007"},
    "moderation": {"upstream_moderated", "10013", "10019"},
    "context": {"upstream_context_too_long", "10907"},
    "unavailable": {"upstream_unavailable", "10012", "10110"},
}
# Classes a provider does not have (docs/providers.md, "Errors": none listed).
NOT_IN_DIALECT = {
    ("ollama", "balance"),
    ("ollama", "moderation"),
    ("vllm", "balance"),
    ("vllm", "rate_limit"),
    ("vllm", "moderation"),
}
# GLM's 1305 and Kimi's engine_overloaded_error say "overloaded, try later": the vendors list
# them with the rate limits, and so do we (same status, same advice to wait).
OVERLOAD_IS_RATE_LIMIT = {("glm", "unavailable"), ("kimi", "unavailable")}
ERROR_CASES = [
    pytest.param(d, c, id=f"{d}-{c}")
    for d in ALL_DIALECTS
    for c in EXPECTED_CODE
    if (d, c) not in NOT_IN_DIALECT
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MultiDialectServer]:
    server = MultiDialectServer().start()
    yield server
    server.stop()


@pytest.fixture
def chat(upstream, user, settings):
    """``chat(dialect, **model_fields)``: a conversation of ``user`` with a model of a provider
    of that dialect, pointed at the stand-in."""
    upstream.reset()
    settings.LLM_READ_TIMEOUT = 5.0
    settings.LLM_CONNECT_TIMEOUT = 2.0

    def make(dialect: str, **fields: object) -> Conversation:
        provider = Provider(
            name=dialect,
            dialect=PRODUCT_DIALECT.get(dialect, dialect),
            base_url=upstream.base_url(dialect),
        )
        if dialect not in NO_KEY:
            provider.set_api_key(f"sk-{dialect}-test")
        provider.save()
        fields.setdefault("reasoning", dialect in THINKING)
        model = ChatModel.objects.create(
            provider=provider,
            model_id=f"{dialect}-model",
            upstream_id=UPSTREAM_ID.get(dialect, "test-model"),
            **fields,
        )
        return ConversationFactory(user=user, model=model.model_id)

    yield make
    upstream.reset()


def send(api, conversation: Conversation, content: str, *, stream: bool = True):
    return api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, "stream": stream},
        format="json",
    )


def frames(response) -> list[tuple[str, dict]]:
    assert response.status_code == 200, response.content if not response.streaming else ""
    return parse_sse(b"".join(response.streaming_content))


def reply_of(conversation: Conversation) -> Message:
    return Message.objects.get(conversation=conversation, role="assistant")


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_a_streamed_reply_is_saved_with_usage(api, upstream, chat, dialect):
    conversation = chat(dialect, reasoning=False)

    events = frames(send(api, conversation, f"hi {REPLY}"))

    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start"
    assert kinds[-1] == "done"
    assert "".join(d["content"] for k, d in events if k == "delta") == "alpha beta gamma delta"
    message = reply_of(conversation)
    assert message.status == "complete"
    assert message.content == "alpha beta gamma delta"
    assert message.provider == dialect
    assert message.total_tokens
    assert message.total_tokens == message.prompt_tokens + message.completion_tokens
    assert events[-1][1]["message"]["usage"]["total_tokens"] == message.total_tokens
    request = upstream.requests[-1]
    assert request["dialect"] == dialect
    assert request["json"]["model"] == UPSTREAM_ID.get(dialect, "test-model")
    # Usage is asked for everywhere but Spark (providers-protocol.md §4).
    asks_usage = request["json"].get("stream_options") == {"include_usage": True}
    assert asks_usage is (PRODUCT_DIALECT.get(dialect, dialect) != "spark")
    if dialect in NO_KEY:
        assert request["authorization"] is None
    else:
        assert request["authorization"] == f"Bearer sk-{dialect}-test"


@pytest.mark.parametrize("dialect", THINKING)
def test_reasoning_streams_before_the_answer_and_is_stored_apart(api, chat, dialect):
    conversation = chat(dialect)

    events = frames(send(api, conversation, f"hi [[reasoning]] {REPLY}"))

    kinds = [kind for kind, _ in events]
    assert "reasoning" in kinds
    assert max(i for i, k in enumerate(kinds) if k == "reasoning") < kinds.index("delta")
    thought = "".join(d["content"] for k, d in events if k == "reasoning")
    assert thought == DEFAULT_REASONING
    message = reply_of(conversation)
    assert message.reasoning == DEFAULT_REASONING
    assert message.content == "alpha beta gamma delta"
    assert message.reasoning_ms is not None
    assert events[-1][1]["message"]["reasoning"] == DEFAULT_REASONING


@pytest.mark.parametrize("dialect", THINKING)
def test_a_reasoning_reply_without_streaming(api, chat, dialect):
    conversation = chat(dialect)

    response = send(api, conversation, f"hi [[reasoning]] {REPLY}", stream=False)

    assert response.status_code == 201, response.content
    reply = response.json()["assistant_message"]
    assert reply["content"] == "alpha beta gamma delta"
    if dialect == "qwen":
        # Open Qwen thinking models refuse non-streaming calls with thinking on: it is sent off.
        assert reply["reasoning"] == ""
    else:
        assert reply["reasoning"] == DEFAULT_REASONING


SWITCH = {
    "spark-x": ("thinking", {"type": "disabled"}),
    "deepseek": ("thinking", {"type": "disabled"}),
    "glm": ("thinking", {"type": "disabled"}),
    "kimi": ("thinking", {"type": "disabled"}),
    "doubao": ("thinking", {"type": "disabled"}),
    "qwen": ("enable_thinking", False),
    "qianfan": ("enable_thinking", False),
    "hunyuan": ("enable_thinking", False),
    "ollama": ("reasoning_effort", "none"),
    "vllm": ("chat_template_kwargs", {"enable_thinking": False}),
    "openai": ("reasoning_effort", "none"),
}


@pytest.mark.parametrize("dialect", THINKING)
def test_reasoning_switched_off_is_sent_in_the_dialects_words(api, upstream, chat, dialect):
    conversation = chat(dialect, reasoning_switch=True)
    patched = api.patch(
        f"/api/conversations/{conversation.pk}/", {"reasoning": False}, format="json"
    )
    assert patched.status_code == 200, patched.content

    events = frames(send(api, conversation, f"hi [[reasoning]] {REPLY}"))

    name, value = SWITCH[dialect]
    assert upstream.requests[-1]["json"][name] == value
    assert "reasoning" not in [kind for kind, _ in events]
    assert reply_of(conversation).reasoning == ""


@pytest.mark.parametrize(("dialect", "error_class"), ERROR_CASES)
@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
def test_each_error_class_is_classified_by_its_body(
    api, upstream, chat, dialect, error_class, stream
):
    conversation = chat(dialect)

    response = send(api, conversation, f"hi [[error:{error_class}]]", stream=stream)

    if stream:
        kind, data = frames(response)[-1]
        assert kind == "error"
        code = data["code"]
    else:
        assert response.status_code in (502, 503), response.content
        code = response.json()["code"]
    expected = EXPECTED_CODE[error_class]
    if (dialect, error_class) in OVERLOAD_IS_RATE_LIMIT:
        expected = {"upstream_rate_limited"}
    assert code in expected, (dialect, error_class, code)
    message = reply_of(conversation)
    assert message.status == "error"
    assert message.error_code == code
    assert message.error_detail
    # Nothing is retried, balance errors least of all: one request reached the provider.
    assert len([r for r in upstream.requests if r["dialect"] == dialect]) == 1


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_a_drop_before_done_is_a_failure_that_keeps_the_text(api, chat, dialect):
    conversation = chat(dialect)

    events = frames(send(api, conversation, f"hi [[drop]] {REPLY}"))

    kind, data = events[-1]
    assert kind == "error"
    assert data["code"] == "upstream_incomplete"
    message = reply_of(conversation)
    assert message.status == "error"
    assert message.content == "alpha beta "


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_an_error_inside_a_200_stream_ends_the_reply(api, chat, dialect):
    conversation = chat(dialect)

    events = frames(send(api, conversation, f"hi [[stream_error]] {REPLY}"))

    kind, data = events[-1]
    assert kind == "error"
    expected = "10014" if dialect in ("spark", "spark-x") else "upstream_unavailable"
    assert data["code"] == expected
    message = reply_of(conversation)
    assert message.status == "error"
    assert message.content == "alpha beta "


FINISH = {
    "sensitive": "upstream_moderated",
    "content_filter": "upstream_moderated",
    "network_error": "upstream_unavailable",
    "insufficient_system_resource": "upstream_unavailable",
}


@pytest.mark.parametrize("dialect", [d for d in ALL_DIALECTS if d not in ("spark", "spark-x")])
@pytest.mark.parametrize("reason", list(FINISH))
def test_a_failing_finish_reason_flags_the_partial_text(api, chat, dialect, reason):
    conversation = chat(dialect)

    events = frames(send(api, conversation, f"hi [[finish:{reason}]] {REPLY}"))

    kind, data = events[-1]
    assert kind == "error"
    assert data["code"] == FINISH[reason]
    message = reply_of(conversation)
    assert message.status == "error"
    assert message.content == "alpha beta "


def test_a_normal_finish_reason_is_a_complete_reply(api, chat):
    conversation = chat("deepseek")

    events = frames(send(api, conversation, f"hi [[finish:length]] {REPLY}"))

    assert events[-1][0] == "done"


def test_spark_web_search_references_are_shown_and_saved(api, upstream, chat):
    conversation = chat("spark", web_search=True)
    patched = api.patch(
        f"/api/conversations/{conversation.pk}/", {"web_search": True}, format="json"
    )
    assert patched.status_code == 200, patched.content

    events = frames(send(api, conversation, f"hi [[search]] {REPLY}"))

    tools = upstream.requests[-1]["json"]["tools"]
    assert tools[0]["type"] == "web_search"
    assert tools[0]["web_search"]["enable"] is True
    referenced = [d["references"] for k, d in events if k == "references"]
    assert referenced
    assert all(ref["url"].startswith("https://") and ref["title"] for ref in referenced[-1])
    message = reply_of(conversation)
    assert message.references == referenced[-1]
    assert message.content == "alpha beta gamma delta"  # the search results are not answer text
    assert events[-1][1]["message"]["references"] == referenced[-1]


def test_web_search_off_is_sent_to_spark(api, upstream, chat):
    conversation = chat("spark", web_search=True)
    api.patch(f"/api/conversations/{conversation.pk}/", {"web_search": False}, format="json")

    frames(send(api, conversation, f"hi [[search]] {REPLY}"))

    assert upstream.requests[-1]["json"]["tools"][0]["web_search"]["enable"] is False
    assert reply_of(conversation).references == []


def _history_with_reasoning(conversation: Conversation) -> None:
    MessageFactory(conversation=conversation, seq=1, role="user", content="first question")
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="first answer",
        reasoning="earlier thoughts",
    )


@pytest.mark.parametrize("dialect", ["deepseek", "qwen", "glm", "spark-x"])
def test_reasoning_is_not_sent_back_upstream(api, upstream, chat, dialect):
    conversation = chat(dialect)
    _history_with_reasoning(conversation)

    frames(send(api, conversation, f"second question {REPLY}"))

    sent = upstream.requests[-1]["json"]["messages"]
    assert [m["content"] for m in sent] == ["first question", "first answer", sent[-1]["content"]]
    assert "earlier thoughts" not in str(sent)


def test_kimi_gets_its_reasoning_back(api, upstream, chat):
    conversation = chat("kimi")
    _history_with_reasoning(conversation)

    frames(send(api, conversation, f"second question {REPLY}"))

    sent = upstream.requests[-1]["json"]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "first answer",
        "reasoning_content": "earlier thoughts",
    }


def test_a_wrong_key_fails_that_provider_and_not_the_others(api, upstream, chat):
    upstream.passwords = {"deepseek": {"*": "sk-the-right-one"}}
    broken = chat("deepseek")
    working = chat("glm")

    assert frames(send(api, broken, f"hi {REPLY}"))[-1][1]["code"] == "upstream_auth"
    assert frames(send(api, working, f"hi {REPLY}"))[-1][0] == "done"


def test_the_log_line_names_the_provider_and_its_own_code(api, chat, caplog):
    conversation = chat("qwen")

    with caplog.at_level(logging.INFO, logger="chatsite.replies"):
        frames(send(api, conversation, "hi [[error:balance]]"))

    fields = [r.reply for r in caplog.records if r.name == "chatsite.replies"][-1]
    assert fields["provider"] == "qwen"
    assert fields["code"] == "upstream_quota_exhausted"
    assert fields["upstream_code"] == "Arrearage"
    assert "sk-qwen-test" not in caplog.text


def test_spark_x_from_the_environment_alone_reasons_on_v2(api, user, settings):
    """``SPARK_MODELS`` with spark-x and a key: the newcomer's path, no provider row."""
    from tests.upstream import SparkXDialect, UpstreamServer

    server = UpstreamServer(dialect=SparkXDialect()).start()
    try:
        assert server.url.endswith("/v2")
        settings.SPARK_BASE_URL = server.url.removesuffix("/v2") + "/v1"
        settings.SPARK_MODELS = ["lite", "spark-x"]
        settings.SPARK_API_PASSWORD = "key:secret"
        conversation = ConversationFactory(user=user, model="spark-x")

        events = frames(send(api, conversation, f"hi [[reasoning]] {REPLY}"))

        assert server.requests[-1]["path"] == "/v2/chat/completions"
        assert "stream_options" not in server.requests[-1]["json"]
        assert [k for k, _ in events].count("reasoning") >= 1
        message = reply_of(conversation)
        assert message.reasoning == DEFAULT_REASONING
        assert message.content == "alpha beta gamma delta"
        assert message.total_tokens
    finally:
        server.stop()
