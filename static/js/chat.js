// The chat page: wires the sidebar, the conversation view, the composer and the reply streams.

import { ApiError, api, setCsrfFallback } from "./api.js";
import { Attachments, openWithFiles } from "./attachments.js";
import { ExportMenu } from "./export-menu.js";
import { forgetConversation, forgetUnsent, readDraft, rememberUnsent, unsentList, writeDraft } from "./drafts.js";
import { History } from "./history.js";
import { formatNumber, t } from "./i18n.js";
import { AssistantView, UserView, setModelLabels, viewOf } from "./messages.js";
import { copyText, flashCopied, handleCodeCopy, highlightWithin } from "./render.js";
import { Sessions, openReply } from "./session.js";
import { readEvents } from "./stream.js";
import { Sidebar, conversationTitle } from "./sidebar.js";
import { initPreferences } from "./theme.js";

const config = JSON.parse(document.getElementById("chat-config").textContent);
setCsrfFallback(config.csrfToken);

const $ = (id) => document.getElementById(id);
const app = $("app");
const scroller = $("scroller");
const list = $("message-list");
const emptyState = $("empty-state");
const historyMore = $("history-more");
const jumpLatest = $("jump-latest");
const titleEl = $("conversation-title");
const modelSelect = $("model-select");
const promptToggle = $("system-prompt-toggle");
const promptPanel = $("system-prompt-panel");
const promptInput = $("system-prompt");
const promptStatus = $("system-prompt-status");
const settingsToggle = $("settings-toggle");
const settingsPanel = $("settings-panel");
const settingsForm = $("settings-form");
const temperatureInput = $("setting-temperature");
const temperatureHelp = $("setting-temperature-help");
const maxTokensInput = $("setting-max-tokens");
const maxTokensHelp = $("setting-max-tokens-help");
const reasoningField = $("setting-reasoning-field");
const reasoningSelect = $("setting-reasoning");
const webSearchField = $("setting-web-search-field");
const webSearchSelect = $("setting-web-search");
const settingsStatus = $("settings-status");
const settingsError = $("settings-error");
const composer = $("composer");
const input = $("composer-input");
const sendButton = $("send-button");
const stopButton = $("stop-button");
const composerError = $("composer-error");
const counter = $("composer-count");
const modelNotice = $("model-notice");
const toast = $("toast");
const phone = window.matchMedia("(max-width: 800px)");

const UUID = /^\/c\/([0-9a-f-]{36})\/?$/i;
const PAGE_SIZE = 50;

const state = {
  conversation: null, // the open conversation, or null for a new chat not yet created
  token: 0, // changes whenever the view switches conversation
  previous: null, // URL of the next older page of messages
  loadingOlder: false,
  stick: true, // follow the newest text while it streams
  creating: null,
  draftModel: localStorage.getItem("chatsite:model") || config.defaultModel,
  draftSystemPrompt: "",
  draftSettings: {}, // model settings chosen before a new chat exists, applied when it starts
  modelConfigured: config.modelConfigured,
  sessions: new Sessions(),
};

// --- small helpers ------------------------------------------------------------------------------

// The language switch returns to the page shown now, not to the one first loaded.
function syncLanguageSwitch() {
  for (const field of document.querySelectorAll(".lang-switch input[name='next']")) {
    field.value = window.location.pathname;
  }
}

function navigate(path, { replace = false } = {}) {
  if (window.location.pathname === path) return;
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  syncLanguageSwitch();
}

function currentId() {
  return state.conversation ? state.conversation.id : null;
}

function errorText(error) {
  if (!(error instanceof ApiError)) return error?.message || t("error_generic");
  switch (error.code) {
    case "network_error":
      return t("network_error");
    case "rate_limited":
      return t("rate_limited", { seconds: error.retryAfter ?? error.data.retry_after ?? 60 });
    case "model_not_configured":
      return t("no_model");
    case "reply_in_progress":
      return t("reply_in_progress");
    default:
      return error.detail || t("error_generic");
  }
}

let toastTimer = 0;
function showToast(message) {
  toast.querySelector(".toast__text").textContent = message;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toast.hidden = true;
  }, 8000);
}
toast.querySelector("button").addEventListener("click", () => {
  toast.hidden = true;
});

function reportError(error) {
  if (error?.name === "AbortError") return;
  showToast(errorText(error));
}

window.addEventListener("chatsite:signed-out", () => {
  const next = encodeURIComponent(window.location.pathname);
  window.location.assign(`${config.loginUrl}?next=${next}`);
});

