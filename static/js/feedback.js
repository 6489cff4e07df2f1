// 👍/👎 under a finished reply (PUT/DELETE /api/messages/<id>/feedback/).
//
// A click saves the rating at once, then a small form offers the reasons for that rating and a
// comment (Send saves them with the rating; Cancel keeps the bare rating). A click on the pressed
// button takes the rating back. The reasons come with the page, labelled in its language
// (<script type="application/json" id="feedback-reasons">, a data block the CSP allows).

import { ApiError, request } from "./api.js";
import { t } from "./i18n.js";
import { icon } from "./sidebar.js";

const COMMENT_MAX = 2000;
const RATINGS = ["up", "down"];

const node = document.getElementById("feedback-reasons");
const reasons = node ? JSON.parse(node.textContent) : [];

let serial = 0;

function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function reasonsFor(rating) {
  return reasons.filter((reason) => reason.rating === rating || reason.rating === "any");
}

function failure(error) {
  let reason = t("error_generic");
  if (error instanceof ApiError) {
    if (error.code === "network_error") reason = t("network_error");
    else if (error.code === "rate_limited") reason = t("rate_limited", { seconds: error.retryAfter ?? 60 });
    else if (error.code === "max_length") reason = t("feedback_comment_too_long", { max: COMMENT_MAX });
    else reason = error.detail || reason;
  } else if (error?.message) {
    reason = error.message;
  }
  return t("feedback_failed", { reason });
}

export class FeedbackControl {
  constructor() {
    serial += 1;
    this.id = `feedback-${serial}`;
    this.messageId = null;
    this.saved = null; // {rating, reason, comment, updated_at} as the server has it, or null
    this.busy = false;
    this.onChange = null; // called with the saved feedback (or null) after each change

    // The buttons sit with the reply's other actions; the form and the messages below them.
    this.buttons = make("div", "feedback");
    this.buttons.setAttribute("role", "group");
    this.buttons.setAttribute("aria-label", t("feedback_group"));
    this.buttons.hidden = true;
    this.button = {};
    for (const rating of RATINGS) {
      const button = make("button", `msg__action feedback__btn feedback__btn--${rating}`);
      button.type = "button";
      button.dataset.rating = rating;
      button.setAttribute("aria-label", t(`feedback_${rating}`));
      button.title = t(`feedback_${rating}`);
      button.setAttribute("aria-pressed", "false");
      button.append(icon(`thumb-${rating}`));
      button.addEventListener("click", () => this.press(rating));
      this.button[rating] = button;
      this.buttons.append(button);
    }

    this.panel = make("div", "feedback-panel");
    this.panel.hidden = true;
    this.form = make("form", "feedback-form");
    this.form.noValidate = true;
    this.form.hidden = true;
    this.fieldset = make("fieldset", "feedback-form__reasons");
    this.legend = make("legend", "feedback-form__legend");
    this.choices = make("div", "feedback-form__choices");
    this.fieldset.append(this.legend, this.choices);
    const commentLabel = make("label", "feedback-form__label", t("feedback_comment"));
    commentLabel.htmlFor = `${this.id}-comment`;
    this.comment = make("textarea", "feedback-form__comment");
    this.comment.id = `${this.id}-comment`;
    this.comment.rows = 2;
    this.comment.maxLength = COMMENT_MAX;
    const row = make("div", "feedback-form__buttons");
    this.send = make("button", "btn btn--primary btn--small", t("feedback_send"));
    this.send.type = "submit";
    this.cancel = make("button", "btn btn--ghost btn--small", t("feedback_cancel"));
    this.cancel.type = "button";
    row.append(this.send, this.cancel);
    this.form.append(this.fieldset, commentLabel, this.comment, row);
    this.status = make("p", "feedback-panel__status");
    this.status.setAttribute("role", "status");
    this.error = make("p", "feedback-panel__error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.panel.append(this.form, this.status, this.error);

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.cancel.addEventListener("click", () => this.closeForm({ focus: true }));
    this.form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.closeForm({ focus: true });
      }
    });
  }

  // A saved message: whether it can be rated, and its rating as the server has it.
  update(message) {
    const rateable = Boolean(message?.id) && message.role !== "user" && message.status === "complete";
    if (message?.id !== this.messageId) {
      this.closeForm();
      this.say("");
    }
    this.messageId = rateable ? message.id : null;
    this.saved = rateable ? message.feedback || null : null;
    this.buttons.hidden = !rateable;
    this.panel.hidden = !rateable;
    this.render();
  }

  // While a reply is written again (regenerate) there is nothing to rate.
  hide() {
    this.update(null);
  }

  render() {
    for (const rating of RATINGS) {
      const pressed = this.saved?.rating === rating;
      this.button[rating].setAttribute("aria-pressed", String(pressed));
      this.button[rating].classList.toggle("is-pressed", pressed);
    }
    this.buttons.toggleAttribute("aria-busy", this.busy);
  }

  changed(feedback) {
    this.saved = feedback;
    this.render();
    this.onChange?.(feedback);
  }

  say(text) {
    this.status.textContent = text;
    this.error.hidden = true;
    this.error.textContent = "";
  }

  fail(error) {
    this.status.textContent = "";
    this.error.textContent = failure(error);
    this.error.hidden = false;
  }

  async call(method, body) {
    const id = this.messageId;
    this.busy = true;
    this.render();
    try {
      return await request(`/api/messages/${encodeURIComponent(id)}/feedback/`, { method, body });
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async press(rating) {
    if (this.busy || !this.messageId) return;
    if (this.saved?.rating === rating) {
      // The pressed button again: take the rating back.
      try {
        await this.call("DELETE");
      } catch (error) {
        this.fail(error);
        return;
      }
      this.changed(null);
      this.closeForm();
      this.say(t("feedback_removed"));
      return;
    }
    try {
      this.changed(await this.call("PUT", { rating }));
    } catch (error) {
      this.fail(error);
      return;
    }
    this.say("");
    this.openForm(rating);
  }

  openForm(rating) {
    this.legend.textContent = t(`feedback_why_${rating}`);
    const offered = reasonsFor(rating);
    this.choices.replaceChildren(
      ...offered.map((reason) => {
        const label = make("label", "feedback-form__choice");
        const radio = make("input");
        radio.type = "radio";
        radio.name = `${this.id}-reason`;
        radio.value = reason.code;
        radio.checked = this.saved?.reason === reason.code;
        label.append(radio, make("span", "", reason.label));
        return label;
      }),
    );
    this.fieldset.hidden = !offered.length;
    this.comment.value = this.saved?.comment || "";
    this.form.hidden = false;
    const first = this.choices.querySelector("input:checked") || this.choices.querySelector("input");
    (first || this.comment).focus();
  }

  closeForm({ focus = false } = {}) {
    const wasOpen = !this.form.hidden;
    this.form.hidden = true;
    if (focus && wasOpen) this.button[this.saved?.rating || "up"].focus();
  }

  async submit() {
    if (this.busy || !this.saved) return;
    const comment = this.comment.value;
    if (comment.length > COMMENT_MAX) {
      this.fail(new Error(t("feedback_comment_too_long", { max: COMMENT_MAX })));
      this.comment.focus();
      return;
    }
    const chosen = this.choices.querySelector("input:checked");
    const body = { rating: this.saved.rating, reason: chosen ? chosen.value : "", comment };
    this.send.disabled = true;
    try {
      this.changed(await this.call("PUT", body));
    } catch (error) {
      this.fail(error);
      return;
    } finally {
      this.send.disabled = false;
    }
    this.closeForm({ focus: true });
    this.say(t("feedback_thanks"));
  }
}
