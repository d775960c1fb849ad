"""Running an approved request on the Heroku Agents API and showing it in Slack.

Only ``approved → running`` (one atomic move, ``begin``) starts a run, whichever process
makes it: a worker, or the web process when there are none. The process that made the move
follows the run; it sends exactly the body stored with the request. The run streams into
the card's thread; the card ends with the outcome. Whatever goes wrong on our side, the run
ends ``failed`` with a note, never stuck at "running"; a process stopping mid-run is
reported by ``bot.recovery`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot import logs
from bot.background import stop_requested
from bot.errors import BotError, InferenceError, StateError
from bot.inference import AgentError, AgentMessage, AgentsClient, AgentToolResult, AgentUnknown
from bot.notices import STOPPED_WATCHING, describe
from bot.runs.board import Board
from bot.runs.record import RunRecord
from bot.runs.requests import Requests
from bot.runs.states import Moved, RunState
from bot.slack.budget import SlackBudget
from bot.slack.progress import RunProgress
from bot.slack.sessions import Sessions, Status, Thread, title
from bot.slack.task_stream import Recipient, TaskStream
from bot.state.work import WorkRegistry
from bot.text import clip
from bot.untrusted import shown

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 1.0
# How a run ended, and a short note for its card.
Outcome = tuple[RunState, str | None]


class Executor:
    def __init__(
        self,
        *,
        requests: Requests,
        agents: AgentsClient,
        slack: AsyncWebClient,
        board: Board,
        work: WorkRegistry,
        budget: SlackBudget,
        sessions: Sessions,
    ) -> None:
        self._requests = requests
        self._agents = agents
        self._slack = slack
        self._board = board
        self._work = work
        self._budget = budget
        self.sessions = sessions

    async def begin(self, record: RunRecord, *, by: str) -> bool:
        """The one gate of a run: ``approved → running``, made by this process. False when
        another process made it first, or the request can no longer start: not ours."""
        return isinstance(await self._requests.move(record.id, RunState.RUNNING, by), Moved)

    async def follow(self, record: RunRecord, *, by: str) -> None:
        """Run a request this process began, streaming it into its thread, to its end."""
        # The request id is the trace id: the /run, the click and the run share it.
        with logs.trace(
            record.id,
            run_id=record.id,
            runbook=record.runbook,
            team=record.team,
            channel=record.channel,
            thread=record.run_thread,
            user=record.requester,
        ):
            # Which process runs it: the web process, or the worker it was handed to.
            log.info("run started", extra={"runner": self._work.process})
            self.set_session(record, Status.PROCESSING)
            started = time.monotonic()
            progress = self._progress(record)
            try:
                outcome, note = await self._run(record, by, progress)
            except asyncio.CancelledError:
                raise  # the process is stopping: bot.recovery reports the run
            except Exception as exc:  # a run must end visibly, whatever broke on our side
                log.exception("agent run %s stopped", record.id)
                await progress.note(describe(exc))
                outcome, note = RunState.FAILED, "stopped by an error in the bot"
            await self._finish(record, by, outcome, note, time.monotonic() - started, progress)

    def _progress(self, record: RunRecord) -> RunProgress:
        stream = TaskStream(
            self._slack, record.channel, record.run_thread,
            Recipient(record.requester, record.team), self._budget,
        )  # fmt: skip
        return RunProgress(self._slack, record.channel, record.run_thread, stream)

    async def _run(self, record: RunRecord, by: str, progress: RunProgress) -> Outcome:
        await self._work.start(f"run:{record.id}", {"kind": "run", "id": record.id})
        await self._requests.audit("run_started", id=record.id, user=by, runbook=record.runbook)
        await self._board.update(await self._requests.get(record.id) or record)
        return await self._watch(record, progress)

    async def _settle(
        self, record: RunRecord, by: str, outcome: RunState, progress: RunProgress
    ) -> None:
        """Record the outcome. If another process took this one for dead meanwhile (it
        missed heartbeats but lived), the real outcome replaces its "interrupted"."""
        result = await self._requests.move(record.id, outcome, by)
        if isinstance(result, Moved) and result.previous is RunState.INTERRUPTED:
            await progress.note(f"The run {outcome} after all: ignore the restart notice above.")

    async def _finish(
        self,
        record: RunRecord,
        by: str,
        outcome: RunState,
        note: str | None,
        seconds: float,
        progress: RunProgress,
    ) -> None:
        with contextlib.suppress(BotError):
            if outcome is not RunState.CANCELLED:  # a Cancel click made that move already
                await self._settle(record, by, outcome, progress)
            await self._requests.audit("run_ended", id=record.id, outcome=outcome.value)
        _log_run(outcome, by, seconds)
        await progress.close()  # the thread is complete before the card says the run ended
        self.set_session(record, Status.ACTIVE)
        with contextlib.suppress(BotError):
            final = await self._requests.get(record.id)
            await self._board.update(final or record, note=note)
        with contextlib.suppress(BotError):
            await self._work.finish(f"run:{record.id}")

    def set_session(self, record: RunRecord, status: Status) -> None:
        """The status of the run's thread as an agent session, titled "migrate · app"."""
        thread = Thread(record.team, record.channel, record.run_thread)
        app = record.values.get("app")
        self.sessions.later(
            thread, status, title=title(" · ".join(filter(None, [record.runbook, app])))
        )

    async def interrupted(self, request_id: str) -> None:
        """The process watching this run stopped: say so, and never start it again."""
        moved = await self._requests.move(request_id, RunState.INTERRUPTED, "restart")
        if not isinstance(moved, Moved):
            return
        await self._requests.audit("run_interrupted", id=request_id)
        record = await self._requests.get(request_id)
        if record is None:
            return
        # The card first: if the run's own process was alive after all and settles it, its
        # later update is the one that stays.
        await self._board.update(record)
        self.set_session(record, Status.ACTIVE)
        progress = RunProgress(self._slack, record.channel, record.run_thread)
        await progress.note(
            ":warning: The bot restarted while watching this run, so its outcome is unknown. "
            "It was not started again (runs have side effects): check the app before re-running."
        )

    async def _watch(self, record: RunRecord, progress: RunProgress) -> Outcome:
        stream = asyncio.create_task(self._stream(record, progress))
        watcher = asyncio.create_task(self._wait_cancelled(record.id))
        done, _ = await asyncio.wait({stream, watcher}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stream, watcher):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if stream in done:
            return stream.result()
        await progress.note(f":black_square_for_stop: {STOPPED_WATCHING}")
        return RunState.CANCELLED, STOPPED_WATCHING

    async def _stream(self, record: RunRecord, progress: RunProgress) -> Outcome:
        failed = None
        try:
            async with contextlib.aclosing(self._agents.stream_agent(record.body)) as events:
                async for event in events:
                    failed = await _show(event, progress) or failed
        except InferenceError as exc:
            log.warning("agent run %s failed: %r", record.id, exc)
            await progress.note(describe(exc, during_run=True))
            return RunState.FAILED, "the run broke off"
        return (RunState.FAILED, failed) if failed else (RunState.SUCCEEDED, None)

    async def _wait_cancelled(self, request_id: str) -> None:
        """Returns only when someone really cancelled: a Redis blip is not a Cancel click."""
        while not stop_requested():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            try:
                record = await self._requests.get(request_id)
            except StateError as exc:
                log.warning("cannot check for a cancel right now: %s", exc)
                continue
            if record is not None and record.state is RunState.CANCELLED:
                return
        raise asyncio.CancelledError  # told to stop: that is not a Cancel click


