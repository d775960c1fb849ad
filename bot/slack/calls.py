"""The Slack Web API seam: building the client and translating its failures.

slack_sdk raises ``SlackApiError`` for ``ok: false`` and aiohttp errors for broken
connections; ``slack_errors`` turns both into ``SlackError`` so nothing above this module
handles SDK types. Rate limits (429 with Retry-After) are retried by the SDK's handler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError

log = logging.getLogger(__name__)


def web_client(
    token: str | None,
    base_url: str,
    rate_limits: AsyncRetryHandler | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """A client that retries dropped connections, 5xx and 429 (``rate_limits`` decides how).

    Pass the process's one ``session``: without it slack_sdk opens a new aiohttp session,
    and a new connection, for every call."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        timeout=15,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            rate_limits or AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


@asynccontextmanager
async def slack_errors(method: str) -> AsyncIterator[None]:
    try:
        yield
    except SlackApiError as exc:
        code = exc.response.get("error") if exc.response is not None else None
        raise SlackError(method, str(code or "unknown_error")) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SlackError(method, f"connection_error: {type(exc).__name__}") from exc


# Says something to the one person who typed or clicked.
Tell = Callable[[str], Awaitable[None]]


def ephemeral(respond: AsyncRespond) -> Tell:
    """A function that answers only the person who typed or clicked, via ``response_url``."""

    async def tell(text: str) -> None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # response_url is Slack's own endpoint: log it and go on
            log.warning("could not answer via response_url: %r", exc)

    return tell
