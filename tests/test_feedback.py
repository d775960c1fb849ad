"""Feedback on answers, end to end: the buttons under a finished answer (native stream and
edited message), a click through the signed endpoint recorded in the audit stream and the
log, a change of mind replacing the vote, and the week's counts in App Home."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import ALICE, BOB, CAROL, CHANNEL, MALLORY, mention, open_home, wait_answer

ANSWER = "Roll back with `heroku releases:rollback`."
FEEDBACK_TITLE = "*Feedback on answers, last 7 days*"


def feedback_block(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    [block] = [b for b in blocks if b["type"] == "context_actions"]
    [element] = block["elements"]
    assert element["type"] == "feedback_buttons"
    assert element["action_id"] == "copilot_feedback"
    return dict(element)


async def answered(bot: BotUnderTest, slack: FakeSlack, inference: FakeInference) -> str:
    """Ask once; returns the answer's id as its feedback buttons carry it."""
    inference.reply_text(ANSWER, pieces=3)
    assert (await bot.event(mention("how do I roll back?", "100.1"))).status_code == 200
    await wait_answer(slack, CHANNEL, "100.1", ANSWER)
    await slack.wait_for(lambda s: "context_actions" in str(s.messages(CHANNEL, "100.1")))
    [message] = slack.messages(CHANNEL, "100.1")
    buttons = feedback_block(message.blocks)
    up, down = buttons["positive_button"], buttons["negative_button"]
    assert up["value"].startswith("up:") and down["value"].startswith("down:")
    answer = str(up["value"]).removeprefix("up:")
    assert down["value"] == f"down:{answer}" and answer
    assert up["accessibility_label"] and down["accessibility_label"]
    return answer


async def vote(bot: BotUnderTest, user: str, value: str) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "message_ts": "100.2", "channel_id": CHANNEL},
        "trigger_id": "1.3",
        "actions": [
            {
                "type": "feedback_buttons",
                "action_id": "copilot_feedback",
                "block_id": "fb",
                "value": value,
                "text": {"type": "plain_text", "text": "👍"},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    assert (await bot.action(payload)).status_code == 200


async def feedback_audit(bot: BotUnderTest) -> list[dict[str, str]]:
    url = bot.runtime.settings.redis_url
    assert url is not None
    client = aioredis.Redis.from_url(url.get_secret_value(), decode_responses=True)
    try:
        entries = await client.xrange(keys.audit_log())
    finally:
        await client.aclose()
    return [fields for _, fields in entries if fields.get("action") == "feedback"]


def feedback_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "feedback"]


async def test_a_streamed_answer_ends_with_feedback_buttons(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    await answered(bot, slack, inference)
    [stop] = slack.calls_to("chat.stopStream")
    feedback_block(stop.params["blocks"])  # attached when the stream stops


async def test_an_edited_answer_ends_with_feedback_buttons(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL)
    await answered(bot, slack, inference)
    assert slack.count("chat.stopStream") == 0
    feedback_block(slack.calls_to("chat.update")[-1].params["blocks"])


async def test_a_click_is_recorded_once_and_a_change_of_mind_replaces_it(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    answer = await answered(act, slack, inference)

    await vote(act, ALICE, f"up:{answer}")
    await slack.wait_for(lambda _: len(feedback_lines(caplog)) == 1)
    [line] = feedback_lines(caplog)
    assert (line.answer, line.user, line.vote, line.model) == (  # type: ignore[attr-defined]
        answer,
        ALICE,
        "up",
        "claude-4-5-sonnet",
    )
    [entry] = await feedback_audit(act)
    assert (entry["answer"], entry["user"], entry["vote"], entry["replaced"]) == (
        answer,
        ALICE,
        "up",
        "",
    )
    assert entry["model"] == "claude-4-5-sonnet"
    assert "👍 1" in await tally_seen_by(act, slack, BOB)

    await vote(act, ALICE, f"down:{answer}")  # a change of mind
    await vote(act, CAROL, f"down:{answer}")
    await vote(act, CAROL, f"down:{answer}")  # a toggle sends no "unselected": still down
    await slack.wait_for(lambda _: len(feedback_lines(caplog)) == 4)
    audited = await feedback_audit(act)
    assert [(e["user"], e["vote"], e["replaced"]) for e in audited] == [
        (ALICE, "up", ""),
        (ALICE, "down", "up"),
        (CAROL, "down", ""),
        (CAROL, "down", "down"),
    ]
    # Alice's vote moved and Carol's stayed: each person counts once.
    assert "👍 0   👎 2" in await tally_seen_by(act, slack, BOB)


async def test_made_up_values_record_nothing(
    act: BotUnderTest, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for value in ("sideways:abc", "up:", "up:a b", "up:" + "a" * 65):
        await vote(act, ALICE, value)
    await vote(act, ALICE, "up:0123abcd")  # a well-formed one, to know the others are through
    await slack.wait_for(lambda _: len(feedback_lines(caplog)) == 1)
    assert [e["answer"] for e in await feedback_audit(act)] == ["0123abcd"]


async def test_the_counts_show_only_to_approvers(act: BotUnderTest, slack: FakeSlack) -> None:
    await vote(act, ALICE, "up:0123abcd")
    assert "👍 1   👎 0" in await tally_seen_by(act, slack, CAROL)  # approver by user group
    await open_home(act, slack, MALLORY)
    await slack.wait_for(lambda s: MALLORY in s.home_views)
    assert FEEDBACK_TITLE not in str(slack.home_views[MALLORY])


async def tally_seen_by(bot: BotUnderTest, slack: FakeSlack, user: str) -> str:
    """The feedback line of ``user``'s App Home, as Slack received it."""
    await open_home(bot, slack, user)
    await slack.wait_for(lambda s: user in s.home_views)
    for block in slack.home_views[user]["blocks"]:
        text = block.get("text", {}).get("text", "")
        if text.startswith(FEEDBACK_TITLE):
            return str(text).replace(":+1:", "👍").replace(":-1:", "👎")
    raise AssertionError(f"no feedback counts in the App Home of {user}")
