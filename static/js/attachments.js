// Files attached to a message (docs/attachments.md): the paperclip button, drag and drop onto the
// conversation, paste into the message box. Each file uploads at once and shows as a chip in the
// composer (spinner, then ✓ with its pages and tokens, or the server's refusal in red); a sent
// message lists its files above its text. A refused send keeps every chip.

import { ApiError, api } from "./api.js";
import { formatNumber, t } from "./i18n.js";
import { sleep } from "./session.js";

const SVG = "http://www.w3.org/2000/svg";
const PAGED = new Set(["pdf", "pptx"]);

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function paperclip() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.2-8.2a3.3 3.3 0 0 1 4.7 4.7l-8.2 8.2a1.7 1.7 0 0 1-2.4-2.4l7.4-7.4");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

export function formatSize(bytes) {
  if (bytes < 1024) return t("size_bytes", { size: formatNumber(bytes) });
  if (bytes < 1024 * 1024) return t("size_kb", { size: formatNumber(Math.max(1, Math.round(bytes / 1024))) });
  return t("size_mb", { size: formatNumber(Math.round((bytes / 1024 / 1024) * 10) / 10) });
}

// The files of a sent message ({id, name, kind, size, pages}): names above its text.
export function fileChips(files) {
  const list = make("ul", "msg__files");
  list.setAttribute("aria-label", t("attached_files"));
  for (const file of files || []) {
    const item = make("li", "att-sent", file.name);
    item.dataset.kind = file.kind || "";
    if (file.pages) item.append(make("span", "att-sent__pages", t("file_page_range", { pages: file.pages })));
    if (file.size) item.title = `${file.name} (${formatSize(file.size)})`;
    list.append(item);
  }
  list.hidden = !list.children.length;
  return list;
}

// What the API takes for one file: its id, or {id, pages} with a page range.
export function refOf(file) {
  return file.pages ? { id: file.id, pages: file.pages } : file.id;
}

// Opens the reply stream of a send with files, waiting briefly (as session.js's openReply does)
// for a reply stopped a moment ago to close on the server.
export async function openWithFiles(session, job, signal) {
  const refs = job.files.map(refOf);
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api.sendMessage(session.id, job.content, signal, job.parent, refs);
    } catch (error) {
      if (error instanceof ApiError && error.code === "reply_in_progress" && attempt < 6) {
        await sleep(500 * (attempt + 1), signal);
        continue;
      }
      throw error;
    }
  }
}

class Chip {
  constructor(file, owner) {
    this.file = file;
    this.owner = owner;
    this.data = null; // the uploaded file, from the API
    this.state = "uploading";
    this.el = make("li", "att-chip");
    this.el.dataset.state = "uploading";
    this.spinner = make("span", "att-chip__spin");
    this.spinner.setAttribute("aria-hidden", "true");
    this.name = make("span", "att-chip__name", file.name || "file");
    this.name.title = file.name || "";
    this.size = make("span", "att-chip__size", formatSize(file.size));
    this.status = make("span", "att-chip__status", t("file_uploading"));
    this.status.setAttribute("role", "status");
    this.pages = null;
    this.remove = make("button", "att-chip__remove", "×");
    this.remove.type = "button";
    this.remove.setAttribute("aria-label", t("remove_file", { name: file.name || "" }));
    this.remove.title = t("remove_file", { name: file.name || "" });
    this.remove.addEventListener("click", () => owner.discard(this));
    this.el.append(this.spinner, this.name, this.size, this.status, this.remove);
  }

  async upload() {
    try {
      this.ready(await api.uploadFile(this.file));
    } catch (error) {
      this.fail(error);
    }
  }

  ready(data) {
    this.data = data;
    if (this.state === "removed") {
      // Removed while it uploaded: nothing to keep on the server either.
      api.deleteFile(data.id).catch(() => {});
      return;
    }
    this.setState("ready");
    const extraction = data.extraction || {};
    const parts = ["✓"];
    const paged = PAGED.has(data.kind) && extraction.pages;
    if (paged === 1) parts.push(t("file_one_page"));
    else if (paged) parts.push(t("file_pages", { count: formatNumber(extraction.pages) }));
    if (data.kind !== "image") parts.push(t("file_tokens", { tokens: formatNumber(extraction.token_estimate || 0) }));
    this.status.textContent = parts.length > 2 ? `${parts[0]} ${parts.slice(1).join(" · ")}` : parts.join(" ");
    if (PAGED.has(data.kind)) {
      const label = make("label", "att-chip__pages");
      label.append(make("span", "visually-hidden", t("file_pages_label", { name: data.name })));
      this.pages = make("input", "att-chip__pages-input");
      this.pages.type = "text";
      this.pages.inputMode = "numeric";
      this.pages.autocomplete = "off";
      this.pages.placeholder = t("file_pages_placeholder");
      this.pages.title = t("file_pages_hint");
      label.append(this.pages);
      this.status.after(label);
    }
    this.owner.changed();
  }

  fail(error) {
    if (this.state === "removed") return;
    this.setState("error");
    const detail = error instanceof ApiError ? error.detail || error.code : error?.message;
    this.status.textContent = t("file_refused", { reason: detail || t("error_generic") });
    this.status.setAttribute("role", "alert");
    this.owner.changed();
  }

  setState(state) {
    this.state = state;
    this.el.dataset.state = state;
    this.remove.disabled = state === "sending";
    if (this.pages) this.pages.disabled = state === "sending";
  }

  // As a sent message lists it.
  get sent() {
    const pages = this.pages ? this.pages.value.trim() : "";
    return { id: this.data.id, name: this.data.name, kind: this.data.kind, size: this.data.size, pages, chip: this };
  }
}

