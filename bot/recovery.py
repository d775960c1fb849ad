"""Telling people what a restart interrupted.

Answers and runs in flight are recorded in Redis (``WorkRegistry``). When a process stops
before they finish, at SIGTERM after the grace period or by dying outright, the affected
thread gets a plain notice: a question can be retried with one click; an agent run is never
retried by itself, because it has side effects, and its card says it was interrupted.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.ask import ThreadScheduler
from bot.background import Background
from bot.conversation import Question
from bot.errors import BotError, SlackError
from bot.render import buttons
from bot.runs.service import RunService
from bot.slack.calls import slack_errors
from bot.slack.sessions import Sessions, Status, Thread
from bot.state.work import WorkRegistry

log = logging.getLogger(__name__)

INTERRUPTED_ANSWER = ":warning: This answer was interrupted by a restart of the bot."


class Recovery:
    def __init__(
        self,
        work: WorkRegistry,
        slack: AsyncWebClient,
        scheduler: ThreadScheduler,
        runs: RunService,
        background: Background,
        sessions: Sessions,
    ) -> None:
        self._work = work
        self._slack = slack
        self._scheduler = scheduler
        self._runs = runs
        self._background = background
        self._sessions = sessions

    async def sweep(self) -> int:
        """Report the work of processes that died without a word."""
        items = await self._work.orphans()
        for item in items:
            await self._report(item, resume=True)
        return len(items)

    async def take_over(self) -> None:
        """At start: report the work of the process this one replaces (same ``DYNO``), if
        that process is gone, as the sweep would but without waiting for it."""
        found = await self._work.take_over()
        if found is None:
            return
        if found.alive:
            log.info(
                "the previous process under this name still runs; its work stays with it",
                extra={"previous": found.process},
            )
            return
        for item in found.work:
            await self._report(item, resume=True)
        log.info(
            "took over from the process that ran under this name before",
            extra={"previous": found.process, "unfinished": len(found.work)},
        )

    async def interrupt_own(self) -> int:
        """At shutdown: report what this process could not finish in time."""
        items = await self._work.mine()
        for item in items:
            await self._report(item, resume=False)
        return len(items)

    async def _report(self, item: dict[str, Any], *, resume: bool) -> None:
        """Tell the thread or card; a survivor also answers what was queued behind it,
        while a process that is shutting down only lets go of the thread."""
        try:
            if item.get("kind") == "answer":
                await self._answer_interrupted(Question.from_json(item["question"]))
                thread, lock = str(item["thread"]), str(item["lock"])
                if resume:
                    # Questions queued behind the lost answer go on in the background.
                    self._background.spawn(self._scheduler.resume(thread), "resuming a thread")
                else:
                    await self._scheduler.release(thread, lock)
            elif item.get("kind") == "run":
                await self._runs.interrupted(str(item["id"]))
        except (BotError, KeyError, ValueError, TypeError) as exc:
            log.error("could not report interrupted work %r: %s", item, exc)

    async def _answer_interrupted(self, question: Question) -> None:
        retry_id = await self._work.save_retry(question)
        try:
            async with slack_errors("chat.postMessage"):
                await self._slack.chat_postMessage(
                    channel=question.channel,
                    thread_ts=question.thread_ts,
                    text=INTERRUPTED_ANSWER,
                    blocks=buttons.interrupted(INTERRUPTED_ANSWER, retry_id),
                )
        except SlackError as exc:
            log.error("could not report an interrupted answer: %s", exc.code)
        log.warning("answer interrupted by a restart", extra={"channel": question.channel})
        # No one is answering any more: no stop button for nothing.
        thread = Thread(question.team, question.channel, question.thread_ts)
        self._sessions.later(thread, Status.ACTIVE)
