"""Providers and models kept by staff: the catalog, the write-only encrypted key, the models API,
conversation parameters, and a reply through a provider added at run time.

docs/providers.md. The dialect-by-dialect wire behaviour is in tests/conversations/llm/.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core import checks

from conversations import catalog
from conversations.models import ChatModel, Conversation, Message, Provider
from tests.conftest import SPARK_KEY
from tests.factories import ConversationFactory, MessageFactory
from tests.support.api import assert_json_error, parse_sse

pytestmark = pytest.mark.django_db

REPLY = "[[reply:alpha beta gamma delta]]"


def add_provider(
    url: str,
    *,
    name: str = "acme",
    dialect: str = "openai",
    key: str = SPARK_KEY,
    model_id: str = "acme-chat",
    upstream_id: str = "lite",
    **model: object,
):
    provider = Provider(name=name, label=name.title(), dialect=dialect, base_url=url)
    provider.set_api_key(key)
    provider.save()
    row = ChatModel.objects.create(
        provider=provider, model_id=model_id, upstream_id=upstream_id, label="Acme Chat", **model
    )
    return provider, row


def messages_url(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}/messages/"


# --- the catalog and the models API -------------------------------------------------------------


def test_the_environment_spark_models_are_listed_with_their_capabilities(api, spark):
    response = api.get("/api/models/")

    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()}
    assert list(models)[:2] == ["lite", "generalv3"]
    lite = models["lite"]
    assert lite["provider"] == "spark"
    assert lite["provider_label"] == "iFlytek Spark"
    assert lite["dialect"] == "spark"
    assert lite["max_output"] == lite["max_tokens"] == 4096
    assert lite["configured"] is True
    assert lite["default"] is True
    assert lite["capabilities"] == {
        "reasoning": False,
        "reasoning_switch": False,
        "web_search": False,
        "vision": False,
        "temperature": {"min": 0.0, "max": 2.0, "default": None},
    }
    assert models["generalv3.5"]["capabilities"]["web_search"] is True


def test_a_provider_added_in_the_database_is_offered_at_once_and_chats(api, user, spark):
    add_provider(spark.url, reasoning=True, context_window=16000, max_output=2000)

    listed = {m["id"]: m for m in api.get("/api/models/").json()}
    assert listed["acme-chat"]["provider"] == "acme"
    assert listed["acme-chat"]["provider_label"] == "Acme"
    assert listed["acme-chat"]["dialect"] == "openai"
    assert listed["acme-chat"]["context_window"] == 16000
    assert listed["acme-chat"]["capabilities"]["reasoning"] is True
    assert listed["acme-chat"]["configured"] is True

    created = api.post("/api/conversations/", {"model": "acme-chat"}, format="json")
    assert created.status_code == 201, created.content
    conversation = Conversation.objects.get(pk=created.json()["id"])
    response = api.post(messages_url(conversation), {"content": f"hi {REPLY}"}, format="json")

    assert response.status_code == 201, response.content
    reply = response.json()["assistant_message"]
    assert reply["content"] == "alpha beta gamma delta"
    assert reply["provider"] == "acme"
    assert reply["model"] == "acme-chat"
    # The upstream id is what the provider got; the generic dialect asks for usage.
    sent = spark.requests[-1]["json"]
    assert sent["model"] == "lite"
    assert Message.objects.get(pk=reply["id"]).provider == "acme"


def test_a_disabled_provider_or_model_is_not_offered(api, spark):
    provider, row = add_provider(spark.url)
    row.enabled = False
    row.save()
    assert "acme-chat" not in {m["id"] for m in api.get("/api/models/").json()}
    row.enabled = True
    row.save()
    provider.enabled = False
    provider.save()
    assert "acme-chat" not in {m["id"] for m in api.get("/api/models/").json()}
    response = api.post("/api/conversations/", {"model": "acme-chat"}, format="json")
    assert_json_error(response, 400, "unknown_model")


def test_a_default_model_in_the_database_wins(api, spark):
    add_provider(spark.url, is_default=True)

    created = api.post("/api/conversations/", {}, format="json")
    assert created.json()["model"] == "acme-chat"
    listed = {m["id"]: m["default"] for m in api.get("/api/models/").json()}
    assert listed["acme-chat"] is True
    assert listed["lite"] is False


def test_another_workers_change_is_seen_after_the_refresh_interval(spark, settings):
    settings.CATALOG_REFRESH_SECONDS = 3600
    assert "acme-chat" not in catalog.current().models
    # A change made elsewhere sends no signal here: simulate by writing with the signal off.
    provider = Provider(name="acme", dialect="openai", base_url=spark.url)
    Provider.objects.bulk_create([provider])
    provider = Provider.objects.get(name="acme")
    ChatModel.objects.bulk_create([ChatModel(provider=provider, model_id="acme-chat")])
    assert "acme-chat" not in catalog.current().models  # within the interval: the old catalog

    settings.CATALOG_REFRESH_SECONDS = 0  # (sends setting_changed, which rebuilds anyway)
    assert "acme-chat" in catalog.current().models


def test_the_catalog_is_read_from_memory_between_refreshes(
    spark, settings, django_assert_num_queries
):
    settings.CATALOG_REFRESH_SECONDS = 3600
    catalog.current()
    with django_assert_num_queries(0):
        catalog.current()
        catalog.provider_for("lite")


def test_per_model_spark_passwords_from_the_environment(spark, settings):
    from conversations.llm.base import ChatMessage

    spark.passwords = {"*": SPARK_KEY, "max-32k": "max:secret"}
    settings.SPARK_API_PASSWORDS = {"max-32k": "max:secret", "lite": ""}

    ask = [ChatMessage("user", "hi")]
    catalog.provider_for("max-32k").complete(model="max-32k", messages=ask)
    assert spark.requests[-1]["authorization"] == "Bearer max:secret"
    catalog.provider_for("lite").complete(model="lite", messages=ask)
    assert spark.requests[-1]["authorization"] == f"Bearer {SPARK_KEY}"


def test_one_client_and_session_per_provider_configuration(spark, settings):
    first = catalog.provider_for("lite")

    assert catalog.provider_for("generalv3") is first
    settings.LLM_READ_TIMEOUT = 7.0
    assert catalog.provider_for("lite") is not first
    assert catalog.provider_for("lite").timeout == (2.0, 7.0)


def test_spark_x_is_served_from_v2(spark, settings):
    settings.SPARK_MODELS = ["lite", "spark-x"]
    settings.SPARK_X_BASE_URL = "http://127.0.0.1:9/v2"

    assert catalog.provider_for("spark-x").base_url == "http://127.0.0.1:9/v2"
    assert catalog.provider_for("lite").base_url == spark.url
    settings.SPARK_X_BASE_URL = ""  # derived from SPARK_BASE_URL, as it is when it changes
    assert catalog.provider_for("spark-x").base_url == spark.url.removesuffix("/v1") + "/v2"
    info = catalog.current().model("spark-x")
    assert info.reasoning
    assert info.reasoning_switch
    assert info.max_tokens == 65535


# --- the key: write-only, encrypted, checked at start-up ----------------------------------------


def test_the_key_is_stored_encrypted(spark):
    provider, _ = add_provider(spark.url, key="sk-very-secret-value")

    stored = Provider.objects.values_list("api_key_encrypted", flat=True).get(pk=provider.pk)
    assert "sk-very-secret-value" not in stored
    assert Provider.objects.get(pk=provider.pk).api_key() == "sk-very-secret-value"


def test_a_wrong_encryption_key_is_a_start_up_error_and_fails_only_that_provider(
    api, user, spark, settings
):
    add_provider(spark.url, key="sk-very-secret-value")
    settings.ENCRYPTION_KEY = [Fernet.generate_key().decode()]

    errors = [e for e in checks.run_checks(tags=["secrets"]) if e.is_serious()]
    assert [e.id for e in errors] == ["chatsite.E102"]
    assert "provider 'acme'" in errors[0].msg
    assert "sk-very-secret-value" not in errors[0].msg

    # Serving anyway: that provider's replies fail clearly, the others keep working.
    conversation = ConversationFactory(user=user, model="acme-chat")
    response = api.post(messages_url(conversation), {"content": "hi"}, format="json")
    assert_json_error(response, 503, "provider_key_unreadable")
    assert not conversation.messages.exists()
    other = ConversationFactory(user=user, model="lite")
    assert (
        api.post(messages_url(other), {"content": f"hi {REPLY}"}, format="json").status_code == 201
    )


def test_a_malformed_encryption_key_is_a_start_up_error(settings):
    settings.ENCRYPTION_KEY = ["not-a-fernet-key"]

    errors = [e for e in checks.run_checks(tags=["secrets"]) if e.is_serious()]
    assert [e.id for e in errors] == ["chatsite.E101"]
    assert "Fernet" in errors[0].msg


def test_rotating_the_encryption_key_keeps_old_keys_readable(spark, settings):
    old = settings.ENCRYPTION_KEY[0]
    provider, _ = add_provider(spark.url, key="sk-rotated")
    settings.ENCRYPTION_KEY = [Fernet.generate_key().decode(), old]

    assert Provider.objects.get(pk=provider.pk).api_key() == "sk-rotated"
    assert [e for e in checks.run_checks(tags=["secrets"]) if e.is_serious()] == []


def test_a_provider_without_a_key_is_listed_as_not_configured(api, spark):
    add_provider(spark.url, key="")

    listed = {m["id"]: m for m in api.get("/api/models/").json()}
    assert listed["acme-chat"]["configured"] is False


def test_ollama_needs_no_key(api, spark):
    add_provider(spark.url, dialect="ollama", key="")

    listed = {m["id"]: m for m in api.get("/api/models/").json()}
    assert listed["acme-chat"]["configured"] is True


# --- conversation parameters -------------------------------------------------------------------


def test_parameters_are_saved_and_sent_in_the_dialects_words(api, user, spark):
    add_provider(
        spark.url, dialect="deepseek", reasoning=True, reasoning_switch=True, max_output=2000
    )
    conversation = ConversationFactory(user=user, model="acme-chat")

    response = api.patch(
        f"/api/conversations/{conversation.pk}/",
        {"temperature": 0.3, "max_tokens": 500, "reasoning": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["temperature"], body["max_tokens"], body["reasoning"], body["web_search"]) == (
        0.3,
        500,
        False,
        None,
    )
    api.post(messages_url(conversation), {"content": f"hi {REPLY}"}, format="json")
    sent = spark.requests[-1]["json"]
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 500
    assert sent["thinking"] == {"type": "disabled"}


def test_null_parameters_send_nothing(api, user, spark):
    conversation = ConversationFactory(user=user, model="lite")

    api.post(messages_url(conversation), {"content": f"hi {REPLY}"}, format="json")

    sent = spark.requests[-1]["json"]
    for name in ("temperature", "max_tokens", "thinking", "tools", "stream_options"):
        assert name not in sent


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({"temperature": 1.5}, "temperature", {"min": 0.0, "max": 1.0}),
        ({"max_tokens": 5000}, "max_tokens", {"min": 1, "max": 2000}),
        ({"reasoning": True}, "reasoning", {"values": [None]}),
        ({"web_search": True}, "web_search", {"values": [None]}),
    ],
)
def test_a_parameter_the_model_cannot_take_is_a_400_with_the_allowed_range(
    api, user, spark, body, field, allowed
):
    add_provider(spark.url, dialect="glm", max_output=2000, temperature_max=1.0)
    conversation = ConversationFactory(user=user, model="acme-chat")

    response = api.patch(f"/api/conversations/{conversation.pk}/", body, format="json")

    data = assert_json_error(response, 400, "invalid_parameter")
    assert data["field"] == field
    assert data["allowed"] == allowed
    conversation.refresh_from_db()
    assert getattr(conversation, field) is None


@pytest.mark.parametrize("body", [{"temperature": "0.5"}, {"max_tokens": 1.5}, {"reasoning": 1}])
def test_a_parameter_of_the_wrong_type_is_a_400(api, user, spark, body):
    conversation = ConversationFactory(user=user, model="lite")

    response = api.patch(f"/api/conversations/{conversation.pk}/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_changing_the_model_drops_parameters_the_new_one_cannot_take(api, user, spark):
    add_provider(spark.url, dialect="deepseek", reasoning=True, reasoning_switch=True)
    conversation = ConversationFactory(user=user, model="acme-chat")
    api.patch(
        f"/api/conversations/{conversation.pk}/",
        {"reasoning": False, "temperature": 1.8},
        format="json",
    )

    response = api.patch(f"/api/conversations/{conversation.pk}/", {"model": "lite"}, format="json")

    assert response.status_code == 200
    assert response.json()["reasoning"] is None  # Spark Lite cannot switch reasoning
    assert response.json()["temperature"] == 1.8  # within Spark's range


def test_switching_provider_mid_conversation_sends_the_whole_history(api, user, spark):
    add_provider(spark.url, dialect="openai")
    conversation = ConversationFactory(user=user, model="lite")
    MessageFactory(conversation=conversation, seq=1, role="user", content="first question")
    MessageFactory(conversation=conversation, seq=2, role="assistant", content="first answer")

    api.patch(f"/api/conversations/{conversation.pk}/", {"model": "acme-chat"}, format="json")
    response = api.post(messages_url(conversation), {"content": "second question"}, format="json")

    assert response.status_code == 201, response.content
    sent = spark.requests[-1]
    assert sent["json"]["model"] == "lite"  # acme-chat's upstream id
    assert [(m["role"], m["content"]) for m in sent["json"]["messages"]] == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second question"),
    ]
    assert response.json()["assistant_message"]["provider"] == "acme"


def test_a_provider_that_cannot_be_reached_fails_one_reply_and_not_the_others(api, user, spark):
    add_provider("http://127.0.0.1:9/v1")
    broken = ConversationFactory(user=user, model="acme-chat")
    working = ConversationFactory(user=user, model="lite")

    failed = api.post(messages_url(broken), {"content": "hi", "stream": True}, format="json")
    frames = parse_sse(b"".join(failed.streaming_content))
    assert frames[-1][0] == "error"
    assert frames[-1][1]["code"] == "upstream_unreachable"
    assert Message.objects.get(conversation=broken, role="assistant").status == "error"

    ok = api.post(messages_url(working), {"content": f"hi {REPLY}"}, format="json")
    assert ok.status_code == 201
