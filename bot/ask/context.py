"""Thread context for a question: what people said in the thread the bot was called into,
or in the channel thread a DM links to (only when the asker can read that channel).

Read at answer time (in the worker, so acks stay fast), once per thread per
``keys.THREAD_READ_TTL`` whichever process asks, and never at the cost of the answer: a
thread Slack will not let us read (``missing_scope``, ``not_in_channel``, ``ratelimited``…)
is answered from the question alone, with a note said once per thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot import notices
from bot.access import Access
from bot.conversation import Question
from bot.errors import SlackError
from bot.slack.budget import SlackBudget
from bot.slack.threads import read_thread
from bot.state.thread_reads import ThreadReads
from bot.thread_context import ThreadRead, as_context, recent

log = logging.getLogger("bot.ask")

# A linked thread in a channel the asker cannot read.
NOT_VISIBLE = "you can't see that channel"


@dataclass(frozen=True)
class Context:
    """What the model reads before the history (quoted), and what the person reads after
    the answer."""

    prompt: str = ""
    note: str = ""


class ThreadReader:
    def __init__(
        self,
        slack: AsyncWebClient,
        budget: SlackBudget,
        reads: ThreadReads,
        access: Access,
        bot_user: str,
    ) -> None:
        self._slack = slack
        self._access = access
        self._budget = budget
        self._reads = reads
        self._bot_user = bot_user

    async def context(self, thread: str, question: Question, *, joined: bool) -> Context:
        """``joined``: the bot already answers in ``thread``: its history holds every
        exchange since, and the first answer took in what was said before. A linked thread
        is read whenever it is linked."""
        linked = question.context_channel != question.channel
        if not question.context_ts or (joined and not linked):
            return Context()
        if linked and not await self._access.can_see(question.user, question.context_channel):
            # Never show someone a channel they cannot read; say so without naming it.
            read = ThreadRead(error=NOT_VISIBLE)
        else:
            read = await self._read(question)
        if read.error:
            if not await self._reads.first_note(thread):
                return Context()
            return Context(note=notices.thread_unread(read.error))
        return Context(prompt=as_context(recent(read.messages, question.ts)))

    async def _read(self, question: Question) -> ThreadRead:
        channel, thread_ts = question.context_channel, question.context_ts
        cached = await self._reads.get(channel, thread_ts)
        if cached is not None:
            return cached
        try:
            messages = await read_thread(
                self._slack,
                self._budget,
                channel,
                thread_ts,
                before=question.ts,
                bot_user=self._bot_user,
            )
        except SlackError as exc:
            log.warning("could not read thread %s/%s: %s", channel, thread_ts, exc.code)
            read = ThreadRead(error=exc.code)
        else:
            # Only what a question could use is kept: the newest messages, within budget.
            read = ThreadRead(messages=tuple(recent(tuple(messages), question.ts)))
        await self._reads.keep(channel, thread_ts, read)
        return read
