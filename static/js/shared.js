// The page of a shared conversation (templates/conversations/shared.html): the
// replies' Markdown rendered with the chat page's renderer (marked + DOMPurify + highlight.js);
// the user's messages stay plain text, as on the chat page. Read-only.

import { handleCodeCopy, highlightWithin, renderMarkdown } from "./render.js";

const data = document.getElementById("shared-messages-data");
const messages = data ? JSON.parse(data.textContent) : [];
const list = document.getElementById("shared-messages");

for (const body of document.querySelectorAll(".shared-msg__body[data-index]")) {
  const message = messages[Number(body.dataset.index)];
  if (!message) continue;
  renderMarkdown(body, message.content);
  body.classList.remove("shared-msg__body--plain");
}
if (list) {
  list.addEventListener("click", (event) => handleCodeCopy(event));
  highlightWithin(list);
}
document.documentElement.dataset.rendered = "yes";
