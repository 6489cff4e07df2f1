// The header's export and share menu: Markdown, JSON and PDF downloads of the open conversation
// (GET …/export/?format=, with the session cookie), and a read-only link (POST …/share/, shown
// with Copy; DELETE …/share/ stops sharing).

import { api } from "./api.js";
import { t } from "./i18n.js";
import { copyText, flashCopied } from "./render.js";

const $ = (id) => document.getElementById(id);

export class ExportMenu {
  constructor({ currentId, errorText }) {
    this.currentId = currentId;
    this.errorText = errorText;
    this.menu = $("export-menu");
    this.toggle = $("export-toggle");
    this.list = $("export-list");
    this.dialog = $("share-dialog");
    this.url = $("share-url");
    this.status = $("share-status");

    this.toggle.addEventListener("click", () => {
      this.open(this.list.hidden);
      if (!this.list.hidden) this.list.querySelector("a, button")?.focus();
    });
    this.list.addEventListener("click", (event) => {
      if (event.target.closest("a[data-format]")) this.open(false);
    });
    document.addEventListener("click", (event) => {
      if (!this.list.hidden && !this.menu.contains(event.target)) this.open(false);
    });
    this.menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.list.hidden) {
        this.open(false);
        this.toggle.focus();
      }
    });
    $("share-open").addEventListener("click", () => this.share());
    $("share-copy").addEventListener("click", (event) => {
      const button = event.currentTarget;
      copyText(this.url.value).then(() => {
        flashCopied(button);
        this.status.textContent = t("link_copied");
      }, () => {});
    });
    $("share-revoke").addEventListener("click", () => this.revoke());
  }

  open(open) {
    this.list.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  // The menu follows the open conversation; a new chat has nothing to export yet.
  show(id) {
    this.menu.hidden = !id;
    if (!id) {
      this.open(false);
      return;
    }
    for (const link of this.menu.querySelectorAll("a[data-format]")) {
      link.href = api.exportUrl(id, link.dataset.format);
    }
  }

  showShared(url) {
    this.url.value = url || "";
    $("share-row").hidden = !url;
    $("share-revoke").hidden = !url;
  }

  async share() {
    const id = this.currentId();
    this.open(false);
    if (!id) return;
    this.showShared("");
    this.status.textContent = "";
    this.dialog.showModal();
    try {
      const answer = await api.share(id);
      this.showShared(answer.url);
      this.url.select();
    } catch (error) {
      this.status.textContent = t("share_failed", { reason: this.errorText(error) });
    }
  }

  async revoke() {
    const id = this.currentId();
    if (!id) return;
    try {
      await api.unshare(id);
      this.showShared("");
      this.status.textContent = t("share_stopped");
    } catch (error) {
      this.status.textContent = this.errorText(error);
    }
  }
}