async def _show(event: object, progress: RunProgress) -> str | None:
    """Show one agent event; returns a failure reason when the event says the run failed."""
    if isinstance(event, AgentMessage):
        if event.usage is not None:
            logs.count("prompt_tokens", event.usage.prompt_tokens)
            logs.count("completion_tokens", event.usage.completion_tokens)
            logs.count("tokens", event.usage.total_tokens)
        for call in event.tool_calls:
            await progress.tool_started(call.id, call.name, call.arguments)
        if event.finish_reason != "tool_calls" and event.content:
            await progress.answer(event.content)
    elif isinstance(event, AgentToolResult):
        await progress.tool_finished(event.tool_call_id, event.name, event.content)
    elif isinstance(event, AgentError):
        await progress.note(f":x: The agent run reported an error: {shown(event.message)}")
        return "the agent reported an error"
    elif isinstance(event, AgentUnknown):
        # clip masks before it cuts: a cut through a secret would leave a piece unmasked.
        log.warning("unknown agent event: %s", clip(event.raw, 500))
        await progress.note(
            f":grey_question: Unexpected event from the Agents API: `{clip(shown(event.raw), 200)}`"
        )
    return None


def _log_run(outcome: RunState, by: str, seconds: float) -> None:
    """The one summary line per agent run; tokens and 429s were counted as they came."""
    fields: dict[str, object] = {logs.SLACK_429: 0, **logs.totals()}
    log.info(
        "run finished",
        extra={"outcome": outcome.value, "started_by": by, "seconds": round(seconds, 3), **fields},
    )
