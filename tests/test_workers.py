"""The web/worker split: the web process only queues; workers answer, once and in order."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bot.conversation import Question
from bot.state import ThreadStore, connect, keys
from bot.state.store import Accepted
from bot.state.work_queue import WorkQueue
from tests.fakes import FakeInference, FakeSlack
from tests.processes import STALL, answering_stalled, ask_process, bot_env, soon_dead_env
from tests.rig import serve, settings_for, working
from tests.scenarios import (
    CHANNEL,
    BotLog,
    answer_in,
    channel_message,
    mention,
    wait_answer,
    wait_settled,
)


async def test_the_web_process_queues_and_a_worker_answers(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("from the worker")
    settings = settings_for(slack, inference, redis_url)
    async with serve(settings, announce=True) as web:
        response = await web.event(mention("disk full?", "70.1"))
        assert response.status_code == 200
        # Acknowledged and queued for a worker; the web process, done with it, answers nothing.
        await web.idle()
        redis = web.runtime.redis
        thread = keys.thread_id("T0TEAM", CHANNEL, "70.1")
        assert [fields for _, fields in await redis.xrange(keys.work_queue())] == [
            {"thread": thread}
        ]
        assert await redis.llen(keys.queue(thread)) == 1
        assert not await redis.exists(keys.lock(thread))
        assert inference.chat_requests == []
        assert slack.messages() == []
        async with working(settings):
            await wait_answer(slack, CHANNEL, "70.1", "from the worker")
    assert [r.json["messages"][-1]["content"] for r in inference.chat_requests] == ["disk full?"]


async def test_two_workers_answer_each_question_once_and_in_order(
    slack: FakeSlack, inference: FakeInference, redis_url: str, bot_log: BotLog
) -> None:
    for text in ("one ", "two ", "three"):
        inference.reply_text(text, delay=0.05)
    settings = settings_for(slack, inference, redis_url)
    async with (
        serve(settings, announce=True) as web,
        working(settings),
        working(settings),
    ):
        event = mention("q1", "71.1")
        await asyncio.gather(web.event(event, event_id="EvA"), web.event(event, event_id="EvA"))
        await inference.wait_for_requests(1)
        for n, ts in ((2, "71.2"), (3, "71.3")):
            await web.event(channel_message(f"q{n}", ts, thread_ts="71.1"))
        await wait_answer(slack, CHANNEL, "71.1", "one two three")
        # Done: the second delivery dropped, and the thread let go with nothing waiting.
        await bot_log.wait_for("duplicate delivery ignored")
        await wait_settled(web.runtime.redis, "71.1")
    asked = [r.json["messages"][-1]["content"] for r in inference.chat_requests]
    assert asked == ["q1", "q2", "q3"]


async def test_a_busy_worker_takes_more_threads_as_answers_finish(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    for n in range(3):
        inference.reply_text(f"answer {n}", delay=0.05)
    settings = settings_for(slack, inference, redis_url)
    async with serve(settings, announce=True) as web, working(settings, capacity=1):
        for n in range(3):
            await web.event(mention(f"q{n}", f"72.{n}"))
        for n in range(3):
            await slack.wait_for(lambda s, n=n: bool(s.thread_bodies(CHANNEL, f"72.{n}")))
    assert len(inference.chat_requests) == 3


async def test_a_thread_taken_by_a_worker_that_died_is_answered_by_another(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("picked up")
    settings = settings_for(slack, inference, redis_url)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with serve(settings, announce=True) as web:
            await web.event(mention("still there?", "73.1"))
            # A worker reads the entry and dies before it tries the thread's lock.
            dead = WorkQueue(client, consumer="dead-worker")
            await dead.ensure_group()
            taken = await dead.take(10, block=1.0)
            assert [entry.thread for entry in taken] == [f"T0TEAM:{CHANNEL}:73.1"]
            async with working(settings, reclaim_after=0.3):
                await wait_answer(slack, CHANNEL, "73.1", "picked up")
    finally:
        await client.aclose()


async def test_a_worker_carries_on_when_redis_lost_the_queue(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("first")
    inference.reply_text("after the flush")
    settings = settings_for(slack, inference, redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with serve(settings, announce=True) as web, working(settings):
            await web.event(mention("q1", "74.1"))
            await wait_answer(slack, CHANNEL, "74.1", "first")
            # As after a Redis restart without persistence: the stream and its group are gone.
            await client.flushall()
            await web.event(mention("q2", "74.2"))
            await wait_answer(slack, CHANNEL, "74.2", "after the flush")
    finally:
        await client.aclose()


async def test_entries_are_removed_once_taken(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("done")
    settings = settings_for(slack, inference, redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with serve(settings, announce=True) as web, working(settings):
            await web.event(mention("q", "75.1"))
            await wait_answer(slack, CHANNEL, "75.1", "done")
            # The worker acknowledges the entry before it answers the thread and lets it go.
            await wait_settled(client, "75.1")
            assert await client.xlen(keys.work_queue()) == 0
            pending = await client.xpending(keys.work_queue(), "answerers")
            assert pending["pending"] == 0
    finally:
        await client.aclose()


async def test_questions_behind_a_crashed_answer_go_to_a_worker(
    slack: FakeSlack,
    inference: FakeInference,
    redis_url: str,
    tmp_path: Path,
    start: Any,
    bot_log: BotLog,
) -> None:
    inference.reply_stall(STALL, stall_seconds=30)
    inference.reply_text("second answer")
    fast = {"copilot_heartbeat_interval": 0.2, "copilot_lock_ttl": 1}
    env = soon_dead_env(slack, inference, redis_url)
    bot = await answering_stalled(start, env, slack, "doomed", "77.1")
    await ask_process(bot.url, channel_message("and this?", "77.2", thread_ts="77.1"))
    # This worker sweeps only at its start, while the crashed dyno is still alive, so the
    # web process below is the one that finds the lost answer and hands on the thread.
    worker_settings = settings_for(slack, inference, redis_url, copilot_sweep_interval=600, **fast)
    async with working(worker_settings):
        await bot_log.wait_for("sweep done")
        await bot.crash()
        web_settings = settings_for(slack, inference, redis_url, copilot_sweep_interval=0.2, **fast)
        async with serve(web_settings, announce=True):
            await slack.wait_for(
                lambda s: "second answer" in answer_in(s, CHANNEL, "77.1"), timeout=15
            )
    assert "interrupted by a restart" in answer_in(slack, CHANNEL, "77.1")
    asked = [r.json["messages"][-1]["content"] for r in inference.chat_requests]
    assert asked == ["doomed", "and this?"]


async def test_questions_nobody_is_answering_are_taken_up_by_the_sweep(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("late, but here")
    inference.reply_text("also here")
    settings = settings_for(
        slack, inference, redis_url, copilot_sweep_interval=0.2, copilot_lock_ttl=1
    )
    client = aioredis.Redis.from_url(redis_url)
    try:
        for announce, ts in ((False, "78.1"), (True, "78.2")):
            async with serve(settings, announce=announce) as web, working(settings):
                # Queued as by a process that died before anyone answered: no lock, no entry.
                question = Question("T0TEAM", CHANNEL, ts, ts, "U0ALICE", "anyone?")
                thread = keys.thread_id("T0TEAM", CHANNEL, ts)
                await web.runtime.store.accept(thread, question, [])
                await slack.wait_for(lambda s, ts=ts: bool(s.thread_bodies(CHANNEL, ts)))
                await wait_settled(client, ts)
            assert await client.zscore(keys.waiting_threads(), thread) is None
    finally:
        await client.aclose()
    assert answer_in(slack, CHANNEL, "78.1") == "late, but here"
    assert answer_in(slack, CHANNEL, "78.2") == "also here"


async def test_a_burst_of_deliveries_gets_one_verdict_each(redis_url: str) -> None:
    # Accepts made at once share a Redis pipeline; each caller must still get its own answer.
    client = connect(redis_url)
    store = ThreadStore(client, thread_ttl=60, history_turns=4)
    try:
        calls = []
        for n in range(30):
            ts = f"79.{n}"
            thread = keys.thread_id("T0TEAM", CHANNEL, ts)
            question = Question("T0TEAM", CHANNEL, ts, ts, "U0ALICE", f"q{n}")
            dedupe = [keys.seen_message(CHANNEL, ts)]
            calls += [(thread, question, dedupe, False)] * 2  # each message delivered twice
            reply = Question("T0TEAM", CHANNEL, ts, f"{ts}9", "U0ALICE", "follow-up")
            calls.append((f"T0TEAM:{CHANNEL}:none.{n}", reply, [f"x{n}"], True))
        verdicts = await asyncio.gather(
            *(store.accept(t, q, d, follow_up=f, announce=True) for t, q, d, f in calls)
        )
    finally:
        await client.aclose()
    for n in range(30):
        first, second, follow_up = verdicts[3 * n : 3 * n + 3]
        assert sorted([first, second]) == [Accepted.DUPLICATE, Accepted.QUEUED]
        assert follow_up is Accepted.NOT_FOLLOWING


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def _wait_for_children(pid: int, count: int, but_not: set[int] | None = None) -> list[int]:
    async with asyncio.timeout(20):
        while True:
            found = [c for c in _children(pid) if c not in (but_not or set())]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)


async def _health(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/healthz")
    body: dict[str, Any] = response.json()
    return body


async def test_the_web_process_restarts_a_dead_worker_and_stops_its_workers(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.reply_text("before")
    inference.reply_text("after")
    env = bot_env(slack, inference, redis_url, COPILOT_WORKERS="1")
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    [worker] = await _wait_for_children(bot.proc.pid, 1)
    await ask_process(bot.url, mention("q1", "76.1"))
    await wait_answer(slack, CHANNEL, "76.1", "before")

    assert await _health(bot.url) == {"status": "ok", "redis": "ok", "workers": 1}

    os.kill(worker, signal.SIGKILL)
    await bot.wait_for_line("starting it again")
    assert (await _health(bot.url))["workers"] == 0  # acknowledged, but none to answer
    [replacement] = await _wait_for_children(bot.proc.pid, 1, but_not={worker})
    await ask_process(bot.url, mention("q2", "76.2"))
    await wait_answer(slack, CHANNEL, "76.2", "after")

    bot.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await bot.proc.wait() == 0
    assert not _alive(replacement)
