"""What a person reads when something fails: one place turns errors into plain words.

Messages say what failed and whether to retry; details (status codes, bodies) go to the
log, never secrets or tracebacks to Slack. Words quoted from an error are masked before
they are cut, and cannot ping anyone.
"""

from __future__ import annotations

import math

from bot.errors import (
    BotError,
    InferenceAuthError,
    InferenceBadRequest,
    InferenceRateLimited,
    InferenceStreamError,
    InferenceTimeout,
    InferenceUnavailable,
    SlackError,
    StateError,
)
from bot.text import clip
from bot.untrusted import shown

LENGTH_LIMIT = "_(The answer stopped at the model's length limit; ask me to continue.)_"
EMPTY_QUESTION = (
    "Ask me something after the mention, for example: "
    "*how do I roll back the last release of my app?*"
)

# To guests and people from other organisations, when ``allow_external_users = false``;
# said once per channel per hour, whatever they send.
OUTSIDER = (
    "Sorry, I only work for full members of this workspace, so I won't answer or act on "
    "this. Please ask a colleague from the workspace to help."
)
UNCONFIRMED = (
    "I couldn't check your Slack account just now, so I didn't act on this. Please try "
    "again in a minute."
)

RUN_ADVICE = "The run may have done part of its work: check the app before running it again."
# What Cancel does: the bot stops watching; a run already started on Heroku is not stopped.
STOPPED_WATCHING = "Stopped watching; Heroku may still finish the run."


def thread_unread(code: str) -> str:
    """Said once per thread when the thread the bot was called into could not be read."""
    return (
        f"_I couldn't read this thread ({clip(code, 60)}), so I answered from your message alone._"
    )


def stopped_by(user: str) -> str:
    """The last line of an answer someone stopped with the stop button."""
    return f"_Stopped by <@{user}>._"


def too_many_questions(limit: int, wait_seconds: float) -> str:
    """Past ``max_questions_per_user_per_minute``: said once a minute, not per message."""
    seconds = max(1, math.ceil(wait_seconds))
    return (
        f"You've asked {limit} questions in the last minute (the limit), so I'm not answering "
        f"more for now: ask again in {seconds} seconds."
    )


def queue_full(limit: int) -> str:
    """A thread whose queue of waiting questions is full."""
    return (
        f"{limit} questions are already waiting in this thread (the limit), so I'm not taking "
        "more for now: ask again once I've answered them."
    )


def describe(exc: BaseException, *, during_run: bool = False) -> str:
    """A short, plain message for the person whose request failed.

    An agent run has side effects, so after a failure mid-run the advice is to look before
    running it again, never simply to retry."""
    text = _describe(exc)
    if during_run:
        text = text.split(" Please try again")[0].rstrip(".") + ". " + RUN_ADVICE
    return f":warning: {text}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InferenceRateLimited):
        wait = f" in about {round(exc.retry_after)} seconds" if exc.retry_after else " in a minute"
        return f"The model is rate-limited right now. Please try again{wait}."
    if isinstance(exc, InferenceAuthError):
        return (
            "Heroku Inference refused the bot's credentials or model "
            f"({_status(exc.status)}). An admin needs to check INFERENCE_KEY and "
            "INFERENCE_MODEL_ID; retrying won't help until then."
        )
    if isinstance(exc, InferenceTimeout):
        return "The model stopped responding before finishing. Please try again."
    if isinstance(exc, InferenceUnavailable):
        return "Heroku Inference is unavailable right now. Please try again in a minute."
    if isinstance(exc, InferenceBadRequest):
        return f"Heroku Inference refused the request: {_short(exc)}"
    if isinstance(exc, InferenceStreamError):
        return f"The model's answer broke off with an error: {_short(exc)} Please try again."
    if isinstance(exc, StateError):
        return (
            "I can't reach my state store (Redis) right now, so I can't take this request. "
            "Please try again shortly."
        )
    if isinstance(exc, SlackError):
        return f"Slack refused part of this answer ({exc.code}). Please try again."
    if isinstance(exc, BotError):
        return f"That didn't work: {_short(exc)}"
    return "Something went wrong on my side; the details are in the bot's log. Please try again."


def _status(status: int | None) -> str:
    return f"HTTP {status}" if status else "refused"


def _short(exc: BaseException, limit: int = 300) -> str:
    # An error's words may quote Heroku, a tool or the model: shown as foreign text.
    text = clip(shown(str(exc)), limit)
    return text if text.endswith((".", "…")) else text + "."
