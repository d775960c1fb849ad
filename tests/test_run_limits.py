"""Run limits hold across processes: two bots on one Redis, requests alternating between them.

``max_runs_per_user_per_hour`` counts the starts of a request's requester (a ``/run`` of a
runbook without approval, the Run button, an approver's Approve); ``max_runs_in_flight``
counts the agent runs executing in the whole app. Past either, nothing starts and nothing
moves, the person who typed or clicked reads which limit and when to try again, and the
refusal is audited in ``copilot:audit:refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from bot.runs import RunState
from bot.runs.limits import WAITING_REQUESTS_PER_HOUR
from bot.runs.requests import Requests
from bot.state import keys
from bot.state.limits import LimitStore, Reserved, RunQuota, TooManyInFlight
from bot.state.requests import RequestStore
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import AGENTS
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    SAMPLE,
    click,
    ephemeral_texts,
    mention,
    run,
)


def policy(**limits: int) -> str:
    """The sample runbooks with these ``[policy]`` limits."""
    lines = "".join(f"\n{name} = {value}" for name, value in limits.items())
    return SAMPLE.replace("approval_ttl_seconds = 600", "approval_ttl_seconds = 600" + lines)


@contextlib.asynccontextmanager
async def two_bots(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str, runbooks: str
) -> AsyncIterator[tuple[BotUnderTest, BotUnderTest]]:
    """Two bot processes' worth of runtime, serving on their own ports, sharing one Redis."""
    path = tmp_path / "runbooks.toml"
    path.write_text(runbooks)
    slack.usergroups["S0OPS"] = [CAROL]
    settings = settings_for(slack, inference, redis_url, runbooks_file=str(path))
    async with serve(settings) as first, serve(settings) as second:
        yield first, second


def cards(slack: FakeSlack) -> list[Any]:
    return [m for m in slack.messages(CHANNEL) if m.thread_ts is None]


def buttons(card: Any) -> dict[str, str]:
    """The card's buttons: action id → request id."""
    found = {}
    for block in card.blocks or []:
        if block["type"] == "actions":
            found.update({b["action_id"]: b["value"] for b in block["elements"]})
    return found


def card_says(slack: FakeSlack, index: int, text: str) -> bool:
    shown = cards(slack)
    return len(shown) > index and text in json.dumps(shown[index].blocks)


