"""One Slack call budget per workspace, shared by every stream and every process.

Slack limits each Web API method per workspace (``chat.update`` Tier 3, about 50 a minute;
``chat.appendStream`` Tier 4, about 100; ``chat.startStream``/``stopStream`` Tier 2, about
20; ``chat.postMessage`` about one a second per channel). Many answers streaming at once
share those numbers, so each call first reserves a slot here, from a token bucket that
every process shares (``bot.state.budget``). A stream that has to wait keeps collecting text
and sends it in its next call, so busier times mean fewer, larger updates rather than 429s.
When Slack answers 429 anyway, ``block`` holds the method for every stream until
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot import logs
from bot.errors import StateError
from bot.state.budget import BudgetStore, Rate

log = logging.getLogger(__name__)

# About 90% of Slack's published tiers: clocks and network delays between our reservation
# and Slack's count must never add up to a 429.
TIERS: dict[str, Rate] = {
    "chat.startStream": Rate(18, 3),
    "chat.stopStream": Rate(18, 3),
    "chat.appendStream": Rate(90, 6),
    "chat.update": Rate(45, 5),
    "chat.postMessage": Rate(54, 3),  # per channel
    "assistant.threads.setSuggestedPrompts": Rate(90, 6),  # Tier 4
    "conversations.replies": Rate(45, 3),  # Tier 3
    "views.publish": Rate(90, 6),  # Tier 4
    "agents.sessions.setStatus": Rate(45, 3),  # Tier 3
}
PER_CHANNEL = {"chat.postMessage"}


class SlackBudget:
    def __init__(self, store: BudgetStore, tiers: dict[str, Rate] | None = None) -> None:
        self._store = store
        self._tiers = TIERS if tiers is None else tiers

    def spacing(self, method: str) -> float:
        """Seconds between calls to ``method`` at its sustained rate (0: not paced)."""
        rate = self._tiers.get(method)
        return 60 / rate.per_minute if rate else 0.0

    async def take(self, method: str, scope: str = "", max_wait: float | None = None) -> bool:
        """Wait for a slot for ``method``; False (nothing reserved) if it is further away
        than ``max_wait`` seconds. Fails open when Redis is unreachable: Slack's own 429s
        still protect us, and an answer should not stop because the budget can't be read."""
        rate = self._tiers.get(method)
        if rate is None:
            return True
        try:
            wait = await self._store.reserve(method, _scope(method, scope), rate, max_wait)
        except StateError as exc:
            log.warning("Slack budget unavailable (%s); calling %s unpaced", exc, method)
            return True
        if wait is None:
            return False
        if wait:
            await asyncio.sleep(wait)
        return True

    async def take_first(
        self, choices: list[tuple[str, str]], max_wait: float | None = None
    ) -> str | None:
        """Wait for the soonest slot among ``(method, scope)`` choices, and say which
        method it is for; None (nothing reserved) if it is further away than ``max_wait``.
        Fails open on the first choice when Redis is unreachable, as ``take`` does."""
        paced = [(m, _scope(m, s), self._tiers[m]) for m, s in choices if m in self._tiers]
        if len(paced) < len(choices):
            return next(m for m, _ in choices if m not in self._tiers)
        try:
            found = await self._store.reserve_first(paced, max_wait)
        except StateError as exc:
            log.warning("Slack budget unavailable (%s); calling %s unpaced", exc, choices[0][0])
            return choices[0][0]
        if found is None:
            return None
        index, wait = found
        if wait:
            await asyncio.sleep(wait)
        return paced[index][0]

    async def block(self, method: str, seconds: float, scope: str = "") -> None:
        """Hold ``method`` for everyone until Slack's Retry-After has passed."""
        rate = self._tiers.get(method)
        if rate is None:
            return
        try:
            await self._store.block(method, _scope(method, scope), rate, seconds)
        except StateError as exc:
            log.warning("could not record a Slack rate limit: %s", exc)


def _scope(method: str, scope: str) -> str:
    """Slack counts posts per channel and every other method per workspace."""
    return scope if method in PER_CHANNEL else ""


class BudgetRetryHandler(AsyncRetryHandler):
    """Retries a 429 after Retry-After, and tells the shared budget so no other stream
    or process walks into the same limit meanwhile."""

    def __init__(self, budget: SlackBudget, max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._budget = budget
        self.rate_limited = 0

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code == 429

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.rate_limited += 1
        logs.count(logs.SLACK_429)  # reported on the summary line of the request that met it
        seconds = _retry_after(response.headers if response is not None else {})
        method = request.url.rstrip("/").rsplit("/", 1)[-1]
        channel = _channel_of(request)
        log.warning("Slack rate-limited %s; retrying in %.1f s", method, seconds)
        await self._budget.block(method, seconds, channel)
        state.next_attempt_requested = True
        # The retry takes its turn in the budget like any call, after Retry-After.
        await asyncio.sleep(random.random() / 4)
        await self._budget.take(method, channel)
        state.increment_current_attempt()


def _channel_of(request: HttpRequest) -> str:
    """The channel a call was for: form calls carry ``body_params``, JSON calls ``data``."""
    params: Any = request.body_params
    if params is None and request.data:
        try:
            params = json.loads(request.data)
        except ValueError:
            params = None
    return str(params.get("channel", "")) if isinstance(params, dict) else ""


def _retry_after(headers: dict[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0
