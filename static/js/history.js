// History: older pages of a conversation as the reader scrolls up, and a reply still being
// written elsewhere (another tab, or one stopped a moment ago) followed until it ends.

import { api } from "./api.js";
import { viewOf } from "./messages.js";
import { highlightWithin } from "./render.js";
import { sleep } from "./session.js";

export class History {
  // view: {state, list, scroller, button, viewFor, onError, onSettled}
  constructor({ state, list, scroller, button, viewFor, onError, onSettled }) {
    Object.assign(this, { state, list, scroller, button, viewFor, onError, onSettled });
    button.addEventListener("click", () => this.loadOlder());
  }

  async loadOlder() {
    const { state, list, scroller, button } = this;
    if (state.loadingOlder || !state.previous) return;
    const token = state.token;
    state.loadingOlder = true;
    button.setAttribute("aria-busy", "true");
    try {
      const page = await api.page(state.previous);
      if (token !== state.token) return;
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      const elements = page.results.map((message) => this.viewFor(message).el);
      list.prepend(...elements);
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
      state.previous = page.previous;
      button.hidden = !state.previous;
      highlightWithin(list).catch(() => {});
    } catch (error) {
      if (token === state.token) this.onError(error);
    } finally {
      if (token === state.token) {
        state.loadingOlder = false;
        button.removeAttribute("aria-busy");
        if (state.previous && scroller.scrollTop < 400) requestAnimationFrame(() => this.loadOlder());
      }
    }
  }

  async watchStreaming(id, token, messageId) {
    const { state, list } = this;
    for (let round = 0; round < 300 && token === state.token; round += 1) {
      await sleep(round < 5 ? 1000 : 3000);
      if (token !== state.token) return;
      let page;
      try {
        page = await api.latestMessages(id, 5);
      } catch {
        continue;
      }
      if (token !== state.token) return;
      const message = page.results.find((m) => m.id === messageId);
      const el = list.querySelector(`li[data-id="${CSS.escape(messageId)}"]`);
      const view = el && viewOf(el);
      if (!message || !view) return;
      view.apply(message);
      if (message.status !== "streaming") {
        highlightWithin(view.body).catch(() => {});
        this.onSettled();
        return;
      }
    }
  }
}
