"""The reply engine: one reply's whole life, from the user's message to the saved answer.

docs/architecture.md, "The reply flow", walks through it; in short:

1. :meth:`Reply.start` runs one short write transaction: it checks the chat rate limit and that
   the user is active, refuses a second reply in the conversation (409), saves the user's message
   and a ``streaming`` assistant message, then reads the history the model gets.
2. The database connection is released: no connection is held while the model writes.
3. :meth:`Reply.events` (streaming) or :meth:`Reply.complete` (one answer) reads the provider.
   Streaming, a producer thread (a greenlet under gevent) reads the upstream into memory and
   hands deltas over a queue, so the caller can send keep-alives and notice a client that left.
4. One final write saves content, status, error code, usage, sid and timings, whatever happened:
   made by the request's own thread; by the producer only if the request does not come back for
   it within ``STREAM_FINISH_GRACE_SECONDS``. A client that leaves gets its reply saved as
   ``interrupted`` with the text produced so far, and the upstream request is closed.

Replies left ``streaming`` by a worker that died are settled by ``recovery.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone, translation

from accounts.models import User
from attachments import services as attachments
from chatsite.errors import AppError, Conflict, RateLimited, UserInactive
from chatsite.ratelimit import parse_rate
from governance import periods as calendar
from governance import policy as policies
from governance import pricing

from . import branches, catalog, metrics, quota, recovery, selectors, signals, titles
from .llm import dialects
from .llm.base import ChatMessage, ChatOptions, ModelInfo, Reference, StreamChunk, Usage
from .llm.exceptions import LLMContentRejected, LLMError
from .models import Conversation, Message
from .shapes import REPLY_OUTCOME_COLUMNS, error_text, message_data, message_log_fields

logger = logging.getLogger("chatsite.replies")

TITLE_FROM_MESSAGE_CHARS = 60


def release_connection() -> None:
    """Close this thread's database connection, unless a transaction (a test's) is open."""
    if not connection.in_atomic_block:
        connection.close()


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """Something to tell the client: ``reasoning`` {content} (before the answer), ``delta``
    {content}, ``references`` {references}, then ``done`` {message} or ``error`` {code, detail,
    message}. ``data`` is already the frame's public JSON object."""

    kind: str
    data: dict[str, Any]


class ReplyFailed(AppError):
    """A reply that failed upstream (non-streaming): the provider's error, with both saved
    messages in ``extra`` so the client still gets them."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How the upstream read ended: handed from the producer to the request to save."""

    status: str
    error: LLMError | None = None
    code: str = ""
    detail: str = ""


_INTERNAL_ERROR = _Outcome(Message.Status.ERROR, code="server_error", detail="Internal error.")
_CLIENT_LEFT = _Outcome(
    Message.Status.INTERRUPTED,
    code="client_disconnected",
    detail="The reply was stopped before it was complete.",
)
_END = object()


class _ReplyInProgress(Exception):
    pass


