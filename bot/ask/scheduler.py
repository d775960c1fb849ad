"""Scheduling a thread's questions: one answer at a time per thread, in order, across
every process.

``submit`` queues a question (dropping duplicate deliveries) and, if no process is
answering in that thread, drains the thread's queue; a web process with workers puts the
thread on the work queue for a worker to drain instead. Draining holds the thread's lock,
kept by a heartbeat, and hands each question to the ``Answerer`` once one of this process's
answer slots is free, recording it in the ``WorkRegistry`` while it is in flight so a
restart that cuts it off is reported. ``resume``, ``rescue_stranded``, ``release`` and
``retry`` take care of threads whose answering process went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from bot import logs, notices
from bot.ask.answerer import Answerer
from bot.background import Background, stop_requested
from bot.conversation import Question, capped
from bot.errors import BotError, RequestRefused, SlackError, StateError
from bot.state import ThreadStore, keys
from bot.state.store import Accepted
from bot.state.work import WorkRegistry

# The whole Ask part logs under one name, as it did as one module.
log = logging.getLogger("bot.ask")

# A queue that Redis keeps refusing is left after this many tries (a second apart).
DRAIN_RETRIES = 30
# Tries, spread over one lock lifetime, to take over a thread from a process that vanished.
RESUME_TRIES = 5


class ThreadScheduler:
    def __init__(
        self,
        store: ThreadStore,
        answerer: Answerer,
        background: Background,
        work: WorkRegistry,
        *,
        concurrent_answers: int,
        announce: bool = False,
    ) -> None:
        self._store = store
        self._answerer = answerer
        self._background = background
        self._work = work
        # True in a web process with workers: threads that need answering go on the work
        # queue (in the same Redis step that queues the question) instead of being answered
        # here, so acknowledging Slack never waits behind answers.
        self._announce = announce
        # Answers streaming at once in this process; more wait their turn. Slack's budget lets
        # only so many show progress anyway, and a bounded amount of work keeps acks fast.
        self._slots = asyncio.Semaphore(concurrent_answers)

    async def submit(
        self, question: Question, dedupe: Sequence[str], *, follow_up: bool = False
    ) -> Accepted:
        """Queue a question, cut to its size cap, unless it is a duplicate delivery (or a
        ``follow_up`` in a thread we take no part in) or the limits refuse it, and see that
        its thread gets answered."""
        thread = _thread_of(question)
        accepted = await self._store.accept(
            thread, capped(question), dedupe, follow_up=follow_up, announce=self._announce
        )
        if accepted is Accepted.DUPLICATE:
            log.info("duplicate delivery ignored", extra={"thread_id": thread})
        elif accepted is Accepted.NOT_FOLLOWING:
            why = "a thread the bot takes no part in"
            log.info("message ignored", extra={"thread_id": thread, "reason": why})
        elif accepted.refused:
            log.info("question refused", extra={"thread_id": thread, "verdict": accepted.name})
        elif accepted is Accepted.QUEUED and not self._announce:
            self._background.spawn(self.drain(thread), "answering")
        return accepted

    async def refusal(self, question: Question, accepted: Accepted) -> str:
        """What to tell the asker of a question the limits refused."""
        if accepted in (Accepted.QUEUE_FULL, Accepted.QUEUE_FULL_AGAIN):
            return notices.queue_full(keys.THREAD_QUEUE_MAX)
        try:
            wait = await self._store.asking_again_at(question.user) - time.time()
        except StateError:
            wait = keys.QUESTIONS_WINDOW  # the longest it can be
        return notices.too_many_questions(self._store.questions_per_minute or 0, wait)

    async def drain(self, thread: str) -> bool:
        """Answer the thread's queue if no one else is; False when someone else holds it."""
        token = await self.lock(thread)
        if token is None:
            return False  # whoever holds the lock answers our question after theirs
        await self.drain_locked(thread, token)
        return True

    async def lock(self, thread: str) -> str | None:
        """Take the thread, or None when another answer in it is in progress."""
        return await self._store.try_lock(thread)

    async def drain_locked(self, thread: str, token: str) -> None:
        """Answer the queue of a thread whose lock we hold, then let it go."""
        failures = 0
        async with _heartbeat(self._store, thread, token):
            while failures < DRAIN_RETRIES:
                try:
                    if await self._drain_step(thread, token):
                        break
                except StateError as exc:
                    # Keep the lock (the heartbeat refreshes it) and try again shortly.
                    failures += 1
                    log.warning("thread queue unavailable: %s", exc)
                    await asyncio.sleep(1.0)

    async def _drain_step(self, thread: str, token: str) -> bool:
        """Answer the next question; True once the queue is empty and the lock let go."""
        question = await self._store.next_question(thread)
        if question is not None:
            async with self._slots:
                await self._answer_safely(thread, question, token)
            return False
        return await self._store.release_if_empty(thread, token)

    async def _answer_safely(self, thread: str, question: Question, lock: str) -> None:
        try:
            with traced(question):
                async with self._tracked(thread, question, lock):
                    await self._answerer.answer(thread, question)
        except SlackError as exc:
            log.error("could not post in %s: %s", question.channel, exc)
        except BotError as exc:
            log.error("answer failed in %s: %s", thread, exc)

    @contextlib.asynccontextmanager
    async def _tracked(self, thread: str, question: Question, lock: str) -> AsyncIterator[None]:
        """Record the answer as in flight, so a restart that cuts it off is reported."""
        name = f"answer:{thread}"
        record = {"kind": "answer", "thread": thread, "lock": lock, "question": question.to_json()}
        await self._work.start(name, record)
        try:
            yield
        finally:
            with contextlib.suppress(BotError):
                await self._work.finish(name)

    async def resume(self, thread: str) -> None:
        """Go on with a thread whose answering process looks gone. Its lock is left to
        expire rather than broken: a process that only missed heartbeats may still hold it."""
        for _ in range(RESUME_TRIES):
            if self._announce:
                if await self._store.announce(thread):
                    return  # a worker takes it from here
            elif await self.drain(thread):
                return
            await asyncio.sleep(self._store.lock_ttl / (RESUME_TRIES - 1))

    async def rescue_stranded(self) -> None:
        """Take up questions that wait with no one answering: a drain that Redis refused
        too often, a process that died between queueing and answering, a lost entry."""
        for thread in await self._store.stranded(older_than=2 * self._store.lock_ttl):
            log.warning("questions wait in %s with no one answering; taking them up", thread)
            self._background.spawn(self.resume(thread), "taking up a waiting thread")

    async def release(self, thread: str, lock: str) -> None:
        await self._store.break_lock(thread, lock)

    async def retry(self, retry_id: str) -> bool:
        """Ask an interrupted question again; False if it was retried already or is too old."""
        question = await self._work.take_retry(retry_id)
        if question is None:
            return False
        accepted = await self.submit(question, [keys.seen_event(f"retry:{retry_id}")])
        if accepted.refused:
            raise RequestRefused(await self.refusal(question, accepted))
        return True


def traced(question: Question) -> contextlib.AbstractContextManager[logs.Trace]:
    """The log context of a question. Its trace id comes from the message itself, so the
    delivery and the answer share it even when another process answers."""
    return logs.trace(
        logs.id_for(question.team, question.channel, question.ts),
        team=question.team,
        channel=question.channel,
        thread=question.thread_ts,
        user=question.user,
    )


@contextlib.asynccontextmanager
async def _heartbeat(store: ThreadStore, thread: str, token: str) -> AsyncIterator[None]:
    """Keep the thread's lock while answering, so a long answer is not taken over."""

    async def beat() -> None:
        while not stop_requested():
            await asyncio.sleep(store.lock_ttl / 3)
            with contextlib.suppress(BotError):
                await store.refresh_lock(thread, token)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _thread_of(question: Question) -> str:
    return keys.thread_id(question.team, question.channel, question.thread_ts)
