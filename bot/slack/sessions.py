"""Slack's agent sessions: the status of each thread the bot works in.

A session is ``processing`` while the bot answers or runs something in its thread (Slack
shows the stop button then), ``suspended`` while a request there waits for approval, and
``active`` when it is idle. Every call is best effort and budgeted like any other: a
session that cannot be set never fails an answer, and ``later`` makes the change in the
background, after the earlier ones for the same thread, so no answer or run waits for a
slot of the budget. A workspace whose app is not an agent
refuses the calls; that is remembered in Redis for an hour (``SessionStore.refuse``), logged
once, and no session call is made meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.errors import SlackError, StateError
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors
from bot.state.sessions import SessionStore
from bot.text import clip

log = logging.getLogger(__name__)

SET_STATUS = "agents.sessions.setStatus"
# Answers that will not change until someone fixes the app in its settings.
REFUSALS = frozenset({"not_authorized", "unknown_method", "method_deprecated", "missing_scope"})
# Slack's warning that the stop button is shown but its clicks reach no one.
UNSUBSCRIBED = "missing_agent_session_stopped_event_subscription"
TITLE_CHARS = 60


class Status(StrEnum):
    PROCESSING = "processing"
    SUSPENDED = "suspended"
    ACTIVE = "active"


@dataclass(frozen=True)
class Thread:
    """The thread a session belongs to."""

    team: str
    channel: str
    thread_ts: str


def title(text: str) -> str:
    """A session title from a question or a runbook line: one short line."""
    return clip(text, TITLE_CHARS)


class Sessions:
    def __init__(
        self,
        client: AsyncWebClient,
        budget: SlackBudget,
        store: SessionStore,
        background: Background,
    ) -> None:
        self._client = client
        self._budget = budget
        self._store = store
        self._background = background
        self._told_unsubscribed = False
        # The latest status change under way per thread: the next one waits for it.
        self._latest: dict[Thread, asyncio.Future[bool]] = {}

    def later(
        self,
        thread: Thread,
        status: Status,
        *,
        title: str | None = None,
        max_wait: float | None = None,
    ) -> asyncio.Future[bool]:
        """Set the status in the background, after the changes asked before it for the same
        thread: the work it describes never waits for Slack's budget. The future says
        whether Slack took it."""
        previous = self._latest.get(thread)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._latest[thread] = done

        async def in_turn() -> None:
            took = False
            try:
                if previous is not None:
                    await asyncio.wait({previous})
                took = await self.set(thread, status, title=title, max_wait=max_wait)
            finally:
                done.set_result(took)
                if self._latest.get(thread) is done:
                    del self._latest[thread]

        self._background.spawn(in_turn(), "setting a session status")
        return done

    async def enabled(self, team: str) -> bool:
        """False while the workspace refuses sessions (or Redis cannot tell): no calls."""
        try:
            return not await self._store.refused(team)
        except StateError:
            return False

    async def set(
        self,
        thread: Thread,
        status: Status,
        *,
        title: str | None = None,
        max_wait: float | None = None,
    ) -> bool:
        """Set the session's status; True when Slack took it. Waits for a slot of the
        budget at most ``max_wait`` seconds (None: as long as it takes)."""
        if not await self.enabled(thread.team):
            return False
        if not await self._budget.take(SET_STATUS, max_wait=max_wait):
            log.debug("no %s slot soon; session left as it was", SET_STATUS)
            return False
        try:
            async with slack_errors(SET_STATUS):
                response = await self._client.agents_sessions_setStatus(
                    channel_id=thread.channel,
                    thread_ts=thread.thread_ts,
                    status=status.value,
                    title=title,
                )
        except SlackError as exc:
            await self.refused(thread.team, exc.code)
            return False
        self._check_warnings(response.get("response_metadata") or {})
        return True

    def _check_warnings(self, metadata: dict[str, object]) -> None:
        warnings = metadata.get("warnings")
        if (
            self._told_unsubscribed
            or not isinstance(warnings, list)
            or UNSUBSCRIBED not in warnings
        ):
            return
        self._told_unsubscribed = True  # once per process: it changes only with the app
        log.warning(
            "Slack shows a stop button that reaches no one (%s): subscribe the app to the "
            "agent_session_stopped bot event and reinstall it.",
            UNSUBSCRIBED,
        )

    async def refused(self, team: str, code: str) -> None:
        """Slack said no to a session call: remember a lasting refusal, once for all."""
        if code not in REFUSALS:
            log.info("session status not set (%s)", code)
            return
        try:
            first = await self._store.refuse(team, code)
        except StateError:
            return
        if first:
            log.warning(
                "Slack refuses agent sessions (%s): answers go on without a session status or "
                "stop button. Declare the app an agent (agent_view, assistant:write) and "
                "reinstall it; the bot tries again within the hour.",
                code,
            )