function confirmDialog(message, okLabel) {
  const dialog = $("confirm-dialog");
  $("confirm-message").textContent = message;
  $("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

// --- drafts (drafts.js) ---------------------------------------------------------------------------

function saveDraft() {
  writeDraft(currentId(), input.value);
}

// --- scrolling ----------------------------------------------------------------------------------

function nearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 64;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
  state.stick = true;
  jumpLatest.hidden = true;
}

scroller.addEventListener("scroll", () => {
  state.stick = nearBottom();
  jumpLatest.hidden = state.stick;
  if (scroller.scrollTop < 400) loadOlder();
}, { passive: true });

// Any growth of the conversation (streamed text, highlighting) keeps the newest line in view,
// unless the reader has scrolled up to read something else.
new ResizeObserver(() => {
  if (state.stick) scroller.scrollTop = scroller.scrollHeight;
}).observe(list);

jumpLatest.addEventListener("click", () => {
  scrollToBottom();
  input.focus();
});

// --- sessions: one reply at a time per conversation, later messages queued -----------------------

function sessionFor(id) {
  return state.sessions.for(id);
}

function isBusy(id) {
  return state.sessions.isBusy(id);
}

function updateControls() {
  const session = state.sessions.get(currentId());
  const streaming = Boolean(session && session.busy);
  stopButton.hidden = !streaming;
  sendButton.title = streaming ? t("send_queued_hint") : t("send");
  refreshActions();
}

function refreshActions() {
  const busy = isBusy(currentId());
  const messages = [...list.children].filter((el) => el.dataset.id || el.classList.contains("msg--assistant"));
  const last = messages[messages.length - 1];
  for (const el of list.querySelectorAll(".msg--assistant")) {
    viewOf(el)?.setActions({ last: el === last, busy });
  }
  for (const el of list.querySelectorAll(".msg--user")) viewOf(el)?.setActions({ busy });
}

function showEmptyState() {
  emptyState.hidden = list.children.length > 0;
}

function appendToView(id, ...elements) {
  if (id !== currentId()) return;
  list.append(...elements);
  showEmptyState();
}

// parent: the user message this one replaces (an edit makes a new version of it); files: its
// attachments (attachments.js).
async function enqueue(content, existing = null, { parent = null, files = [] } = {}) {
  let id = currentId();
  if (!id) {
    try {
      id = await createConversation();
    } catch (error) {
      input.value = input.value || content;
      autosize();
      saveDraft();
      attachments.refused(files, error);
      showComposerError(errorText(error));
      return;
    }
  }
  const session = sessionFor(id);
  const view = existing || new UserView(content, null, files);
  if (existing) forgetUnsent(id, existing);
  view.setState(session.busy ? "queued" : "sending");
  session.queue.push({ type: "send", content, user: view, parent, files });
  appendToView(id, view.el);
  if (id === currentId()) scrollToBottom();
  pump(session);
  updateControls();
}

function regenerate(view) {
  const id = currentId();
  if (!id) return;
  const session = sessionFor(id);
  session.queue.push({ type: "regenerate", assistant: view, parent: view.message?.id || null });
  pump(session);
}

function pump(session) {
  if (session.busy || !session.queue.length) return;
  const job = session.queue.shift();
  run(session, job).catch(reportError);
}

async function run(session, job) {
  session.busy = true;
  const controller = new AbortController();
  session.controller = controller;
  let assistant = job.assistant;
  const previous = assistant ? assistant.message : null;
  if (job.type === "send") {
    job.user.setState("sending");
    assistant = new AssistantView();
    if (job.user.el.parentNode) job.user.el.after(assistant.el);
  }
  session.user = job.user || null;
  session.assistant = assistant;
  assistant.startThinking();
  updateControls();
  if (session.id === currentId()) scrollToBottom();

  let started = false;
  let finished = false;
  // The composer and the queue are free again at "done" or "error", which end every stream
  // (a new conversation's "title" frame comes just before "done").
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    session.busy = false;
    if (session.controller === controller) session.controller = null;
    session.user = null;
    session.assistant = null;
    if (session.id === currentId()) updateControls();
    pump(session);
  };
  try {
    const response = await (job.files?.length ? openWithFiles : openReply)(session, job, controller.signal);
    for await (const { event, data } of readEvents(response)) {
      if (event === "start") {
        started = true;
        if (data.user_message) job.user?.saved(data.user_message);
        attachments.accepted(job.files);
        assistant.started(data.assistant_message);
        refreshConversation(session.id);
      } else if (event === "reasoning") {
        assistant.appendReasoning(data.content);
      } else if (event === "delta") {
        assistant.append(data.content);
      } else if (event === "references") {
        assistant.setReferences(data.references);
      } else if (event === "done") {
        finished = true;
        assistant.end(data.message);
        release();
        // An edit or a regenerated reply has siblings now: show its ‹ n/n ›.
        if (job.parent || job.type === "regenerate") reloadBranch(session.id);
      } else if (event === "error") {
        finished = true;
        assistant.fail(data.message, data.detail);
        release();
      } else if (event === "title") {
        showGeneratedTitle(session.id, data.title);
      }
    }
    if (!finished) assistant.fail(null, t("connection_lost"));
  } catch (error) {
    if (error.name === "AbortError") {
      if (!finished) {
        assistant.stopped();
        await keepWhatWasShown(assistant);
      }
    } else if (finished) {
      // The reply was complete; only the title was lost.
    } else if (!started && job.files?.length) {
      // Refused with files: the text and the chips go back to the composer, nothing is lost.
      assistant.el.remove();
      job.user.el.remove();
      showEmptyState();
      input.value = input.value ? `${job.content}\n\n${input.value}` : job.content;
      autosize();
      saveDraft();
      if (!attachments.refused(job.files, error)) showComposerError(errorText(error));
    } else if (!started && job.type === "send") {
      // Nothing was saved: the message stays on screen (and across reloads) with Retry.
      assistant.el.remove();
      const reason = errorText(error);
      job.user.setState("unsent", reason);
      rememberUnsent(session.id, job.user, reason);
      if (error.code === "model_not_configured") setModelConfigured(false);
    } else if (!started && previous) {
      assistant.restore(previous, errorText(error));
    } else {
      assistant.fail(null, errorText(error));
    }
  } finally {
    // Files of a message that never started (stopped while sending) are free to send again.
    if (!started) attachments.refused(job.files);
    release();
  }
}