class Reply:
    """One reply. Create it with :meth:`start`; then either :meth:`events` or :meth:`complete`."""

    def __init__(
        self,
        *,
        conversation: Conversation,
        user_message: Message | None,
        assistant_message: Message,
        history: list[ChatMessage],
        model: ModelInfo | None = None,
        options: ChatOptions | None = None,
        price: Any = None,
        notice: dict[str, Any] | None = None,
    ) -> None:
        self.conversation = conversation
        self.user_message = user_message
        self.message = assistant_message
        self.history = history
        self.model = model or catalog.current().model(conversation.model)
        self.options = options
        self.price = price  # the model's price in force when the reply was made (or None)
        self.notice = notice  # e.g. the reply's maximum lowered to the quota that remains
        # The request's language: the stream's last frame is written after the request's own
        # code has returned, in its language all the same.
        self.language = translation.get_language()
        self._started = time.monotonic()
        self._parts: list[str] = []
        self._reasoning: list[str] = []
        self._reasoning_started: float | None = None
        self._reasoning_ms: int | None = None
        self._references: list[dict[str, str]] = []
        self._usage: Usage | None = None
        self._sid = ""
        self._ttft_ms: int | None = None
        self._lock = threading.Lock()
        self._saved = threading.Event()

    # --- step 1 and 2: the turn's transaction and the history -----------------------------------

    @classmethod
    def start(
        cls,
        *,
        conversation: Conversation,
        content: str | None,
        regenerate: bool = False,
        parent: Any = None,
        files: list[dict[str, Any]] | None = None,
    ) -> Reply:
        """Save the user's message (or retire the last reply) and read the history.

        Raises ``RateLimited`` (429), ``Conflict`` (409) while another reply is being written,
        ``UserInactive`` (401), ``LLMNotConfigured`` (503) when the model has no key, and
        ``AppError`` for a model no longer offered or nothing to regenerate; nothing is saved then.

        ``parent`` (a message id) branches (conversations/branches.py): a send answers that reply,
        or replaces that user message (an edit: a sibling); a regenerate replaces that reply. By
        default a send follows the active branch's last message and a regenerate replaces it.
        An unknown id raises ``NotFound``, one of another conversation ``invalid_parent`` (400).
        """
        model = conversation.model
        try:
            info = catalog.require_configured(model)
        except catalog.UnknownModel:
            raise AppError(
                f"This conversation's model {model!r} is no longer offered; choose another.",
                code="unknown_model",
            ) from None
        policy = policies.for_user(conversation.user_id)
        if not policy.allows(model):
            raise AppError(
                f"Your group may not use the model {model!r}; choose another.",
                code="model_not_allowed",
                status_code=403,
            )
        target = branches.message_in(conversation, parent, field="parent") if parent else None
        if target is not None and regenerate and target.role != Message.Role.ASSISTANT:
            raise AppError(
                "Only a reply can be regenerated; to change a message, send it with this "
                "message as its parent.",
                code="not_a_reply",
                extra={"field": "parent"},
            )
        options = options_for(conversation, info)
        chosen = _checked_files(conversation, info, files, content or "", options) if files else []
        now = timezone.now()
        price = pricing.cached_price_in_force(model, now)
        holder = None
        if not policy.unlimited:
            reserve = min(options.max_tokens or info.max_tokens, info.context_window // 2)

            def holder(new_tokens: int) -> quota.Hold:
                # Inside the turn's transaction: what the user used, with every hold in flight,
                # over the periods that have a limit only, and the conversation's prompt size
                # when tokens or cost are limited: one statement.
                periods = [p for p in calendar.current(now) if policy.limited_kinds(p.name)]
                used, prompt = selectors.usage_since(
                    user_id=conversation.user_id,
                    starts={p.name: p.start for p in periods},
                    tokens_of=conversation if policy.limits_size() else None,
                    kinds={p.name: policy.limited_kinds(p.name) for p in periods},
                )
                return quota.hold(
                    policy,
                    used,
                    periods,
                    prompt_tokens=min(prompt + new_tokens, info.context_window - reserve),
                    max_output=options.max_tokens or info.max_tokens,
                    price=price,
                    now=now,
                )

        for attempt in (1, 2):
            try:
                user_message, assistant, held = _save_turn(
                    conversation=conversation,
                    content=content,
                    regenerate=regenerate,
                    target=target,
                    files=chosen,
                    provider=info.provider,
                    holder=holder,
                )
                break
            except _ReplyInProgress:
                # A reply left "streaming" by a dead worker is settled here and the turn saved
                # again; one still alive is a conflict.
                if attempt == 2 or not recovery.messages_recover_stale(conversation=conversation):
                    raise Conflict(
                        "A reply is already being written in this conversation.",
                        code="reply_in_progress",
                    ) from None
        notice = None
        if held is not None and held.max_tokens < (options.max_tokens or info.max_tokens):
            options = dataclasses.replace(options, max_tokens=held.max_tokens)
            notice = {"code": "max_tokens_lowered", "max_tokens": held.max_tokens}
        reserve = min(
            options.max_tokens or settings.LLM_REPLY_RESERVE_TOKENS, info.context_window // 4
        )
        history = selectors.message_history_for_model(
            conversation=conversation,
            budget_tokens=info.context_window - reserve,
            up_to_seq=assistant.seq - 1,
            with_reasoning=dialects.get(info.dialect).history_reasoning,
        )
        return cls(
            conversation=conversation,
            user_message=user_message,
            assistant_message=assistant,
            history=history,
            model=info,
            options=options,
            price=price,
            notice=notice,
        )

    def start_data(self) -> dict[str, Any]:
        """The two saved messages, as the ``start`` frame and the JSON answer show them."""
        data = {
            "user_message": message_data(self.user_message) if self.user_message else None,
            "assistant_message": message_data(self.message),
        }
        if self.notice:
            data["notice"] = self.notice
        return data

    # --- step 3 and 4 without streaming ---------------------------------------------------------

    def complete(self) -> dict[str, Any]:
        """One request to the provider, then the final write. Returns :meth:`start_data`.

        Raises ``ReplyFailed`` (the provider's code and status) when the reply failed; both
        messages stay saved and ride along in the error.
        """
        release_connection()  # no connection held while the provider thinks
        try:
            completion = catalog.provider_for(self.model.id).complete(
                model=self.model.wire_id,
                messages=self.history,
                user=self._user_key,
                options=self.options,
            )
        except LLMError as exc:
            self._save(_Outcome(Message.Status.ERROR, error=exc))
            raise ReplyFailed(
                error_text(exc.detail),
                code=exc.code,
                status_code=exc.status_code,
                extra=self.start_data(),
            ) from exc
        except BaseException:
            self._save(_INTERNAL_ERROR)
            raise
        self._add_reasoning(completion.reasoning)
        self._add(completion.content)
        self._add_references(completion.references)
        self._usage = completion.usage
        self._sid = completion.sid
        self._save(_Outcome(Message.Status.COMPLETE))
        return self.start_data()

    # --- step 3 and 4, streaming ----------------------------------------------------------------

    def events(self, *, idle_seconds: float) -> Iterator[ReplyEvent | None]:
        """The reply as it arrives: ``delta`` events, then exactly one ``done`` or ``error``.

        Yields ``None`` after every ``idle_seconds`` without news, so the caller can send a
        keep-alive or check that its client is still there. Closing this generator early (the
        client left, or the server is stopping) saves the text so far as ``interrupted`` and
        closes the upstream request.
        """
        events: queue.Queue[object] = queue.Queue()
        cancelled = threading.Event()
        upstream: list[Any] = []  # the provider's stream, once open, for close() from here
        release_connection()  # never hold a database connection while streaming

        def produce() -> None:
            outcome: _Outcome | None = None
            try:
                stream = catalog.provider_for(self.model.id).stream(
                    model=self.model.wire_id,
                    messages=self.history,
                    user=self._user_key,
                    options=self.options,
                )
                upstream.append(stream)
                if cancelled.is_set():
                    stream.close()
                    return
                for chunk in stream:
                    if cancelled.is_set():
                        stream.close()
                        return
                    for event in self._take(chunk):
                        events.put(event)
                outcome = _Outcome(Message.Status.COMPLETE)
            except LLMError as exc:
                if not cancelled.is_set():
                    outcome = _Outcome(Message.Status.ERROR, error=exc)
            except BaseException:
                if not cancelled.is_set():
                    logger.exception("reply stream failed")
                    outcome = _INTERNAL_ERROR
            finally:
                if outcome is not None:
                    events.put(outcome)
                events.put(_END)
                # The request saves the outcome on its own connection. If it does not come back
                # for it (stuck writing to a client that stopped reading), save it from here.
                if outcome is not None and not self._wait_saved(
                    settings.STREAM_FINISH_GRACE_SECONDS
                ):
                    self._save(outcome)  # releases this thread's connection itself

        metrics.stream_opened()
        title_job = self._start_title()  # beside the reply, so it is ready by the end
        threading.Thread(target=produce, name="reply-producer", daemon=True).start()
        try:
            while True:
                try:
                    event = events.get(timeout=idle_seconds)
                except queue.Empty:
                    yield None
                    continue
                if event is _END:
                    return
                if isinstance(event, _Outcome):
                    message = self._save(event)
                    title = self._finish_title(title_job, message)
                    if title is not None:
                        # Before ``done``: exactly one of done or error ends every stream.
                        yield ReplyEvent("title", {"title": title})
                    with translation.override(self.language):
                        final = self._final_event(message)
                    yield final
                    return
                assert isinstance(event, ReplyEvent)  # noqa: S101 - only three kinds are queued
                yield event
        finally:
            metrics.stream_closed()
            if not self._saved.is_set():
                pending = _pending_outcome(events)
                if pending is None:
                    # The client went away mid-reply: keep what arrived, stop the upstream read.
                    cancelled.set()
                    for stream in upstream:
                        stream.close()
                # Either way the reply is saved now; a finished model keeps its ``complete``.
                self._save(pending or _CLIENT_LEFT)

    def _start_title(self) -> titles.TitleJob | None:
        """The conversation's first reply also asks for its title (conversations/titles.py)."""
        try:
            if not titles.wanted(self.conversation, self.user_message):
                return None
            assert self.user_message is not None  # noqa: S101 - wanted() checked it
            return titles.TitleJob.start(self.conversation, self.user_message.content)
        except Exception:  # a title is a nicety: never let it fail a reply
            logger.exception("title generation failed")
            return None
        finally:
            release_connection()

    def _finish_title(self, job: titles.TitleJob | None, message: Message) -> str | None:
        """The title, if the reply finished and the title is ready within TITLE_WAIT_SECONDS."""
        if job is None or message.status != Message.Status.COMPLETE:
            return None
        try:
            return job.finish(settings.TITLE_WAIT_SECONDS)
        except Exception:
            logger.exception("title generation failed")
            return None
        finally:
            release_connection()

    @staticmethod
    def _final_event(message: Message) -> ReplyEvent:
        data = message_data(message)
        if message.status == Message.Status.COMPLETE:
            return ReplyEvent("done", {"message": data})
        return ReplyEvent(
            "error",
            {
                "code": message.error_code or "upstream_error",
                "detail": error_text(message.error_detail),
                "message": data,
            },
        )

    # --- the in-memory reply and its one final write --------------------------------------------

    @property
    def _user_key(self) -> str:
        return str(self.conversation.user_id)

    def _wait_saved(self, timeout: float) -> bool:
        return self._saved.wait(timeout)

    def _take(self, chunk: StreamChunk) -> list[ReplyEvent]:
        """Keep a chunk's parts in memory; the events to send for it."""
        if chunk.sid:
            self._sid = chunk.sid
        if chunk.usage is not None:
            self._usage = chunk.usage
        events = []
        if chunk.reasoning:
            self._add_reasoning(chunk.reasoning)
            events.append(ReplyEvent("reasoning", {"content": chunk.reasoning}))
        if chunk.references:
            self._add_references(chunk.references)
            events.append(ReplyEvent("references", {"references": list(self._references)}))
        if chunk.content:
            self._add(chunk.content)
            events.append(ReplyEvent("delta", {"content": chunk.content}))
        return events

    def _first_token(self) -> None:
        if self._ttft_ms is None:
            self._ttft_ms = int((time.monotonic() - self._started) * 1000)

    def _add_reasoning(self, text: str) -> None:
        if text:
            self._first_token()
            if self._reasoning_started is None:
                self._reasoning_started = time.monotonic()
            self._reasoning.append(text)

    def _end_reasoning(self) -> None:
        if self._reasoning_started is not None and self._reasoning_ms is None:
            self._reasoning_ms = int((time.monotonic() - self._reasoning_started) * 1000)

    def _add_references(self, references: tuple[Reference, ...]) -> None:
        for reference in references:
            item = {"title": reference.title, "url": reference.url}
            if item not in self._references:
                self._references.append(item)

    def _charge(self, message: Message) -> None:
        """Settle the hold: a reply that failed upstream is charged nothing; one the client left
        is charged for what was produced (estimated when the provider sent no usage)."""
        if message.status == Message.Status.ERROR:
            message.charged_tokens = 0
            message.cost_cny = Decimal(0)
            return
        if self._usage is not None:
            prompt, completion = self._usage.prompt_tokens, self._usage.completion_tokens
            total, cached = self._usage.total_tokens, self._usage.cached_tokens
        else:
            prompt = sum(selectors.estimate_tokens(m.content) for m in self.history)
            completion = selectors.estimate_tokens(message.content) + (
                selectors.estimate_tokens(message.reasoning) if message.reasoning else 0
            )
            total, cached = prompt + completion, 0
        message.charged_tokens = total
        message.cost_cny = pricing.cost(
            self.price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
        )

    def _add(self, text: str) -> None:
        if text:
            self._first_token()
            self._end_reasoning()  # the answer started: the model stopped thinking
            self._parts.append(text)

    def _save(self, outcome: _Outcome) -> Message:
        """Step 4, the one final write. Safe from two threads: the first call wins."""
        with self._lock:
            message = self.message
            if self._saved.is_set():
                return message
            error = outcome.error
            message.content = "".join(self._parts)
            self._end_reasoning()
            message.reasoning = "".join(self._reasoning)
            message.reasoning_ms = self._reasoning_ms
            message.references = list(self._references)
            message.token_estimate = selectors.estimate_tokens(message.content.strip())
            message.status = outcome.status
            self._charge(message)
            message.error_code = error.code if error else outcome.code
            message.error_detail = error.detail if error else outcome.detail
            message.sid = (error.sid if error else "") or self._sid
            if self._usage is not None:
                message.prompt_tokens = self._usage.prompt_tokens
                message.completion_tokens = self._usage.completion_tokens
                message.total_tokens = self._usage.total_tokens
            message.ttft_ms = self._ttft_ms
            message.duration_ms = int((time.monotonic() - self._started) * 1000)
            message.finished_at = timezone.now()
            message.worker = ""
            try:
                _write_outcome(message)
            finally:
                release_connection()
            self._saved.set()
        fields = {"event": "reply", **message_log_fields(message)}
        if outcome.error is not None and outcome.error.upstream_code:
            # The provider's own code or type, for whoever reads the logs with its documents.
            fields["upstream_code"] = outcome.error.upstream_code
        logger.info("reply %s", json.dumps(fields, separators=(",", ":")), extra={"reply": fields})
        metrics.observe_reply(message)
        self._announce(message, moderated=isinstance(outcome.error, LLMContentRejected))
        return message

    def _announce(self, message: Message, *, moderated: bool) -> None:
        """Tell the apps above (review's flags) that the reply was saved."""
        if not signals.reply_saved.receivers:
            return
        prompt = self.user_message.content if self.user_message else ""
        if not prompt:
            prompt = next((m.content for m in reversed(self.history) if m.role == "user"), "")
        try:
            for receiver, result in signals.reply_saved.send_robust(
                sender=Reply,
                message=message,
                prompt=prompt,
                conversation=self.conversation,
                moderated=moderated,
            ):
                if isinstance(result, Exception):
                    logger.error("reply_saved receiver %s failed", receiver, exc_info=result)
        finally:
            release_connection()


def _column(name: str) -> Field[Any, Any]:
    """``Message``'s field ``name``, which must be a column of its own (not a relation)."""
    field = Message._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"Message.{name} is not a column")
    return field


