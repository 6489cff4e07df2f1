// Drafts and unsent messages, kept in localStorage per conversation ("new" before one exists):
// a reload or a lost connection loses nothing that was typed.

const NEW = "new";

export function draftKey(id) {
  return `chatsite:draft:${id || NEW}`;
}

export function readDraft(id) {
  return localStorage.getItem(draftKey(id)) || "";
}

export function writeDraft(id, text) {
  const key = draftKey(id);
  if (text) localStorage.setItem(key, text);
  else localStorage.removeItem(key);
}

export function unsentKey(id) {
  return `chatsite:unsent:${id}`;
}

export function unsentList(id) {
  try {
    return JSON.parse(localStorage.getItem(unsentKey(id)) || "[]");
  } catch {
    return [];
  }
}

function storeUnsent(id, entries) {
  if (entries.length) localStorage.setItem(unsentKey(id), JSON.stringify(entries));
  else localStorage.removeItem(unsentKey(id));
}

// A message that never reached the server: shown again (with Retry) after a reload.
export function rememberUnsent(id, view, reason) {
  view.unsentKey ??= `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const entries = unsentList(id).filter((entry) => entry.key !== view.unsentKey);
  entries.push({ key: view.unsentKey, content: view.content, reason });
  storeUnsent(id, entries);
}

export function forgetUnsent(id, view) {
  if (!view.unsentKey) return;
  storeUnsent(id, unsentList(id).filter((entry) => entry.key !== view.unsentKey));
  view.unsentKey = null;
}

// A deleted conversation leaves nothing behind.
export function forgetConversation(id) {
  localStorage.removeItem(draftKey(id));
  localStorage.removeItem(unsentKey(id));
}
