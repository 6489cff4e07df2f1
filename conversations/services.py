"""Writes: conversations, messages and the reply flow (ARCHITECTURE.md §4).

The reply flow in short: one short transaction saves the user's message and a ``streaming``
assistant message; the history is read; the database connection is released; the provider
streams into memory; one final write saves the outcome, whatever it is.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from chatsite.api.exceptions import AppError, Conflict

from . import metrics, selectors
from .llm import registry
from .llm.base import ChatMessage, Usage
from .llm.exceptions import LLMError, LLMNotConfigured
from .models import Conversation, Message

logger = logging.getLogger("chatsite.replies")

TITLE_FROM_MESSAGE_CHARS = 60


def release_connection() -> None:
    """Close this thread's database connection, unless a transaction (a test's) is open."""
    if not connection.in_atomic_block:
        connection.close()


# --- conversations ------------------------------------------------------------------------------


def _validated_model(model: str | None) -> str:
    if not model:
        default = settings.DEFAULT_MODEL
        return default if registry.is_known_model(default) else settings.SPARK_MODELS[0]
    if not registry.is_known_model(model):
        raise AppError(f"Unknown model {model!r}.", code="unknown_model")
    return model


def conversation_create(
    *, user: User, title: str = "", model: str | None = None, system_prompt: str = ""
) -> Conversation:
    return Conversation.objects.create(
        user=user,
        title=title.strip(),
        model=_validated_model(model),
        system_prompt=system_prompt,
    )


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
) -> Conversation:
    fields = []
    if title is not None:
        conversation.title = title.strip()
        fields.append("title")
    if model is not None:
        conversation.model = _validated_model(model)
        fields.append("model")
    if system_prompt is not None:
        conversation.system_prompt = system_prompt
        fields.append("system_prompt")
    if fields:
        conversation.save(update_fields=[*fields, "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


# --- stale streams ------------------------------------------------------------------------------


def _process_start(pid: int | str) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None if it is not running.

    A zombie (exited, not yet reaped) counts as not running.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name in parentheses may hold spaces: fields count from after it.
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:
        return ""  # unreadable: cannot tell
    state, start = fields[0], fields[19]
    return None if state in (b"Z", b"X") else start.decode()


_worker_name: tuple[int, str] = (0, "")


def _this_worker() -> str:
    """``host:pid:start``: the start time tells a reused pid from the worker that wrote a reply."""
    global _worker_name
    pid = os.getpid()
    if _worker_name[0] != pid:  # first call in this process (or a forked child)
        start = _process_start(pid) or ""
        _worker_name = (pid, f"{socket.gethostname()}:{pid}" + (f":{start}" if start else ""))
    return _worker_name[1]


def _is_worker(owner: str, worker: str) -> bool:
    """Whether ``owner`` (saved on a reply) is ``worker``: ``host:pid`` or ``host:pid:start``."""
    return owner == worker or owner.startswith(worker + ":")


def _worker_is_dead(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's worker: only age tells
    if not os.path.isdir("/proc/self"):  # no procfs: fall back on signal 0
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    running_since = _process_start(pid)
    if running_since is None:
        return True  # gone, or a zombie
    # Another process with the same pid (reused) is not the worker that wrote the reply.
    return bool(start and running_since and running_since != start)


def messages_recover_stale(
    *, conversation: Conversation | None = None, worker: str | None = None
) -> int:
    """Mark replies left ``streaming`` by a dead worker as ``interrupted``. Returns how many.

    A reply is stale when its worker process is gone (same host), when ``worker`` names it, or when
    it is older than ``STALE_STREAM_SECONDS``.
    """
    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    if conversation is not None:
        streaming = streaming.filter(conversation=conversation)
    cutoff = timezone.now() - timedelta(seconds=settings.STALE_STREAM_SECONDS)
    stale_ids = [
        message_id
        for message_id, owner, created_at in streaming.values_list("id", "worker", "created_at")
        if created_at < cutoff
        or (worker and _is_worker(owner, worker))
        or (owner and _worker_is_dead(owner))
    ]
    if not stale_ids:
        return 0
    return Message.objects.filter(id__in=stale_ids, status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED,
        error_code="worker_lost",
        error_detail="The server stopped while this reply was being written.",
        finished_at=timezone.now(),
    )


# --- the reply flow -----------------------------------------------------------------------------


@dataclass
class ReplyStart:
    """Everything a reply needs once the first transaction has committed."""

    conversation: Conversation
    user_message: Message | None
    assistant_message: Message
    history: list[ChatMessage]
    user_key: str


def _ensure_configured(model: str) -> None:
    if not registry.is_configured(model):
        raise LLMNotConfigured()


class _ReplyInProgress(Exception):
    pass


def _save_turn(
    *, conversation: Conversation, content: str | None, regenerate: bool
) -> tuple[Message | None, Message]:
    """Step 1, one short transaction: the user's message and a ``streaming`` reply.

    Raises ``_ReplyInProgress`` (rolling back) when the conversation has a reply streaming.
    """
    now = timezone.now()
    model = conversation.model
    with transaction.atomic():
        if connection.features.has_select_for_update:
            # The row lock (PostgreSQL) serialises two sends on one conversation; SQLite's
            # IMMEDIATE transactions already do.
            Conversation.objects.select_for_update().filter(pk=conversation.pk).values_list(
                "pk"
            ).first()
        last_seq, streaming = selectors.turn_state(conversation=conversation)
        if streaming:
            raise _ReplyInProgress
        user_message = None
        if regenerate:
            last = (
                Message.objects.filter(conversation=conversation, replaced=False)
                .order_by("-seq")
                .first()
            )
            if last is None:
                raise AppError("There is no reply to regenerate.", code="nothing_to_regenerate")
            if last.role == Message.Role.ASSISTANT:
                last.replaced = True
                last.save(update_fields=["replaced"])
        else:
            assert content is not None
            last_seq += 1
            user_message = Message.objects.create(
                conversation=conversation,
                seq=last_seq,
                role=Message.Role.USER,
                content=content,
                model=model,
            )
        assistant = Message.objects.create(
            conversation=conversation,
            seq=last_seq + 1,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=model,
            worker=_this_worker(),
        )
        updates: dict[str, Any] = {"updated_at": now}
        if not conversation.title and content:
            conversation.title = " ".join(content.split())[:TITLE_FROM_MESSAGE_CHARS]
            updates["title"] = conversation.title
        Conversation.objects.filter(pk=conversation.pk).update(**updates)
        conversation.updated_at = now
    return user_message, assistant


def reply_start(
    *, user: User, conversation: Conversation, content: str | None, regenerate: bool = False
) -> ReplyStart:
    """Step 1 and 2: save the user's message (or retire the last reply) and read the history.

    Raises ``Conflict`` (409) while another reply is in progress, ``LLMNotConfigured`` when the
    conversation's model has no key (nothing is saved then).
    """
    model = conversation.model
    if not registry.is_known_model(model):
        raise AppError(
            f"This conversation's model {model!r} is no longer offered; choose another.",
            code="unknown_model",
        )
    _ensure_configured(model)

    for attempt in (1, 2):
        try:
            user_message, assistant = _save_turn(
                conversation=conversation, content=content, regenerate=regenerate
            )
            break
        except _ReplyInProgress:
            # A reply left "streaming" by a dead worker is settled here (ARCHITECTURE.md §4.5)
            # and the turn saved again; one still alive is a conflict.
            if attempt == 2 or not messages_recover_stale(conversation=conversation):
                raise Conflict(
                    "A reply is already being written in this conversation.",
                    code="reply_in_progress",
                ) from None

    info = registry.model_info(model)
    budget = info.context_window - min(settings.LLM_REPLY_RESERVE_TOKENS, info.context_window // 4)
    history = selectors.message_history_for_model(
        conversation=conversation, budget_tokens=budget, up_to_seq=assistant.seq - 1
    )
    return ReplyStart(
        conversation=conversation,
        user_message=user_message,
        assistant_message=assistant,
        history=history,
        user_key=str(user.pk),
    )


@dataclass
class ReplyRun:
    """The in-memory state of one reply while it streams; written to the database once."""

    start: ReplyStart
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    sid: str = ""
    ttft_ms: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finished: Message | None = None
    _finished_event: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self._finished is not None

    def wait_finished(self, timeout: float) -> bool:
        return self._finished_event.wait(timeout)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, text: str) -> None:
        if text and self.ttft_ms is None:
            self.ttft_ms = int((time.monotonic() - self.started) * 1000)
        if text:
            self.parts.append(text)

    def finish(
        self,
        status: str,
        *,
        error: LLMError | None = None,
        error_code: str = "",
        error_detail: str = "",
    ) -> Message:
        """Step 4: the one final write. Safe to call twice (from two threads); the first wins."""
        with self._lock:
            if self._finished is not None:
                return self._finished
            message = self.start.assistant_message
            message.content = self.text
            message.status = status
            message.error_code = error.code if error else error_code
            message.error_detail = error.detail if error else error_detail
            message.sid = (error.sid if error and error.sid else "") or self.sid
            if self.usage is not None:
                message.prompt_tokens = self.usage.prompt_tokens
                message.completion_tokens = self.usage.completion_tokens
                message.total_tokens = self.usage.total_tokens
            message.ttft_ms = self.ttft_ms
            message.duration_ms = int((time.monotonic() - self.started) * 1000)
            message.finished_at = timezone.now()
            message.worker = ""
            fields = [
                "content",
                "status",
                "error_code",
                "error_detail",
                "sid",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "ttft_ms",
                "duration_ms",
                "finished_at",
                "worker",
            ]
            try:
                # Only a reply still streaming is overwritten: stale-stream recovery may have
                # run meanwhile, and the conversation may have been deleted.
                Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(
                    **{name: getattr(message, name) for name in fields}
                )
            finally:
                release_connection()
            self._finished = message
            self._finished_event.set()
            _log_reply(self.start, message)
            metrics.observe_reply(message)
            return message


def _log_reply(start: ReplyStart, message: Message) -> None:
    """One structured line per reply: identifiers, outcome and timings; never content or keys."""
    fields = {
        "event": "reply",
        "conversation": str(start.conversation.pk),
        "message": str(message.pk),
        "model": message.model,
        "status": message.status,
        "code": message.error_code,
        "sid": message.sid,
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "total_tokens": message.total_tokens,
    }
    logger.info("reply %s", json.dumps(fields, separators=(",", ":")), extra={"reply": fields})


def reply_complete(start: ReplyStart) -> tuple[Message, LLMError | None]:
    """Step 3 without streaming: one request to the provider, then the final write.

    Returns the saved reply and, when it failed, the provider's error.
    """
    run = ReplyRun(start=start)
    release_connection()  # no connection held while the provider thinks
    provider = registry.provider_for(start.conversation.model)
    try:
        completion = provider.complete(
            model=start.conversation.model, messages=start.history, user=start.user_key
        )
    except LLMError as exc:
        return run.finish(Message.Status.ERROR, error=exc), exc
    except BaseException:
        run.finish(Message.Status.ERROR, error_code="server_error", error_detail="Internal error.")
        raise
    run.add(completion.content)
    run.usage = completion.usage
    run.sid = completion.sid
    return run.finish(Message.Status.COMPLETE), None


# --- streaming ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    content: str


@dataclass(frozen=True)
class Done:
    message: Message


@dataclass(frozen=True)
class Failed:
    error: LLMError | None
    message: Message


class Keepalive:
    pass


@dataclass(frozen=True)
class _Outcome:
    """How the upstream read ended, handed from the producer to the consumer to save."""

    status: str
    error: LLMError | None = None
    error_code: str = ""
    error_detail: str = ""

    def save(self, run: ReplyRun) -> Message:
        return run.finish(
            self.status,
            error=self.error,
            error_code=self.error_code,
            error_detail=self.error_detail,
        )


KEEPALIVE = Keepalive()
_END = object()


def _pending_outcome(events: queue.Queue[object]) -> _Outcome | None:
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return None
        if isinstance(event, _Outcome):
            return event


def reply_stream(
    start: ReplyStart,
    *,
    keepalive_seconds: float | None = None,
    client_gone: Callable[[], bool] | None = None,
) -> Iterator[object]:
    """Step 3, streaming: ``Delta``s, then one ``Done`` or ``Failed``; ``KEEPALIVE`` while idle.

    The provider is read by a producer thread (a greenlet under gevent) so that keep-alives flow
    while the model thinks and a client that goes away can abort the upstream read at once. Closing
    this generator (the client disconnected) saves the text so far as ``interrupted``.
    ``client_gone``, when the server can tell, is asked every second while nothing is sent, so a
    client that leaves while the model thinks is noticed before the next keep-alive.
    """
    keepalive_seconds = keepalive_seconds or settings.STREAM_KEEPALIVE_SECONDS
    poll_seconds = min(1.0, keepalive_seconds) if client_gone else keepalive_seconds
    run = ReplyRun(start=start)
    events: queue.Queue[object] = queue.Queue()
    cancelled = threading.Event()
    abort_holder: list[Any] = []
    release_connection()  # ARCHITECTURE.md §3: never hold a connection while streaming

    def produce() -> None:
        # Reads the provider only. The final write is the consumer's (the request's own thread,
        # and its database connection); this thread writes only when the consumer does not come
        # back for the outcome, e.g. stuck sending to a client that stopped reading.
        outcome: _Outcome | None = None
        try:
            provider = registry.provider_for(start.conversation.model)
            chat_stream = provider.stream(
                model=start.conversation.model, messages=start.history, user=start.user_key
            )
            abort_holder.append(chat_stream)
            if cancelled.is_set():
                chat_stream.close()
                return
            for chunk in chat_stream:
                if cancelled.is_set():
                    break
                if chunk.sid:
                    run.sid = chunk.sid
                if chunk.usage is not None:
                    run.usage = chunk.usage
                if chunk.content:
                    run.add(chunk.content)
                    events.put(Delta(chunk.content))
            else:
                outcome = _Outcome(Message.Status.COMPLETE)
                return
            chat_stream.close()
        except LLMError as exc:
            if not cancelled.is_set():
                outcome = _Outcome(Message.Status.ERROR, error=exc)
        except BaseException:
            if not cancelled.is_set():
                logger.exception("reply stream failed")
                outcome = _Outcome(
                    Message.Status.ERROR, error_code="server_error", error_detail="Internal error."
                )
        finally:
            if outcome is not None:
                events.put(outcome)
            events.put(_END)
            if outcome is not None and not run.wait_finished(settings.STREAM_FINISH_GRACE_SECONDS):
                try:
                    outcome.save(run)
                finally:
                    release_connection()

    metrics.stream_opened()
    producer = threading.Thread(target=produce, name="reply-producer", daemon=True)
    producer.start()
    last_sent = time.monotonic()
    try:
        while True:
            try:
                event = events.get(timeout=poll_seconds)
            except queue.Empty:
                if client_gone is not None and client_gone():
                    return  # the finally below saves the reply as interrupted
                if time.monotonic() - last_sent >= keepalive_seconds - 0.01:
                    last_sent = time.monotonic()
                    yield KEEPALIVE
                continue
            last_sent = time.monotonic()
            if event is _END:
                return
            if isinstance(event, _Outcome):
                message = event.save(run)  # step 4, on the request's own connection
                if event.status == Message.Status.COMPLETE:
                    yield Done(message)
                else:
                    yield Failed(event.error, message)
                return
            yield event
    finally:
        metrics.stream_closed()
        pending = _pending_outcome(events) if not run.finished else None
        if pending is not None:
            # The model had finished; only the last frames did not reach the client.
            pending.save(run)
        elif not run.finished:
            # The client went away (or the server is stopping): keep what arrived, stop upstream.
            cancelled.set()
            for chat_stream in abort_holder:
                chat_stream.close()
            run.finish(
                Message.Status.INTERRUPTED,
                error_code="client_disconnected",
                error_detail="The reply was stopped before it was complete.",
            )