@functools.cache
def _outcome_update(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """The final write's statement and its fields, built once per database backend."""
    quote = connection.ops.quote_name
    fields = tuple(_column(name) for name in REPLY_OUTCOME_COLUMNS)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quote(Message._meta.db_table)} SET {assignments}"  # noqa: S608  # nosec B608 - quoted names only; values are params
        " WHERE id = %s AND status = %s"
    )
    return sql, fields


def _write_outcome(message: Message) -> None:
    """``UPDATE`` the outcome's columns of a reply still ``streaming``, as one hand-written
    statement: building it through the ORM cost about as much as running it, once per reply.

    Only a reply still streaming is overwritten: stale-stream recovery may have run meanwhile,
    and the conversation may have been deleted.
    """
    sql, fields = _outcome_update(connection.vendor)
    params = [
        field.get_db_prep_save(getattr(message, field.attname), connection) for field in fields
    ]
    params += [Message._meta.pk.get_db_prep_value(message.pk, connection), Message.Status.STREAMING]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _pending_outcome(events: queue.Queue[object]) -> _Outcome | None:
    """An outcome the producer queued that the request did not take (it left just before)."""
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return None
        if isinstance(event, _Outcome):
            return event


def _rate_limited(conversation: Conversation, since: Any, window: int) -> RateLimited:
    """The 429 of a user who started the rate limit's worth of replies within the window; it
    lifts when the oldest of them leaves the window."""
    oldest = selectors.oldest_reply_since(user_id=conversation.user_id, since=since)
    lifts_in = (oldest - since).total_seconds() if oldest else window
    return RateLimited(retry_after=int(lifts_in) + 1)


