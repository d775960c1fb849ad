"""Start-up under a burst: a process starts a bounded number of answers at once, in the
order they came, and each frees its place once Heroku starts its reply (waiting for the
first token is not start-up)."""

from __future__ import annotations

import asyncio

from bot.ask.admission import STARTING
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import mention, wait_answers

BURST = STARTING + 5


async def burst_answered(bot: BotUnderTest, slack: FakeSlack, answers: dict[str, str]) -> None:
    """Ask every question of ``answers`` at once and wait until each is answered. They come
    from many people in many channels: no per-person or per-channel limit is in play."""
    channels = {ts: f"C0ADM{i % 8}" for i, ts in enumerate(answers)}
    events = [
        {**mention(f"question {i}", ts), "user": f"U0ASK{i:03d}", "channel": channels[ts]}
        for i, ts in enumerate(answers)
    ]
    await asyncio.gather(*(bot.event(event) for event in events))
    await wait_answers(slack, answers, channels=channels, timeout=30)


async def test_a_burst_of_questions_starts_a_few_answers_at_a_time(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # Heroku takes a second to start each reply: the answers that started hold their places
    # that long, and the rest wait for one.
    answers = {f"1300.{i}": f"Answer number {i}." for i in range(BURST)}
    for text in answers.values():
        inference.reply_pieces([text], queued=1.0)
    await burst_answered(bot, slack, answers)
    starts = sorted(r.at for r in inference.chat_requests)
    assert len(starts) == BURST
    # The first STARTING model requests went out together; the next only once a reply had
    # started, a second later.
    assert starts[STARTING - 1] - starts[0] < 0.9
    assert starts[STARTING] - starts[0] >= 0.9


async def test_waiting_for_the_first_token_holds_no_place(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # Replies start at once, their first token a second later: all answers start together.
    answers = {f"1301.{i}": f"Slow token {i}." for i in range(BURST)}
    for text in answers.values():
        inference.reply_pieces([text], delay=1.0)
    await burst_answered(bot, slack, answers)
    starts = sorted(r.at for r in inference.chat_requests)
    assert len(starts) == BURST
    assert starts[-1] - starts[0] < 0.9