// A stopped reply is saved as the page showed it, so a reload shows the same text.
async function keepWhatWasShown(assistant) {
  const id = assistant.message?.id;
  if (!id) return;
  try {
    const message = await api.stopReply(id, [...assistant.text].length);
    if (message && assistant.el.isConnected) assistant.apply({ ...message, siblings: assistant.message?.siblings });
  } catch (error) {
    if (error.status !== 404) reportError(error);
  }
}

// The "title" frame of a new conversation's first reply: the header and the sidebar follow.
function showGeneratedTitle(id, title) {
  if (!title) return;
  generatedTitles.set(id, title);
  if (id === currentId() && state.conversation) {
    state.conversation = { ...state.conversation, title };
    showTitle();
  }
  sidebar.rename(id, title);
}

// Versions: ‹ 2/3 › makes the chosen sibling's branch the active one, then shows it.
async function selectVersion(target) {
  const id = currentId();
  if (!id || !target) return;
  if (isBusy(id)) {
    showToast(t("reply_in_progress"));
    return;
  }
  try {
    await api.selectBranch(id, target);
  } catch (error) {
    reportError(error);
    return;
  }
  await reloadBranch(id, { focus: target });
}

// The active branch again, from the server (after a version switch, an edit or a regenerate).
async function reloadBranch(id, { focus = null } = {}) {
  if (id !== currentId()) return;
  const token = state.token;
  let page;
  try {
    page = await api.latestMessages(id, PAGE_SIZE);
  } catch (error) {
    reportError(error);
    return;
  }
  if (token !== state.token || id !== currentId()) return;
  const session = state.sessions.get(id);
  if (session?.busy) return;
  const top = scroller.scrollTop;
  const elements = page.results.map((message) => viewFor(message).el);
  list.replaceChildren(...elements);
  for (const job of session?.queue || []) if (job.user) list.append(job.user.el);
  state.previous = page.previous;
  historyMore.hidden = !state.previous;
  showEmptyState();
  updateControls();
  highlightWithin(list).catch(() => {});
  if (focus) {
    scroller.scrollTop = top;
    const el = list.querySelector(`li[data-id="${CSS.escape(focus)}"]`);
    const button = el?.querySelector(".versions button:not(:disabled)");
    button?.focus();
  } else {
    scrollToBottom();
  }
}

// Save & send in a sent message's editor: a new version of it, answered on a new branch.
function sendEdited(view, content) {
  const id = currentId();
  if (!id || !view.message) return;
  if (content.length > config.maxMessageChars) {
    showToast(t("too_long", { count: content.length, max: config.maxMessageChars }));
    return;
  }
  // What followed the original belongs to its branch, still reachable with ‹ 1/2 ›.
  while (view.el.nextElementSibling) view.el.nextElementSibling.remove();
  view.el.remove();
  enqueue(content, null, { parent: view.message.id }).catch(reportError);
}

