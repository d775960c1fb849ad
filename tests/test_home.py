"""App Home: each person sees what waits for their approval, their own pending requests,
and how the latest runs ended; drawn on ``app_home_opened`` through the real endpoint."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis

from bot.runs import RunRecord, RunState
from bot.runs.requests import Requests
from bot.state import keys
from bot.state.requests import RequestStore
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    card_text,
    click,
    migrate_events,
    open_home,
    request_id,
    run,
)

TO_DECIDE = "Waiting for your approval"
ASKED = "Your requests waiting for approval"
LATEST = "Latest runs"


async def home_of(bot: BotUnderTest, slack: FakeSlack, user: str) -> dict[str, str]:
    """The tab as Slack received it: each list's title mapped to its lines."""
    await open_home(bot, slack, user)
    await slack.wait_for(lambda s: user in s.home_views)
    # A redraw after a change may still be on its way: the last one shows the latest state.
    await slack.wait_for(lambda _: bot.runtime.inflight.count == 0)
    view = slack.home_views[user]
    assert view["type"] == "home"
    lists = {}
    for block in view["blocks"]:
        if block["type"] == "section":
            title, _, lines = block["text"]["text"].partition("\n")
            lists[title.strip("*")] = lines
    return lists


async def test_approvers_see_what_waits_for_them_and_requesters_their_own(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    await run(act, slack, "migrate app=shop-staging", user=ALICE)
    await slack.wait_for(lambda s: bool(s.messages()))

    for approver in (BOB, CAROL):  # CAROL by user group
        home = await home_of(act, slack, approver)
        assert "*migrate* `app=shop-staging`" in home[TO_DECIDE]
        assert f"<@{ALICE}>" in home[TO_DECIDE]
        assert home[ASKED] == "_Nothing here._"

    alice = await home_of(act, slack, ALICE)
    assert alice[TO_DECIDE] == "_Nothing here._"  # no self-approval
    assert "*migrate*" in alice[ASKED]

    mallory = await home_of(act, slack, MALLORY)
    assert "migrate" not in mallory[TO_DECIDE] + mallory[ASKED] + mallory[LATEST]


async def test_latest_runs_show_their_outcomes(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    await run(act, slack, "migrate app=shop-staging", user=ALICE)
    await slack.wait_for(lambda s: bool(s.messages()))
    await click(act, slack, "copilot_approve", request_id(slack), BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    await run(act, slack, "migrate app=shop-production", user=ALICE)
    await slack.wait_for(lambda s: len([m for m in s.messages() if m.thread_ts is None]) == 2)

    home = await home_of(act, slack, ALICE)
    assert ":large_green_circle: *migrate* `app=shop-staging` · succeeded in" in home[LATEST]
    assert "shop-production" not in home[LATEST]  # still pending: not a run yet
    outsider = await home_of(act, slack, MALLORY)
    assert "shop-staging" not in outsider[LATEST]  # neither asked for it nor may approve it
    bob = await home_of(act, slack, BOB)
    assert "shop-production" in bob[TO_DECIDE] and "shop-staging" not in bob[TO_DECIDE]


async def test_the_messages_tab_publishes_nothing(act: BotUnderTest, slack: FakeSlack) -> None:
    await open_home(act, slack, BOB, tab="messages")
    await open_home(act, slack, CAROL)
    await slack.wait_for(lambda s: CAROL in s.home_views)
    assert BOB not in slack.home_views


def record(n: int, state: RunState = RunState.SUCCEEDED) -> RunRecord:
    now = time.time()
    return RunRecord(
        id=f"r{n:04d}",
        runbook="logs",
        description="",
        requester=ALICE,
        team="T0TEAM",
        channel="C0OPS",
        card_ts="",
        thread_ts="",
        values={"app": "shop"},
        body={},
        approvers=[BOB],
        allow_self_approval=False,
        needs_approval=False,
        proposed=False,
        created_at=now + n,  # distinct, increasing creation times
        expires_at=now + 600,
        state=state,
    )


async def test_the_index_keeps_the_newest_requests_and_expires(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = Requests(RequestStore(client))
    for n in range(keys.RECENT_REQUESTS_MAX + 5):
        await store.create(record(n))
    await client.delete(keys.request("r0204"))  # a request whose hash expired
    try:
        assert await client.zcard(keys.recent_requests()) == keys.RECENT_REQUESTS_MAX
        assert 0 < await client.ttl(keys.recent_requests()) <= keys.REQUEST_TTL
        newest = [r.id for r in await store.recent(limit=3)]
        assert newest == ["r0203", "r0202"]
        assert "r0004" not in [r.id for r in await store.recent()]
    finally:
        await client.aclose()


def test_view_stays_within_slack_limits() -> None:
    from bot.render import home

    many = [replace(record(n, RunState.FAILED), values={"app": "x" * 400}) for n in range(50)]
    view: dict[str, Any] = home.view(home.Overview(latest=many, to_decide=many, asked=many))
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert len(view["blocks"]) <= 100
    assert all(len(text) <= 3000 for text in sections)
    assert sections[0].endswith(f"…and {50 - home.SHOWN} more")
