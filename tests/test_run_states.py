"""The run domain's table of moves, enforced by the Redis store in one atomic step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.runs import RunRecord, RunState
from bot.runs.requests import Requests
from bot.runs.states import TRANSITIONS, Decision, Expired, Missing, Moved, WrongState, sources
from bot.state import keys
from bot.state.requests import RequestStore


@pytest.fixture
async def requests(redis_url: str) -> AsyncIterator[Requests]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield Requests(RequestStore(client))
    await client.aclose()


def pending(request_id: str = "r1", *, expires_in: float = 600) -> RunRecord:
    now = time.time()
    return RunRecord(
        id=request_id,
        runbook="migrate",
        description="Run database migrations",
        requester="U0CAROL",
        team="T0TEAM",
        channel="C0OPS",
        card_ts="1.1",
        thread_ts="",
        values={"app": "shop-staging"},
        body={"model": "m", "messages": [], "tools": []},
        approvers=["U0BOB", "U0ALICE"],
        allow_self_approval=False,
        needs_approval=True,
        proposed=False,
        created_at=now,
        expires_at=now + expires_in,
        state=RunState.PENDING,
    )


async def at_state(requests: Requests, *path: RunState) -> str:
    await requests.create(pending())
    for target in path:
        assert isinstance(await requests.move("r1", target, "U0BOB"), Moved)
    return "r1"


def test_every_state_is_reachable_and_ends_are_final() -> None:
    reachable = {RunState.PENDING} | {t for targets in TRANSITIONS.values() for t in targets}
    assert reachable == set(RunState)
    for final in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.DENIED):
        assert final not in TRANSITIONS
    assert sources(RunState.APPROVED) == {RunState.PENDING}
    assert sources(RunState.RUNNING) == {RunState.APPROVED}
    assert Decision.RUN.target is RunState.APPROVED and not Decision.RUN.by_approver


async def test_a_second_approval_is_refused_and_the_first_approver_kept(
    requests: Requests,
) -> None:
    await at_state(requests)
    first, second = await asyncio.gather(
        requests.move("r1", RunState.APPROVED, "U0BOB"),
        requests.move("r1", RunState.APPROVED, "U0ALICE"),
    )
    assert {type(first), type(second)} == {Moved, WrongState}
    winner = "U0BOB" if isinstance(first, Moved) else "U0ALICE"
    record = await requests.get("r1")
    assert record is not None and record.decided_by == winner
    assert await requests.move("r1", RunState.APPROVED, "U0MALLORY") == WrongState(
        RunState.APPROVED
    )
    record = await requests.get("r1")
    assert record is not None and record.decided_by == winner


async def test_a_finished_run_never_changes_its_outcome(requests: Requests) -> None:
    await at_state(requests, RunState.APPROVED, RunState.RUNNING, RunState.FAILED)
    assert await requests.move("r1", RunState.SUCCEEDED, "U0BOB") == WrongState(RunState.FAILED)
    assert await requests.move("r1", RunState.RUNNING, "U0BOB") == WrongState(RunState.FAILED)
    record = await requests.get("r1")
    assert record is not None and record.state is RunState.FAILED


async def test_an_interrupted_run_takes_its_real_outcome_once(requests: Requests) -> None:
    await at_state(requests, RunState.APPROVED, RunState.RUNNING, RunState.INTERRUPTED)
    assert await requests.move("r1", RunState.SUCCEEDED, "U0BOB") == Moved(RunState.INTERRUPTED)
    assert await requests.move("r1", RunState.FAILED, "U0BOB") == WrongState(RunState.SUCCEEDED)
    record = await requests.get("r1")
    assert record is not None and record.started_at is not None
    assert record.duration is not None and record.duration >= 0


async def test_no_decision_after_expiry_but_the_expiry_itself(requests: Requests) -> None:
    await requests.create(pending(expires_in=-1))
    assert await requests.move("r1", RunState.APPROVED, "U0BOB") == Expired()
    assert await requests.move("r1", RunState.EXPIRED, "system") == Moved(RunState.PENDING)
    assert await requests.move("r1", RunState.DENIED, "U0BOB") == WrongState(RunState.EXPIRED)


async def test_a_decided_request_leaves_the_expiry_index(
    requests: Requests, redis_url: str
) -> None:
    await at_state(requests, RunState.APPROVED)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.zscore(keys.pending_requests(), "r1") is None
        assert await client.hget(keys.request("r1"), "state") == "approved"
    finally:
        await client.aclose()


async def test_an_unknown_request_cannot_move(requests: Requests) -> None:
    assert await requests.move("nope", RunState.APPROVED, "U0BOB") == Missing()
    assert await requests.get("nope") is None


async def test_a_record_reads_back_as_it_was_stored(requests: Requests) -> None:
    record = pending()
    await requests.create(record)
    assert await requests.get("r1") == record


async def test_an_outdated_request_keeps_its_reason_and_never_runs(requests: Requests) -> None:
    await at_state(requests)
    moved = await requests.move("r1", RunState.OUTDATED, "U0BOB", reason="the file changed")
    assert moved == Moved(RunState.PENDING)
    record = await requests.get("r1")
    assert record is not None and record.outdated_reason == "the file changed"
    assert record.ended_by == "U0BOB" and record.decided_by is None
    assert await requests.move("r1", RunState.APPROVED, "U0ALICE") == WrongState(RunState.OUTDATED)
    assert sources(RunState.OUTDATED) == {RunState.PENDING}


async def test_an_expired_request_is_not_outdated(requests: Requests) -> None:
    await requests.create(pending(expires_in=-1))
    assert await requests.move("r1", RunState.OUTDATED, "U0BOB", reason="x") == Expired()