function stop() {
  state.sessions.get(currentId())?.controller?.abort();
}

// Titles generated while a conversation's details were being fetched: the older answer must not
// bring back the first words.
const generatedTitles = new Map();

async function refreshConversation(id) {
  const titled = generatedTitles.get(id);
  try {
    let conversation = await api.conversation(id);
    const generated = generatedTitles.get(id);
    if (generated !== titled && generated) conversation = { ...conversation, title: generated };
    sidebar.upsert(conversation, { top: true });
    if (id === currentId()) {
      state.conversation = conversation;
      showTitle();
    }
  } catch (error) {
    if (error.status !== 404) reportError(error);
  }
}

// --- the conversation view ----------------------------------------------------------------------

function showTitle() {
  const title = state.conversation ? conversationTitle(state.conversation) : t("new_chat");
  titleEl.textContent = title;
  titleEl.title = title;
  document.title = `${title} · ${config.siteName}`;
  showExportMenu();
}

// --- export and share (export-menu.js), settings (theme.js) --------------------------------------

const exportMenu = new ExportMenu({ currentId, errorText });

function showExportMenu() {
  exportMenu.show(currentId());
}

initPreferences({ onOpen: syncLanguageSwitch });

function viewFor(message) {
  return message.role === "user" ? new UserView(message.content, message) : new AssistantView(message);
}

function resetView() {
  state.token += 1;
  state.previous = null;
  state.loadingOlder = false;
  list.replaceChildren();
  historyMore.hidden = true;
  composerError.hidden = true;
}

function loadDraft() {
  input.value = readDraft(currentId());
  autosize();
  updateCount();
}

function showNewChat({ push = false } = {}) {
  resetView();
  state.conversation = null;
  if (push) navigate("/");
  sidebar.setActive(null);
  showTitle();
  showModel();
  showSystemPrompt();
  showSettings();
  showEmptyState();
  loadDraft();
  updateControls();
  closeSidebarOnPhone();
  if (!phone.matches) input.focus();
}

async function openConversation(id, { push = false } = {}) {
  resetView();
  const token = state.token;
  if (push) navigate(`/c/${id}/`);
  state.conversation = { id, title: "", model: state.draftModel, system_prompt: "" };
  sidebar.setActive(id);
  titleEl.textContent = "";
  emptyState.hidden = true;
  list.setAttribute("aria-busy", "true");
  loadDraft();
  closeSidebarOnPhone();
  let conversation;
  let page;
  try {
    [conversation, page] = await Promise.all([api.conversation(id), api.latestMessages(id, PAGE_SIZE)]);
  } catch (error) {
    if (token !== state.token) return;
    list.removeAttribute("aria-busy");
    if (error.status === 404) {
      showToast(t("conversation_not_found"));
      navigate("/", { replace: true });
      showNewChat();
    } else {
      reportError(error);
    }
    return;
  }
  if (token !== state.token) return;
  list.removeAttribute("aria-busy");
  state.conversation = conversation;
  sidebar.upsert(conversation);
  showTitle();
  showModel();
  showSystemPrompt();
  showSettings();

  const session = state.sessions.get(id);
  const live = new Map();
  if (session?.user?.el.dataset.id) live.set(session.user.el.dataset.id, session.user.el);
  if (session?.assistant?.el.dataset.id) live.set(session.assistant.el.dataset.id, session.assistant.el);
  const elements = page.results.map((message) => live.get(message.id) || viewFor(message).el);
  list.replaceChildren(...elements);
  // A reply of this tab still starting (no ids yet), then the queue, then what never got sent.
  if (session?.user && !session.user.el.isConnected) list.append(session.user.el);
  if (session?.assistant && !session.assistant.el.isConnected) list.append(session.assistant.el);
  for (const job of session?.queue || []) if (job.user) list.append(job.user.el);
  for (const entry of unsentList(id)) {
    const view = new UserView(entry.content);
    view.unsentKey = entry.key;
    view.setState("unsent", entry.reason);
    list.append(view.el);
  }
  state.previous = page.previous;
  historyMore.hidden = !state.previous;
  showEmptyState();
  updateControls();
  scrollToBottom();
  highlightWithin(list).catch(() => {});
  if (!phone.matches) input.focus();
  const last = page.results[page.results.length - 1];
  if (last && last.status === "streaming" && !session?.busy) watchStreaming(id, token, last.id);
  // A short first page leaves no room to scroll: fetch older messages straight away.
  if (state.previous && scroller.scrollHeight <= scroller.clientHeight + 400) loadOlder();
}

