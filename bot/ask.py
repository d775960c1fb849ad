"""Ask: answering questions in a thread, one at a time and in order, with its history.

``submit`` queues a question (dropping duplicate deliveries) and, if no process is
answering in that thread, drains the thread's queue; a web process with workers puts the
thread on the work queue for a worker to drain instead. Each answer streams from Heroku
chat completions through ``paced`` into a ``ThreadReply``; the exchange is then remembered
so a follow-up in the thread continues the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

from bot import logs, notices
from bot.background import Background, stop_requested
from bot.conversation import SYSTEM_PROMPT, Question, Turn, prompt_messages
from bot.errors import BotError, InferenceError, SlackError, StateError
from bot.inference import Finish, InferenceClient, TextDelta, ToolCallDelta, Usage
from bot.pacing import paced
from bot.proposals import Asker, Copilot, ToolCalls
from bot.slack.reply import Place, Replier, ThreadReply
from bot.state import ThreadStore, keys
from bot.state.store import Accepted
from bot.state.work import WorkRegistry

log = logging.getLogger(__name__)

# A queue that Redis keeps refusing is left after this many tries (a second apart).
DRAIN_RETRIES = 30
# Tries, spread over one lock lifetime, to take over a thread from a process that vanished.
RESUME_TRIES = 5


@dataclass
class Outcome:
    """What the stream told us besides text."""

    finish: str | None = None
    usage: Usage | None = None
    error: str | None = None
    first_text_seconds: float | None = None  # how long the person waited for the first words
    tool_calls: ToolCalls = field(default_factory=ToolCalls)


@dataclass(frozen=True)
class AskSettings:
    history_chars: int
    update_interval: float
    # Show "model · N tokens · S.s s" under each answer (COPILOT_FOOTER).
    footer: bool = False
    # Answers streaming at once in this process; more wait their turn. Slack's budget lets
    # only so many show progress anyway, and a bounded amount of work keeps acks fast.
    concurrent_answers: int = 500


class AskService:
    def __init__(
        self,
        store: ThreadStore,
        inference: InferenceClient,
        replier: Replier,
        settings: AskSettings,
        background: Background,
        copilot: Copilot | None = None,
        work: WorkRegistry | None = None,
        *,
        announce: bool = False,
    ) -> None:
        self._store = store
        self._inference = inference
        self._replier = replier
        self._settings = settings
        self._background = background
        self._copilot = copilot
        self._work = work
        # True in a web process with workers: threads that need answering go on the work
        # queue (in the same Redis step that queues the question) instead of being answered
        # here, so acknowledging Slack never waits behind answers.
        self._announce = announce
        self._slots = asyncio.Semaphore(settings.concurrent_answers)

    async def submit(
        self, question: Question, dedupe: Sequence[str], *, follow_up: bool = False
    ) -> Accepted:
        """Queue a question unless it is a duplicate delivery (or a ``follow_up`` in a thread
        we take no part in), and see that its thread gets answered."""
        thread = _thread_of(question)
        accepted = await self._store.accept(
            thread, question, dedupe, follow_up=follow_up, announce=self._announce
        )
        if accepted is Accepted.DUPLICATE:
            log.info("duplicate delivery ignored", extra={"thread_id": thread})
        elif accepted is Accepted.QUEUED and not self._announce:
            self._background.spawn(self.drain(thread), "answering")
        return accepted

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
                    await self.answer(thread, question)
        except SlackError as exc:
            log.error("could not post in %s: %s", question.channel, exc)
        except BotError as exc:
            log.error("answer failed in %s: %s", thread, exc)

    @contextlib.asynccontextmanager
    async def _tracked(self, thread: str, question: Question, lock: str) -> AsyncIterator[None]:
        """Record the answer as in flight, so a restart that cuts it off is reported."""
        if self._work is None:
            yield
            return
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
        question = await self._work.take_retry(retry_id) if self._work else None
        if question is None:
            return False
        await self.submit(question, [keys.seen_event(f"retry:{retry_id}")])
        return True

    async def answer(self, thread: str, question: Question) -> None:
        reply = self._replier.open(_place_of(question))
        await reply.begin()
        try:
            await self._answer_into(reply, thread, question)
        except BotError as exc:
            # The placeholder is up: never leave it saying "Thinking…" forever.
            log.error("answer failed in %s: %s", thread, exc)
            with contextlib.suppress(SlackError):
                await reply.fail(notices.describe(exc))

    async def _answer_into(self, reply: ThreadReply, thread: str, question: Question) -> None:
        if not question.text.strip():
            await reply.fail(notices.EMPTY_QUESTION)
            return
        started = time.monotonic()
        history = await self._store.history(thread)
        messages = prompt_messages(
            history,
            question.text,
            budget_chars=self._settings.history_chars,
            system=self._system_prompt(),
        )
        outcome = await self._stream_answer(reply, messages, question, started)
        await self._store.remember(
            thread, Turn("user", question.text), Turn("assistant", reply.text)
        )
        _log_answered(outcome, self._inference.model, time.monotonic() - started)

    def _system_prompt(self) -> str:
        extra = self._copilot.prompt() if self._copilot else ""
        return f"{SYSTEM_PROMPT}\n\n{extra}" if extra else SYSTEM_PROMPT

    async def _stream_answer(
        self,
        reply: ThreadReply,
        messages: list[dict[str, str]],
        question: Question,
        started: float,
    ) -> Outcome:
        outcome = Outcome()
        tools = self._copilot.tools() if self._copilot else None
        texts = _texts(self._inference.stream_chat(messages, tools=tools), outcome)
        try:
            async with contextlib.aclosing(paced(texts, self._settings.update_interval)) as batches:
                async for batch in batches:
                    if outcome.first_text_seconds is None:
                        outcome.first_text_seconds = round(time.monotonic() - started, 3)
                    await reply.write(batch)
        except InferenceError as exc:
            log.warning("inference failed: %r", exc)
            outcome.error = type(exc).__name__
            await reply.fail(notices.describe(exc))
            return outcome
        if outcome.finish == "length":
            await reply.write("\n\n" + notices.LENGTH_LIMIT)
        if outcome.tool_calls and self._copilot:
            asker = Asker(question.user, question.team, question.channel, question.thread_ts)
            notes = await self._copilot.act_on(outcome.tool_calls, asker)
            await reply.write(("\n\n" if reply.text else "") + "\n".join(notes))
        await reply.finish(footer=self._footer(outcome, started))
        return outcome

    def _footer(self, outcome: Outcome, started: float) -> str | None:
        if not self._settings.footer:
            return None
        parts = [self._inference.model]
        if outcome.usage is not None:
            parts.append(f"{outcome.usage.total_tokens:,} tokens")
        parts.append(f"{time.monotonic() - started:.1f} s")
        return " · ".join(parts)


async def _texts(events: AsyncGenerator[object, None], outcome: Outcome) -> AsyncIterator[str]:
    # aclosing: when the answer stops early, the HTTP stream closes now, not at GC.
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                yield event.text
            elif isinstance(event, Finish):
                outcome.finish = event.reason
            elif isinstance(event, Usage):
                outcome.usage = event
            elif isinstance(event, ToolCallDelta):
                outcome.tool_calls.add(event)


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


def _log_answered(outcome: Outcome, model: str, seconds: float) -> None:
    """The one summary line per answer: what it cost and how it ended."""
    usage = outcome.usage
    log.info(
        "answered",
        extra={
            "seconds": round(seconds, 3),
            "first_text_seconds": outcome.first_text_seconds,
            "model": model,
            "finish": outcome.finish,
            "error": outcome.error,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "tokens": usage.total_tokens if usage else None,
            logs.SLACK_429: logs.totals().get(logs.SLACK_429, 0),
        },
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


def _place_of(question: Question) -> Place:
    return Place(
        channel=question.channel,
        thread_ts=question.thread_ts,
        user=question.user,
        team=question.user_team or question.team,
        is_dm=question.is_dm,
    )
