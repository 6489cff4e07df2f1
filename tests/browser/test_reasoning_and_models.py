"""Reasoning shown while a model thinks and folded when it answers, cited pages, the model picker
grouped by provider, and the per-conversation model settings.

Most tests stand in for the API with hand-written answers (``page.route``) or, where the stream
must arrive in steps the test controls, with a ``fetch`` wrapper installed before the page's own
scripts; the last test goes through the whole real path: a DeepSeek provider row, the API, the
reply engine and the loopback stand-in speaking DeepSeek's dialect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from conversations.models import ChatModel, Conversation, Message, Provider
from tests.factories import ConversationFactory
from tests.upstream import UpstreamServer, make_dialect

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def temperature(low: float, high: float, default: float | None) -> dict[str, Any]:
    return {"min": low, "max": high, "default": default}


def model(
    model_id: str,
    label: str,
    provider: str,
    provider_label: str,
    *,
    reasoning: bool = False,
    reasoning_switch: bool = False,
    web_search: bool = False,
    temp: dict[str, Any] | None = None,
    max_output: int = 8192,
    default: bool = False,
) -> dict[str, Any]:
    return {
        "id": model_id,
        "label": label,
        "provider": provider,
        "provider_label": provider_label,
        "dialect": provider,
        "context_window": 65536,
        "max_tokens": max_output,
        "max_output": max_output,
        "default": default,
        "configured": True,
        "capabilities": {
            "reasoning": reasoning,
            "reasoning_switch": reasoning_switch,
            "web_search": web_search,
            "vision": False,
            "temperature": temp or temperature(0, 2, None),
        },
    }


# "lite" is a model the real server knows, so conversations made through it stay valid.
SPARK_LITE = model(
    "lite", "Spark Lite", "spark", "iFlytek Spark", web_search=True,
    temp=temperature(0, 1, 0.5), max_output=4096, default=True,
)  # fmt: skip
SPARK_MAX = model("generalv3.5", "Spark Max", "spark", "iFlytek Spark", max_output=8192)
DEEPSEEK_CHAT = model("deepseek-chat", "DeepSeek Chat", "deepseek", "DeepSeek")
DEEPSEEK_REASONER = model(
    "deepseek-reasoner", "DeepSeek Reasoner", "deepseek", "DeepSeek", reasoning=True,
    reasoning_switch=True, temp=temperature(0, 2, 1), max_output=32768,
)  # fmt: skip
MODELS = [SPARK_LITE, SPARK_MAX, DEEPSEEK_CHAT, DEEPSEEK_REASONER]


def serve_models(page, models: list[dict[str, Any]]) -> None:
    page.route(
        "**/api/models/",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(models)
        ),
    )


def send(page, text: str, box_label: str = "Message") -> None:
    box = page.get_by_label(box_label, exact=True)
    box.fill(text)
    box.press("Enter")


def frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


USER_MESSAGE = {"id": "u-1", "seq": 1, "role": "user", "content": "Why?", "status": "complete"}
STREAMING = {
    "id": "a-1",
    "seq": 2,
    "role": "assistant",
    "content": "",
    "status": "streaming",
    "model": "lite",
    "reasoning": "",
    "reasoning_ms": None,
    "references": [],
    "provider": "spark",
}
REFERENCES = [
    {"title": "Rayleigh scattering", "url": "https://en.wikipedia.org/wiki/Rayleigh_scattering"},
    {"title": "Sneaky", "url": "javascript:alert(1)"},
    {"title": "", "url": "http://example.org/sky"},
]


def saved_reply(**fields: Any) -> dict[str, Any]:
    return {
        **STREAMING,
        "status": "complete",
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        "ttft_ms": 900,
        "duration_ms": 1500,
        **fields,
    }


def serve_reply(page, frames: list[str], done: dict[str, Any]) -> None:
    """The reply POST answered with one whole SSE body: start, ``frames``, then done."""
    body = "".join(
        [
            frame("start", {"user_message": USER_MESSAGE, "assistant_message": STREAMING}),
            *frames,
            frame("done", {"message": done}),
        ]
    )

    def reply(route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body=body,
        )

    page.route(re.compile(r"/api/conversations/[0-9a-f-]{36}/messages/$"), reply)


# Replaces fetch() for the reply POST only: the test feeds the stream with window.__sse.push().
CONTROLLED_STREAM = """
(() => {
  const realFetch = window.fetch.bind(window);
  const encoder = new TextEncoder();
  let controller = null;
  let waiting = [];
  window.__sse = {
    requests: 0,
    push(text) {
      if (controller) controller.enqueue(encoder.encode(text));
      else waiting.push(text);
    },
    close() {
      controller.close();
    },
  };
  window.fetch = (input, init = {}) => {
    const url = typeof input === "string" ? input : input.url;
    if ((init.method || "GET") === "POST" && /\\/messages\\/$/.test(url)) {
      window.__sse.requests += 1;
      const body = new ReadableStream({
        start(c) {
          controller = c;
          for (const text of waiting) c.enqueue(encoder.encode(text));
          waiting = [];
          // As a real fetch does: stopping the request fails the body being read.
          init.signal?.addEventListener("abort", () => {
            c.error(new DOMException("The user aborted a request.", "AbortError"));
          });
        },
      });
      return Promise.resolve(
        new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }),
      );
    }
    return realFetch(input, init);
  };
})();
"""


def wait_for_stream(page) -> None:
    # Polled from here: wait_for_function() would evaluate a string, which the CSP refuses.
    wait_until(lambda: page.evaluate("() => window.__sse.requests") == 1)


def push(page, *frames: str) -> None:
    page.evaluate("text => window.__sse.push(text)", "".join(frames))


def test_reasoning_is_open_while_it_streams_and_folds_when_the_answer_starts(
    open_page, spark, user, screenshot_dir
):
    b = open_page(user=user)
    page = b.page
    page.add_init_script(CONTROLLED_STREAM)
    page.goto(b.url("/"))
    send(page, "Why is the sky blue?")
    wait_for_stream(page)
    reply = page.locator("li.msg--assistant").last
    reasoning = reply.locator(".reasoning")

    push(
        page,
        frame("start", {"user_message": USER_MESSAGE, "assistant_message": STREAMING}),
        frame("reasoning", {"content": "The user asks about **colour**. "}),
        frame("reasoning", {"content": "Short wavelengths <img src=x onerror=alert(1)> scatter"}),
    )
    expect(reasoning).to_be_visible()
    expect(reply.locator(".reasoning[open]")).to_have_count(1)
    expect(reasoning).to_have_attribute("data-state", "live")
    body = reasoning.locator(".reasoning__body")
    expect(body).to_contain_text("Short wavelengths")
    expect(body.locator("strong")).to_have_text("colour")  # Markdown, through the sanitizer
    assert body.locator("img").count() == 0
    # The thinking timer runs in the block's summary; the separate line stays hidden.
    label = reasoning.locator(".reasoning__label")
    expect(label).to_have_text(re.compile(r"^Thinking… \d+\.\d s$"))
    expect(reply.locator(".msg__thinking")).to_be_hidden()
    expect(reply.locator(".msg__body")).to_be_hidden()
    page.screenshot(path=str(screenshot_dir / "reasoning-live-desktop-light.png"))

    push(page, frame("delta", {"content": "Because of Rayleigh "}))
    expect(reply.locator(".msg__body")).to_have_text("Because of Rayleigh")
    expect(reply.locator(".reasoning[open]")).to_have_count(0)
    expect(reasoning).to_have_attribute("data-state", "done")
    expect(label).to_have_text(re.compile(r"^Thought for \d+ s$"))
    expect(body).to_be_hidden()

    done = saved_reply(
        content="Because of Rayleigh scattering.",
        reasoning="The user asks about **colour**. Short wavelengths scatter",
        reasoning_ms=2300,
        references=REFERENCES,
    )
    push(
        page,
        frame("delta", {"content": "scattering."}),
        frame("mystery", {"anything": True}),  # unknown frames are ignored
        frame("references", {"references": REFERENCES}),
        frame("done", {"message": done}),
    )
    page.evaluate("() => window.__sse.close()")
    expect(reply.locator(".msg__body")).to_have_text("Because of Rayleigh scattering.")
    expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    expect(label).to_have_text("Thought for 2 s")  # the saved duration, in whole seconds
    expect(reply.locator(".reasoning[open]")).to_have_count(0)

    # Cited pages: web links only, opened in a new tab without a referrer.
    links = reply.locator(".references a")
    expect(reply.locator(".references__title")).to_have_text("Sources")
    expect(links).to_have_count(2)
    expect(links.first).to_have_text("Rayleigh scattering")
    expect(links.first).to_have_attribute("href", REFERENCES[0]["url"])
    expect(links.nth(1)).to_have_text("example.org")  # no title: the host instead
    for i in range(2):
        expect(links.nth(i)).to_have_attribute("target", "_blank")
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
    expect(reply.locator(".references")).not_to_contain_text("Sneaky")
    page.screenshot(path=str(screenshot_dir / "reasoning-folded-desktop-light.png"))

    # Keyboard: the summary is focusable and Enter opens and closes the block.
    summary = reasoning.locator("summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(reply.locator(".reasoning[open]")).to_have_count(1)
    expect(body).to_contain_text("Short wavelengths scatter")
    page.keyboard.press("Enter")
    expect(reply.locator(".reasoning[open]")).to_have_count(0)
    b.watch.assert_clean()


def test_a_reply_that_stops_while_thinking_folds_its_reasoning(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.add_init_script(CONTROLLED_STREAM)
    page.goto(b.url("/"))
    send(page, "Think hard")
    wait_for_stream(page)
    reply = page.locator("li.msg--assistant").last
    push(
        page,
        frame("start", {"user_message": USER_MESSAGE, "assistant_message": STREAMING}),
        frame("reasoning", {"content": "Hmm, let me see."}),
    )
    expect(reply.locator(".reasoning[open]")).to_have_count(1)

    # The page tells the server how much it showed (nothing of the answer yet).
    def stopped(route) -> None:
        route.fulfill(
            json={
                **STREAMING,
                "status": "interrupted",
                "error_code": "client_disconnected",
                "reasoning": "Hmm, let me see.",
            }
        )

    page.route("**/api/messages/a-1/stop/", stopped)
    with page.expect_request("**/api/messages/a-1/stop/") as stop:
        page.get_by_role("button", name="Stop the reply").click()
    assert stop.value.post_data_json == {"shown": 0}
    expect(reply.locator(".msg__notice")).to_contain_text("Stopped")
    expect(reply.locator(".msg__badge")).to_be_visible()
    expect(reply.locator(".reasoning[open]")).to_have_count(0)
    expect(reply.locator(".reasoning__label")).to_have_text(re.compile(r"^Thought for \d+ s$"))
    b.watch.assert_clean()


def test_reasoning_and_references_in_chinese(open_page, spark, user, screenshot_dir):
    """The whole SSE body in one answer, through the network: the folded state and its text."""
    b = open_page(user=user, locale="zh-CN")
    page = b.page
    frames = [
        ": keepalive\n\n",
        frame("reasoning", {"content": "用户问"}),
        frame("reasoning", {"content": "天空的颜色。"}),
        frame("delta", {"content": "因为瑞利散射。"}),
        frame("references", {"references": REFERENCES[:1]}),
    ]
    done = saved_reply(
        content="因为瑞利散射。",
        reasoning="用户问天空的颜色。",
        reasoning_ms=3400,
        references=REFERENCES[:1],
    )
    serve_reply(page, frames, done)
    page.goto(b.url("/"))
    send(page, "天空为什么是蓝色的？", "消息")
    answer = page.locator("li.msg--assistant").last
    expect(answer.locator(".msg__body")).to_have_text("因为瑞利散射。")
    expect(answer.locator(".reasoning")).to_be_visible()
    expect(answer.locator(".reasoning[open]")).to_have_count(0)
    expect(answer.locator(".reasoning__label")).to_have_text("已深度思考（用时 3 秒）")
    expect(answer.locator(".references__title")).to_have_text("参考来源")
    expect(answer.locator(".references a")).to_have_text("Rayleigh scattering")
    answer.locator("summary").click()
    expect(answer.locator(".reasoning__body")).to_have_text("用户问天空的颜色。")
    page.screenshot(path=str(screenshot_dir / "reasoning-opened-desktop-light-zh.png"))
    b.watch.assert_clean()


def test_saved_reasoning_is_shown_folded_after_a_reload(open_page, spark, user):
    conversation = ConversationFactory(user=user, title="Thought about")
    page_of_messages = {
        "next": None,
        "previous": None,
        "results": [
            {**USER_MESSAGE, "id": "u-1", "seq": 1},
            saved_reply(
                id="a-1", seq=2, content="Timed.", reasoning="First thought.", reasoning_ms=12_400
            ),
            {**USER_MESSAGE, "id": "u-2", "seq": 3},
            saved_reply(id="a-2", seq=4, content="Untimed.", reasoning="Second thought."),
            {**USER_MESSAGE, "id": "u-3", "seq": 5},
            saved_reply(id="a-3", seq=6, content="No reasoning at all."),
        ],
    }

    def messages(route) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        route.fulfill(
            status=200, content_type="application/json", body=json.dumps(page_of_messages)
        )

    b = open_page(user=user)
    page = b.page
    page.route(re.compile(r"/api/conversations/[0-9a-f-]{36}/messages/\?"), messages)
    page.goto(b.url(f"/c/{conversation.id}/"))
    replies = page.locator("li.msg--assistant")
    expect(replies).to_have_count(3)
    expect(page.locator(".reasoning[open]")).to_have_count(0)
    expect(replies.nth(0).locator(".reasoning__label")).to_have_text("Thought for 12 s")
    expect(replies.nth(1).locator(".reasoning__label")).to_have_text("Thought process")
    expect(replies.nth(2).locator(".reasoning")).to_be_hidden()
    replies.nth(1).locator("summary").click()
    expect(replies.nth(1).locator(".reasoning__body")).to_have_text("Second thought.")
    expect(replies.nth(0).locator(".reasoning__body")).to_be_hidden()
    b.watch.assert_clean()


def test_model_picker_groups_models_by_provider(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    serve_models(page, MODELS)
    page.goto(b.url("/"))
    picker = page.locator("#model-select")
    groups = picker.locator("optgroup")
    expect(groups).to_have_count(2)
    assert groups.evaluate_all("gs => gs.map(g => g.label)") == ["iFlytek Spark", "DeepSeek"]
    expect(groups.nth(0).locator("option")).to_have_text(["Spark Lite", "Spark Max"])
    expect(groups.nth(1).locator("option")).to_have_text(["DeepSeek Chat", "DeepSeek Reasoner"])
    expect(picker).to_have_value("lite")
    b.watch.assert_clean()


def test_model_picker_stays_flat_for_one_provider_and_old_fields(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    # The shape /api/models/ had before providers: no provider_label, no capabilities.
    old = [
        {"id": "lite", "label": "Spark Lite", "provider": "spark", "context_window": 8192,
         "max_tokens": 4096, "configured": True},
        {"id": "generalv3.5", "label": "Spark Max", "provider": "spark", "context_window": 8192,
         "max_tokens": 8192, "configured": True},
    ]  # fmt: skip
    serve_models(page, old)
    page.goto(b.url("/"))
    picker = page.locator("#model-select")
    expect(picker.locator("option")).to_have_text(["Spark Lite", "Spark Max"])
    expect(picker.locator("optgroup")).to_have_count(0)
    page.get_by_role("button", name="Conversation settings").click()
    expect(page.locator("#setting-max-tokens-help")).to_have_text("At most 4,096.")
    expect(page.locator("#setting-temperature-help")).to_have_text(
        "Empty uses the model's default."
    )
    expect(page.get_by_label("Deep thinking")).to_be_hidden()
    expect(page.get_by_label("Web search")).to_be_hidden()
    b.watch.assert_clean()


def conversation_json(conversation, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "temperature": None,
        "max_tokens": None,
        "reasoning": None,
        "web_search": None,
        **fields,
    }


def test_settings_panel_follows_the_model_and_shows_a_refusal(
    open_page, spark, user, screenshot_dir
):
    conversation = ConversationFactory(user=user, title="Tuned", system_prompt="Be brief.")
    state = conversation_json(conversation)
    patches: list[dict[str, Any]] = []

    def conversation_route(route) -> None:
        if route.request.method == "GET":
            route.fulfill(status=200, content_type="application/json", body=json.dumps(state))
            return
        if route.request.method != "PATCH":
            route.fallback()
            return
        fields = json.loads(route.request.post_data or "{}")
        patches.append(fields)
        limit = 1 if state["model"] == "lite" else 2
        if (fields.get("temperature") or 0) > limit:
            route.fulfill(
                status=400,
                content_type="application/json",
                body=json.dumps(
                    {
                        "detail": f"temperature must be between 0 and {limit}.",
                        "code": "invalid",
                        "field": "temperature",
                    }
                ),
            )
            return
        state.update(fields)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(state))

    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the refusals below are 400s
    page = b.page
    serve_models(page, MODELS)
    page.route(f"**/api/conversations/{conversation.id}/", conversation_route)
    page.goto(b.url(f"/c/{conversation.id}/"))
    expect(page.locator("#conversation-title")).to_have_text("Tuned")

    toggle = page.get_by_role("button", name="Conversation settings")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    panel = page.locator("#settings-panel")
    expect(panel).to_be_visible()
    temp = page.get_by_label("Temperature")
    tokens = page.get_by_label("Maximum output tokens")
    expect(temp).to_be_focused()
    expect(temp).to_have_value("")
    expect(temp).to_have_attribute("min", "0")
    expect(temp).to_have_attribute("max", "1")
    expect(page.locator("#setting-temperature-help")).to_have_text(
        "From 0 to 1; the model's default is 0.5."
    )
    expect(tokens).to_have_attribute("max", "4096")
    expect(page.get_by_label("Web search")).to_be_visible()  # Spark Lite searches the web
    expect(page.get_by_label("Deep thinking")).to_be_hidden()

    # Too hot for this model: the server's reason is shown next to the panel, nothing is lost.
    temp.fill("1.5")
    tokens.fill("1000")
    page.get_by_label("Web search").select_option("on")
    panel.get_by_role("button", name="Save").click()
    error = page.locator("#settings-error")
    expect(error).to_be_visible()
    expect(error).to_have_text("temperature must be between 0 and 1.")
    expect(temp).to_have_attribute("aria-invalid", "true")
    expect(temp).to_have_value("1.5")
    expect(tokens).to_have_value("1000")
    expect(page.get_by_label("Web search")).to_have_value("on")
    assert patches[-1] == {"temperature": 1.5, "max_tokens": 1000, "web_search": True}
    page.screenshot(path=str(screenshot_dir / "settings-refused-desktop-light.png"))

    temp.fill("0.7")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    expect(error).to_be_hidden()
    expect(temp).not_to_have_attribute("aria-invalid", "true")
    assert patches[-1] == {"temperature": 0.7, "max_tokens": 1000, "web_search": True}
    expect(toggle).to_have_class(re.compile("has-value"))

    # Another model: its own range and switches.
    page.locator("#model-select").select_option("deepseek-reasoner")
    expect(page.get_by_label("Deep thinking")).to_be_visible()
    expect(page.get_by_label("Web search")).to_be_hidden()
    expect(temp).to_have_attribute("max", "2")
    expect(tokens).to_have_attribute("max", "32768")
    assert patches[-1] == {"model": "deepseek-reasoner"}
    page.get_by_label("Deep thinking").select_option("off")
    tokens.fill("")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    assert patches[-1] == {"temperature": 0.7, "max_tokens": None, "reasoning": False}

    # Not a number at all: refused here, before anything is sent.
    sent = len(patches)
    tokens.fill("12.5")
    panel.get_by_role("button", name="Save").click()
    expect(error).to_have_text("Enter a whole number, or leave the field empty.")
    expect(tokens).to_be_focused()
    assert len(patches) == sent

    # The system prompt panel is untouched by all this.
    page.get_by_role("button", name="System prompt").click()
    expect(page.locator("#system-prompt")).to_have_value("Be brief.")
    b.watch.assert_clean()


def test_settings_for_a_new_chat_apply_when_it_starts(open_page, spark, user):
    b = open_page(user=user, locale="zh-CN")
    b.watch.allow_http_errors = True  # the refusal below is a 400
    page = b.page
    serve_models(page, MODELS)
    patches: list[dict[str, Any]] = []

    def conversation_route(route) -> None:
        if route.request.method != "PATCH":
            route.fallback()
            return
        patches.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(
            status=400,
            content_type="application/json",
            body=json.dumps({"detail": "温度必须在 0 到 1 之间。", "code": "invalid"}),
        )

    page.route(re.compile(r"/api/conversations/[0-9a-f-]{36}/$"), conversation_route)
    serve_reply(page, [frame("delta", {"content": "你好！"})], saved_reply(content="你好！"))
    page.goto(b.url("/"))
    page.get_by_role("button", name="对话设置").click()
    panel = page.locator("#settings-panel")
    expect(panel.get_by_role("heading", name="对话设置")).to_be_visible()
    expect(page.locator("#setting-temperature-help")).to_have_text(
        "取值范围 0 到 1，模型默认值为 0.5。"
    )
    page.get_by_label("温度").fill("0.9")
    panel.get_by_role("button", name="保存").click()
    expect(page.locator("#settings-status")).to_have_text("已保存：将在此对话开始时使用。")
    assert patches == []

    send(page, "你好", "消息")
    expect(page.locator("li.msg--assistant .msg__body")).to_have_text("你好！")
    assert patches == [{"temperature": 0.9, "max_tokens": None, "web_search": None}]
    # The refusal is shown in the reopened panel; the message went out all the same.
    expect(panel).to_be_visible()
    expect(page.locator("#settings-error")).to_have_text("设置未生效：温度必须在 0 到 1 之间。")
    expect(page.get_by_label("温度")).to_have_value("0.9")
    b.watch.assert_clean()


# --- the real path ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deepseek_server() -> Iterator[UpstreamServer]:
    server = UpstreamServer(dialect=make_dialect("deepseek")).start()
    yield server
    server.stop()


@pytest.fixture
def deepseek(deepseek_server, settings) -> Iterator[UpstreamServer]:
    """A DeepSeek provider with a reasoning model, pointed at the stand-in."""
    deepseek_server.reset()
    settings.LLM_READ_TIMEOUT = 5.0
    settings.LLM_CONNECT_TIMEOUT = 2.0
    provider = Provider(
        name="deepseek", label="DeepSeek", dialect="deepseek", base_url=deepseek_server.url
    )
    provider.set_api_key("sk-deepseek-test")
    provider.save()
    ChatModel.objects.create(
        provider=provider,
        model_id="deepseek-reasoner",
        upstream_id="deepseek-reasoner",
        label="DeepSeek Reasoner",
        reasoning=True,
        reasoning_switch=True,
        max_output=32768,
        temperature_max=1.0,
    )
    yield deepseek_server
    deepseek_server.reset()


THOUGHT = "The sky scatters short blue wavelengths more than long red ones, so I say Rayleigh."


def test_a_deepseek_reasoning_model_thinks_then_answers_through_the_real_path(
    open_page, spark, deepseek, user
):
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the refused temperature at the end is a 400
    page = b.page
    page.goto(b.url("/"))
    picker = page.locator("#model-select")
    expect(picker.locator("optgroup[label='DeepSeek'] option")).to_have_text(["DeepSeek Reasoner"])
    expect(picker.locator("optgroup[label='iFlytek Spark'] option").first).to_have_text(
        "Spark Lite"
    )
    picker.select_option("deepseek-reasoner")

    send(
        page,
        f"Why is the sky blue? [[reasoning:{THOUGHT}]] [[interval:0.08]] "
        "[[reply:Because of Rayleigh scattering.]]",
    )
    reply = page.locator("li.msg--assistant").last
    reasoning = reply.locator(".reasoning")
    # Thinking: the block is open and the reasoning arrives in it before any answer.
    expect(reply.locator(".reasoning[open]")).to_have_count(1)
    expect(reasoning.locator(".reasoning__body")).to_contain_text("The sky scatters")
    expect(reasoning.locator(".reasoning__label")).to_have_text(re.compile(r"^Thinking… "))
    assert "Rayleigh scattering" not in reply.locator(".msg__body").inner_text()
    # Answering: folded under its duration, the answer below.
    expect(reply.locator(".msg__body")).to_have_text(
        "Because of Rayleigh scattering.", timeout=10_000
    )
    expect(reply.locator(".reasoning[open]")).to_have_count(0)
    expect(reasoning.locator(".reasoning__label")).to_have_text(re.compile(r"^Thought for \d+ s$"))

    saved = wait_until(lambda: Message.objects.filter(role="assistant", status="complete").first())
    assert saved.reasoning == THOUGHT
    assert saved.provider == "deepseek"
    conversation = Conversation.objects.get()
    assert conversation.model == "deepseek-reasoner"
    assert deepseek.requests[-1]["json"]["model"] == "deepseek-reasoner"

    # After a reload the saved reasoning is there, folded, with the saved duration.
    page.reload()
    reply = page.locator("li.msg--assistant").last
    expect(reply.locator(".msg__body")).to_have_text("Because of Rayleigh scattering.")
    expect(reply.locator(".reasoning[open]")).to_have_count(0)
    seconds = max(1, round((saved.reasoning_ms or 0) / 1000))
    expected = f"Thought for {seconds} s" if saved.reasoning_ms is not None else "Thought process"
    expect(reply.locator(".reasoning__label")).to_have_text(expected)
    reply.locator(".reasoning summary").click()
    expect(reply.locator(".reasoning__body")).to_have_text(THOUGHT)

    # The model's settings through the real API: its range refuses 1.5, its switch is saved.
    expect(picker).to_have_value("deepseek-reasoner")
    page.get_by_role("button", name="Conversation settings").click()
    panel = page.locator("#settings-panel")
    expect(page.locator("#setting-temperature-help")).to_have_text("From 0 to 1.")
    page.get_by_label("Temperature").fill("1.5")
    page.get_by_label("Deep thinking").select_option("off")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-error")).to_have_text(
        "The temperature must be between 0 and 1 for DeepSeek Reasoner."
    )
    expect(page.get_by_label("Temperature")).to_have_value("1.5")
    page.get_by_label("Temperature").fill("0.6")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    conversation.refresh_from_db()
    assert (conversation.temperature, conversation.reasoning) == (0.6, False)
    b.watch.assert_clean()