const history_ = new History({
  state,
  list,
  scroller,
  button: historyMore,
  viewFor,
  onError: reportError,
  onSettled: () => refreshActions(),
});

function loadOlder() {
  return history_.loadOlder();
}

function watchStreaming(id, token, messageId) {
  return history_.watchStreaming(id, token, messageId);
}

list.addEventListener("click", (event) => {
  if (handleCodeCopy(event)) return;
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const view = viewOf(button.closest("li.msg"));
  if (!view) return;
  const action = button.dataset.action;
  if (action === "copy") {
    const text = view instanceof UserView ? view.content : view.text;
    copyText(text).then(() => flashCopied(button), () => {});
  } else if (action === "version") {
    selectVersion(button.dataset.target);
  } else if (action === "edit" && view instanceof UserView && view.message && !view.el.dataset.state) {
    view.openEditor((content) => sendEdited(view, content));
  } else if (action === "regenerate" || action === "retry") {
    button.hidden = true;
    regenerate(view);
  } else if (action === "resend") {
    const id = currentId();
    view.el.remove();
    enqueue(view.content, view).catch(reportError);
    if (id) forgetUnsent(id, view);
  } else if (action === "edit") {
    const id = currentId();
    if (id) forgetUnsent(id, view);
    view.el.remove();
    input.value = input.value ? `${view.content}\n\n${input.value}` : view.content;
    autosize();
    updateCount();
    saveDraft();
    showEmptyState();
    input.focus();
  } else if (action === "cancel") {
    const session = state.sessions.get(currentId());
    attachments.refused(session?.queue.find((job) => job.user === view)?.files);
    if (session) session.queue = session.queue.filter((job) => job.user !== view);
    view.el.remove();
    showEmptyState();
    updateControls();
    input.focus();
  }
});

// --- new conversations --------------------------------------------------------------------------

function createConversation() {
  state.creating ??= (async () => {
    try {
      let conversation = await api.createConversation({
        model: modelSelect.value || state.draftModel,
        system_prompt: state.draftSystemPrompt,
      });
      writeDraft(null, "");
      state.draftSystemPrompt = "";
      // Settings chosen before the chat existed: a refusal is shown in their panel, and the
      // message still goes out with the model's defaults.
      let refused = null;
      const settings = state.draftSettings;
      state.draftSettings = {};
      if (Object.values(settings).some((value) => value != null)) {
        try {
          conversation = await api.updateConversation(conversation.id, settings);
        } catch (error) {
          refused = error;
        }
      }
      if (!state.conversation) {
        state.conversation = conversation;
        navigate(`/c/${conversation.id}/`);
        sidebar.setActive(conversation.id);
        showTitle();
        if (refused) {
          openSettings(true, { focus: false });
          showSettingsError(t("settings_not_applied", { reason: settingsErrorText(refused) }), fieldOf(refused));
        } else {
          showSettings();
        }
      }
      sidebar.upsert(conversation, { top: true });
      return conversation.id;
    } finally {
      state.creating = null;
    }
  })();
  return state.creating;
}

// --- models and system prompt -------------------------------------------------------------------

let models = [];

function setModelConfigured(configured) {
  state.modelConfigured = configured;
  modelNotice.hidden = configured;
}

async function loadModels() {
  try {
    models = await api.models();
    setModelConfigured(models.some((m) => m.configured));
  } catch (error) {
    models = [];
    if (error.code === "model_not_configured") setModelConfigured(false);
    else reportError(error);
  }
  // A remembered choice that is no longer offered gives way to the default.
  const usable = (id) => models.some((m) => m.id === id && m.configured);
  if (models.length && !usable(state.draftModel)) {
    const flagged = models.find((m) => m.default && m.configured);
    state.draftModel = flagged
      ? flagged.id
      : usable(config.defaultModel)
        ? config.defaultModel
        : (models.find((m) => m.configured) || models[0]).id;
  }
  setModelLabels(new Map(models.map((m) => [m.id, m.label])));
  for (const el of list.querySelectorAll(".msg--assistant")) viewOf(el)?.renderMeta();
  showModel();
}

function modelOption(m) {
  const option = new Option(m.configured ? m.label : t("model_unconfigured", { label: m.label }), m.id);
  option.disabled = !m.configured;
  return option;
}

// One group per provider once there is more than one; a single provider's list stays flat.
function modelOptions() {
  const groups = new Map();
  for (const m of models) {
    const key = m.provider || "";
    if (!groups.has(key)) groups.set(key, { label: m.provider_label || m.provider || t("other_models"), items: [] });
    groups.get(key).items.push(m);
  }
  if (groups.size < 2) return models.map(modelOption);
  return [...groups.values()].map((group) => {
    const node = document.createElement("optgroup");
    node.label = group.label;
    node.append(...group.items.map(modelOption));
    return node;
  });
}

