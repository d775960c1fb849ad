"""Every error the bot raises on purpose, in one tree.

    BotError
    ├── ConfigError            bad settings or runbooks file; message is one line for start-up
    ├── InferenceError         Heroku Managed Inference failed
    │   ├── InferenceAuthError     401/403: bad key, or model not provisioned
    │   ├── InferenceRateLimited   429; ``retry_after`` seconds when Heroku says
    │   ├── InferenceUnavailable   5xx, connection refused or dropped mid-stream
    │   ├── InferenceTimeout       no event within the idle timeout, or past the deadline
    │   ├── InferenceBadRequest    other 4xx: our request was refused
    │   └── InferenceStreamError   an error sent inside the stream, or a stream we cannot read
    ├── SlackError             a Web API call failed after the SDK's retries; ``code`` is Slack's
    ├── StateError             Redis (or the embedded store) could not be reached
    ├── RequestRefused         a person's request cannot go ahead (bad /run input, not allowed,
    │                          expired); the message is written for that person
    └── DeliveryRefused        a request to /slack/events that is not read: ``status`` 401
                               (unsigned, stale) or 400 (malformed); the message is for the log

Foreign exceptions (httpx, redis, slack_sdk) are translated at the seam that calls them, so
code above the seams only ever catches these. ``bot.notices`` turns them into what a person
reads in Slack.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class ConfigError(BotError):
    """Configuration that cannot work; the message names the setting and the fix."""


class InferenceError(BotError):
    """Heroku Managed Inference did not give us an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InferenceAuthError(InferenceError):
    """The key was refused (401) or the model is not provisioned for it (403)."""


class InferenceRateLimited(InferenceError):
    """Heroku's per-model rate limit was hit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class InferenceUnavailable(InferenceError):
    """Heroku answered 5xx, or the connection failed or dropped."""


class InferenceTimeout(InferenceError):
    """The stream went quiet for longer than the idle timeout, or ran past its deadline."""


class InferenceBadRequest(InferenceError):
    """Heroku refused the request itself (4xx other than auth and rate limits)."""


class InferenceStreamError(InferenceError):
    """The stream carried an error event, or bytes we could not make sense of."""


class SlackError(BotError):
    """A Slack Web API call failed; ``code`` is Slack's error string (e.g. ``not_in_channel``)."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"Slack {method} failed: {code}")
        self.method = method
        self.code = code


class StateError(BotError):
    """The state store (Redis) could not be reached or refused the command."""


class RequestRefused(BotError):
    """A person's request cannot go ahead; the message says why and what is allowed."""


class DeliveryRefused(BotError):
    """An HTTP request to ``/slack/events`` that is refused before anything acts on it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
