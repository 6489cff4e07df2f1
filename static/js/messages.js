// Message bubbles: user messages as plain text, assistant replies as sanitised Markdown, with the
// model's reasoning (when it thinks before answering) and the web pages it cited.

import { fileChips } from "./attachments.js";
import { FeedbackControl } from "./feedback.js";
import { formatNumber, formatSeconds, language, t } from "./i18n.js";
import { highlightWithin, renderMarkdown } from "./render.js";
import { icon } from "./sidebar.js";

const views = new WeakMap();

export function viewOf(element) {
  return views.get(element) || null;
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function actionButton(action, label, iconName, { text = false } = {}) {
  const node = make("button", `msg__action msg__action--${action}`);
  node.type = "button";
  node.dataset.action = action;
  node.title = label;
  node.append(icon(iconName));
  if (text) node.append(make("span", "", label));
  else node.setAttribute("aria-label", label);
  node.hidden = true;
  return node;
}

// Only pages on the web: a cited "javascript:" or "data:" address is not offered as a link.
function webUrl(value) {
  try {
    const url = new URL(String(value || ""));
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

// "Thought for N s": whole seconds read better than the live timer's tenths, and a short thought
// still says 1 s rather than 0.
function thoughtFor(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return t("reasoning_done_untimed");
  return t("reasoning_done", { seconds: formatNumber(Math.max(1, Math.round(Number(ms) / 1000))) });
}

// "‹ 2/3 ›" under a message that has other versions (an edit, a regenerated reply): each arrow
// names the sibling it shows (data-target), chat.js makes it the active branch.
function versionNav() {
  const nav = make("div", "versions");
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", t("versions"));
  const previous = make("button", "icon-btn versions__btn versions__prev", "‹");
  previous.type = "button";
  previous.dataset.action = "version";
  previous.setAttribute("aria-label", t("previous_version"));
  previous.title = t("previous_version");
  const label = make("span", "versions__label");
  const next = make("button", "icon-btn versions__btn versions__next", "›");
  next.type = "button";
  next.dataset.action = "version";
  next.setAttribute("aria-label", t("next_version"));
  next.title = t("next_version");
  nav.append(previous, label, next);
  nav.hidden = true;
  return nav;
}

function showVersions(nav, message) {
  const siblings = Array.isArray(message?.siblings) ? message.siblings : null;
  const index = siblings ? siblings.indexOf(message.id) : -1;
  if (!siblings || siblings.length < 2 || index < 0) {
    nav.hidden = true;
    return;
  }
  const [previous, label, next] = nav.children;
  label.textContent = t("version_of", { index: formatNumber(index + 1), count: formatNumber(siblings.length) });
  previous.disabled = index === 0;
  next.disabled = index === siblings.length - 1;
  previous.dataset.target = index > 0 ? siblings[index - 1] : "";
  next.dataset.target = index < siblings.length - 1 ? siblings[index + 1] : "";
  nav.hidden = false;
}

// When a message was written, shown on hover in the reader's language.
function stampTime(el, message) {
  if (!message?.created_at) return;
  const when = new Date(message.created_at);
  if (Number.isNaN(when.getTime())) return;
  el.title = when.toLocaleString(language, { dateStyle: "medium", timeStyle: "short" });
  el.dataset.created = message.created_at;
}

let modelLabels = new Map();

export function setModelLabels(map) {
  modelLabels = map;
}

export class UserView {
  // files: what this page sent it with; a saved message lists its own (message.attachments).
  constructor(content, message = null, files = null) {
    this.content = content;
    this.message = message;
    this.el = make("li", "msg msg--user");
    this.el.append(make("h3", "visually-hidden", t("you_said")));
    const bubble = make("div", "msg__bubble");
    this.files = fileChips(files?.length ? files : message?.attachments);
    // Plain text, never parsed: whatever the user typed is shown exactly as typed.
    this.text = make("div", "msg__text", content);
    bubble.append(this.files, this.text);
    this.state = make("p", "msg__state");
    this.state.hidden = true;
    const foot = make("div", "msg__foot");
    this.actions = make("div", "msg__actions");
    this.retry = actionButton("resend", t("retry"), "retry", { text: true });
    this.edit = actionButton("edit", t("edit"), "edit", { text: true });
    this.copy = actionButton("copy", t("copy_message"), "copy");
    this.cancel = actionButton("cancel", t("cancel_queued"), "close", { text: true });
    this.versions = versionNav();
    this.actions.append(this.versions, this.copy, this.retry, this.edit, this.cancel);
    foot.append(this.state, this.actions);
    this.bubble = bubble;
    this.el.append(bubble, foot);
    views.set(this.el, this);
    if (message) this.saved(message);
  }

  saved(message) {
    this.message = { ...message, siblings: message.siblings ?? this.message?.siblings ?? null };
    this.el.dataset.id = message.id;
    this.el.dataset.seq = message.seq;
    if (message.attachments?.length) {
      const files = fileChips(message.attachments);
      this.files.replaceWith(files);
      this.files = files;
    }
    stampTime(this.bubble, message);
    showVersions(this.versions, this.message);
    this.setState("");
  }

  // Edit and copy wait while a reply is being written; an unsent message keeps its own buttons.
  setActions({ busy }) {
    const saved = Boolean(this.message) && !this.el.dataset.state;
    this.copy.hidden = !saved || this.editing;
    this.edit.hidden = this.el.dataset.state === "unsent" ? false : !saved || busy || this.editing;
    for (const button of this.versions.querySelectorAll("button")) button.dataset.busy = busy ? "1" : "";
  }

  // The inline editor: Save & send makes a new version of this message (a new branch).
  openEditor(onSave) {
    if (this.editing) return;
    this.editing = true;
    const form = make("form", "msg__editor");
    const box = make("textarea", "msg__editor-input");
    box.value = this.content;
    box.rows = Math.min(10, Math.max(2, this.content.split("\n").length));
    box.setAttribute("aria-label", t("edit_message"));
    const buttons = make("div", "msg__editor-buttons");
    const cancel = make("button", "btn btn--ghost btn--small", t("cancel_edit"));
    cancel.type = "button";
    const save = make("button", "btn btn--primary btn--small", t("save_and_send"));
    save.type = "submit";
    buttons.append(cancel, save);
    form.append(box, buttons);
    this.text.hidden = true;
    this.bubble.classList.add("is-editing");
    this.bubble.append(form);
    this.setActions({ busy: false });
    const close = () => {
      form.remove();
      this.text.hidden = false;
      this.bubble.classList.remove("is-editing");
      this.editing = false;
      this.setActions({ busy: false });
    };
    cancel.addEventListener("click", () => {
      close();
      this.edit.focus();
    });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close();
        this.edit.focus();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const content = box.value;
      if (!content.trim()) {
        box.focus();
        return;
      }
      close();
      onSave(content);
    });
    box.focus();
  }

  // "", "queued", "sending" or "unsent" (with the reason).
  setState(state, reason = "") {
    this.el.dataset.state = state;
    this.el.classList.toggle("is-queued", state === "queued");
    this.el.classList.toggle("is-unsent", state === "unsent");
    const text = {
      queued: t("queued"),
      unsent: reason ? t("not_sent_reason", { reason }) : t("not_sent"),
    }[state];
    this.state.textContent = text || "";
    this.state.hidden = !text;
    this.state.classList.toggle("is-error", state === "unsent");
    this.cancel.hidden = state !== "queued";
    this.retry.hidden = state !== "unsent";
    this.edit.hidden = state !== "unsent" && !(state === "" && this.message);
    this.copy.hidden = !(state === "" && this.message);
  }
}

export class AssistantView {
  constructor(message = null) {
    this.el = make("li", "msg msg--assistant");
    this.el.append(make("h3", "visually-hidden", t("assistant_said")));
    const bubble = make("div", "msg__bubble");
    // The reasoning: open while the model thinks, folded away once the answer starts.
    this.reasoning = make("details", "reasoning");
    this.reasoning.hidden = true;
    const summary = make("summary", "reasoning__summary");
    this.reasoningLabel = make("span", "reasoning__label");
    // The live timer changes ten times a second: screen readers hear this fixed text instead.
    this.reasoningLive = make("span", "visually-hidden", t("reasoning_live"));
    summary.append(this.reasoningLabel, this.reasoningLive);
    this.reasoningBody = make("div", "reasoning__body markdown");
    this.reasoning.append(summary, this.reasoningBody);
    this.thinking = make("p", "msg__thinking");
    this.thinking.setAttribute("aria-hidden", "true");
    this.thinking.hidden = true;
    this.body = make("div", "msg__body markdown");
    this.references = make("div", "references");
    this.references.hidden = true;
    this.notice = make("div", "msg__notice");
    this.notice.hidden = true;
    bubble.append(this.reasoning, this.thinking, this.body, this.references, this.notice);
    const foot = make("div", "msg__foot");
    this.meta = make("p", "msg__meta");
    this.actions = make("div", "msg__actions");
    this.copy = actionButton("copy", t("copy_reply"), "copy");
    this.regenerate = actionButton("regenerate", t("regenerate"), "retry", { text: true });
    this.retry = actionButton("retry", t("retry"), "retry", { text: true });
    // 👍/👎 with the actions, their reasons form below (feedback.js).
    this.feedback = new FeedbackControl();
    this.feedback.onChange = (feedback) => {
      if (this.message) this.message = { ...this.message, feedback };
    };
    this.versions = versionNav();
    this.actions.append(this.versions, this.feedback.buttons, this.copy, this.regenerate, this.retry);
    // A stopped reply looks stopped: a badge beside the model, and the bubble's own style.
    this.badge = make("span", "msg__badge", t("stopped_badge"));
    this.badge.hidden = true;
    foot.append(this.badge, this.meta, this.actions);
    this.bubble = bubble;
    this.el.append(bubble, foot, this.feedback.panel);
    views.set(this.el, this);
    this.text = "";
    this.message = null;
    this.live = false;
    this.frame = 0;
    this.timer = 0;
    this.startedAt = 0;
    this.thought = ""; // the reasoning text
    this.thoughtPhase = ""; // "", "live" (streaming, block open) or "done" (folded)
    this.thoughtMs = null; // measured here while it streamed
    this.shownThought = null; // the text last rendered into the block
    this.cited = [];
    if (message) this.apply(message);
  }

  get status() {
    return this.message?.status || "streaming";
  }

  // A saved message from the API: content, status, usage.
  apply(message) {
    this.message = { ...message, siblings: message.siblings ?? this.message?.siblings ?? null };
    message = this.message;
    stampTime(this.bubble, message);
    showVersions(this.versions, message);
    this.el.dataset.id = message.id;
    this.el.dataset.seq = message.seq;
    this.el.dataset.status = message.status;
    this.text = message.content || "";
    // Fields a server without reasoning support leaves out keep what this page streamed.
    if (message.reasoning != null) this.thought = message.reasoning;
    if (message.references != null) this.cited = message.references;
    this.renderReasoning(message);
    this.render();
    this.renderReferences();
    this.renderStatus();
    this.renderMeta();
    this.feedback.update(message);
  }

  startThinking() {
    this.live = true;
    this.text = "";
    this.body.replaceChildren();
    this.notice.hidden = true;
    this.meta.textContent = "";
    this.el.dataset.status = "streaming";
    this.feedback.hide();
    if (this.message) {
      this.message = { ...this.message, status: "streaming", usage: null, reasoning: "", references: [] };
    }
    this.thought = "";
    this.thoughtPhase = "";
    this.thoughtMs = null;
    this.shownThought = null;
    this.reasoning.hidden = true;
    this.reasoningBody.replaceChildren();
    this.cited = [];
    this.renderReferences();
    this.el.setAttribute("aria-busy", "true");
    this.el.classList.add("is-thinking");
    this.thinking.hidden = false;
    const started = performance.now();
    this.startedAt = started;
    const tick = () => {
      const text = t("thinking", { seconds: formatSeconds(performance.now() - started) });
      this.thinking.textContent = text;
      if (this.thoughtPhase === "live") this.reasoningLabel.textContent = text;
    };
    tick();
    clearInterval(this.timer);
    this.timer = setInterval(tick, 100);
  }

  stopThinking() {
    clearInterval(this.timer);
    this.timer = 0;
    this.thinking.hidden = true;
    this.el.classList.remove("is-thinking");
  }

  // A "reasoning" frame: the timer moves into the open block's summary while the text streams.
  appendReasoning(delta) {
    if (!delta) return;
    if (!this.thoughtPhase && this.text) {
      // Reasoning after the answer began (not how providers send it): kept, but folded.
      this.reasoning.hidden = false;
      this.foldReasoning(null);
    } else if (!this.thoughtPhase) {
      this.thoughtPhase = "live";
      this.thinking.hidden = true;
      this.reasoning.hidden = false;
      this.reasoning.open = true;
      this.reasoning.dataset.state = "live";
      this.reasoningLive.hidden = false;
      this.reasoningLabel.setAttribute("aria-hidden", "true");
      this.reasoningLabel.textContent = this.thinking.textContent;
    }
    this.thought += delta;
    this.scheduleRender();
  }

  // The answer has started (or the reply ended): fold the reasoning away under its duration.
  finishReasoning() {
    if (this.thoughtPhase !== "live") return;
    this.thoughtMs = performance.now() - this.startedAt;
    this.foldReasoning(this.thoughtMs);
    this.renderThought();
  }

  foldReasoning(ms) {
    this.thoughtPhase = "done";
    this.reasoning.open = false;
    this.reasoning.dataset.state = "done";
    this.reasoningLive.hidden = true;
    this.reasoningLabel.removeAttribute("aria-hidden");
    this.reasoningLabel.textContent = thoughtFor(ms);
  }

  renderThought() {
    if (this.shownThought === this.thought) return;
    this.shownThought = this.thought;
    renderMarkdown(this.reasoningBody, this.thought);
  }

  // A saved message (or a finished stream): the block is shown folded when there is reasoning,
  // and a block the reader opened or closed stays as they left it.
  renderReasoning(message) {
    if (!this.thought) {
      this.thoughtPhase = "";
      this.reasoning.hidden = true;
      this.reasoningBody.replaceChildren();
      this.shownThought = null;
      return;
    }
    const ms = message.reasoning_ms ?? this.thoughtMs;
    if (this.thoughtPhase === "done") {
      this.reasoningLabel.textContent = thoughtFor(ms);
    } else if (message.status === "streaming" && !this.live && !this.text) {
      // Still thinking in another tab: shown open, without a timer of its own.
      this.thoughtPhase = "live";
      this.reasoning.open = true;
      this.reasoning.dataset.state = "live";
      this.reasoningLive.hidden = true;
      this.reasoningLabel.removeAttribute("aria-hidden");
      this.reasoningLabel.textContent = t("reasoning_live");
    } else {
      this.foldReasoning(ms);
    }
    this.reasoning.hidden = false;
    this.renderThought();
  }

  // A "references" frame, or a saved message's: links to the pages the answer drew on.
  setReferences(references) {
    this.cited = Array.isArray(references) ? references : [];
    this.renderReferences();
  }

  renderReferences() {
    const items = [];
    for (const reference of this.cited) {
      const url = webUrl(reference?.url);
      if (!url) continue;
      const link = make("a", "references__link", String(reference.title || "").trim() || url.hostname);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      const item = make("li", "references__item");
      item.append(link, " ", make("span", "references__host", url.hostname));
      items.push(item);
    }
    if (!items.length) {
      this.references.replaceChildren();
      this.references.hidden = true;
      return;
    }
    const list = make("ol", "references__list");
    list.append(...items);
    this.references.replaceChildren(make("p", "references__title", t("references")), list);
    this.references.hidden = false;
  }

  started(message) {
    this.message = { ...message, siblings: null };
    this.versions.hidden = true;
    stampTime(this.bubble, message);
    this.el.dataset.id = message.id;
    this.el.dataset.seq = message.seq;
  }

  append(delta) {
    this.finishReasoning();
    if (this.timer) this.stopThinking();
    this.text += delta;
    this.scheduleRender();
  }

  // One render per frame however fast the tokens come.
  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderThought();
      if (this.thoughtPhase !== "live") this.render();
    });
  }

  end(message) {
    this.finishReasoning();
    this.stopThinking();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.live = false;
    this.el.removeAttribute("aria-busy");
    if (message) {
      this.apply(message);
    } else {
      this.render();
      this.renderStatus();
      this.renderMeta();
    }
    highlightWithin(this.el).catch(() => {});
  }

  // The server saved nothing new: keep the previous reply and say why the attempt failed.
  restore(previous, reason) {
    this.end(previous);
    this.showNotice("error", reason);
  }

  fail(message, reason) {
    if (message) {
      this.end({ ...message, error_detail: message.error_detail || reason });
    } else {
      this.message = { ...(this.message || {}), status: "error", error_detail: reason, content: this.text };
      this.el.dataset.status = "error";
      this.end(null);
    }
  }

  stopped() {
    this.message = { ...(this.message || {}), status: "interrupted", error_code: "stopped", content: this.text };
    this.el.dataset.status = "interrupted";
    this.end(null);
  }

  render() {
    if (this.text) {
      renderMarkdown(this.body, this.text);
      this.body.hidden = false;
    } else {
      this.body.replaceChildren();
      this.body.hidden = this.live || this.status !== "complete";
      if (!this.body.hidden) this.body.append(make("p", "msg__empty", t("empty_reply")));
    }
  }

  showNotice(kind, text, title = "") {
    this.notice.className = `msg__notice msg__notice--${kind}`;
    this.notice.replaceChildren();
    if (kind === "error") this.notice.append(make("strong", "", t("error_heading")), " ");
    this.notice.append(text);
    // The provider's code beside the server's (translated) detail.
    if (title) this.notice.append(make("span", "msg__code", `(${title})`));
    this.notice.title = title;
    this.notice.hidden = false;
  }

  renderStatus() {
    const message = this.message || {};
    this.notice.hidden = true;
    const stopped = message.status === "interrupted" && message.error_code !== "worker_lost";
    this.badge.hidden = !stopped;
    this.el.classList.toggle("is-stopped", stopped);
    if (message.status === "error") {
      const code = message.error_code ? t("error_code", { code: message.error_code }) : "";
      this.showNotice("error", message.error_detail || t("error_generic"), code);
    } else if (message.status === "interrupted") {
      const text = message.error_code === "worker_lost" ? t("interrupted_server") : t("stopped");
      this.showNotice("stopped", text);
    } else if (message.status === "streaming" && !this.live) {
      this.showNotice("streaming", t("still_writing"));
    }
  }

  renderMeta() {
    const message = this.message || {};
    const parts = [];
    if (message.model) parts.push(modelLabels.get(message.model) || message.model);
    if (message.usage) {
      parts.push(
        t("usage", {
          total: formatNumber(message.usage.total_tokens),
          prompt: formatNumber(message.usage.prompt_tokens),
          completion: formatNumber(message.usage.completion_tokens),
        }),
      );
    }
    this.meta.textContent = parts.join(" · ");
    const timing = [];
    if (message.ttft_ms != null) timing.push(t("first_token_after", { seconds: formatSeconds(message.ttft_ms) }));
    if (message.duration_ms != null) timing.push(t("total_time", { seconds: formatSeconds(message.duration_ms) }));
    this.meta.title = timing.join(" · ");
  }

  setActions({ last, busy }) {
    const status = this.status;
    this.copy.hidden = !this.text || this.live;
    this.regenerate.hidden = !last || busy || this.live || !["complete", "interrupted"].includes(status);
    this.retry.hidden = !last || busy || this.live || status !== "error";
  }
}