function chosenModel() {
  return state.conversation ? state.conversation.model : state.draftModel;
}

function showModel() {
  const chosen = chosenModel();
  const options = modelOptions();
  if (chosen && !models.some((m) => m.id === chosen)) {
    // Before the list arrives, the label the page was rendered with.
    const known = config.initialModel?.id === chosen ? config.initialModel.label : chosen;
    options.unshift(new Option(models.length ? t("model_unavailable", { label: chosen }) : known, chosen));
  }
  modelSelect.replaceChildren(...options);
  modelSelect.value = chosen || "";
  modelSelect.disabled = !models.length;
  showSettingsLimits();
}

modelSelect.addEventListener("change", async () => {
  const model = modelSelect.value;
  localStorage.setItem("chatsite:model", model);
  if (!state.conversation) {
    state.draftModel = model;
    showSettingsLimits();
    return;
  }
  const id = state.conversation.id;
  try {
    const conversation = await api.updateConversation(id, { model });
    if (id === currentId()) {
      const before = currentSettings();
      state.conversation = conversation;
      showChangedSettings(before);
      showSettingsLimits();
    }
  } catch (error) {
    reportError(error);
    showModel();
  }
});

function showSystemPrompt() {
  const prompt = state.conversation ? state.conversation.system_prompt : state.draftSystemPrompt;
  promptInput.value = prompt || "";
  promptStatus.textContent = "";
  promptToggle.classList.toggle("has-value", Boolean(prompt));
}

promptToggle.addEventListener("click", () => {
  const open = promptPanel.hidden;
  promptPanel.hidden = !open;
  promptToggle.setAttribute("aria-expanded", String(open));
  if (open) promptInput.focus();
});

$("system-prompt-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const prompt = promptInput.value;
  if (prompt.length > config.maxSystemPromptChars) {
    promptStatus.textContent = t("too_long", { count: prompt.length, max: config.maxSystemPromptChars });
    return;
  }
  if (!state.conversation) {
    state.draftSystemPrompt = prompt;
    promptStatus.textContent = t("prompt_saved_new");
  } else {
    const id = state.conversation.id;
    try {
      const conversation = await api.updateConversation(id, { system_prompt: prompt });
      if (id === currentId()) state.conversation = conversation;
      promptStatus.textContent = t("prompt_saved");
    } catch (error) {
      promptStatus.textContent = errorText(error);
      return;
    }
  }
  promptToggle.classList.toggle("has-value", Boolean(prompt));
});

// --- model settings: temperature, output length, thinking, web search --------------------------
// null everywhere means "the model's default"; the server checks each value against the model.

const SETTINGS = ["temperature", "max_tokens", "reasoning", "web_search"];
const SETTING_INPUTS = {
  temperature: temperatureInput,
  max_tokens: maxTokensInput,
  reasoning: reasoningSelect,
  web_search: webSearchSelect,
};

function currentSettings() {
  const source = state.conversation || state.draftSettings;
  return Object.fromEntries(SETTINGS.map((name) => [name, source[name] ?? null]));
}

function switchValue(value) {
  if (value == null) return "";
  return value ? "on" : "off";
}

function switchFrom(value) {
  return value === "" ? null : value === "on";
}

function currentModelInfo() {
  const id = chosenModel();
  return models.find((m) => m.id === id) || null;
}

function finite(value) {
  return value != null && value !== "" && Number.isFinite(Number(value));
}

// The inputs' limits and help follow the chosen model; a model without the capability hides
// its switch.
function showSettingsLimits() {
  const model = currentModelInfo();
  const capabilities = model?.capabilities || {};
  const range = capabilities.temperature || {};
  if (finite(range.min) && finite(range.max)) {
    temperatureInput.min = String(range.min);
    temperatureInput.max = String(range.max);
    const limits = { min: formatNumber(range.min), max: formatNumber(range.max) };
    temperatureHelp.textContent = finite(range.default)
      ? t("temperature_range_default", { ...limits, default: formatNumber(range.default) })
      : t("temperature_range", limits);
  } else {
    temperatureInput.removeAttribute("min");
    temperatureInput.removeAttribute("max");
    temperatureHelp.textContent = t("model_default_help");
  }
  const maxOutput = model?.max_output ?? model?.max_tokens;
  if (finite(maxOutput)) {
    maxTokensInput.max = String(maxOutput);
    maxTokensHelp.textContent = t("max_tokens_range", { max: formatNumber(maxOutput) });
  } else {
    maxTokensInput.removeAttribute("max");
    maxTokensHelp.textContent = t("model_default_help");
  }
  reasoningField.hidden = !capabilities.reasoning_switch;
  webSearchField.hidden = !capabilities.web_search;
}

