"""Start-up under a burst: a process starts a bounded number of answers at once, in the
order they came, and each frees its place once Heroku starts its reply (waiting for the
first token is not start-up)."""

from __future__ import annotations

import asyncio

from bot.ask.admission import STARTING
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import answer_in, mention


async def test_a_burst_of_questions_starts_a_few_answers_at_a_time(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    burst = STARTING + 5
    # Heroku takes a second to start each reply: the answers that started hold their places
    # that long, and the rest wait for one.
    answers = {f"1300.{i}": f"Answer number {i}." for i in range(burst)}
    for text in answers.values():
        inference.reply_pieces([text], queued=1.0)
    # From many people in many channels: no per-person or per-channel limit is in play.
    channels = {ts: f"C0ADM{i % 8}" for i, ts in enumerate(answers)}
    events = [
        {**mention(f"question {i}", ts), "user": f"U0ASK{i:03d}", "channel": channels[ts]}
        for i, ts in enumerate(answers)
    ]
    await asyncio.gather(*(bot.event(event) for event in events))
    await slack.wait_for(
        lambda s: all(answer_in(s, channels[ts], ts) for ts in answers), timeout=30
    )
    starts = sorted(r.at for r in inference.chat_requests)
    assert len(starts) == burst
    # The first STARTING model requests went out together; the next only once a reply had
    # started, a second later.
    assert starts[STARTING - 1] - starts[0] < 0.9
    assert starts[STARTING] - starts[0] >= 0.9


async def test_waiting_for_the_first_token_holds_no_place(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    burst = STARTING + 5
    # Replies start at once, their first token a second later: all answers start together.
    answers = {f"1301.{i}": f"Slow token {i}." for i in range(burst)}
    for text in answers.values():
        inference.reply_pieces([text], delay=1.0)
    channels = {ts: f"C0SLO{i % 8}" for i, ts in enumerate(answers)}
    events = [
        {**mention(f"question {i}", ts), "user": f"U0SLO{i:03d}", "channel": channels[ts]}
        for i, ts in enumerate(answers)
    ]
    await asyncio.gather(*(bot.event(event) for event in events))
    await slack.wait_for(
        lambda s: all(answer_in(s, channels[ts], ts) for ts in answers), timeout=30
    )
    starts = sorted(r.at for r in inference.chat_requests)
    assert starts[-1] - starts[0] < 0.9
