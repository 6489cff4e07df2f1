// Model output is Markdown, rendered by marked and always passed through DOMPurify before it
// reaches the page. Nothing here assigns innerHTML: DOMPurify returns a DocumentFragment built in
// its own inert document, and that fragment is inserted.

import { Marked } from "../vendor/marked/marked.esm.js";
import "../vendor/dompurify/purify.min.js"; // UMD bundle: sets globalThis.DOMPurify
import { t } from "./i18n.js";

const DOMPurify = globalThis.DOMPurify;

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const markdown = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Raw HTML written by the model is shown as text, never turned into markup.
    html({ text }) {
      return escapeHtml(text);
    },
    // Images are never loaded: a reply could make the browser fetch any address (tracking, or
    // leaking data in the query string). The reader gets a link to open on purpose instead.
    image({ href, text }) {
      const label = escapeHtml(text || t("image"));
      if (/^https?:\/\//i.test(href || "")) {
        return `<a href="${escapeHtml(href)}" class="md-image">${escapeHtml(t("image"))}: ${label}</a>`;
      }
      return `<span class="md-image">[${label}]</span>`;
    },
  },
});

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName !== "A") return;
  const href = node.getAttribute("href");
  if (href !== null) {
    let url = null;
    try {
      url = new URL(href, window.location.href);
    } catch {
      url = null;
    }
    if (!url || !SAFE_PROTOCOLS.has(url.protocol)) node.removeAttribute("href");
  }
  if (node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

// Everything that could load a resource or run script is refused, as are style attributes
// (the CSP would block them and log a violation).
const PURIFY_MARKDOWN = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    "style", "img", "picture", "source", "video", "audio", "track", "iframe", "frame", "object",
    "embed", "form", "input", "button", "textarea", "select", "option", "link", "meta", "base",
    "svg", "math", "template", "dialog",
  ],
  FORBID_ATTR: ["style", "srcset", "src", "ping", "background", "poster", "action", "formaction"],
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

const PURIFY_HIGHLIGHT = {
  ALLOWED_TAGS: ["span"],
  ALLOWED_ATTR: ["class"],
  RETURN_DOM_FRAGMENT: true,
};

export function sanitizedMarkdown(text) {
  return DOMPurify.sanitize(markdown.parse(text || ""), PURIFY_MARKDOWN);
}

function button(className, label, text) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = className;
  node.setAttribute("aria-label", label);
  node.textContent = text;
  return node;
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on a closed network has no async clipboard: fall back to a selection.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
}

export function flashCopied(node) {
  const before = node.textContent;
  node.textContent = t("copied");
  node.classList.add("is-done");
  setTimeout(() => {
    node.textContent = before;
    node.classList.remove("is-done");
  }, 1500);
}

function decorateCodeBlocks(root) {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    const wrapper = document.createElement("div");
    wrapper.className = "codeblock";
    const head = document.createElement("div");
    head.className = "codeblock__head";
    const lang = document.createElement("span");
    lang.className = "codeblock__lang";
    lang.textContent = match ? match[1] : t("code");
    const copy = button("codeblock__copy", t("copy_code"), t("copy"));
    copy.dataset.action = "copy-code";
    head.append(lang, copy);
    pre.replaceWith(wrapper);
    wrapper.append(head, pre);
  }
}

// Renders Markdown into target, replacing what was there.
export function renderMarkdown(target, text) {
  const fragment = sanitizedMarkdown(text);
  decorateCodeBlocks(fragment);
  target.replaceChildren(fragment);
}

let highlighter = null;

function loadHighlighter() {
  // Loaded on first use only: a page without code never downloads it.
  highlighter ??= import("../vendor/highlight/highlight.min.js").then((module) => module.default);
  return highlighter;
}

const AUTO_DETECT_LIMIT = 20000;

export async function highlightWithin(root) {
  const blocks = [...root.querySelectorAll("pre code:not([data-highlighted])")];
  if (!blocks.length) return;
  const hljs = await loadHighlighter();
  for (const code of blocks) {
    if (!code.isConnected && !root.contains(code)) continue;
    const source = code.textContent;
    const match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    let result = null;
    if (match && hljs.getLanguage(match[1])) {
      result = hljs.highlight(source, { language: match[1], ignoreIllegals: true });
    } else if (source.length <= AUTO_DETECT_LIMIT) {
      result = hljs.highlightAuto(source);
    }
    code.dataset.highlighted = "yes";
    if (!result) continue;
    // highlight.js escapes the text it wraps; its output is sanitised anyway (spans only).
    code.replaceChildren(DOMPurify.sanitize(result.value, PURIFY_HIGHLIGHT));
    code.classList.add("hljs");
  }
}

// Copy buttons in rendered Markdown, for any container (event delegation).
export function handleCodeCopy(event) {
  const target = event.target.closest("[data-action='copy-code']");
  if (!target) return false;
  const code = target.closest(".codeblock")?.querySelector("code");
  if (code) {
    copyText(code.textContent).then(
      () => flashCopied(target),
      () => {},
    );
  }
  return true;
}
