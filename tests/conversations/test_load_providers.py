"""``manage.py load_providers FILE``: providers and models as code (docs/providers.md)."""

from __future__ import annotations

import textwrap

import pytest
from django.core.management import CommandError, call_command

from conversations.models import ChatModel, Provider

pytestmark = pytest.mark.django_db

GOOD = """\
providers:
  - name: deepseek
    dialect: deepseek
    base_url: https://api.deepseek.com
    api_key_env: TEST_DEEPSEEK_KEY
    models:
      - id: deepseek-v4-flash
        label: DeepSeek V4 Flash
        context_window: 1000000
        max_output: 8192
        reasoning: true
  - name: local
    dialect: ollama
    base_url: http://127.0.0.1:11434/v1
    models:
      - id: qwen3-local
        upstream_id: qwen3:8b
        temperature_max: 1.5
        default: true
"""


def load(tmp_path, text: str) -> str:
    path = tmp_path / "providers.yaml"
    path.write_text(textwrap.dedent(text))
    from io import StringIO

    out = StringIO()
    call_command("load_providers", str(path), stdout=out)
    return out.getvalue()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("TEST_DEEPSEEK_KEY", "sk-from-the-environment")


def test_a_file_creates_providers_and_models(tmp_path, key):
    output = load(tmp_path, GOOD)

    assert "4 created, 0 updated, 0 unchanged" in output
    deepseek = Provider.objects.get(name="deepseek")
    assert deepseek.api_key() == "sk-from-the-environment"
    assert deepseek.api_key_env == "TEST_DEEPSEEK_KEY"
    flash = ChatModel.objects.get(model_id="deepseek-v4-flash")
    assert (flash.provider, flash.context_window, flash.max_output, flash.reasoning) == (
        deepseek,
        1000000,
        8192,
        True,
    )
    assert flash.upstream_id == ""
    local = ChatModel.objects.get(model_id="qwen3-local")
    assert (local.upstream_id, local.temperature_max, local.is_default) == ("qwen3:8b", 1.5, True)
    assert Provider.objects.get(name="local").api_key() == ""
    assert "sk-from-the-environment" not in output


def test_loading_twice_changes_nothing_and_an_edit_updates_in_place(tmp_path, key):
    load(tmp_path, GOOD)
    before = {m.model_id: m.pk for m in ChatModel.objects.all()}

    assert "0 created, 0 updated, 4 unchanged" in load(tmp_path, GOOD)
    output = load(tmp_path, GOOD.replace("max_output: 8192", "max_output: 4096"))

    assert "0 created, 1 updated, 3 unchanged" in output
    assert "updated model deepseek-v4-flash" in output
    assert ChatModel.objects.get(model_id="deepseek-v4-flash").max_output == 4096
    assert {m.model_id: m.pk for m in ChatModel.objects.all()} == before


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("dialect: deepseek", "dialect: deepsake"), 3, "unknown dialect 'deepsake'"),
        (("TEST_DEEPSEEK_KEY", "TEST_UNSET_KEY"), 5, "TEST_UNSET_KEY is not set"),
        (("id: qwen3-local", "id: deepseek-v4-flash"), 16, "appears twice (first on line 10)"),
        (("max_output: 8192", "max_output: lots"), 10, "max_output has the wrong type"),
        (("reasoning: true", "reasoning: true\n        colour: blue"), 12, "unknown model field"),
        (("base_url: https://api.deepseek.com", "base_url: not a url"), 4, "not an http(s) URL"),
    ],
)
def test_a_bad_file_is_refused_whole_with_the_line_at_fault(tmp_path, key, change, line, message):
    load(tmp_path, GOOD)
    snapshot = list(ChatModel.objects.values_list("model_id", "max_output", "provider__name"))
    # The bad file also adds a provider before the fault: none of it may be written.
    bad = "providers:\n  - name: extra\n    dialect: openai\n    api_key_env: TEST_DEEPSEEK_KEY\n"
    text = GOOD.replace(*change).replace("providers:\n", bad, 1)
    line += 3

    with pytest.raises(CommandError) as caught:
        load(tmp_path, text)

    assert f"line {line}: " in str(caught.value)
    assert message in str(caught.value)
    assert "nothing was changed" in str(caught.value)
    assert not Provider.objects.filter(name="extra").exists()
    assert list(ChatModel.objects.values_list("model_id", "max_output", "provider__name")) == (
        snapshot
    )


def test_a_model_id_of_another_provider_is_refused(tmp_path, key):
    other = Provider.objects.create(name="other", dialect="openai", base_url="https://x.test/v1")
    ChatModel.objects.create(provider=other, model_id="deepseek-v4-flash")

    with pytest.raises(CommandError, match="already belongs to provider 'other'"):
        load(tmp_path, GOOD)
    assert not Provider.objects.filter(name="deepseek").exists()


def test_not_yaml_and_a_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="not valid YAML"):
        load(tmp_path, "providers: [\n")
    with pytest.raises(CommandError, match="No such file"):
        call_command("load_providers", str(tmp_path / "missing.yaml"))
