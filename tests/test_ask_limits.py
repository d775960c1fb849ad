"""Limits on questions, decided in the intake step so a flood costs no model call: questions
per asker per minute, a thread's queue of waiting questions, and a question's size. Also
the bounds around answers: two proposal cards at most, refused clicks audited apart, and
every key the bot writes living no longer than its TTL or its cap."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from bot.conversation import CUT_NOTE, MAX_QUESTION_BYTES
from bot.state import keys
from bot.state.requests import RequestStore
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for, working
from tests.scenarios import (
    ALICE,
    BOB,
    CHANNEL,
    MALLORY,
    SAMPLE,
    answer_in,
    card_text,
    channel_message,
    click,
    mention,
    migrate_events,
    pending_card,
    run,
    wait_answer,
    wait_until,
)

ASK_AGAIN = re.compile(
    r"You've asked 10 questions in the last minute \(the limit\), so I'm not answering more "
    r"for now: ask again in (\d+) seconds\."
)


def blocks_in(slack: FakeSlack) -> list[Any]:
    return [m.blocks for m in slack.messages(CHANNEL)]


def replies_matching(slack: FakeSlack, pattern: str | re.Pattern[str]) -> list[str]:
    found = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
    return [m.body for m in slack.messages(CHANNEL) if found.search(m.body)]


async def test_a_flood_of_questions_costs_ten_model_calls_and_one_reply(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    responses = await asyncio.gather(
        *(bot.event(mention(f"question {n}", f"60.{n:02d}")) for n in range(25))
    )
    assert all(r.status_code == 200 for r in responses)  # each one decided in Redis

    def answered(s: FakeSlack) -> list[int]:
        return [
            n for n in range(25) if answer_in(s, CHANNEL, f"60.{n:02d}") == f"echo: question {n}"
        ]

    await slack.wait_for(lambda s: len(answered(s)) == 10, timeout=20)
    await slack.wait_for(lambda s: bool(replies_matching(s, ASK_AGAIN)))
    assert await bot.runtime.inflight.drain(grace=10)  # every reply is out
    [reply] = replies_matching(slack, ASK_AGAIN)
    found = ASK_AGAIN.search(reply)
    assert found and 1 <= int(found[1]) <= 60
    assert len(inference.chat_requests) == 10
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # nothing else waits to be answered
        assert [k async for k in client.scan_iter(match=keys.queue("*"))] == []
    finally:
        await client.aclose()


async def test_a_full_thread_queue_refuses_with_one_reply(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    thread = "70.1"
    inference.reply_stall([], 60)  # the first answer holds the thread while others queue
    settings = settings_for(slack, inference, redis_url, copilot_idle_timeout=60)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with serve(settings) as bot:
            await bot.event(mention("first", thread))
            await inference.wait_for_requests(1)
            for n in range(keys.THREAD_QUEUE_MAX + 2):  # each asker within their own limit
                text = f"follow-up {n}"
                event = channel_message(text, f"70.{n + 2}", thread_ts=thread, user=f"U0ASK{n}")
                assert (await bot.event(event)).status_code == 200
            full = "20 questions are already waiting in this thread (the limit)"
            await slack.wait_for(lambda s: bool(replies_matching(s, full)))
            queue = keys.queue(keys.thread_id("T0TEAM", CHANNEL, thread))
            queued = await client.lrange(queue, 0, -1)
            await client.delete(queue)  # so the held answer, once ended, is the last one
            await inference.stop()
            assert await bot.runtime.inflight.drain(grace=10)  # every reply is out
    finally:
        await client.aclose()
    assert len(replies_matching(slack, full)) == 1
    assert len(queued) == keys.THREAD_QUEUE_MAX
    assert not any("follow-up 20" in q or "follow-up 21" in q for q in queued)
    assert len(inference.chat_requests) == 1


async def test_a_long_question_is_cut_with_a_note_the_model_and_the_person_read(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Short answer.")
    await bot.event(mention("é" * 6000 + " the end", "80.1"))  # 12 KB of text
    await wait_answer(slack, CHANNEL, "80.1", f"Short answer.\n\n_{CUT_NOTE}_")
    sent = inference.chat_requests[0].json["messages"][-1]["content"]
    kept, note = sent.rsplit("\n\n", 1)
    assert note == CUT_NOTE
    assert len(kept.encode()) <= MAX_QUESTION_BYTES
    assert kept == "é" * (MAX_QUESTION_BYTES // 2)
    assert "the end" not in sent


async def test_an_answer_proposes_at_most_two_cards(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_tool_calls(
        [
            ("migrate", '{"app": "shop-staging"}'),
            ("logs", '{"app": "nope!"}'),  # invalid: a note, and it takes no card's place
            ("migrate", '{"app": "shop-production"}'),
            ("logs", '{"app": "shop"}'),
        ]
    )
    await act.event(mention("fix everything", "90.1"))
    await slack.wait_for(lambda s: s.count("chat.stopStream") >= 1, timeout=10)
    answer = answer_in(slack, CHANNEL, "90.1")
    cards = [
        m for m in slack.messages(CHANNEL, "90.1") if any(b["type"] == "actions" for b in m.blocks)
    ]
    assert len(cards) == 2
    assert "Proposed `migrate` app=shop-staging" in answer
    assert "Proposed `migrate` app=shop-production" in answer
    assert "Cannot propose `logs`" in answer
    assert "Also suggested `logs app=shop lines=200`, without a card" in answer
    assert "use `/run logs app=shop lines=200`" in answer


async def test_a_flood_of_refused_clicks_leaves_decisions_in_the_audit_stream(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.agent_events(migrate_events())
    request_id = await pending_card(act, slack)
    await asyncio.gather(
        *(click(act, slack, "copilot_approve", request_id, MALLORY) for _ in range(60))
    )
    await slack.wait_for(lambda s: len(s.responses_to(f"click-{MALLORY}")) == 60, timeout=20)
    await click(act, slack, "copilot_approve", request_id, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        audit = [f["action"] for _, f in await client.xrange(keys.audit_log())]
        refused = [f for _, f in await client.xrange(keys.refused_log())]
    finally:
        await client.aclose()
    assert audit == ["requested", "approved", "run_started", "run_ended"]
    assert len(refused) == 60
    assert {(f["action"], f["user"], f["id"]) for f in refused} == {
        ("click_refused", MALLORY, request_id)
    }


async def test_the_refusals_stream_is_capped_on_its_own(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RequestStore(client)
    try:
        await store.audit("approved", id="r1", user=BOB)
        for batch in range(30):
            await asyncio.gather(
                *(store.refused("click_refused", id="r1", user=f"U{batch}x{n}") for n in range(100))
            )
        assert keys.REFUSED_MAXLEN <= await client.xlen(keys.refused_log()) <= 2_100
        assert [f["action"] for _, f in await client.xrange(keys.audit_log())] == ["approved"]
    finally:
        await client.aclose()


async def test_every_key_the_bot_writes_has_a_ttl_or_a_cap(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(
        SAMPLE.replace("approval_ttl_seconds = 600", "max_questions_per_user_per_minute = 1")
    )
    settings = settings_for(slack, inference, redis_url, runbooks_file=str(path))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with serve(settings, announce=True) as bot:
            await run(bot, slack, "migrate app=shop-staging")  # waits for approval
            async with working(settings):  # a worker runs what needs no approval
                await run(bot, slack, "logs app=shop", user=BOB)  # runs at once
                await slack.wait_for(lambda s: "Succeeded" in json.dumps(blocks_in(s)), timeout=10)
            # Then no worker: questions and approved runs wait, as when workers are down.
            await bot.event(mention("anyone there?", "95.1"))
            await bot.event(mention("hello?", "95.2"))  # past the limit: told once
            await slack.wait_for(lambda s: bool(replies_matching(s, "the limit")))
            await run(bot, slack, "logs app=shop", user=BOB)  # handed over, waits
            await wait_until(
                lambda: client.exists(keys.approved_runs()), "the approved run waits to start"
            )
            await click(bot, slack, "copilot_approve", "f" * 32, MALLORY)  # refused
            await slack.wait_for(lambda s: bool(s.responses_to(f"click-{MALLORY}")))
            unbounded = await _unbounded_keys(client)
    finally:
        await client.aclose()
    assert unbounded == []


# Streams are capped on every XADD (MAXLEN); everything else must carry a TTL.
CAPPED_STREAMS = {keys.audit_log(), keys.refused_log(), keys.work_queue()}


async def _unbounded_keys(client: Any) -> list[str]:
    found = []
    async for key in client.scan_iter(match=f"{keys.PREFIX}*"):
        if key in CAPPED_STREAMS and await client.type(key) == "stream":
            continue
        if await client.pttl(key) < 0:
            found.append(key)
    seen = [k async for k in client.scan_iter(match=f"{keys.PREFIX}*")]
    assert keys.waiting_threads() in seen and keys.pending_requests() in seen, seen
    assert keys.run_starts(BOB) in seen and keys.questions_asked(ALICE) in seen, seen
    return sorted(found)
