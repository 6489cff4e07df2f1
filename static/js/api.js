// The REST API (README.md, "Use the API"; schema at /api/schema/) as seen from the browser:
// session cookie + CSRF header.

export class ApiError extends Error {
  constructor(status, code, detail, data = {}, retryAfter = null) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.data = data;
    this.retryAfter = retryAfter;
  }
}

let fallbackToken = "";

export function setCsrfFallback(token) {
  fallbackToken = token || "";
}

function csrfToken() {
  // The cookie is the freshest copy (it changes when the user signs in again in another tab).
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "csrftoken") return decodeURIComponent(rest.join("="));
  }
  return fallbackToken;
}

// Absolute URLs from the API (pagination links) are reduced to path + query, so a proxy that
// reports the wrong scheme or host cannot send the browser elsewhere.
export function localPath(url) {
  const parsed = new URL(url, window.location.origin);
  return parsed.pathname + parsed.search;
}

async function errorFrom(response) {
  let data = {};
  try {
    data = await response.json();
  } catch {
    data = {};
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  const error = new ApiError(
    response.status,
    data.code || `http_${response.status}`,
    data.detail || response.statusText,
    data,
    Number.isFinite(retry) ? retry : null,
  );
  if (response.status === 401 || (response.status === 403 && data.code === "not_authenticated")) {
    window.dispatchEvent(new CustomEvent("chatsite:signed-out"));
  }
  return error;
}

function requestInit(method, body, signal, accept) {
  const headers = { Accept: accept };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  };
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", error.message);
  }
}

export async function request(path, { method = "GET", body, signal } = {}) {
  const response = await send(path, requestInit(method, body, signal, "application/json"));
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

// A multipart upload (the browser sets the Content-Type with its boundary).
async function upload(path, form) {
  const init = {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: form,
    credentials: "same-origin",
  };
  const response = await send(path, init);
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

// POST that answers with text/event-stream; errors raised before the stream starts come as JSON.
export async function openStream(path, body, signal) {
  const response = await send(path, requestInit("POST", body, signal, "text/event-stream"));
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok || !type.startsWith("text/event-stream")) throw await errorFrom(response);
  return response;
}

const base = "/api";

export const api = {
  models: () => request(`${base}/models/`),
  conversations: ({ search = "", page = 1 } = {}) => {
    const query = new URLSearchParams({ page: String(page) });
    if (search) query.set("search", search);
    return request(`${base}/conversations/?${query}`);
  },
  conversation: (id) => request(`${base}/conversations/${id}/`),
  createConversation: (fields) => request(`${base}/conversations/`, { method: "POST", body: fields }),
  updateConversation: (id, fields) =>
    request(`${base}/conversations/${id}/`, { method: "PATCH", body: fields }),
  deleteConversation: (id) => request(`${base}/conversations/${id}/`, { method: "DELETE" }),
  latestMessages: (id, limit = 50) =>
    request(`${base}/conversations/${id}/messages/?latest=true&limit=${limit}`),
  page: (url) => request(localPath(url)),
  // parent: the reply this message answers, or the user message it replaces (an edit).
  // attachments: file ids, or {id, pages} (static/js/attachments.js).
  sendMessage: (id, content, signal, parent = null, attachments = null) => {
    const body = { content, stream: true };
    if (parent) body.parent = parent;
    if (attachments?.length) body.attachments = attachments;
    return openStream(`${base}/conversations/${id}/messages/`, body, signal);
  },
  // parent: the reply to answer again (default: the last).
  regenerate: (id, signal, parent = null) =>
    openStream(`${base}/conversations/${id}/regenerate/`, parent ? { stream: true, parent } : { stream: true }, signal),
  // Show the branch of a message (‹ 2/3 ›); saved, so a reload shows it too.
  selectBranch: (id, message) =>
    request(`${base}/conversations/${id}/branch/`, { method: "PUT", body: { message } }),
  // The page stopped a reply after showing `shown` characters: the server keeps exactly those.
  stopReply: (messageId, shown) =>
    request(`${base}/messages/${messageId}/stop/`, { method: "POST", body: { shown } }),
  exportUrl: (id, format) => `${base}/conversations/${id}/export/?format=${encodeURIComponent(format)}`,
  share: (id) => request(`${base}/conversations/${id}/share/`, { method: "POST" }),
  unshare: (id) => request(`${base}/conversations/${id}/share/`, { method: "DELETE" }),
  uploadFile: (file) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return upload(`${base}/files/`, form);
  },
  deleteFile: (id) => request(`${base}/files/${id}/`, { method: "DELETE" }),
};