function markSettingsChanged(values) {
  settingsToggle.classList.toggle("has-value", SETTINGS.some((name) => values[name] != null));
}

function showSettings() {
  const values = currentSettings();
  temperatureInput.value = values.temperature ?? "";
  maxTokensInput.value = values.max_tokens ?? "";
  reasoningSelect.value = switchValue(values.reasoning);
  webSearchSelect.value = switchValue(values.web_search);
  settingsStatus.textContent = "";
  clearSettingsError();
  markSettingsChanged(values);
  showSettingsLimits();
}

// A new model may send settings it cannot take back to their default: only those fields change,
// so whatever else is being typed in the panel stays.
function showChangedSettings(before) {
  const after = currentSettings();
  for (const name of SETTINGS) {
    if (before[name] === after[name]) continue;
    const field = SETTING_INPUTS[name];
    field.value = field.tagName === "SELECT" ? switchValue(after[name]) : (after[name] ?? "");
  }
  markSettingsChanged(after);
}

function clearSettingsError() {
  settingsError.hidden = true;
  settingsError.textContent = "";
  for (const field of Object.values(SETTING_INPUTS)) field.removeAttribute("aria-invalid");
}

function showSettingsError(message, field = null) {
  settingsStatus.textContent = "";
  settingsError.textContent = message;
  settingsError.hidden = false;
  if (field && SETTING_INPUTS[field]) SETTING_INPUTS[field].setAttribute("aria-invalid", "true");
}

// Which setting a 400 is about, when the answer says: {"field": name}, or DRF's {name: [...]}.
function fieldOf(error) {
  const data = error?.data || {};
  if (typeof data.field === "string" && data.field in SETTING_INPUTS) return data.field;
  return SETTINGS.find((name) => name in data || (data.errors && name in data.errors)) || null;
}

// The API's refusals are in English; one that names the setting and its allowed range is said
// again in the page's language.
function settingsErrorText(error) {
  const data = error?.data || {};
  const allowed = data.allowed || {};
  const model = currentModelInfo()?.label || chosenModel() || "";
  if (error?.code === "invalid_parameter") {
    if (["temperature", "max_tokens"].includes(data.field) && finite(allowed.min) && finite(allowed.max)) {
      return t(`${data.field}_invalid`, { model, min: formatNumber(allowed.min), max: formatNumber(allowed.max) });
    }
    if (data.field === "reasoning" || data.field === "web_search") return t(`${data.field}_invalid`, { model });
  }
  return errorText(error);
}

class SettingsProblem extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

// What the form says, as the API takes it. Switches a model cannot use are left as they are.
function readSettings() {
  if (temperatureInput.validity.badInput) throw new SettingsProblem(t("not_a_number"), "temperature");
  if (maxTokensInput.validity.badInput) throw new SettingsProblem(t("not_a_number"), "max_tokens");
  const fields = {};
  const temperature = temperatureInput.value.trim();
  if (temperature && !finite(temperature)) throw new SettingsProblem(t("not_a_number"), "temperature");
  fields.temperature = temperature ? Number(temperature) : null;
  const maxTokens = maxTokensInput.value.trim();
  if (maxTokens && !Number.isInteger(Number(maxTokens))) {
    throw new SettingsProblem(t("not_a_whole_number"), "max_tokens");
  }
  fields.max_tokens = maxTokens ? Number(maxTokens) : null;
  if (!reasoningField.hidden) fields.reasoning = switchFrom(reasoningSelect.value);
  if (!webSearchField.hidden) fields.web_search = switchFrom(webSearchSelect.value);
  return fields;
}

function openSettings(open, { focus = true } = {}) {
  settingsPanel.hidden = !open;
  settingsToggle.setAttribute("aria-expanded", String(open));
  if (open && focus) temperatureInput.focus();
}

settingsToggle.addEventListener("click", () => openSettings(settingsPanel.hidden));

settingsForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearSettingsError();
  settingsStatus.textContent = "";
  let fields;
  try {
    fields = readSettings();
  } catch (problem) {
    showSettingsError(problem.message, problem.field);
    SETTING_INPUTS[problem.field]?.focus();
    return;
  }
  if (!state.conversation) {
    state.draftSettings = { ...state.draftSettings, ...fields };
    markSettingsChanged(currentSettings());
    settingsStatus.textContent = t("prompt_saved_new");
    return;
  }
  const id = state.conversation.id;
  settingsForm.setAttribute("aria-busy", "true");
  try {
    const conversation = await api.updateConversation(id, fields);
    if (id !== currentId()) return;
    state.conversation = conversation;
    showSettings();
    settingsStatus.textContent = t("prompt_saved");
  } catch (error) {
    // What was typed stays in the form, to be corrected and saved again.
    if (id === currentId()) showSettingsError(settingsErrorText(error), fieldOf(error));
  } finally {
    settingsForm.removeAttribute("aria-busy");
  }
});

// --- the composer -------------------------------------------------------------------------------

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
}

function updateCount() {
  const length = input.value.length;
  counter.textContent = t("char_count", { count: length, max: config.maxMessageChars });
  counter.classList.toggle("is-over", length > config.maxMessageChars);
  counter.hidden = length < config.maxMessageChars * 0.8;
}

function showComposerError(message) {
  composerError.textContent = message;
  composerError.hidden = false;
  input.setAttribute("aria-invalid", "true");
}

function clearComposerError() {
  composerError.hidden = true;
  composerError.textContent = "";
  input.removeAttribute("aria-invalid");
}

let draftTimer = 0;
input.addEventListener("input", () => {
  autosize();
  updateCount();
  if (!composerError.hidden) clearComposerError();
  clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, 300);
});
// A reload or a closed tab within the pause above keeps the last keystrokes too.
window.addEventListener("pagehide", () => {
  clearTimeout(draftTimer);
  saveDraft();
});

input.addEventListener("keydown", (event) => {
  // Enter while an input method is composing picks a candidate; it must not send.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    composer.requestSubmit();
  } else if (event.key === "Escape" && !stopButton.hidden) {
    stop();
  }
});

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = input.value;
  if (!content.trim()) {
    showComposerError(t("empty_message"));
    input.focus();
    return;
  }
  if (content.length > config.maxMessageChars) {
    showComposerError(t("too_long", { count: content.length, max: config.maxMessageChars }));
    input.focus();
    return;
  }
  if (!state.modelConfigured) {
    showComposerError(t("no_model"));
    return;
  }
  if (attachments.uploading()) {
    showComposerError(t("files_uploading"));
    return;
  }
  clearComposerError();
  input.value = "";
  clearTimeout(draftTimer);
  saveDraft();
  autosize();
  updateCount();
  enqueue(content, null, { files: attachments.take() }).catch(reportError);
  input.focus();
});

const attachments = new Attachments({ composer, input, dropZone: document.querySelector("main.main"), modelSelect });

stopButton.addEventListener("click", () => {
  stop();
  input.focus();
});

// --- sidebar, navigation, phone layout ----------------------------------------------------------

function openSidebar(open) {
  app.classList.toggle("is-sidebar-open", open);
  $("sidebar-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("conversation-search").focus();
}

function closeSidebarOnPhone() {
  if (phone.matches && app.classList.contains("is-sidebar-open")) openSidebar(false);
}

$("sidebar-toggle").addEventListener("click", () => openSidebar(!app.classList.contains("is-sidebar-open")));
$("sidebar-close").addEventListener("click", () => {
  openSidebar(false);
  $("sidebar-toggle").focus();
});
$("scrim").addEventListener("click", () => openSidebar(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && app.classList.contains("is-sidebar-open") && phone.matches) {
    openSidebar(false);
    $("sidebar-toggle").focus();
  }
});

$("new-chat").addEventListener("click", () => showNewChat({ push: true }));

$("empty-state").addEventListener("click", (event) => {
  const example = event.target.closest("[data-example]");
  if (!example) return;
  input.value = example.textContent;
  autosize();
  updateCount();
  input.focus();
});

const sidebar = new Sidebar({
  onSelect: (id) => {
    if (id === currentId()) {
      closeSidebarOnPhone();
      return;
    }
    openConversation(id, { push: true });
  },
  onDeleted: (id) => {
    forgetConversation(id);
    state.sessions.drop(id);
    if (id === currentId()) showNewChat({ push: true });
  },
  onRenamed: (conversation) => {
    if (conversation.id === currentId()) {
      state.conversation = conversation;
      showTitle();
    }
  },
  onError: reportError,
  confirm: confirmDialog,
});

function route() {
  syncLanguageSwitch();
  const match = UUID.exec(window.location.pathname);
  if (match) openConversation(match[1].toLowerCase());
  else showNewChat();
}

window.addEventListener("popstate", route);


setModelConfigured(state.modelConfigured);
sidebar.reload("");
loadModels();
route();
app.classList.add("is-ready");
