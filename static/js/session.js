// Conversation sessions: one reply at a time per conversation, later messages queued behind it.

import { ApiError, api } from "./api.js";

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("Aborted", "AbortError"));
    }, { once: true });
  });
}

export class Sessions {
  constructor() {
    this.map = new Map();
  }

  get(id) {
    return this.map.get(id);
  }

  // The session of a conversation, made on first use.
  for(id) {
    let session = this.map.get(id);
    if (!session) {
      session = { id, busy: false, controller: null, queue: [], user: null, assistant: null };
      this.map.set(id, session);
    }
    return session;
  }

  // A reply is being written, or messages wait their turn.
  isBusy(id) {
    const session = id && this.map.get(id);
    return Boolean(session && (session.busy || session.queue.length));
  }

  drop(id) {
    this.map.get(id)?.controller?.abort();
    this.map.delete(id);
  }
}

// Opens the reply stream of a job ({type: "send", content, parent?} or {type: "regenerate",
// parent?}). A reply stopped a moment ago may still be closing on the server: wait briefly for it.
export async function openReply(session, job, signal) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return job.type === "send"
        ? await api.sendMessage(session.id, job.content, signal, job.parent)
        : await api.regenerate(session.id, signal, job.parent);
    } catch (error) {
      if (error instanceof ApiError && error.code === "reply_in_progress" && attempt < 6) {
        await sleep(500 * (attempt + 1), signal);
        continue;
      }
      throw error;
    }
  }
}
