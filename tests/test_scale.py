"""Two processes on one Redis, and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.processes import redis_command, wait_for_redis
from tests.rig import serve, settings_for
from tests.scenarios import (
    BOB,
    CAROL,
    CHANNEL,
    SAMPLE,
    BotLog,
    card_text,
    channel_message,
    click,
    clicks_refused,
    mention,
    request_id,
    run,
    wait_answer,
    wait_settled,
)


async def test_two_instances_answer_each_delivery_once_and_in_order(
    slack: FakeSlack, inference: FakeInference, redis_url: str, bot_log: BotLog
) -> None:
    inference.reply_text("first", delay=0.05)
    inference.reply_text("second")
    settings = settings_for(slack, inference, redis_url)
    async with serve(settings) as one, serve(settings) as two:
        event = mention("q1", "60.1")
        await asyncio.gather(
            one.event(event, event_id="EvA"),
            two.event(event, event_id="EvA"),
            two.event(event, event_id="EvA-retry"),
        )
        await inference.wait_for_requests(1)
        follow = channel_message("q2", "60.2", thread_ts="60.1")
        await asyncio.gather(two.event(follow, event_id="EvB"), one.event(follow, event_id="EvB"))
        await wait_answer(slack, CHANNEL, "60.1", "firstsecond")
        # Done: three duplicate copies dropped, and the thread let go with nothing waiting.
        await bot_log.wait_for("duplicate delivery ignored", count=3)
        await wait_settled(one.runtime.redis, "60.1")
    assert len(bot_log.lines("duplicate delivery ignored")) == 3
    assert [r.json["messages"][-1]["content"] for r in inference.chat_requests] == ["q1", "q2"]


async def test_two_instances_decide_an_approval_once(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    slack.usergroups["S0OPS"] = [CAROL]
    inference.agent_events([("message", agent_completion("done")), ("done", "[DONE]")])
    inference.agent_events([("message", agent_completion("done")), ("done", "[DONE]")])
    settings = settings_for(slack, inference, redis_url, runbooks_file=str(path))
    async with serve(settings) as one, serve(settings) as two:
        await run(one, slack, "migrate app=shop-staging")
        await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
        rid = request_id(slack)
        await asyncio.gather(
            click(one, slack, "copilot_approve", rid, BOB),
            click(two, slack, "copilot_approve", rid, CAROL),
            click(two, slack, "copilot_approve", rid, BOB),
        )
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
        # Every click is decided: the two that lost are told so, and both bots are idle.
        await slack.wait_for(lambda s: len(clicks_refused(s, BOB, CAROL)) == 2)
        await one.idle()
        await two.idle()
    assert all("already approved" in r["text"] for r in clicks_refused(slack, BOB, CAROL))
    assert len(inference.agent_requests) == 1


@pytest.fixture
def own_redis() -> tuple[str, list[str]]:
    """A redis-server this test may stop and start again on the same port."""
    return redis_command()


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_redis_outage_is_reported_and_recovered_without_restart(
    slack: FakeSlack, inference: FakeInference, own_redis: tuple[str, list[str]]
) -> None:
    url, argv = own_redis
    server = _spawn(argv)
    try:
        wait_for_redis(url)
        async with serve(settings_for(slack, inference, url)) as bot:
            inference.reply_text("before")
            await bot.event(mention("one", "70.1"))
            await wait_answer(slack, CHANNEL, "70.1", "before")

            server.terminate()
            server.wait(timeout=10)
            assert (await bot.http.get(f"{bot.url}/healthz")).status_code == 503
            await bot.event(mention("two", "71.1"))
            await slack.wait_for(
                lambda s: any("Redis" in m.body for m in s.messages(CHANNEL, "71.1")), timeout=15
            )

            server = _spawn(argv)
            wait_for_redis(url)
            assert (await bot.http.get(f"{bot.url}/healthz")).status_code == 200
            inference.reply_text("after")
            await bot.event(mention("three", "72.1"))
            await wait_answer(slack, CHANNEL, "72.1", "after")
    finally:
        server.terminate()
        server.wait(timeout=10)
