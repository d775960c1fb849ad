"""Act: ``/run`` requests, their approval, and the agent runs they start.

Order of events for one request: the exact Agents API body is rendered from the runbooks
file and validated values, stored in Redis under a fresh id, and shown on a card. Only an
atomic ``pending → approved`` move (by an allowed approver, before expiry) lets a run
start, and the run sends exactly the stored body. Every step is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from slack_sdk.web.async_client import AsyncWebClient

from bot import logs
from bot.approvals import Approvers
from bot.errors import BotError, InferenceError, RequestRefused, SlackError
from bot.inference import (
    AgentError,
    AgentMessage,
    AgentsClient,
    AgentToolResult,
    AgentUnknown,
    Usage,
)
from bot.notices import describe
from bot.proposals import Asker
from bot.run_command import Invocation, parse
from bot.runbooks import Catalog, agent_body
from bot.slack import cards, home
from bot.slack.calls import slack_errors
from bot.slack.progress import RunProgress
from bot.state.requests import RequestStore, RunRecord, new_id
from bot.state.work import WorkRegistry

log = logging.getLogger(__name__)

Respond = Callable[[str], Awaitable[None]]
CANCEL_POLL_SECONDS = 1.0
_UNPOSTABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


@dataclass(frozen=True)
class Requester:
    user: str
    team: str
    channel: str


class RunService:
    def __init__(
        self,
        catalog: Catalog,
        requests: RequestStore,
        approvers: Approvers,
        agents: AgentsClient,
        slack: AsyncWebClient,
        model: str,
        work: WorkRegistry | None = None,
    ) -> None:
        self.catalog = catalog
        self._requests = requests
        self._approvers = approvers
        self._agents = agents
        self._slack = slack
        self._model = model
        self._work = work
        self._tasks: set[asyncio.Task[None]] = set()

    # -- requesting -------------------------------------------------------------------

    async def request(self, who: Requester, text: str) -> RunRecord:
        """Check policy and input, post the card, and start at once if no approval is due."""
        self._check_policy(who)
        record = await self._open(who, parse(text, self.catalog), thread_ts="", proposed=False)
        if record.state == "approved":
            await self.execute(record, by=who.user)
        return record

    async def propose(self, who: Requester, invocation: Invocation, thread_ts: str) -> RunRecord:
        """A card for a runbook the model suggested: it always waits for a person's click."""
        self._check_policy(who)
        return await self._open(who, invocation, thread_ts=thread_ts, proposed=True)

    async def _open(
        self, who: Requester, invocation: Invocation, *, thread_ts: str, proposed: bool
    ) -> RunRecord:
        record = await self._store_new(who, invocation, thread_ts=thread_ts, proposed=proposed)
        await self._requests.audit(
            "proposed" if proposed else "requested",
            id=record.id,
            user=who.user,
            runbook=record.runbook,
            channel=who.channel,
            values=_values_line(record),
        )
        return record

    async def propose_for(self, asker: Asker, invocation: Invocation) -> RunRecord:
        who = Requester(user=asker.user, team=asker.team, channel=asker.channel)
        return await self.propose(who, invocation, asker.thread_ts)

    def _check_policy(self, who: Requester) -> None:
        policy = self.catalog.policy
        if policy.requesters and who.user not in policy.requesters:
            raise RequestRefused("You're not on the list of people who may use `/run` here.")
        if policy.channels and who.channel not in policy.channels:
            allowed = ", ".join(f"<#{c}>" for c in policy.channels)
            raise RequestRefused(f"`/run` works only in {allowed}.")

    async def _store_new(
        self, who: Requester, invocation: Invocation, *, thread_ts: str, proposed: bool
    ) -> RunRecord:
        runbook = self.catalog.runbooks[invocation.runbook]
        waits = runbook.approval or proposed
        now = time.time()
        record = RunRecord(
            id=new_id(),
            runbook=invocation.runbook,
            requester=who.user,
            team=who.team,
            channel=who.channel,
            card_ts="",
            thread_ts=thread_ts,
            values=invocation.values,
            body=agent_body(runbook, invocation.values, self._model),
            approvers=self.catalog.approvers_for(invocation.runbook),
            allow_self_approval=self.catalog.policy.allow_self_approval,
            needs_approval=runbook.approval,
            created_at=now,
            expires_at=now + self.catalog.policy.approval_ttl_seconds,
            state="pending" if waits else "approved",
            fields={"description": runbook.description, "by_approved": who.user},
        )
        await self._requests.create(record)
        card_ts = await self._post_card(record)
        await self._requests.set_card(record.id, card_ts)
        return replace(record, card_ts=card_ts)

    async def _post_card(self, record: RunRecord) -> str:
        card_blocks, text = cards.card(record)
        try:
            async with slack_errors("chat.postMessage"):
                response = await self._slack.chat_postMessage(
                    channel=record.channel,
                    thread_ts=record.thread_ts or None,
                    blocks=card_blocks,
                    text=text,
                )
        except SlackError as exc:
            await self._requests.move(record.id, record.state, "failed", "system")
            if exc.code in _UNPOSTABLE:
                raise RequestRefused(
                    f"I can't post in this channel ({exc.code}). Invite me with "
                    "`/invite @copilot`, or use `/run` in a channel I'm in. Nothing was started."
                ) from None
            raise
        return str(response["ts"])

    # -- deciding ---------------------------------------------------------------------

    async def decide(self, request_id: str, user: str, action: str, respond: Respond) -> None:
        record = await self._requests.get(request_id)
        if record is None:
            await respond("I don't know this request (it may be over a week old). Nothing ran.")
            return
        refusal = await self._refusal(record, user, action)
        if refusal:
            await self._requests.audit("click_refused", id=record.id, user=user, button=action)
            await respond(refusal)
            return
        target = {
            cards.APPROVE: "approved",
            cards.RUN_NOW: "approved",
            cards.DENY: "denied",
            cards.WITHDRAW: "withdrawn",
        }[action]
        result = await self._requests.move(record.id, "pending", target, user)
        if result == "ok":
            await self._decided(record.id, target, user)
        elif result == "expired":
            await self.expire(record.id)
            await respond("This request expired before your click; nothing ran.")
        else:
            await respond(f"This request is already {result}; your click changed nothing.")

    async def _refusal(self, record: RunRecord, user: str, action: str) -> str | None:
        if action == cards.WITHDRAW or action == cards.RUN_NOW:
            ok = user == record.requester
            return None if ok else "Only the person who asked for this run can do that."
        return await self._approvers.refusal(user, record)

    async def _decided(self, request_id: str, state: str, user: str) -> None:
        await self._requests.audit(state, id=request_id, user=user)
        record = await self._requests.get(request_id)
        if record is None:
            return
        await self._update_card(record)
        if state == "approved":
            self._spawn(self.execute(record, by=user))

    async def expire(self, request_id: str) -> None:
        if await self._requests.move(request_id, "pending", "expired", "system") != "ok":
            await self._requests.forget_pending(request_id)
            return
        await self._requests.audit("expired", id=request_id)
        record = await self._requests.get(request_id)
        if record is not None:
            await self._update_card(record)

    async def sweep_expired(self) -> int:
        """Update the cards of requests that expired with nobody clicking."""
        due = await self._requests.due_for_expiry(time.time())
        for request_id in due:
            await self.expire(request_id)
        return len(due)

    async def cancel(self, request_id: str, user: str, respond: Respond) -> None:
        record = await self._requests.get(request_id)
        if record is None or record.state != "running":
            await respond("That run isn't running any more.")
            return
        if user != record.requester and not await self._approvers.is_listed(user, record.approvers):
            await respond("Only the requester or an approver can cancel this run.")
            return
        if await self._requests.move(request_id, "running", "cancelled", user) == "ok":
            await self._requests.audit("cancel_requested", id=request_id, user=user)

    # -- App Home ---------------------------------------------------------------------

    async def overview(self, user: str) -> home.Overview:
        """What ``user`` sees in App Home: requests waiting on them, and the latest runs."""
        records = await self._requests.recent()
        now = time.time()
        waiting = [r for r in records if r.state == "pending" and r.expires_at > now]
        to_decide = [r for r in waiting if await self._approvers.refusal(user, r) is None]
        return home.Overview(
            to_decide=to_decide,
            asked=[r for r in waiting if r.requester == user and r not in to_decide],
            latest=[r for r in records if r.state != "pending"][: home.LATEST],
        )

    # -- running ----------------------------------------------------------------------

    async def execute(self, record: RunRecord, *, by: str) -> None:
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
            await self._execute(record, by=by)

    async def _execute(self, record: RunRecord, *, by: str) -> None:
        if await self._requests.move(record.id, "approved", "running", by) != "ok":
            return
        started = time.monotonic()
        await self._requests.audit("run_started", id=record.id, user=by, runbook=record.runbook)
        if self._work is not None:
            await self._work.start(f"run:{record.id}", {"kind": "run", "id": record.id})
        current = await self._requests.get(record.id) or record
        await self._update_card(current)
        progress = RunProgress(self._slack, record.channel, record.run_thread)
        outcome, note = await self._watch(record, progress)
        if outcome != "cancelled":
            await self._requests.move(record.id, "running", outcome, by)
        await self._requests.audit("run_ended", id=record.id, outcome=outcome)
        _log_run(outcome, by, time.monotonic() - started)
        final = await self._requests.get(record.id)
        if final is not None:
            await self._update_card(final, note=note)
        if self._work is not None:
            await self._work.finish(f"run:{record.id}")

    async def interrupted(self, request_id: str) -> None:
        """The process watching this run stopped: say so, and never start it again."""
        if await self._requests.move(request_id, "running", "failed", "restart") != "ok":
            return
        await self._requests.audit("run_interrupted", id=request_id)
        record = await self._requests.get(request_id)
        if record is None:
            return
        progress = RunProgress(self._slack, record.channel, record.run_thread)
        await progress.note(
            ":warning: The bot restarted while watching this run, so its outcome is unknown. "
            "It was not started again (runs have side effects): check the app before re-running."
        )
        await self._update_card(record, note="interrupted by a restart")

    async def _watch(self, record: RunRecord, progress: RunProgress) -> tuple[str, str | None]:
        stream = asyncio.create_task(self._stream(record, progress))
        watcher = asyncio.create_task(self._wait_cancelled(record.id))
        done, _ = await asyncio.wait({stream, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finished = stream in done
        for task in (watcher, stream) if finished else (stream, watcher):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if finished:
            return stream.result()
        await progress.note(
            ":black_square_for_stop: Cancelled: I stopped watching this run. A tool call "
            "already under way on Heroku may still finish."
        )
        return "cancelled", None

    async def _stream(self, record: RunRecord, progress: RunProgress) -> tuple[str, str | None]:
        try:
            failed = None
            async for event in self._agents.stream_agent(record.body):
                failed = await _show(event, progress) or failed
        except InferenceError as exc:
            log.warning("agent run %s failed: %r", record.id, exc)
            await progress.note(describe(exc))
            return "failed", "the run broke off"
        return ("failed", failed) if failed else ("succeeded", None)

    async def _wait_cancelled(self, request_id: str) -> None:
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            record = await self._requests.get(request_id)
            if record is None or record.state == "cancelled":
                return

    async def _update_card(self, record: RunRecord, note: str | None = None) -> None:
        card_blocks, text = cards.card(record, note=note)
        try:
            async with slack_errors("chat.update"):
                await self._slack.chat_update(
                    channel=record.channel, ts=record.card_ts, blocks=card_blocks, text=text
                )
        except SlackError as exc:
            log.warning("could not update the card of %s: %s", record.id, exc.code)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except BotError as exc:
                log.error("run failed: %s", exc)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _show(event: object, progress: RunProgress) -> str | None:
    """Show one agent event; returns a failure reason when the event says the run failed."""
    if isinstance(event, AgentMessage):
        if event.usage is not None:
            _count_usage(event.usage)
        for call in event.tool_calls:
            await progress.tool_started(call.id, call.name, call.arguments)
        if event.finish_reason != "tool_calls" and event.content:
            await progress.answer(event.content)
    elif isinstance(event, AgentToolResult):
        await progress.tool_finished(event.tool_call_id, event.name, event.content)
    elif isinstance(event, AgentError):
        await progress.note(f":x: The agent run reported an error: {event.message}")
        return "the agent reported an error"
    elif isinstance(event, AgentUnknown):
        log.warning("unknown agent event: %s", event.raw[:500])
        await progress.note(
            f":grey_question: Unexpected event from the Agents API: `{event.raw[:200]}`"
        )
    return None


def _count_usage(usage: Usage) -> None:
    logs.count("prompt_tokens", usage.prompt_tokens)
    logs.count("completion_tokens", usage.completion_tokens)
    logs.count("tokens", usage.total_tokens)


def _log_run(outcome: str, by: str, seconds: float) -> None:
    """The one summary line per agent run; tokens and 429s were counted as they came."""
    fields: dict[str, object] = {logs.SLACK_429: 0, **logs.totals()}
    log.info(
        "run finished",
        extra={"outcome": outcome, "started_by": by, "seconds": round(seconds, 3), **fields},
    )


def _values_line(record: RunRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in record.values.items())
