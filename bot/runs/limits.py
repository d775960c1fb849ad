"""The run limits of the runbooks file's ``[policy]``: starts per requester per hour, and
agent runs in flight in the whole app.

A start is reserved right before the move that lets a run start (``pending → approved``,
or a ``/run`` of a runbook that needs no approval), in one atomic Redis step that every
process shares (``bot.state.limits``). It counts against the request's requester,
whoever clicks. Past either limit nothing starts and nothing moves (a request stays
pending, so it can be approved later); the person who typed or clicked reads which limit
and when to try again, and the refusal is audited. A reservation whose start fails is
given back. A run frees its slot when it ends, whatever the outcome; a run whose process
died frees it when its lease ends (the run deadline plus a margin).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator

from bot.errors import BotError, RequestRefused
from bot.runbooks import Policy
from bot.runs.record import RunRecord
from bot.runs.requests import Requests
from bot.runs.states import Moved, MoveResult, WrongState
from bot.state.limits import LimitStore, Reserved, RunQuota, TooManyInFlight, TooManyStarts

log = logging.getLogger(__name__)

# Requests that wait for a click one person may make in an hour: cards are cheap to ask
# for (a /run, or a question the copilot answers with a proposal) and each stays in a
# channel and in Redis for days, so one person cannot fill either with them.
WAITING_REQUESTS_PER_HOUR = 10
# A slot outlives the run's deadline by this much: the moves and card updates around the
# Agents API stream take a little time too.
LEASE_MARGIN = 120.0


class RunLimits:
    def __init__(
        self, store: LimitStore, requests: Requests, policy: Policy, *, run_deadline: float
    ) -> None:
        self._store = store
        self._requests = requests
        self._quota = RunQuota(
            starts_per_hour=policy.max_runs_per_user_per_hour,
            in_flight=policy.max_runs_in_flight,
            lease_seconds=run_deadline + LEASE_MARGIN,
        )

    async def reserve(self, record: RunRecord, by: str) -> None:
        """Count ``record``'s start (``by`` is who typed or clicked), or raise
        ``RequestRefused`` naming the limit and when to try again; refusals are audited."""
        verdict = await self._store.reserve_run(record.id, record.requester, self._quota)
        if isinstance(verdict, Reserved):
            return
        if isinstance(verdict, TooManyStarts):
            limit, words = "max_runs_per_user_per_hour", self._too_many_starts(record, by, verdict)
        else:
            limit, words = "max_runs_in_flight", self._too_many_in_flight(verdict)
        await self._requests.refused(
            "limit_refused",
            id=record.id,
            user=by,
            requester=record.requester,
            runbook=record.runbook,
            limit=limit,
            retry_at=repr(verdict.retry_at),
        )
        waiting = " The request still waits for a click." if record.state.waiting else ""
        raise RequestRefused(f"{words} Nothing started.{waiting}")

    def _too_many_starts(self, record: RunRecord, by: str, verdict: TooManyStarts) -> str:
        who = "You've" if by == record.requester else f"<@{record.requester}> has"
        return (
            f"{who} started {_runs(self._quota.starts_per_hour)} in the last hour (the limit); "
            f"try again after {_clock(verdict.retry_at)}."
        )

    def _too_many_in_flight(self, verdict: TooManyInFlight) -> str:
        limit = self._quota.in_flight
        return (
            f"{_runs(limit)} {'is' if limit == 1 else 'are'} already in progress (the limit "
            "for this app); try again when one ends."
        )

    async def asked(self, record: RunRecord) -> None:
        """Count a new request that waits for a click, or raise ``RequestRefused`` when its
        requester made too many in the last hour (audited)."""
        verdict = await self._store.count_request(
            record.id, record.requester, per_hour=WAITING_REQUESTS_PER_HOUR
        )
        if isinstance(verdict, Reserved):
            return
        await self._requests.refused(
            "limit_refused",
            id=record.id,
            user=record.requester,
            runbook=record.runbook,
            limit="waiting_requests_per_hour",
            retry_at=repr(verdict.retry_at),
        )
        raise RequestRefused(
            f"You've asked for {WAITING_REQUESTS_PER_HOUR} runs that wait for a click in the "
            f"last hour (the limit); try again after {_clock(verdict.retry_at)}. "
            "Nothing was posted."
        )

    async def settle(self, record: RunRecord, result: MoveResult) -> None:
        """After the move meant to let ``record`` start: if it did not move, give the
        reservation back, unless another click moved it first and its run holds it."""
        if isinstance(result, Moved):
            return
        if isinstance(result, WrongState) and (result.state.underway or result.state.ran):
            return
        await self._store.release_run(record.id, record.requester)

    @contextlib.asynccontextmanager
    async def starting(self, record: RunRecord) -> AsyncIterator[None]:
        """Give the reservation back when the block fails before the run starts."""
        try:
            yield
        except Exception:
            with contextlib.suppress(BotError):
                await self._store.release_run(record.id, record.requester)
            raise

    @contextlib.asynccontextmanager
    async def running(self, record: RunRecord) -> AsyncIterator[None]:
        """Free the run's slot when the block ends, whatever the outcome. A process told to
        stop mid-run leaves the slot to its lease: Heroku may still be running it."""
        try:
            yield
        except Exception:
            await self._free(record)
            raise
        await self._free(record)

    async def _free(self, record: RunRecord) -> None:
        try:
            await self._store.end_run(record.id)
        except BotError as exc:  # the lease frees the slot later
            log.warning("could not free the run slot of %s: %s", record.id, exc)


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"


def _clock(epoch: float) -> str:
    """The minute from which a retry is allowed: rounded up, so never too early."""
    return time.strftime("%H:%M UTC", time.gmtime(math.ceil(epoch / 60) * 60))
