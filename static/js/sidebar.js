// The sidebar: the user's conversations, newest first, a page at a time, grouped by day (local
// time) under Pinned, Today, Yesterday, Previous 7 days and Earlier; search, pin, rename, delete.

import { api } from "./api.js";
import { t } from "./i18n.js";

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

export function conversationTitle(conversation) {
  return (conversation && conversation.title) || t("untitled");
}

const GROUPS = ["pinned", "today", "yesterday", "week", "earlier"];

// Which group a conversation belongs to, by its last activity in the reader's local time.
export function groupOf(conversation, now = new Date()) {
  if (conversation.pinned) return "pinned";
  const when = new Date(conversation.updated_at || conversation.created_at || now);
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  const day = 24 * 60 * 60 * 1000;
  if (when >= today) return "today";
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (when >= yesterday) return "yesterday";
  if (when >= today.getTime() - 7 * day) return "week";
  return "earlier";
}

export class Sidebar {
  constructor({ onSelect, onDeleted, onRenamed, onError, confirm }) {
    this.list = document.getElementById("conversation-list");
    this.more = document.getElementById("conversations-more");
    this.empty = document.getElementById("conversations-empty");
    this.status = document.getElementById("conversations-status");
    this.search = document.getElementById("conversation-search");
    this.onSelect = onSelect;
    this.onDeleted = onDeleted;
    this.onRenamed = onRenamed;
    this.onError = onError;
    this.confirm = confirm;
    this.activeId = null;
    this.next = null;
    this.loading = false;
    this.query = "";
    this.generation = 0;
    // Conversations deleted on this page: a list response that left the server before the delete
    // must not bring them back.
    this.deleted = new Set();

    let timer = null;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.reload(this.search.value.trim()), 250);
    });
    this.search.form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(timer);
      this.reload(this.search.value.trim());
    });
    this.more.addEventListener("click", () => this.loadMore());
    this.list.addEventListener("click", (event) => this.onClick(event));
    // Next pages load as the end of the list scrolls into view; the button stays for keyboards.
    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { root: this.list.closest(".sidebar__scroll"), rootMargin: "120px" }).observe(this.more);
  }

  async reload(query = this.query) {
    this.query = query;
    this.generation += 1;
    const generation = this.generation;
    this.loading = true;
    this.list.setAttribute("aria-busy", "true");
    try {
      const page = await api.conversations({ search: query });
      if (generation !== this.generation) return;
      this.list.replaceChildren(...this.live(page.results).map((c) => this.item(c)));
      this.regroup();
      this.next = page.next;
      this.status.textContent = query ? t("search_results", { count: page.count }) : "";
    } catch (error) {
      if (generation === this.generation) this.onError(error);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.list.removeAttribute("aria-busy");
        this.updateFooter();
      }
    }
  }

  async loadMore() {
    if (this.loading || !this.next) return;
    const generation = this.generation;
    this.loading = true;
    try {
      const page = await api.page(this.next);
      if (generation !== this.generation) return;
      for (const conversation of this.live(page.results)) {
        if (!this.find(conversation.id)) this.list.append(this.item(conversation));
      }
      this.regroup();
      this.next = page.next;
    } catch (error) {
      this.onError(error);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.updateFooter();
      }
    }
  }

  live(conversations) {
    return conversations.filter((conversation) => !this.deleted.has(conversation.id));
  }

  // The items, in their order, under their groups' headings: an item already in place is not
  // moved (moving it would take the focus away from it).
  regroup() {
    const items = [...this.list.querySelectorAll("li.conv")];
    const sections = [];
    for (const group of GROUPS) {
      const members = items.filter((li) => li.dataset.group === group);
      if (!members.length) continue;
      let section = this.list.querySelector(`section[data-group="${group}"]`);
      if (!section) {
        section = document.createElement("section");
        section.className = "conv-group";
        section.dataset.group = group;
        const heading = document.createElement("h2");
        heading.className = "conv-group__title";
        heading.id = `conv-group-${group}`;
        heading.textContent = t(`group_${group}`);
        const ul = document.createElement("ul");
        ul.className = "conv-list";
        ul.setAttribute("aria-labelledby", heading.id);
        section.append(heading, ul);
      }
      const ul = section.querySelector("ul");
      const current = [...ul.children];
      if (current.length !== members.length || current.some((li, i) => li !== members[i])) {
        ul.replaceChildren(...members);
      }
      sections.push(section);
    }
    const current = [...this.list.children];
    if (current.length !== sections.length || current.some((node, i) => node !== sections[i])) {
      this.list.replaceChildren(...sections);
    }
  }

  updateFooter() {
    this.more.hidden = !this.next;
    const none = !this.list.querySelector("li.conv");
    this.empty.hidden = !none;
    this.empty.textContent = this.query ? t("no_matches") : t("no_conversations");
  }

  find(id) {
    return this.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
  }

  item(conversation) {
    const li = document.createElement("li");
    li.className = "conv";
    li.dataset.id = conversation.id;
    const link = document.createElement("a");
    link.className = "conv__link";
    link.href = `/c/${conversation.id}/`;
    const title = document.createElement("span");
    title.className = "conv__title";
    link.append(title);
    const actions = document.createElement("div");
    actions.className = "conv__actions";
    const pin = document.createElement("button");
    pin.type = "button";
    pin.className = "icon-btn conv__pin";
    pin.dataset.action = "pin";
    pin.append(icon("pin"));
    const rename = document.createElement("button");
    rename.type = "button";
    rename.className = "icon-btn conv__rename";
    rename.dataset.action = "rename";
    rename.append(icon("edit"));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "icon-btn conv__delete";
    remove.dataset.action = "delete";
    remove.append(icon("trash"));
    actions.append(pin, rename, remove);
    li.append(link, actions);
    this.fill(li, conversation);
    if (conversation.id === this.activeId) this.markActive(li);
    return li;
  }

  fill(li, conversation) {
    const name = conversationTitle(conversation);
    li.dataset.pinned = conversation.pinned ? "true" : "false";
    li.dataset.updated = conversation.updated_at || "";
    li.dataset.group = groupOf(conversation);
    li.classList.toggle("is-pinned", Boolean(conversation.pinned));
    const pin = li.querySelector(".conv__pin");
    pin.setAttribute("aria-label", t(conversation.pinned ? "unpin_named" : "pin_named", { title: name }));
    pin.setAttribute("aria-pressed", conversation.pinned ? "true" : "false");
    pin.title = conversation.pinned ? t("unpin") : t("pin");
    li.querySelector(".conv__title").textContent = name;
    li.querySelector(".conv__link").title = name;
    li.querySelector(".conv__rename").setAttribute("aria-label", t("rename_named", { title: name }));
    li.querySelector(".conv__rename").title = t("rename");
    li.querySelector(".conv__delete").setAttribute("aria-label", t("delete_named", { title: name }));
    li.querySelector(".conv__delete").title = t("delete");
  }

  markActive(li) {
    li.classList.add("is-active");
    li.querySelector(".conv__link").setAttribute("aria-current", "page");
  }

  setActive(id) {
    this.activeId = id;
    for (const li of this.list.querySelectorAll("li.is-active")) {
      li.classList.remove("is-active");
      li.querySelector(".conv__link").removeAttribute("aria-current");
    }
    const li = id && this.find(id);
    if (li) this.markActive(li);
  }

  // A conversation that was created or just received a message moves to the top.
  upsert(conversation, { top = false } = {}) {
    if (this.deleted.has(conversation.id)) return;
    let li = this.find(conversation.id);
    if (this.query && !li) return;
    if (!li) {
      li = this.item(conversation);
      this.list.prepend(li);
    } else {
      this.fill(li, conversation);
      const first = this.list.querySelector(`li.conv[data-group="${li.dataset.group}"]`);
      if (top && li !== first) this.list.prepend(li);
    }
    this.regroup();
    this.updateFooter();
  }

  // A generated title (the stream's "title" frame).
  rename(id, title) {
    const li = this.find(id);
    if (!li) return;
    const name = conversationTitle({ title });
    li.querySelector(".conv__title").textContent = name;
    li.querySelector(".conv__link").title = name;
  }

  remove(id) {
    this.deleted.add(id);
    this.find(id)?.remove();
    this.regroup();
    this.updateFooter();
  }

  async togglePin(li) {
    const pinned = li.dataset.pinned !== "true";
    try {
      const conversation = await api.updateConversation(li.dataset.id, { pinned });
      const current = this.find(li.dataset.id) || li;
      this.fill(current, conversation);
      // Pinned ones lead in their group, the others go back in order of activity.
      if (pinned) this.list.prepend(current);
      else this.placeByDate(current);
      this.regroup();
      current.querySelector(".conv__pin")?.focus();
    } catch (error) {
      this.onError(error);
    }
  }

  placeByDate(li) {
    const updated = li.dataset.updated;
    const later = [...this.list.querySelectorAll("li.conv")].find(
      (other) => other !== li && other.dataset.pinned !== "true" && other.dataset.updated < updated,
    );
    if (later) later.before(li);
    else this.list.append(li);
  }

  onClick(event) {
    const li = event.target.closest("li.conv");
    if (!li) return;
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "pin") this.togglePin(li);
    else if (action === "rename") this.startRename(li);
    else if (action === "delete") this.delete(li);
    else if (event.target.closest(".conv__link")) {
      // Let the browser open new tabs and windows itself.
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      this.onSelect(li.dataset.id);
    }
  }

  startRename(li) {
    if (li.querySelector(".conv__input")) return;
    const link = li.querySelector(".conv__link");
    const original = li.querySelector(".conv__title").textContent;
    const input = document.createElement("input");
    input.type = "text";
    input.className = "conv__input";
    input.maxLength = 200;
    input.value = original;
    input.setAttribute("aria-label", t("new_title"));
    link.hidden = true;
    li.classList.add("is-editing");
    li.insertBefore(input, link);
    input.focus();
    input.select();
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      li.classList.remove("is-editing");
      li.querySelector(".conv__rename").focus();
      if (!save || title === original) return;
      try {
        const conversation = await api.updateConversation(li.dataset.id, { title });
        this.fill(li, conversation);
        this.onRenamed(conversation);
      } catch (error) {
        this.onError(error);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async delete(li) {
    const name = li.querySelector(".conv__title").textContent;
    const ok = await this.confirm(t("delete_confirm", { title: name }), t("delete"));
    if (!ok) {
      li.querySelector(".conv__delete").focus();
      return;
    }
    try {
      await api.deleteConversation(li.dataset.id);
    } catch (error) {
      if (error.status !== 404) {
        this.onError(error);
        return;
      }
    }
    this.deleted.add(li.dataset.id);
    // The item on screen may have been replaced by a newer list while the request ran.
    const current = this.find(li.dataset.id) || li;
    const next = current.nextElementSibling || current.previousElementSibling;
    current.remove();
    this.regroup();
    this.updateFooter();
    (next?.querySelector(".conv__link") || document.getElementById("new-chat")).focus();
    this.onDeleted(li.dataset.id);
  }
}
