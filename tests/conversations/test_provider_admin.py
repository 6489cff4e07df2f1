"""Staff add and edit providers and models in Django admin; the key is write-only.

docs/providers.md, "Adding a provider".
"""

from __future__ import annotations

import pytest

from conversations.models import ChatModel, Conversation, Provider
from tests.conftest import SPARK_KEY
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-typed-secret-0123456789"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def provider_form(url: str, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "deepseek",
        "label": "DeepSeek",
        "dialect": "deepseek",
        "base_url": url,
        "api_key": SECRET,
        "connect_timeout": "",
        "read_timeout": "",
        "enabled": "on",
        # the models inline
        "models-TOTAL_FORMS": "1",
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
        "models-0-model_id": "deepseek-v4-flash",
        "models-0-upstream_id": "lite",
        "models-0-label": "DeepSeek V4 Flash",
        "models-0-context_window": "1000000",
        "models-0-max_output": "8192",
        "models-0-reasoning": "on",
        "models-0-enabled": "on",
        "models-0-order": "0",
    }
    data.update(overrides)
    return data


def test_staff_add_a_provider_with_a_model_and_a_user_chats_with_it_at_once(
    admin_client, api, user, spark
):
    spark.passwords = {"*": SECRET}
    response = admin_client.post("/admin/conversations/provider/add/", provider_form(spark.url))
    assert response.status_code == 302, response.content.decode()[:3000]

    provider = Provider.objects.get(name="deepseek")
    assert provider.api_key() == SECRET
    assert SECRET not in provider.api_key_encrypted
    assert ChatModel.objects.get(model_id="deepseek-v4-flash").provider == provider

    created = api.post("/api/conversations/", {"model": "deepseek-v4-flash"}, format="json")
    conversation = Conversation.objects.get(pk=created.json()["id"])
    reply = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "hi [[reply:ok then]]"},
        format="json",
    )
    assert reply.status_code == 201, reply.content
    assert reply.json()["assistant_message"]["content"] == "ok then"
    assert spark.requests[-1]["authorization"] == f"Bearer {SECRET}"


def test_the_key_is_never_shown_again(admin_client, spark):
    admin_client.post("/admin/conversations/provider/add/", provider_form(spark.url))
    provider = Provider.objects.get(name="deepseek")

    pages = [
        admin_client.get(f"/admin/conversations/provider/{provider.pk}/change/"),
        admin_client.get("/admin/conversations/provider/"),
        admin_client.get(f"/admin/conversations/provider/{provider.pk}/history/"),
        admin_client.get("/admin/conversations/chatmodel/"),
    ]
    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert SECRET not in text
        assert provider.api_key_encrypted not in text


def test_an_empty_key_field_keeps_the_stored_key_and_clearing_removes_it(admin_client, spark):
    admin_client.post("/admin/conversations/provider/add/", provider_form(spark.url))
    provider = Provider.objects.get(name="deepseek")
    url = f"/admin/conversations/provider/{provider.pk}/change/"
    model = ChatModel.objects.get()
    edit = provider_form(
        spark.url,
        api_key="",
        label="DeepSeek CN",
        **{
            "models-INITIAL_FORMS": "1",
            "models-0-id": str(model.pk),
            "models-0-provider": str(provider.pk),
        },
    )

    assert admin_client.post(url, edit).status_code == 302
    provider.refresh_from_db()
    assert provider.label == "DeepSeek CN"
    assert provider.api_key() == SECRET

    assert admin_client.post(url, {**edit, "clear_api_key": "on"}).status_code == 302
    provider.refresh_from_db()
    assert provider.api_key() == ""


def test_a_bad_base_url_or_dialect_is_refused_in_the_form(admin_client, spark):
    response = admin_client.post(
        "/admin/conversations/provider/add/",
        provider_form("ftp://example.invalid", dialect="nope"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "base_url" in errors
    assert "dialect" in errors
    assert not Provider.objects.exists()


def test_test_connection_reports_latency_or_the_classified_error(admin_client, spark):
    good = Provider(name="good", dialect="spark", base_url=spark.url)
    good.set_api_key(SPARK_KEY)
    good.save()
    ChatModel.objects.create(provider=good, model_id="good-lite", upstream_id="lite")
    bad = Provider(name="bad", dialect="spark", base_url=spark.url)
    bad.set_api_key("wrong-key")
    bad.save()
    ChatModel.objects.create(provider=bad, model_id="bad-lite", upstream_id="lite")

    response = admin_client.post(
        "/admin/conversations/provider/",
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )

    notes = [str(m) for m in response.context["messages"]]
    assert any(n.startswith("good: answered in ") and "ms" in n for n in notes), notes
    assert any(n.startswith("bad: upstream_auth: ") for n in notes), notes
    assert not any("wrong-key" in n for n in notes)


def test_a_models_temperature_range_must_hold_its_default(admin_client, spark):
    provider = Provider.objects.create(name="p", dialect="openai", base_url=spark.url)
    response = admin_client.post(
        "/admin/conversations/chatmodel/add/",
        {
            "provider": provider.pk,
            "model_id": "m",
            "context_window": "8192",
            "max_output": "1024",
            "temperature_min": "0",
            "temperature_max": "1",
            "temperature_default": "1.5",
            "order": "0",
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert "temperature_default" in response.context["adminform"].form.errors
