"""Provider failures as our own typed errors.

Every error carries a stable ``code`` (Spark's numeric code as a string when Spark gave one,
otherwise one of ours), the HTTP status our API answers with, and a message safe to show to the
user. Nothing here ever holds the API key.
"""

from __future__ import annotations

from chatsite.errors import AppError


class LLMError(AppError):
    """Base class: something went wrong talking to a model provider.

    An :class:`~chatsite.errors.AppError`, so the API edge answers it like any other error.
    """

    code = "upstream_error"
    status_code = 502
    default_detail = "The model service failed to answer."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        sid: str = "",
        upstream_message: str = "",
        upstream_code: str = "",
    ) -> None:
        super().__init__(detail, code=code)
        self.sid = sid
        self.upstream_message = upstream_message
        # The provider's own error code or type (logged, never shown: ``code`` is ours).
        self.upstream_code = upstream_code


class LLMNotConfigured(LLMError):
    """No API key for the model: the site runs, but cannot chat with it."""

    code = "model_not_configured"
    status_code = 503
    default_detail = "No model is configured: the administrator has not set an API key."


class LLMConfigurationError(LLMError):
    """The provider refused our credentials, model name or licence."""

    code = "upstream_auth"
    status_code = 503
    default_detail = "The model service is misconfigured (credentials, model or licence)."


class LLMModelNotFound(LLMConfigurationError):
    """The provider does not know the model id (a 404, or Ollama's "try pulling it first")."""

    code = "upstream_model_not_found"


class LLMQuotaExceeded(LLMError):
    """The provider account's balance or quota is used up: never retried."""

    code = "upstream_quota_exhausted"
    status_code = 503
    default_detail = "The model's usage quota is used up. Try again later."


class LLMBusy(LLMError):
    """Rate limited or overloaded: worth trying again later."""

    code = "upstream_rate_limited"
    status_code = 503
    default_detail = "The model service is busy. Try again in a moment."


class LLMUnavailable(LLMError):
    code = "upstream_unavailable"
    status_code = 503
    default_detail = "The model service is unavailable. Try again later."


class LLMTimeout(LLMError):
    code = "upstream_timeout"
    status_code = 504
    default_detail = "The model service took too long to answer."


class LLMContentRejected(LLMError):
    """Input or output failed the provider's content moderation."""

    code = "upstream_moderated"
    status_code = 502
    default_detail = "The message was blocked by the model's content moderation."


class LLMContextTooLong(LLMError):
    code = "upstream_context_too_long"
    status_code = 502
    default_detail = "The conversation is too long for this model. Start a new conversation."


class LLMInvalidRequest(LLMError):
    """The provider says our request was malformed: a bug on our side."""

    code = "upstream_invalid_request"
    status_code = 502
    default_detail = "The model service rejected the request."


class LLMBadResponse(LLMError):
    """The provider answered with something that is not its protocol."""

    code = "upstream_bad_response"
    status_code = 502
    default_detail = "The model service sent an invalid answer."


class LLMIncompleteStream(LLMError):
    """The stream ended before ``[DONE]``: a failure, not a reply."""

    code = "upstream_incomplete"
    status_code = 502
    default_detail = "The model service stopped answering before the reply was complete."
