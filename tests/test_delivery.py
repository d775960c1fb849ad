"""Delivering answers by the Slack budget that has room: one call for an answer that is done
before its slot comes, a continuation from the channel's own budget when edits are taken,
a quiet channel untouched by another's backlog, and an expired stream that goes on below.

Other processes' use of a budget is written into Redis the way a Slack 429 holds a method
(``BudgetStore.block``): the shared state every process reads before it calls Slack.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.markdown import open_fence
from bot.slack.budget import TIERS, SlackBudget
from bot.state import keys
from bot.state.budget import BudgetStore
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import (
    CHANNEL,
    answer_in,
    mention,
    wait_answer,
    wait_answers,
    wait_settled,
    wait_until,
)

TEAM = "T0TEAM"
QUIET = "C0QUIET"


@pytest.fixture
async def budgets(redis_url: str) -> AsyncIterator[BudgetStore]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield BudgetStore(client, TEAM)
    await client.aclose()


async def hold(budgets: BudgetStore, method: str, seconds: float, scope: str = "") -> None:
    """As if other answers had taken every slot of ``method`` for ``seconds``."""
    await budgets.block(method, scope, TIERS[method], seconds)


def in_channel(event: dict[str, Any], channel: str) -> dict[str, Any]:
    return {**event, "channel": channel}


def thread_calls(slack: FakeSlack, method: str, channel: str = CHANNEL) -> list[Any]:
    return [c for c in slack.calls_to(method) if c.params.get("channel") == channel]


def has_feedback(message: Any) -> bool:
    return any(b.get("type") == "context_actions" for b in message.blocks)


async def test_an_answer_done_before_its_slot_is_posted_whole_in_one_call(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, budgets: BudgetStore
) -> None:
    # No stream slot and the channel's posts taken for a moment: the answer is generated
    # meanwhile, and what goes out when the slot comes is all of it.
    await hold(budgets, "chat.startStream", 60)
    await hold(budgets, "chat.postMessage", 1.5, CHANNEL)
    answer = " ".join(f"w{n}" for n in range(30))
    inference.reply_text(answer, pieces=30, delay=0.005)
    await bot.event(mention("short one", "1200.1"))
    await wait_answer(slack, CHANNEL, "1200.1", answer)
    [message] = slack.messages(CHANNEL, "1200.1")
    assert has_feedback(message)  # the closing blocks rode on the same call
    assert len(thread_calls(slack, "chat.postMessage")) == 1
    assert slack.count("chat.update") == 0
    assert slack.count("chat.startStream") == 0


async def test_with_edits_taken_an_answer_finishes_from_its_channels_budget(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, budgets: BudgetStore
) -> None:
    await hold(budgets, "chat.startStream", 60)
    await hold(budgets, "chat.update", 60)  # a workspace-wide backlog of edits
    answer = " ".join(f"long{n}" for n in range(60))
    inference.reply_text(answer, pieces=60, delay=0.02)
    await bot.event(mention("long one", "1201.1"))
    await wait_answer(slack, CHANNEL, "1201.1", answer)  # well inside the minute of edits
    first, rest = slack.messages(CHANNEL, "1201.1")
    assert slack.count("chat.update") == 0
    # Whole words on both sides, and neither is a word or two.
    assert first.body.endswith(" ") and len(first.body.split()) >= 2
    assert len(rest.body.split()) >= 3
    assert has_feedback(rest) and not has_feedback(first)


async def test_a_quiet_channels_answer_finishes_while_another_has_a_backlog(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, budgets: BudgetStore
) -> None:
    # The workspace's edits are taken for a minute, the busy channel's posts for 8 s.
    await hold(budgets, "chat.startStream", 60)
    await hold(budgets, "chat.update", 60)
    await hold(budgets, "chat.postMessage", 8, CHANNEL)
    busy = " ".join(f"busy{n}" for n in range(40))
    quiet = " ".join(f"quiet{n}" for n in range(40))
    inference.reply_text(busy, pieces=40, delay=0.01)
    await bot.event(mention("in the busy channel", "1202.1"))
    await inference.wait_for_requests(1)
    inference.reply_text(quiet, pieces=40, delay=0.01)
    await bot.event(in_channel(mention("in the quiet one", "1203.1"), QUIET))
    await wait_answer(slack, QUIET, "1203.1", quiet)
    assert answer_in(slack, CHANNEL, "1202.1") == ""  # still waiting its channel's turn
    # Once the busy channel's backlog has passed, its answer comes whole, in one post.
    await slack.wait_for(lambda s: answer_in(s, CHANNEL, "1202.1") == busy, timeout=15)


async def test_an_expired_stream_goes_on_below_before_any_workspace_call(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.stream_ttl = 0.3
    answer = " ".join(f"x{n}" for n in range(60))
    inference.reply_text(answer, pieces=60, delay=0.02)
    await bot.event(mention("stream past its life", "1204.1"))
    await wait_answer(slack, CHANNEL, "1204.1", answer)
    refused = next(
        i
        for i, c in enumerate(slack.calls)
        if c.method == "chat.appendStream" and c.response and not c.response.get("ok")
    )
    expired = slack.calls[refused].params["ts"]
    after = [c for c in slack.calls[refused + 1 :] if c.method.startswith("chat.")]
    assert after[0].method == "chat.postMessage"  # the text went on below at once
    # Slack keeps what the expired stream showed: no call touches it again.
    assert not [c for c in after if c.params.get("ts") == expired]
    assert len(slack.messages(CHANNEL, "1204.1")) == 2


async def test_a_final_send_keeps_its_turn_from_mid_answer_sends(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    budget = SlackBudget(BudgetStore(client, "T0FAIR"))
    try:
        while await budget.take("chat.update", max_wait=0):
            pass  # the burst is used up: the next slot is about 1.3 s away
        tat = keys.slack_budget("T0FAIR", "chat.update", "")
        before = await client.get(tat)
        final = asyncio.create_task(budget.take("chat.update"))  # waits for that slot

        async def reserved() -> bool:
            return bool(await client.get(tat) != before)

        await wait_until(reserved, "the final send reserved its slot")
        # A mid-answer send takes only a slot that is free soon enough: the one the final
        # send holds is not, so it gets the one after, beyond its wait.
        assert not await budget.take("chat.update", max_wait=2.0)
        assert await final
        # Choosing between budgets takes the one with room: the channel's, here.
        chosen = await budget.take_first(
            [("chat.update", ""), ("chat.postMessage", "C0FAIR")], max_wait=0.25
        )
        assert chosen == "chat.postMessage"
    finally:
        await client.aclose()


async def test_short_answers_crowding_one_channel_each_take_one_post(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, budgets: BudgetStore
) -> None:
    # More answers than the channel can post at once: a first message posted after two
    # words would cost its answer a second call later, and split a one-liner in two.
    await hold(budgets, "chat.startStream", 60)
    answers = {f"1210.{i}": " ".join(f"c{i}w{n}" for n in range(12)) for i in range(5)}
    for text in answers.values():
        inference.reply_text(text, pieces=12, delay=0.01)
    await asyncio.gather(*(bot.event(mention("one-liner?", ts)) for ts in answers))
    await wait_answers(slack, answers, timeout=15)
    assert [len(slack.messages(CHANNEL, ts)) for ts in answers] == [1] * 5
    assert slack.count("chat.update") == 0


async def test_a_continuation_lets_an_answer_showing_nothing_post_first(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, budgets: BudgetStore
) -> None:
    await hold(budgets, "chat.startStream", 60)
    await hold(budgets, "chat.update", 60)  # finishing text can only be continued below
    first = " ".join(f"a{n}" for n in range(60))
    inference.reply_text(first, pieces=60, delay=0.02)
    await bot.event(mention("long answer", "1220.1"))
    await slack.wait_for(lambda s: bool(s.messages(CHANNEL, "1220.1")))
    # The next answer's model is slow to start: it shows nothing while the first one's
    # finishing text wants the channel.
    inference.reply_pieces(["Later answer ", "of the second question."], delay=1.5)
    await bot.event(mention("slow model", "1221.1"))
    await wait_answer(slack, CHANNEL, "1220.1", first)
    await wait_answer(slack, CHANNEL, "1221.1", "Later answer of the second question.")
    posts = [c.params["thread_ts"] for c in thread_calls(slack, "chat.postMessage")]
    assert posts[:3] == ["1220.1", "1221.1", "1220.1"]


async def test_answers_written_at_once_share_the_edits_between_them(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # Four answers edit their messages at once: each gets its first text and its last, and
    # none takes the workspace's few edits for updates of its own in between.
    slack.refuse_streaming(CHANNEL)
    answers = {f"1230.{i}": " ".join(f"e{i}w{n}" for n in range(40)) for i in range(4)}
    for text in answers.values():
        inference.reply_text(text, pieces=40, delay=0.03)
    await asyncio.gather(*(bot.event(mention("edit me", ts)) for ts in answers))
    await wait_answers(slack, answers)
    thread_of = {m.ts: m.thread_ts for m in slack.messages(CHANNEL)}
    texts = slack.calls_to("chat.update") + slack.calls_to("chat.postMessage")
    per_thread = Counter(
        c.params.get("thread_ts") or thread_of[c.params["ts"]]
        for c in texts
        if "Thinking" not in str(c.params.get("text"))
    )
    assert sorted(per_thread.values()) == [2, 2, 2, 2], per_thread


async def test_a_continuation_below_reopens_the_code_block_it_carries_on(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # The stream expires in the middle of a code block: the text goes on below, and the
    # message below opens the block again so the rest still reads as code.
    slack.stream_ttl = 0.5
    lines = [f"heroku ps:scale web={n} --app example\n" for n in range(12)]
    pieces = ["Run these now:\n```bash\n", *lines, "```\n", "Then check the logs."]
    inference.reply_pieces(pieces, delay=0.1)
    await bot.event(mention("code please", "1240.1"))
    await slack.wait_for(lambda s: "check the logs" in answer_in(s, CHANNEL, "1240.1"))
    first, rest = (m.body for m in slack.messages(CHANNEL, "1240.1"))
    assert first.startswith("Run these now:\n```bash\n") and open_fence(first)
    assert rest.startswith("```bash\nheroku")  # still a code block below the cut
    assert first + rest.removeprefix("```bash\n") == "".join(pieces)


async def test_a_stream_stopped_full_is_stopped_once(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # The last text overflows the stream: chat.stopStream carries what fits and the rest
    # goes on below; the stream it stopped needs no second chat.stopStream.
    words = " ".join(f"word{n}" for n in range(2400))  # about 19 KB
    inference.reply_pieces(["Here is the long answer: ", words], delay=0.05)
    await bot.event(mention("a long one", "1241.1"))
    await wait_answer(slack, CHANNEL, "1241.1", "Here is the long answer: " + words)
    await wait_settled(bot.runtime.redis, "1241.1")  # the answer's every call is made
    stops = Counter(c.params.get("ts") for c in slack.calls_to("chat.stopStream"))
    assert stops and set(stops.values()) == {1}, stops


async def test_answers_not_yet_writing_leave_a_streaming_answer_its_updates(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # One answer streams for about 3 s while 30 others wait for their model to start: only
    # answers that write share the mid-answer budget, so it still updates as it goes.
    words = [f"w{n} " for n in range(60)]
    inference.reply_pieces(words, delay=0.05)
    await bot.event(mention("the streaming one", "1242.1"))
    await inference.wait_for_requests(1)
    for n in range(30):
        inference.reply_pieces(["later"], queued=30.0)
        event = mention(f"queued {n}", f"1243.{n}")
        await bot.event({**event, "user": f"U0Q{n:03d}", "channel": f"C0Q{n % 5}"})
    await wait_answer(slack, CHANNEL, "1242.1", "".join(words))
    [stream] = slack.messages(CHANNEL, "1242.1")
    appends = [c for c in slack.calls_to("chat.appendStream") if c.params["ts"] == stream.ts]
    assert len(appends) >= 2
