"""Keeping App Home current: each person's tab is redrawn when they open it, and shortly
after a run request they are concerned with changes state, without their opening it.

Changes come in bursts (a request, its decision, its run starting and ending), so they only
mark a person's tab as stale; one publish a little later shows them all. Publishing is
budgeted (``views.publish`` is Tier 4) and best effort: a failure is logged and the next
change or opening draws the tab again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from itertools import islice

from slack_sdk.web.async_client import AsyncWebClient

from bot.background import Background
from bot.errors import BotError
from bot.feedback import Feedback
from bot.render import home
from bot.runs import RunRecord, RunState
from bot.runs.approvers import Approvers
from bot.runs.board import Board
from bot.runs.service import RunService
from bot.slack.budget import SlackBudget

log = logging.getLogger(__name__)

# Seconds a stale tab waits, so a burst of changes costs one publish per person.
DELAY = 1.0
# People redrawn for one change: a user group of approvers may be the whole company.
MOST_PEOPLE = 50


class HomePublisher:
    def __init__(
        self,
        slack: AsyncWebClient,
        budget: SlackBudget,
        tasks: Background,
        *,
        delay: float = DELAY,
    ) -> None:
        self._slack = slack
        self._budget = budget
        self._tasks = tasks
        self._delay = delay
        self._stale: set[str] = set()
        self._sources: tuple[RunService, Feedback] | None = None

    def attach(self, runs: RunService, feedback: Feedback) -> None:
        """What the tab shows; given once both exist (the run service reports its changes
        here through its board, so it is built first)."""
        self._sources = (runs, feedback)

    async def publish(self, user: str) -> None:
        """Draw ``user``'s tab now and publish it; raises BotError."""
        if self._sources is None:
            return
        runs, feedback = self._sources
        tally = await feedback.tally() if await runs.approves_any(user) else None
        shown = home.view(await runs.overview(user), tally)
        await self._budget.take("views.publish")
        await home.publish(self._slack, user, shown)

    def refresh(self, users: Iterable[str]) -> None:
        """Mark these people's tabs stale; each is published once, shortly."""
        for user in users:
            if user and user not in self._stale:
                self._stale.add(user)
                self._tasks.spawn(self._publish_later(user), "App Home refresh")

    async def _publish_later(self, user: str) -> None:
        await asyncio.sleep(self._delay)
        # Unmarked before drawing: a change while this publish is under way marks it again.
        self._stale.discard(user)
        try:
            await self.publish(user)
        except BotError as exc:
            log.info("could not refresh the App Home of %s: %s", user, exc)


class HomeRefreshingBoard:
    """A ``Board`` that also marks stale the tabs of the people a change concerns: the
    requester, and the approvers (by id or user group) from the request until it is decided
    and its run starts; a run's end only redraws the requester's tab."""

    def __init__(self, board: Board, homes: HomePublisher, approvers: Approvers) -> None:
        self._board = board
        self._homes = homes
        self._approvers = approvers

    async def post(self, record: RunRecord) -> str:
        ts = await self._board.post(record)
        await self._changed(record)
        return ts

    async def update(self, record: RunRecord, note: str | None = None) -> None:
        await self._board.update(record, note)
        await self._changed(record)

    async def _changed(self, record: RunRecord) -> None:
        try:
            people = await self._concerned(record)
        except BotError as exc:
            log.info("could not tell whose App Home shows %s: %s", record.id, exc)
            people = [record.requester]
        self._homes.refresh(islice(people, MOST_PEOPLE))

    async def _concerned(self, record: RunRecord) -> list[str]:
        people = [record.requester]
        if record.state.ran and record.state is not RunState.RUNNING:
            return people  # a run's end: approvers see it when they next open the tab
        for approver in record.approvers:
            if len(people) >= MOST_PEOPLE:
                break
            if approver.startswith("S"):
                people += sorted(await self._approvers.members(approver) - set(people))
            elif approver not in people:
                people.append(approver)
        return people