def options_for(conversation: Conversation, info: ModelInfo) -> ChatOptions:
    """The conversation's parameters that its model takes; the others stay the model's default.

    The API refuses values out of range when they are set (api/serializers.py); a model changed
    afterwards, or changed in admin, may no longer take them, and then they are left out.
    """
    temperature = conversation.temperature
    if temperature is not None and not (
        info.temperature_min <= temperature <= info.temperature_max
    ):
        temperature = None
    if temperature is None and info.temperature_default is not None:
        temperature = info.temperature_default
    max_tokens = conversation.max_tokens
    if max_tokens is not None:
        max_tokens = min(max_tokens, info.max_tokens)
    return ChatOptions(
        temperature=temperature,
        max_tokens=max_tokens,
        reasoning=conversation.reasoning if info.reasoning_switch else None,
        web_search=conversation.web_search if info.web_search else None,
    )


def _checked_files(
    conversation: Conversation,
    info: ModelInfo,
    files: list[dict[str, Any]],
    content: str,
    options: ChatOptions,
) -> list[attachments.Chosen]:
    """The files a message is sent with (docs/attachments.md): the user's own, images only to a
    model with vision, and all of it within the model's context window: text is never cut
    silently, so a message that does not fit is refused with by how much, and the models that
    would take it."""
    chosen = attachments.choose(
        owner_id=conversation.user_id, conversation_id=conversation.pk, items=files
    )
    images = [c.attachment.name for c in chosen if c.attachment.kind == "image"]
    if images and not info.vision:
        raise AppError(
            f"{info.label} cannot see images ({', '.join(images)}). Choose a model with vision.",
            code="model_cannot_see_images",
            extra={"files": images},
        )
    reserve = min(options.max_tokens or settings.LLM_REPLY_RESERVE_TOKENS, info.context_window // 4)
    system = conversation.system_prompt.strip()
    needed = (
        sum(c.tokens for c in chosen)
        + selectors.estimate_tokens(content)
        + (selectors.estimate_tokens(system) if system else 0)
        + selectors.estimate_tokens(attachments.FILES_NOTE)
        + 8 * selectors.MESSAGE_OVERHEAD_TOKENS
    )
    limit = info.context_window - reserve
    if needed > limit:
        policy = policies.for_user(conversation.user_id)
        models = catalog.current()
        roomier = [
            m.id
            for m in (models.model(model_id) for model_id in models.models)
            if m.context_window - min(m.max_tokens, m.context_window // 4) >= needed
            and models.is_configured(m.id)
            and policy.allows(m.id)
        ]
        raise AppError(
            f"The files and message are about {needed} tokens; {info.label} takes {limit} "
            f"with room for its reply, {needed - limit} too many. Choose a model with a longer "
            "context, or send a page range of the file.",
            code="attachments_too_long",
            extra={
                "tokens": needed,
                "limit": limit,
                "over_by": needed - limit,
                "models": roomier,
                "files": [
                    {
                        "id": str(c.attachment.pk),
                        "name": c.attachment.name,
                        "tokens": c.tokens,
                        "pages": c.attachment.pages or None,
                    }
                    for c in chosen
                ],
            },
        )
    return chosen


def _save_turn(
    *,
    conversation: Conversation,
    content: str | None,
    regenerate: bool,
    target: Message | None = None,
    files: list[attachments.Chosen] | None = None,
    provider: str = "",
    holder: Any = None,
) -> tuple[Message | None, Message, quota.Hold | None]:
    """Step 1, one short transaction: the user's message and a ``streaming`` reply.

    The chat rate limit is counted from the replies this transaction already reads, so sending
    writes nothing else (docs/architecture.md, "Limits"). Raises ``_ReplyInProgress`` (rolling
    back) when the conversation has a reply streaming.
    """
    now = timezone.now()
    model = conversation.model
    limit, window = parse_rate(settings.CHAT_RATE_LIMIT)
    since = now - timedelta(seconds=window)
    with transaction.atomic():
        if connection.features.has_select_for_update:
            # PostgreSQL: the owner's row lock serialises one user's turns, so neither two sends
            # to one conversation nor a burst over the rate limit can slip through side by side.
            # SQLite's IMMEDIATE transactions already serialise every write.
            User.objects.select_for_update().filter(pk=conversation.user_id).values_list(
                "pk"
            ).first()
        state = selectors.turn_state(conversation=conversation, since=since, limit=limit)
        if not state.user_active:
            raise UserInactive()
        if state.recent_replies >= limit:
            raise _rate_limited(conversation, since, window)
        if state.streaming:
            raise _ReplyInProgress
        # The quota hold (docs/governance.md): raises QuotaExceeded, rolling the turn back.
        held = holder(selectors.estimate_tokens(content) if content else 0) if holder else None
        last_seq = state.last_seq
        leaf_id = state.leaf_id  # the active branch's last message (conversations/branches.py)
        user_message = None
        if regenerate:
            replacing = target or (
                Message.objects.only("id", "role", "parent_id").get(pk=leaf_id)
                if leaf_id is not None
                else None
            )
            if replacing is None:
                raise AppError("There is no reply to regenerate.", code="nothing_to_regenerate")
            # A new sibling of the reply; after a question left without a reply, its first reply.
            reply_parent = (
                replacing.parent_id if replacing.role == Message.Role.ASSISTANT else replacing.pk
            )
            branching = replacing.pk != leaf_id or replacing.role == Message.Role.ASSISTANT
        else:
            assert content is not None  # noqa: S101 - a send (not a regenerate) always has content
            if target is None:
                user_parent = leaf_id
            elif target.role == Message.Role.ASSISTANT:
                user_parent = target.pk  # answers that reply
            else:
                user_parent = target.parent_id  # replaces that message: an edit
            branching = user_parent != leaf_id
            last_seq += 1
            user_message = Message(
                conversation=conversation,
                seq=last_seq,
                parent_id=user_parent,
                role=Message.Role.USER,
                content=content,
                model=model,
                # Its files count too: history trimming reads this estimate.
                token_estimate=selectors.estimate_tokens(content.strip())
                + sum(f.tokens for f in files or ()),
            )
            reply_parent = user_message.pk
        assistant = Message(
            conversation=conversation,
            seq=last_seq + 1,
            parent_id=reply_parent,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=model,
            provider=provider,
            worker=recovery.this_worker(),
            held_tokens=held.tokens if held else None,
            held_cost_cny=held.cost_cny if held else None,
        )
        # Both rows in one INSERT: one round trip fewer inside the write lock.
        Message.objects.bulk_create([m for m in (user_message, assistant) if m is not None])
        if files and user_message is not None:
            user_message.sent_files = attachments.link(  # type: ignore[attr-defined]
                message_id=user_message.pk, conversation_id=conversation.pk, chosen=files
            )
        if branching:
            # Off the old branch, onto the new one: the history below reads the new path.
            branches.activate(conversation.pk, assistant.pk)
        updates: dict[str, Any] = {"updated_at": now}
        if not conversation.title and content:
            conversation.title = " ".join(content.split())[:TITLE_FROM_MESSAGE_CHARS]
            conversation.title_source = Conversation.TitleSource.MESSAGE
            updates["title"] = conversation.title
            updates["title_source"] = conversation.title_source
        Conversation.objects.filter(pk=conversation.pk).update(**updates)
        conversation.updated_at = now
    return user_message, assistant, held


STOP_WAIT_SECONDS = 3.0


def reply_stop(*, message: Message, shown: int) -> Message:
    """The page stopped this reply after showing ``shown`` characters (code points): keep what
    the user saw, so a reload shows the same text (``POST /api/messages/<id>/stop/``).

    The page aborts the stream first; the reply's own final write may still be on its way, so
    this waits up to ``STOP_WAIT_SECONDS`` for it. A reply the model finished meanwhile is cut
    to what was shown too, and marked interrupted, as the user saw it stop. A failed reply keeps
    its error. Tokens already charged stay charged: the model produced them.
    """
    if message.role != Message.Role.ASSISTANT:
        raise AppError(
            "Only a reply can be stopped (this is the user's message).", code="not_a_reply"
        )
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while message.status == Message.Status.STREAMING:
        if time.monotonic() > deadline:
            raise Conflict(
                "The reply is still being written: close its stream first.",
                code="reply_in_progress",
            )
        time.sleep(0.05)
        message.refresh_from_db(fields=["status", "content", "token_estimate", "error_code"])
    if message.status == Message.Status.ERROR or len(message.content) <= shown:
        return message
    message.content = message.content[:shown]
    message.token_estimate = selectors.estimate_tokens(message.content.strip())
    changed = Message.objects.filter(pk=message.pk).exclude(status=Message.Status.STREAMING)
    changed.update(
        content=message.content,
        token_estimate=message.token_estimate,
        status=Message.Status.INTERRUPTED,
        error_code="client_disconnected",
        error_detail="The reply was stopped before it was complete.",
    )
    message.refresh_from_db()
    return message
