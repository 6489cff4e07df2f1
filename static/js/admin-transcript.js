// Admin transcripts (templates/admin/includes/transcript.html): each reply and reasoning is
// rendered as on the chat page, by the same renderer (marked, then DOMPurify, then highlight.js
// for code). The raw text is the node's text as Django escaped it; nothing here assigns HTML.

import { handleCodeCopy, highlightWithin, renderMarkdown } from "./render.js";

for (const root of document.querySelectorAll("[data-transcript]")) {
  for (const node of root.querySelectorAll("[data-markdown]")) {
    renderMarkdown(node, node.textContent);
    node.classList.add("is-rendered");
  }
  root.addEventListener("click", (event) => {
    if (handleCodeCopy(event)) event.preventDefault();
  });
  root.dataset.rendered = "true";
  highlightWithin(root).then(
    () => {
      root.dataset.highlighted = "true";
    },
    () => {},
  );
}