export class Attachments {
  // composer: the form; input: its textarea; dropZone: where files may be dropped;
  // modelSelect: the model picker, whose change handler switches the conversation's model.
  constructor({ composer, input, dropZone, modelSelect }) {
    this.composer = composer;
    this.input = input;
    this.dropZone = dropZone;
    this.modelSelect = modelSelect;
    this.chips = [];

    this.tray = make("ul", "att-tray");
    this.tray.setAttribute("aria-label", t("attached_files"));
    this.tray.hidden = true;
    const box = composer.querySelector(".composer__box");
    box.before(this.tray);

    this.picker = make("input", "att-picker");
    this.picker.type = "file";
    this.picker.multiple = true;
    this.picker.hidden = true;
    this.picker.tabIndex = -1;
    this.picker.addEventListener("change", () => {
      this.add(this.picker.files);
      this.picker.value = "";
    });
    this.button = make("button", "icon-btn composer__attach");
    this.button.type = "button";
    this.button.id = "attach-button";
    this.button.setAttribute("aria-label", t("attach_files"));
    this.button.title = t("attach_files");
    this.button.append(paperclip());
    this.button.addEventListener("click", () => this.picker.click());
    box.prepend(this.button, this.picker);

    this.notice = make("div", "att-notice");
    this.notice.setAttribute("role", "alert");
    this.notice.hidden = true;
    box.after(this.notice);

    this.listen();
  }

  listen() {
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    let depth = 0;
    const zone = this.dropZone;
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      zone.classList.add("is-dropping");
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("is-dropping");
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) zone.classList.remove("is-dropping");
    });
    zone.addEventListener("drop", (event) => {
      depth = 0;
      zone.classList.remove("is-dropping");
      const files = event.dataTransfer?.files;
      if (!files || !files.length) return;
      event.preventDefault();
      this.add(files);
      this.input.focus();
    });
    // A file dropped beside the drop zone must not make the browser leave the page to show it.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (hasFiles(event) && !event.defaultPrevented) event.preventDefault();
      });
    }
    this.input.addEventListener("paste", (event) => {
      const files = event.clipboardData?.files;
      if (!files || !files.length) return;
      // A copied image arrives as a file; text pasted along with it still goes into the box.
      if (!event.clipboardData.getData("text/plain")) event.preventDefault();
      this.add(files);
    });
  }

  add(fileList) {
    for (const file of [...fileList]) {
      const chip = new Chip(file, this);
      this.chips.push(chip);
      this.tray.append(chip.el);
      chip.upload();
    }
    this.clearNotice();
    this.changed();
  }

  discard(chip) {
    const was = chip.state;
    chip.setState("removed");
    this.chips = this.chips.filter((c) => c !== chip);
    chip.el.remove();
    if (was === "ready" && chip.data) api.deleteFile(chip.data.id).catch(() => {});
    this.changed();
    this.input.focus();
  }

  changed() {
    this.tray.hidden = !this.chips.length;
  }

  uploading() {
    return this.chips.some((chip) => chip.state === "uploading");
  }

  // The files to send with the next message, locked (no ×) until the server accepts or refuses
  // it. Refused uploads stay in the tray, not sent.
  take() {
    const ready = this.chips.filter((chip) => chip.state === "ready");
    for (const chip of ready) chip.setState("sending");
    this.clearNotice();
    return ready.map((chip) => chip.sent);
  }

  // The server saved the message: its files leave the composer.
  accepted(files) {
    for (const file of files || []) {
      const chip = file.chip;
      if (!chip) continue;
      chip.setState("sent");
      chip.el.remove();
      this.chips = this.chips.filter((c) => c !== chip);
    }
    this.changed();
  }

  // The send was refused before anything was saved: the chips come back as they were. True when
  // the refusal is shown here (a message too long for the model, with the models that take it).
  refused(files, error) {
    for (const file of files || []) {
      if (file.chip && file.chip.state === "sending") file.chip.setState("ready");
    }
    if (error instanceof ApiError && error.code === "attachments_too_long") {
      this.showTooLong(error.data || {});
      return true;
    }
    return false;
  }

  clearNotice() {
    this.notice.hidden = true;
    this.notice.replaceChildren();
  }

  showTooLong(data) {
    const text = make(
      "p",
      "att-notice__text",
      t("files_too_long", {
        tokens: formatNumber(data.tokens ?? 0),
        limit: formatNumber(data.limit ?? 0),
        over: formatNumber(data.over_by ?? 0),
      }),
    );
    const buttons = make("div", "att-notice__models");
    const labels = new Map([...this.modelSelect.options].map((option) => [option.value, option.textContent]));
    for (const id of data.models || []) {
      if (!labels.has(id) || id === this.modelSelect.value) continue;
      const button = make("button", "btn btn--ghost btn--small att-notice__switch", t("switch_model", { model: labels.get(id) }));
      button.type = "button";
      button.dataset.model = id;
      button.addEventListener("click", () => this.switchModel(id));
      buttons.append(button);
    }
    const kinds = new Map(this.chips.filter((chip) => chip.data).map((chip) => [chip.data.id, chip.data.kind]));
    const paged = (data.files || []).some((file) => PAGED.has(kinds.get(file.id)));
    const hint = make("p", "att-notice__hint", paged ? t("files_page_range_hint") : t("files_shorter_hint"));
    this.notice.replaceChildren(text, ...(buttons.children.length ? [buttons] : []), hint);
    this.notice.hidden = false;
  }

  // The picker's own change handler saves the choice (and the conversation's model).
  switchModel(id) {
    this.modelSelect.value = id;
    this.modelSelect.dispatchEvent(new Event("change"));
    this.clearNotice();
    this.input.focus();
  }
}
