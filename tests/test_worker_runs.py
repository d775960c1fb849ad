"""Runs with workers: the web process decides and hands the run over; a worker runs it, once."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bot.runs import RunState
from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.processes import bot_env, signed_form
from tests.rig import serve, settings_for, working
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    SAMPLE,
    BotLog,
    answer_in,
    card_text,
    click,
    migrate_events,
    pending_card,
    run_state,
    wait_until,
)


def sample_settings(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, **overrides: Any
) -> Any:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    slack.usergroups["S0OPS"] = [CAROL]
    return settings_for(slack, inference, redis_url, runbooks_file=str(path), **overrides)


async def queue_holds(redis: aioredis.Redis, *entries: dict[str, str]) -> bool:
    return [fields for _, fields in await redis.xrange(keys.work_queue())] == list(entries)


async def queue_empty(redis: aioredis.Redis) -> bool:
    """Every entry taken and acknowledged."""
    if await redis.xlen(keys.work_queue()):
        return False
    groups = await redis.xinfo_groups(keys.work_queue())
    return all(group["pending"] == 0 for group in groups)


async def test_a_run_approved_through_the_web_process_runs_in_a_worker(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, bot_log: BotLog
) -> None:
    inference.agent_events(migrate_events())
    settings = sample_settings(slack, inference, redis_url, tmp_path)
    async with serve(settings, announce=True) as web, working(settings) as worker:
        rid = await pending_card(web, slack)
        await click(web, slack, "copilot_approve", rid, BOB)
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
        await bot_log.wait_for("run finished")
        await web.idle()
    # Both processes log here; the run's lines name the process that ran it.
    [started] = bot_log.lines("run started")
    assert started.runner == worker.work.process
    assert started.runner != web.runtime.work.process
    assert len(bot_log.lines("run handed over to a worker", run_id=rid)) == 1
    assert len(inference.agent_requests) == 1
    assert BOB in card_text(slack)


async def test_a_run_handed_over_while_no_worker_runs_starts_when_one_does(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, bot_log: BotLog
) -> None:
    inference.agent_events(migrate_events())
    settings = sample_settings(slack, inference, redis_url, tmp_path)
    async with serve(settings, announce=True) as web:
        rid = await pending_card(web, slack)
        await click(web, slack, "copilot_approve", rid, BOB)
        await bot_log.wait_for("run handed over to a worker")
        await web.idle()
        # Decided and handed over: the web process runs nothing itself.
        redis = web.runtime.redis
        assert await queue_holds(redis, {"run": rid})
        assert await run_state(redis, rid) == RunState.APPROVED
        assert inference.agent_requests == []
        async with working(settings):
            await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
            await wait_until(lambda: queue_empty(redis), "the worker took the entry")
        assert await redis.zscore(keys.approved_runs(), rid) is None
    assert len(inference.agent_requests) == 1


async def test_an_approved_run_whose_hand_over_was_lost_is_started_by_a_sweep(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, bot_log: BotLog
) -> None:
    inference.agent_events(migrate_events())
    settings = sample_settings(slack, inference, redis_url, tmp_path, copilot_sweep_interval=0.2)
    async with serve(settings, announce=True) as web:
        rid = await pending_card(web, slack)
        await click(web, slack, "copilot_approve", rid, BOB)
        await bot_log.wait_for("run handed over to a worker")
        await web.idle()
        # As after Redis lost the stream: the entry is gone, the approved run is not.
        redis = web.runtime.redis
        await redis.delete(keys.work_queue())
        async with working(settings):
            await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
        assert await redis.zscore(keys.approved_runs(), rid) is None
    assert len(bot_log.lines("an approved run was never started; starting it")) == 1
    assert len(inference.agent_requests) == 1


async def test_a_run_decided_by_a_process_that_died_before_handing_it_over_still_starts(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, bot_log: BotLog
) -> None:
    inference.agent_events(migrate_events())
    settings = sample_settings(slack, inference, redis_url, tmp_path, copilot_sweep_interval=0.2)
    async with serve(settings, announce=True) as web:
        rid = await pending_card(web, slack)
        # The decision's move alone, as by a web process that died right after it.
        await web.runtime.requests.move(rid, RunState.APPROVED, BOB)
        redis = web.runtime.redis
        assert await queue_holds(redis)
        async with working(settings):
            await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert len(bot_log.lines("an approved run was never started; starting it")) == 1
    assert len(inference.agent_requests) == 1


async def test_two_workers_given_the_same_run_start_it_once_and_cancel_reaches_it(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, bot_log: BotLog
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "dyno_run_command"}}
    first = agent_completion("Migrating…", tool_calls=[call], finish_reason="tool_calls")
    inference.agent_events([("message", first), ("message", agent_completion("never"))], delay=5)
    settings = sample_settings(slack, inference, redis_url, tmp_path)
    async with serve(settings, announce=True) as web:
        rid = await pending_card(web, slack)
        await click(web, slack, "copilot_approve", rid, BOB)
        await bot_log.wait_for("run handed over to a worker")
        await web.idle()
        await web.runtime.queue.hand_over_run(rid)  # delivered twice, as after a reclaim
        redis = web.runtime.redis
        assert await queue_holds(redis, {"run": rid}, {"run": rid})
        async with working(settings), working(settings):
            await inference.wait_for_requests(1, path="/v1/agents/heroku")
            await wait_until(lambda: queue_empty(redis), "both entries were taken")
            # One run, holding one slot of the in-flight limit while it runs.
            assert len(inference.agent_requests) == 1
            assert await redis.zscore(keys.runs_in_flight(), rid) is not None
            # Cancel, clicked through the web process, stops the worker's run.
            await slack.wait_for(lambda s: "copilot_cancel" in card_text(s))
            await click(web, slack, "copilot_cancel", rid, ALICE)
            await slack.wait_for(lambda s: "Cancelled by" in card_text(s), timeout=10)
            await bot_log.wait_for("run finished")
        assert await redis.zscore(keys.runs_in_flight(), rid) is None
    assert len(bot_log.lines("run started")) == 1
    assert await run_state(redis, rid) == RunState.CANCELLED


async def test_python_m_bot_runs_an_approved_run_in_its_worker_process(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.agent_events(migrate_events())
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(SAMPLE)
    env = bot_env(
        slack, inference, redis_url, RUNBOOKS_FILE=str(runbooks), DYNO="web.1", COPILOT_WORKERS="1"
    )
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    await _post(bot.url, _slash_run("migrate app=shop-staging", slack))
    await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
    rid = _card_request_id(slack)
    await _post(bot.url, _approve(rid, BOB, slack))
    handed = json.loads(await bot.wait_for_line("run handed over to a worker"))
    started = json.loads(await bot.wait_for_line("run started"))
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=15)
    # The web process (web.1) handed it over; its worker (web.1/worker-0) ran it.
    assert handed["run_id"] == started["run_id"] == rid
    assert started["runner"].startswith("web.1/worker-0#")
    assert len(inference.agent_requests) == 1


async def test_a_run_in_a_worker_cut_off_by_sigterm_is_marked_interrupted(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "tail", "arguments": "{}"}}
    first = agent_completion("Tailing…", tool_calls=[call], finish_reason="tool_calls")
    inference.agent_events([("message", first), ("message", agent_completion("never"))], delay=30)
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(SAMPLE)
    env = bot_env(
        slack, inference, redis_url, RUNBOOKS_FILE=str(runbooks), COPILOT_SHUTDOWN_GRACE="0.5"
    )
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    await _post(bot.url, _slash_run("logs app=shop", slack))  # needs no approval
    await inference.wait_for_requests(1, path="/v1/agents/heroku")
    bot.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 0
    # The worker, told to stop with the web process, said so before it ended.
    card = card_text(slack)
    assert "interrupted by a restart" in card and "copilot_cancel" not in card
    assert "not started again" in answer_in(slack, CHANNEL, slack.messages(CHANNEL)[0].ts)
    assert len(inference.agent_requests) == 1


def _slash_run(text: str, slack: FakeSlack) -> dict[str, str]:
    return {
        "command": "/run",
        "text": text,
        "user_id": ALICE,
        "team_id": "T0TEAM",
        "channel_id": CHANNEL,
        "response_url": slack.response_url("cmd"),
    }


def _approve(rid: str, user: str, slack: FakeSlack) -> dict[str, str]:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url(f"click-{user}"),
        "actions": [{"action_id": "copilot_approve", "value": rid, "type": "button"}],
    }
    return {"payload": json.dumps(payload)}


def _card_request_id(slack: FakeSlack) -> str:
    blocks = slack.messages(CHANNEL)[0].blocks
    return next(str(b["elements"][0]["value"]) for b in blocks if b["type"] == "actions")


async def _post(url: str, fields: dict[str, str]) -> None:
    body, headers = signed_form(fields)
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/slack/events", content=body, headers=headers)
    assert response.status_code == 200
