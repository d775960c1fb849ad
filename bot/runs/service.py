"""Act: ``/run`` requests, their approval, and the agent runs they start.

Order of events for one request: the exact Agents API body is rendered from the runbooks
file and validated values, stored in Redis under a fresh id, and shown on a card. Only an
atomic ``pending → approved`` move (by an allowed approver, before expiry) lets a run
start, and the run sends exactly the stored body. The policy's run limits are reserved
right before that move (``bot.runs.limits``): past one, nothing moves. Every step is
audited. Every refusal is a ``RequestRefused`` whose words the person sees.

Where a run executes: a web process with workers only decides, then hands the approved run
to the work queue (``hand_over``); a worker takes it and makes the ``approved → running``
move (``begin``), the one gate whoever gets there first passes, and follows the run. A
process without workers (and every worker) begins and follows the runs it approves itself.
An approved run that nobody began is found by the sweep of any such process
(``start_stranded``): its hand-over was lost, or its process died right after deciding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from bot.access import Access
from bot.background import Background
from bot.errors import RequestRefused, SlackError
from bot.notices import STOPPED_WATCHING
from bot.runbooks import Catalog, agent_body
from bot.runs import rules
from bot.runs.approvers import Approvers
from bot.runs.board import Board
from bot.runs.execution import Executor
from bot.runs.invocation import Invocation, parse
from bot.runs.limits import RunLimits
from bot.runs.record import Overview, Requester, RunRecord, new_id
from bot.runs.requests import Requests
from bot.runs.states import Decision, Expired, Missing, Moved, MoveResult, RunState, WrongState
from bot.slack.sessions import Status
from bot.state.work_queue import WorkQueue

log = logging.getLogger(__name__)

_UNPOSTABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
_UNKNOWN = "I don't know this request (it may be over a week old). Nothing ran."
_EXPIRED = "This request expired before your click; nothing ran."
# App Home lists this many of the latest runs.
LATEST = 10
# A handed-over run is begun within a second while a worker runs; one still approved after
# this long lost its hand-over, or no worker was there to take it.
STRANDED_AFTER = 10.0


class RunService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        requests: Requests,
        approvers: Approvers,
        executor: Executor,
        board: Board,
        model: str,
        background: Background,
        limits: RunLimits,
        access: Access,
        hand_over: WorkQueue | None = None,
        stranded_after: float = STRANDED_AFTER,
    ) -> None:
        """``hand_over``: the work queue of a web process with workers, which runs nothing
        itself; None: runs execute in this process."""
        self.catalog = catalog
        self._requests = requests
        self._approvers = approvers
        self._executor = executor
        self._board = board
        self._model = model
        self._background = background
        self._limits = limits
        self._access = access
        self._hand_over = hand_over
        self._stranded_after = stranded_after

    # -- requesting -------------------------------------------------------------------

    async def request(self, who: Requester, text: str) -> RunRecord:
        """Check policy and input, post the card, and start at once if no approval is due."""
        invocation = parse(text, self.catalog)
        rules.check_request(self.catalog.policy, self.catalog.runbooks[invocation.runbook], who)
        record = self._new_record(who, invocation, thread_ts="", proposed=False)
        if record.state is not RunState.APPROVED:
            return await self._open(record)
        await self._limits.reserve(record, by=who.user)  # nothing is posted past a limit
        async with self._limits.starting(record):
            record = await self._open(record)
        await self._start(record)
        return record

    async def propose(
        self, who: Requester, invocation: Invocation, thread_ts: str, reply_to: str
    ) -> RunRecord:
        """A card for a runbook the model suggested in reply to ``who``'s message
        ``reply_to``: it always waits for a person's click."""
        rules.check_request(self.catalog.policy, self.catalog.runbooks[invocation.runbook], who)
        record = self._new_record(who, invocation, thread_ts=thread_ts, proposed=True)
        return await self._open(replace(record, reply_to=reply_to))

    async def _open(self, record: RunRecord) -> RunRecord:
        if record.state.waiting:
            await self._limits.asked(record)  # past the limit, nothing is stored or posted
        await self._requests.create(record)
        record = replace(record, card_ts=await self._post_card(record))
        await self._requests.set_card(record.id, record.card_ts)
        if record.state.waiting and not record.proposed:  # a proposal's answer says so
            self._executor.set_session(record, Status.SUSPENDED)
        await self._requests.audit(
            "proposed" if record.proposed else "requested",
            id=record.id,
            user=record.requester,
            runbook=record.runbook,
            channel=record.channel,
            values=record.values_line(),
        )
        return record

    def _new_record(
        self, who: Requester, invocation: Invocation, *, thread_ts: str, proposed: bool
    ) -> RunRecord:
        runbook = self.catalog.runbooks[invocation.runbook]
        # A proposal always waits for a click, even of a runbook that needs no approval.
        waits = runbook.approval or proposed
        now = time.time()
        return RunRecord(
            id=new_id(),
            runbook=invocation.runbook,
            description=runbook.description,
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
            proposed=proposed,
            created_at=now,
            expires_at=now + self.catalog.policy.approval_ttl_seconds,
            state=RunState.PENDING if waits else RunState.APPROVED,
            decided_by=None if waits else who.user,
            decided_at=None if waits else now,
        )

    async def _post_card(self, record: RunRecord) -> str:
        try:
            return await self._board.post(record)
        except SlackError as exc:
            await self._requests.move(record.id, RunState.FAILED, "system")
            if exc.code in _UNPOSTABLE:
                raise RequestRefused(
                    f"I can't post in this channel ({exc.code}). Invite me with "
                    "`/invite @copilot`, or use `/run` in a channel I'm in. Nothing was started."
                ) from None
            raise

    # -- deciding ---------------------------------------------------------------------

    async def decide(self, request_id: str, user: str, decision: Decision) -> None:
        """Apply ``user``'s decision, or raise ``RequestRefused`` saying why it changed
        nothing. The run (or the card update) goes on in the background."""
        stored = await self._requests.get(request_id)
        if stored is None:
            raise RequestRefused(_UNKNOWN)
        record = rules.in_force(stored, self.catalog)
        approver = decision.by_approver and await self._approvers.includes(user, record.approvers)
        try:
            rules.check_decision(record, user, decision, approver=approver)
        except RequestRefused:
            await self._requests.refused(
                "click_refused", id=record.id, user=user, decision=decision.value
            )
            raise
        starting = decision.target is RunState.APPROVED and _open_for_clicks(record)
        if decision.target is RunState.APPROVED:
            await self._refuse_if_outdated(stored, user)
        if starting:
            await self._limits.reserve(record, by=user)  # past a limit, nothing moves
        result = await self._requests.move(record.id, decision.target, user)
        if starting:
            await self._limits.settle(record, result)
        await self._moved(record, result)
        self._background.spawn(self._after_decision(record.id, user), "decision")

    async def _refuse_if_outdated(self, record: RunRecord, user: str) -> None:
        """Nothing starts unless the file in force would run ``record`` exactly as stored;
        otherwise the request moves to ``outdated`` and the clicker is told why."""
        reason = rules.outdated(record, self.catalog, self._model)
        if reason is None:
            return
        moved = await self._requests.move(record.id, RunState.OUTDATED, user, reason=reason)
        await self._moved(record, moved)
        await self._requests.audit(
            RunState.OUTDATED.value, id=record.id, user=user, runbook=record.runbook, reason=reason
        )
        await self._board.update(await self._requests.get(record.id) or record)
        raise RequestRefused(f":warning: Outdated: {reason}. Nothing ran; ask again with `/run`.")

    async def _moved(self, record: RunRecord, result: MoveResult) -> None:
        """Returns if a decision's move happened, else raises ``RequestRefused`` saying why."""
        match result:
            case Moved():
                return
            case Expired():
                await self.expire(record.id)
                raise RequestRefused(_EXPIRED)
            case WrongState(RunState.EXPIRED):
                raise RequestRefused(_EXPIRED)
            case WrongState(state) if state.underway or state.ran:
                # Whoever clicked first decided it; the run may have moved on since.
                done = "approved" if record.needs_approval else "started"
                raise RequestRefused(f"This request is already {done}; your click changed nothing.")
            case WrongState(state):
                raise RequestRefused(
                    f"This request is already {state}; your click changed nothing."
                )
            case Missing():
                raise RequestRefused(_UNKNOWN)

    async def _after_decision(self, request_id: str, user: str) -> None:
        record = await self._requests.get(request_id)
        if record is None:
            return
        await self._requests.audit(record.state.value, id=request_id, user=user)
        if record.state is RunState.APPROVED:
            await self._start(record)  # the run shows the card as running
        else:
            await self._board.update(record)
            self._executor.set_session(record, Status.ACTIVE)

    # -- running ----------------------------------------------------------------------

    async def _start(self, record: RunRecord) -> None:
        """Hand an approved run to the workers, or run it here when there are none."""
        if self._hand_over is not None:
            await self._hand_over.hand_over_run(record.id)
            log.info("run handed over to a worker", extra={"run_id": record.id})
            return
        if await self._executor.begin(record, by=_starter(record)):
            await self.follow(record)

    async def begin(self, request_id: str) -> RunRecord | None:
        """Make the ``approved → running`` move for a run handed over to this process or
        found by its sweep: the record if this process made it and must now ``follow`` the
        run, else None (another process began it, or it is no longer approved)."""
        record = await self._requests.get(request_id)
        if record is None or record.state is not RunState.APPROVED:
            return None
        return record if await self._executor.begin(record, by=_starter(record)) else None

    async def follow(self, record: RunRecord) -> None:
        """Run a request this process began, to its end; its slot is freed then."""
        async with self._limits.running(record):
            await self._executor.follow(record, by=_starter(record))

    async def start_stranded(self) -> None:
        """Begin approved runs that nobody began (their hand-over was lost, or their
        process died right after deciding); a web process with workers leaves them to the
        workers' sweeps."""
        if self._hand_over is not None:
            return
        for request_id in await self._requests.approved_before(time.time() - self._stranded_after):
            self._background.spawn(self._start_stranded(request_id), "starting an approved run")

    async def _start_stranded(self, request_id: str) -> None:
        record = await self.begin(request_id)
        if record is None:
            # Begun meanwhile, or gone: it has nothing more to do in the index.
            await self._requests.forget_approved(request_id)
            return
        log.warning("an approved run was never started; starting it", extra={"run_id": record.id})
        await self.follow(record)

    async def expire(self, request_id: str) -> None:
        if not isinstance(await self._requests.move(request_id, RunState.EXPIRED, "system"), Moved):
            await self._requests.forget_pending(request_id)
            return
        await self._requests.audit(RunState.EXPIRED.value, id=request_id)
        record = await self._requests.get(request_id)
        if record is not None:
            await self._board.update(record)
            self._executor.set_session(record, Status.ACTIVE)

    async def sweep_expired(self) -> int:
        """Update the cards of requests that expired with nobody clicking."""
        due = await self._requests.due_for_expiry()
        for request_id in due:
            await self.expire(request_id)
        return len(due)

    async def cancel(self, request_id: str, user: str, *, via: str = "cancel_button") -> str:
        """Stop watching a running run and say what that means, or raise ``RequestRefused``.
        The watching process sees the move within a second and says so on the card."""
        record = await self._requests.get(request_id)
        approver = record is not None and await self._approvers.includes(user, record.approvers)
        record = rules.check_cancel(record, user, approver=approver)
        if not isinstance(await self._requests.move(record.id, RunState.CANCELLED, user), Moved):
            raise RequestRefused("That run isn't running any more.")
        await self._requests.audit("cancel_requested", id=record.id, user=user, via=via)
        return STOPPED_WATCHING

    async def stop_watching(self, team: str, channel: str, thread_ts: str, user: str) -> bool:
        """The stop button of a thread: cancel the runs being watched in it, as a Cancel
        click by ``user`` would. False when no run is being watched there."""
        running = [
            r
            for r in await self._requests.recent()
            if r.state is RunState.RUNNING
            and (r.team, r.channel, r.run_thread) == (team, channel, thread_ts)
        ]
        for record in running:
            try:
                await self.cancel(record.id, user, via="stop_button")
            except RequestRefused as exc:
                log.info("stop button refused for run %s: %s", record.id, exc)
        return bool(running)

    # -- App Home ---------------------------------------------------------------------

    async def overview(self, user: str) -> Overview:
        """What ``user`` sees in App Home: requests waiting on them, and the latest runs."""
        records = await self._visible_to(user, await self._requests.recent())
        now = time.time()
        waiting = [r for r in records if r.state.waiting and r.expires_at > now]
        to_decide = [
            r
            for r in waiting
            if r.needs_approval
            and rules.may_decide(
                r, user, approver=await self._approvers.includes(user, r.approvers)
            )
        ]
        # Runs can come from private channels: show only those the viewer asked for or
        # could have approved, never the whole workspace's.
        latest = [
            r
            for r in records
            if not r.state.waiting
            and (r.requester == user or await self._approvers.includes(user, r.approvers))
        ]
        return Overview(
            to_decide=to_decide,
            asked=[r for r in waiting if r.requester == user and r not in to_decide],
            latest=latest[:LATEST],
        )

    async def approves_any(self, user: str) -> bool:
        """Is ``user`` an approver of any runbook (by id or user group)? They see how the
        bot is doing in App Home, e.g. its answers' feedback."""
        listed = {a for name in self.catalog.runbooks for a in self.catalog.approvers_for(name)}
        return await self._approvers.includes(user, sorted(listed))

    async def _visible_to(self, user: str, records: list[RunRecord]) -> list[RunRecord]:
        """Only runs asked in channels ``user`` can read: a run and its parameters are as
        private as the channel they were asked in."""
        channels = {r.channel for r in records}
        readable = {c for c in channels if await self._access.can_see(user, c)}
        return [r for r in records if r.channel in readable]

    async def interrupted(self, request_id: str) -> None:
        await self._executor.interrupted(request_id)


def _starter(record: RunRecord) -> str:
    """Who started the run: its approver, or its requester for a runbook without approval."""
    return record.decided_by or record.requester


def _open_for_clicks(record: RunRecord) -> bool:
    """Still pending and not past its expiry: a click on it may start a run."""
    return record.state.waiting and record.expires_at > time.time()
