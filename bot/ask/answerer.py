"""Answering one question in a thread.

``Answerer.answer`` opens the reply (a "thinking…" placeholder or status), builds the prompt
from the thread's history, streams chat completions through ``paced`` into the reply, acts
on the runbooks the model proposed (the copilot), and remembers the exchange so a follow-up
continues the conversation. Each answer ends with one ``answered`` log line and, when
configured, a footer. When and where a question is answered is ``bot.ask.scheduler``'s part.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from bot import logs, notices
from bot.access import Access
from bot.ask.admission import Admission, Place
from bot.ask.context import ThreadReader
from bot.ask.stops import Stop, StopSignals, until_stopped
from bot.conversation import CUT_NOTE, SYSTEM_PROMPT, Question, Turn, prompt_messages, was_cut
from bot.errors import BotError, InferenceError, SlackError
from bot.inference import Finish, InferenceClient, TextDelta, ToolCallDelta, Usage
from bot.proposals import Asker, Copilot, ToolCalls, waits_for_click
from bot.slack.reply import Place as ReplyPlace
from bot.slack.reply import Replier, ThreadReply
from bot.slack.sessions import Sessions, Status, Thread, title
from bot.state import ThreadStore
from bot.untrusted import safe_stream, shown

# The whole Ask part logs under one name, as it did as one module: the ``answered`` line is
# found by it.
log = logging.getLogger("bot.ask")

# "processing" is only worth showing if it comes at once: under load the answer goes on
# without it (and then without a stop button) rather than wait for a slot.
PROCESSING_WAIT = 0.5


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
    # Show "model · N tokens · S.s s" under each answer (COPILOT_FOOTER).
    footer: bool = False


class Answerer:
    def __init__(
        self,
        store: ThreadStore,
        inference: InferenceClient,
        replier: Replier,
        settings: AskSettings,
        copilot: Copilot,
        access: Access,
        threads: ThreadReader,
        sessions: Sessions,
        stops: StopSignals,
        admission: Admission | None = None,
    ) -> None:
        self._store = store
        self._inference = inference
        self._replier = replier
        self._settings = settings
        self._copilot = copilot
        self._access = access
        self._threads = threads
        self._sessions = sessions
        self._stops = stops
        self._admission = admission or Admission()

    async def answer(self, thread: str, question: Question) -> None:
        """Stream the answer into the question's thread and remember the exchange. A failure
        once the reply is open is shown in it; only failing to open it is raised."""
        # The reply is counted among those waiting to show text from the moment the answer
        # waits for its start: their first posts come before other answers' continuations.
        reply = self._replier.open(_place_of(question))
        async with reply, self._admission.place() as starting:
            if not await self._access.admits(question):
                return  # a guest or an outsider: told once, and no model call, nothing shown
            await self._answer_in_session(reply, thread, question, starting)

    async def _answer_in_session(
        self, reply: ThreadReply, thread: str, question: Question, starting: Place
    ) -> None:
        session = _session_of(question)
        # The session's status and the reply's placeholder go to Slack side by side.
        processing = self._sessions.later(
            session, Status.PROCESSING, title=title(question.text), max_wait=PROCESSING_WAIT
        )
        processing.add_done_callback(functools.partial(_session_started, reply))
        reply.session_status = Status.ACTIVE.value  # with the answer's last call, if it can
        try:
            await reply.begin()
            await self._answer_safely(reply, thread, question, starting)
        finally:
            if await processing and not reply.session_sent:
                self._sessions.later(session, Status(reply.session_status))

    async def _answer_safely(
        self, reply: ThreadReply, thread: str, question: Question, starting: Place
    ) -> None:
        try:
            await self._answer_into(reply, thread, question, starting)
        except BotError as exc:
            # The placeholder is up: never leave it saying "Thinking…" forever.
            log.error("answer failed in %s: %s", thread, exc)
            starting.release()
            with contextlib.suppress(SlackError):
                await reply.fail(notices.describe(exc))

    async def _answer_into(
        self, reply: ThreadReply, thread: str, question: Question, starting: Place
    ) -> None:
        if not question.text.strip():
            starting.release()
            await reply.fail(notices.EMPTY_QUESTION)
            return
        started = time.monotonic()
        history = await self._store.history(thread)
        context = await self._threads.context(thread, question, joined=bool(history))
        messages = prompt_messages(
            history,
            question.text,
            budget_chars=self._settings.history_chars,
            system=self._system_prompt(),
            asker=question.user,
            context=context.prompt,
        )
        if context.note:
            # First, so that it shows even if the answer is cut off.
            reply.write(context.note + "\n\n")
        async with self._stops.watch(thread) as stop:
            outcome = await self._stream_answer(reply, messages, question, started, stop, starting)
        await self._store.remember(
            thread,
            Turn("user", question.text, author=question.user),
            Turn("assistant", reply.text),
        )
        _log_answered(outcome, self._inference.model, time.monotonic() - started)

    def _system_prompt(self) -> str:
        extra = self._copilot.prompt()
        return f"{SYSTEM_PROMPT}\n\n{extra}" if extra else SYSTEM_PROMPT

    async def _stream_answer(
        self,
        reply: ThreadReply,
        messages: list[dict[str, str]],
        question: Question,
        started: float,
        stop: Stop,
        starting: Place,
    ) -> Outcome:
        outcome = Outcome()
        tools = self._copilot.tools()
        # Once Heroku starts its reply, the start-up is over: waiting for the first token is
        # not contention, and the next answer may start meanwhile.
        chat = self._inference.stream_chat(messages, tools=tools, opened=starting.release)
        # Masked and made inert before it is written, so no message, cut or history holds a
        # secret.
        model = safe_stream(_texts(chat, outcome))

        async def pour() -> None:
            async with contextlib.aclosing(model):
                async for piece in model:
                    if outcome.first_text_seconds is None:
                        outcome.first_text_seconds = round(time.monotonic() - started, 3)
                    reply.write(piece)

        try:
            await until_stopped(pour(), stop)
        except InferenceError as exc:
            log.warning("inference failed: %r", exc)
            outcome.error = type(exc).__name__
            # If Slack refuses the notice too, there is nothing more to show: no second one.
            with contextlib.suppress(SlackError):
                await reply.fail(notices.describe(exc))
            return outcome
        finally:
            starting.release()
        if stop.by is not None:
            # What was shown stays; a half-made proposal is not acted on.
            log.info("answer stopped", extra={"stopped_by": stop.by})
            outcome.finish = "stopped"
            reply.write(("\n\n" if reply.text else "") + shown(notices.stopped_by(stop.by)))
            await reply.finish(footer=self._footer(outcome, started))
            return outcome
        if outcome.finish == "length":
            reply.write("\n\n" + notices.LENGTH_LIMIT)
        if was_cut(question):  # the model read the note; the person reads it here
            reply.write(f"\n\n_{CUT_NOTE}_")
        if outcome.tool_calls:
            asker = Asker(
                question.user, question.team, question.channel, question.thread_ts, question.ts
            )
            notes = await self._copilot.act_on(outcome.tool_calls, asker)
            if waits_for_click(notes):
                reply.session_status = Status.SUSPENDED.value
            # The notes quote the runbook names and values the model chose.
            reply.write(("\n\n" if reply.text else "") + shown("\n".join(notes)))
        # The answer's trace id names it on its feedback buttons and in its log lines.
        await reply.finish(footer=self._footer(outcome, started), answer=logs.current_id())
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


def _session_started(reply: ThreadReply, processing: asyncio.Future[bool]) -> None:
    """Once Slack took "processing", the answer's end may carry the next status."""
    if not processing.cancelled() and processing.exception() is None and processing.result():
        reply.session_live = True


def _session_of(question: Question) -> Thread:
    return Thread(team=question.team, channel=question.channel, thread_ts=question.thread_ts)


def _place_of(question: Question) -> ReplyPlace:
    return ReplyPlace(
        channel=question.channel,
        thread_ts=question.thread_ts,
        user=question.user,
        team=question.user_team or question.team,
        is_dm=question.is_dm,
    )
