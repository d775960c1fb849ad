"""Act: ``/run`` requests, their approval, and the agent runs they start.

Order of events for one request: the exact Agents API body is rendered from the runbooks
file and validated values, stored in Redis under a fresh id, and shown on a card. Only an
atomic ``pending → approved`` move (by an allowed approver, before expiry) lets a run
start, and the run sends exactly the stored body. Every step is audited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bot.approvals import Approvers
from bot.background import Background
from bot.errors import RequestRefused, SlackError
from bot.execution import Executor
from bot.proposals import Asker
from bot.run_command import Invocation, parse
from bot.runbooks import Catalog, agent_body
from bot.slack import cards, home
from bot.slack.card_writer import CardWriter
from bot.state.requests import RequestStore, RunRecord, new_id

log = logging.getLogger(__name__)

Respond = Callable[[str], Awaitable[None]]
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
        executor: Executor,
        cards: CardWriter,
        model: str,
        background: Background,
    ) -> None:
        self.catalog = catalog
        self._requests = requests
        self._approvers = approvers
        self._executor = executor
        self._cards = cards
        self._model = model
        self._background = background

    # -- requesting -------------------------------------------------------------------

    async def request(self, who: Requester, text: str) -> RunRecord:
        """Check policy and input, post the card, and start at once if no approval is due."""
        invocation = parse(text, self.catalog)
        self._check_policy(who, invocation, proposed=False)
        record = await self._open(who, invocation, thread_ts="", proposed=False)
        if record.state == "approved":
            await self._executor.execute(record, by=who.user)
        return record

    async def propose(self, who: Requester, invocation: Invocation, thread_ts: str) -> RunRecord:
        """A card for a runbook the model suggested: it always waits for a person's click."""
        self._check_policy(who, invocation, proposed=True)
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

    def _check_policy(self, who: Requester, invocation: Invocation, *, proposed: bool) -> None:
        runbook = self.catalog.runbooks[invocation.runbook]
        if runbook.approval and who.channel.startswith("D"):
            raise RequestRefused(
                "Approvers can't see a card in a direct message: ask for this runbook in a "
                "channel they're in."
            )
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
        started_by = {"by_approved": who.user, "at_approved": repr(time.time())}
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
            fields={"description": runbook.description, **({} if waits else started_by)},
        )
        await self._requests.create(record)
        card_ts = await self._post_card(record)
        await self._requests.set_card(record.id, card_ts)
        return replace(record, card_ts=card_ts)

    async def _post_card(self, record: RunRecord) -> str:
        try:
            return await self._cards.post(record)
        except SlackError as exc:
            await self._requests.move(record.id, record.state, "failed", "system")
            if exc.code in _UNPOSTABLE:
                raise RequestRefused(
                    f"I can't post in this channel ({exc.code}). Invite me with "
                    "`/invite @copilot`, or use `/run` in a channel I'm in. Nothing was started."
                ) from None
            raise

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
        # The request decides which rule applies, never the button that was clicked.
        if action == cards.RUN_NOW and record.needs_approval:
            return "This request needs an approver's click."
        if action in (cards.APPROVE, cards.DENY) and not record.needs_approval:
            return "This request needs no approval: its requester starts it with Run."
        if action in (cards.WITHDRAW, cards.RUN_NOW):
            ok = user == record.requester
            return None if ok else "Only the person who asked for this run can do that."
        return await self._approvers.refusal(user, record)

    async def _decided(self, request_id: str, state: str, user: str) -> None:
        self._background.spawn(self._after_decision(request_id, state, user), "decision")

    async def _after_decision(self, request_id: str, state: str, user: str) -> None:
        record = await self._requests.get(request_id)
        if record is None:
            return
        if state == "approved":
            await self._requests.audit(state, id=request_id, user=user)
            await self._executor.execute(record, by=user)  # shows the card as running
            return
        await self._requests.audit(state, id=request_id, user=user)
        await self._cards.update(record)

    async def expire(self, request_id: str) -> None:
        if await self._requests.move(request_id, "pending", "expired", "system") != "ok":
            await self._requests.forget_pending(request_id)
            return
        await self._requests.audit("expired", id=request_id)
        record = await self._requests.get(request_id)
        if record is not None:
            await self._cards.update(record)

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
        to_decide = [
            r
            for r in waiting
            if r.needs_approval and await self._approvers.refusal(user, r) is None
        ]
        # Runs can come from private channels: show only those the viewer asked for or
        # could have approved, never the whole workspace's.
        latest = [
            r
            for r in records
            if r.state != "pending"
            and (r.requester == user or await self._approvers.is_listed(user, r.approvers))
        ]
        return home.Overview(
            to_decide=to_decide,
            asked=[r for r in waiting if r.requester == user and r not in to_decide],
            latest=latest[: home.LATEST],
        )

    async def interrupted(self, request_id: str) -> None:
        await self._executor.interrupted(request_id)


def _values_line(record: RunRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in record.values.items())