async def refusals(redis_url: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [fields for _, fields in await client.xrange(keys.refused_log())]
    finally:
        await client.aclose()


async def actions_in(redis_url: str, stream: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [fields["action"] for _, fields in await client.xrange(stream)]
    finally:
        await client.aclose()


async def state_of(redis_url: str, request_id: str) -> RunState | None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        record = await Requests(RequestStore(client)).get(request_id)
    finally:
        await client.aclose()
    return record.state if record else None


def retry_minute(text: str) -> float:
    """The epoch second of the "try again after HH:MM UTC" in ``text``, today or tomorrow."""
    found = re.search(r"try again after (\d\d):(\d\d) UTC\.", text)
    assert found, text
    now = time.gmtime()
    minutes = int(found[1]) * 60 + int(found[2]) - (now.tm_hour * 60 + now.tm_min)
    return time.time() + (minutes % (24 * 60)) * 60 - now.tm_sec


async def test_starts_per_requester_are_counted_across_processes(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = policy(max_runs_per_user_per_hour=3)
    async with two_bots(tmp_path, slack, inference, redis_url, runbooks) as (a, b):
        first = time.time()  # the oldest start is no older than this
        for n, bot in enumerate((a, b, a)):
            await run(bot, slack, "logs app=shop")
            await slack.wait_for(lambda s, n=n: card_says(s, n, "Succeeded"), timeout=10)

        started = time.time()
        await run(b, slack, "logs app=shop")
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
        said = ephemeral_texts(slack, ALICE)
        assert "You've started 3 runs in the last hour (the limit); try again after " in said
        # The oldest start leaves the hour an hour after it was made (rounded up to a
        # minute): however slowly the three runs went, that is between these two.
        assert first + 3540 <= retry_minute(said) <= started + 3660
        assert len(cards(slack)) == 3
        assert len(inference.agent_requests) == 3

        # Approving counts against the requester, whoever clicks; the request stays pending.
        await run(a, slack, "migrate app=shop-staging")
        await slack.wait_for(lambda s: len(cards(s)) == 4)
        request_id = buttons(cards(slack)[3])["copilot_approve"]
        await click(b, slack, "copilot_approve", request_id, BOB)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
        assert f"<@{ALICE}> has started 3 runs in the last hour (the limit)" in ephemeral_texts(
            slack, BOB
        )
        assert "The request still waits for a click." in ephemeral_texts(slack, BOB)
        assert await state_of(redis_url, request_id) is RunState.PENDING
        assert "copilot_approve" in buttons(cards(slack)[3])

        # The limit is the requester's own: someone else still starts runs.
        await run(a, slack, "logs app=shop", user=CAROL)
        await slack.wait_for(lambda s: card_says(s, 4, "Succeeded"), timeout=10)
    assert len(inference.agent_requests) == 4

    refused = await refusals(redis_url)
    assert [
        (r["action"], r["limit"], r["user"], r["requester"], r["runbook"]) for r in refused
    ] == [
        ("limit_refused", "max_runs_per_user_per_hour", ALICE, ALICE, "logs"),
        ("limit_refused", "max_runs_per_user_per_hour", BOB, ALICE, "migrate"),
    ]
    assert (await actions_in(redis_url, keys.audit_log())).count("limit_refused") == 0


async def test_runs_in_flight_are_counted_across_processes(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = policy(max_runs_in_flight=2)
    inference.reply_stall([], 60, path=AGENTS)
    inference.reply_stall([], 60, path=AGENTS)
    async with two_bots(tmp_path, slack, inference, redis_url, runbooks) as (a, b):
        await run(a, slack, "logs app=shop", user=ALICE)
        await slack.wait_for(lambda s: len(cards(s)) == 1)
        await run(b, slack, "logs app=shop", user=BOB)
        await slack.wait_for(lambda s: len(cards(s)) == 2)
        await inference.wait_for_requests(2, path=AGENTS)

        await run(a, slack, "logs app=shop", user=CAROL)
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{CAROL}")))
        assert (
            "2 runs are already in progress (the limit for this app); try again when one ends."
            in ephemeral_texts(slack, CAROL)
        )
        await run(b, slack, "migrate app=shop-staging", user=CAROL)
        await slack.wait_for(lambda s: len(cards(s)) == 3)
        request_id = buttons(cards(slack)[2])["copilot_approve"]
        await click(a, slack, "copilot_approve", request_id, BOB)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
        assert "2 runs are already in progress" in ephemeral_texts(slack, BOB)
        assert await state_of(redis_url, request_id) is RunState.PENDING
        assert len(inference.agent_requests) == 2

        # A run that ends, whatever its outcome, gives its slot back: the request that
        # stayed pending can be approved now.
        alices = buttons(cards(slack)[0])["copilot_cancel"]
        await click(b, slack, "copilot_cancel", alices, ALICE)
        await slack.wait_for(lambda s: card_says(s, 0, "Cancelled"), timeout=10)
        await click(b, slack, "copilot_approve", request_id, BOB)
        await slack.wait_for(lambda s: card_says(s, 2, "Succeeded"), timeout=10)
        assert len(inference.agent_requests) == 3

        bobs = buttons(cards(slack)[1])["copilot_cancel"]
        await click(a, slack, "copilot_cancel", bobs, BOB)
        await slack.wait_for(lambda s: card_says(s, 1, "Cancelled"), timeout=10)

    refused = await refusals(redis_url)
    limits = [(r["limit"], r["user"]) for r in refused if r["action"] == "limit_refused"]
    assert limits == [("max_runs_in_flight", CAROL), ("max_runs_in_flight", BOB)]


async def test_a_double_click_across_processes_counts_one_run_and_keeps_its_slot(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = policy(max_runs_in_flight=1)
    inference.reply_stall([], 60, path=AGENTS)
    async with two_bots(tmp_path, slack, inference, redis_url, runbooks) as (a, b):
        await run(a, slack, "migrate app=shop-staging")
        await slack.wait_for(lambda s: len(cards(s)) == 1)
        request_id = buttons(cards(slack)[0])["copilot_approve"]
        await asyncio.gather(
            *(click(bot, slack, "copilot_approve", request_id, who)
              for bot, who in ((a, BOB), (b, CAROL), (b, BOB), (a, CAROL)))
        )  # fmt: skip
        await inference.wait_for_requests(1, path=AGENTS)
        await slack.wait_for(lambda s: card_says(s, 0, "copilot_cancel"))

        # The clicks that lost did not give back the slot the running run holds.
        await run(b, slack, "logs app=shop", user=CAROL)
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{CAROL}")))
        assert "1 run is already in progress (the limit for this app)" in ephemeral_texts(
            slack, CAROL
        )

        await click(a, slack, "copilot_cancel", request_id, BOB)
        await slack.wait_for(lambda s: card_says(s, 0, "Cancelled"), timeout=10)
    assert len(inference.agent_requests) == 1


async def test_a_start_that_fails_gives_its_reservation_back(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = policy(max_runs_per_user_per_hour=1)
    async with two_bots(tmp_path, slack, inference, redis_url, runbooks) as (a, b):
        slack.set_channel_error(CHANNEL, "not_in_channel")
        await run(a, slack, "logs app=shop")
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
        assert "/invite @copilot" in ephemeral_texts(slack, ALICE)
        assert inference.agent_requests == []

        del slack.channel_errors[CHANNEL]
        await run(b, slack, "logs app=shop")
        await slack.wait_for(lambda s: card_says(s, 0, "Succeeded"), timeout=10)
    assert len(inference.agent_requests) == 1
    assert await refusals(redis_url) == []


async def test_a_slot_whose_process_died_is_free_when_its_lease_ends(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = LimitStore(client)
    short = RunQuota(starts_per_hour=10, in_flight=2, lease_seconds=0.3)
    long = RunQuota(starts_per_hour=10, in_flight=2, lease_seconds=60)
    try:
        # Two holders that never end their runs: one lease soon over, one long.
        assert await store.reserve_run("dead-soon", ALICE, short) == Reserved()
        assert await store.reserve_run("dead-later", ALICE, long) == Reserved()
        refused = await store.reserve_run("next", BOB, short)
        assert isinstance(refused, TooManyInFlight)
        assert refused.retry_at <= time.time() + 0.3
        deadline = time.monotonic() + 5
        while (verdict := await store.reserve_run("next", BOB, short)) != Reserved():
            assert time.monotonic() < deadline, verdict
            await asyncio.sleep(0.05)
        held = await client.zrange(keys.runs_in_flight(), 0, -1)
        assert sorted(held) == ["dead-later", "next"]
        # The set lives as long as its longest lease; a requester's starts, an hour.
        assert 50_000 < await client.pttl(keys.runs_in_flight()) <= 60_000
        assert 0 < await client.pttl(keys.run_starts(BOB)) <= keys.RUN_STARTS_WINDOW * 1000
    finally:
        await client.aclose()


async def test_the_run_button_of_a_proposal_counts_as_a_start(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = policy(max_runs_per_user_per_hour=1)
    inference.reply_tool_calls([("logs", '{"app": "shop"}')])
    async with two_bots(tmp_path, slack, inference, redis_url, runbooks) as (a, b):
        await a.event(mention("any errors in shop logs?", "55.1"))
        await slack.wait_for(lambda s: any(buttons(m) for m in s.messages(CHANNEL, "55.1")))
        [card] = [m for m in slack.messages(CHANNEL, "55.1") if buttons(m)]
        await run(b, slack, "logs app=shop")  # ALICE's one start this hour
        await slack.wait_for(lambda s: card_says(s, 0, "Succeeded"), timeout=10)

        await click(a, slack, "copilot_run", buttons(card)["copilot_run"], ALICE)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{ALICE}")))
        assert "You've started 1 run in the last hour (the limit)" in ephemeral_texts(slack, ALICE)
        assert await state_of(redis_url, buttons(card)["copilot_run"]) is RunState.PENDING
    assert len(inference.agent_requests) == 1


async def test_requests_that_wait_are_limited_per_requester_across_processes(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    # Cards are cheap to ask for: one person cannot fill a channel (and Redis) with them,
    # not even by withdrawing each one to ask again.
    limit = WAITING_REQUESTS_PER_HOUR
    async with two_bots(tmp_path, slack, inference, redis_url, SAMPLE) as (a, b):
        first = time.time()  # the oldest request is no older than this
        for n in range(limit):
            await run((a, b)[n % 2], slack, "migrate app=shop-staging")
        await slack.wait_for(lambda s: len(cards(s)) == limit)
        request_id = buttons(cards(slack)[0])["copilot_withdraw"]
        await click(a, slack, "copilot_withdraw", request_id, ALICE)
        await slack.wait_for(lambda s: card_says(s, 0, "Withdrawn"))

        started = time.time()
        await run(b, slack, "migrate app=shop-staging")
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
        said = ephemeral_texts(slack, ALICE)
        assert f"You've asked for {limit} runs that wait for a click in the last hour" in said
        assert "Nothing was posted." in said
        assert first + 3540 <= retry_minute(said) <= started + 3660
        assert len(cards(slack)) == limit
        # Someone else still asks, and runs that need no click still start.
        await run(a, slack, "migrate app=shop-staging", user=CAROL)
        await slack.wait_for(lambda s: len(cards(s)) == limit + 1)
        await run(b, slack, "logs app=shop")
        await slack.wait_for(lambda s: card_says(s, limit + 1, "Succeeded"), timeout=10)

    refused = await refusals(redis_url)
    assert [(r["action"], r["limit"], r["user"]) for r in refused] == [
        ("limit_refused", "waiting_requests_per_hour", ALICE)
    ]
