"""Guests and people from other organisations (Slack Connect), with the default
``allow_external_users = false``: one polite refusal per channel per hour, and nothing else
— no model call, no ``/run``, no click that takes effect. ``true`` turns it all off.

Each refusal, told or not, logs one ``turned away`` line: the observable end these tests
wait for before checking that nothing else happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bot import notices
from bot.runs import RunState
from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    ALICE,
    BOB,
    CHANNEL,
    SAMPLE,
    answer_in,
    mention,
    pending_card,
    wait_answer,
)

EXTERNAL, OTHER_ORG = "U0EXT", "T0OTHER"
GUEST = "U0GUEST"


@pytest.fixture
def turned_away(caplog: pytest.LogCaptureFixture) -> Any:
    """Wait until ``n`` refusals were logged; returns them."""
    caplog.set_level(logging.INFO)

    async def wait(n: int, timeout: float = 5.0) -> list[logging.LogRecord]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in caplog.records if r.getMessage() == "turned away"]
            if len(found) >= n:
                return found
            assert time.monotonic() < deadline, f"{len(found)} refusals logged, not {n}"
            await asyncio.sleep(0.01)

    return wait


def asked_by(user: str, text: str, ts: str, *, team: str | None = None) -> dict[str, Any]:
    """An @mention by ``user``; ``team``: the organisation a Slack Connect event names."""
    event = {**mention(text, ts), "user": user}
    if team is not None:
        event.update(user_team=team, team=team)
    return event


def run_command(slack: FakeSlack, user: str, text: str = "migrate app=shop-staging") -> Any:
    return {
        "command": "/run",
        "text": text,
        "user_id": user,
        "team_id": "T0TEAM",
        "channel_id": CHANNEL,
        "response_url": slack.response_url(f"cmd-{user}"),
    }


def click_of(slack: FakeSlack, action_id: str, value: str, user: str, team: str) -> Any:
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": team},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url(f"click-{user}"),
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }


def texts(responses: list[Any]) -> list[str]:
    return [str(r.get("text")) for r in responses]


async def thread_keys(bot: BotUnderTest) -> list[str]:
    return [str(k) for k in await bot.runtime.redis.keys(f"{keys.PREFIX}thread:*")]


# -- questions -------------------------------------------------------------------------------


async def test_a_slack_connect_user_is_told_once_and_nothing_is_queued(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, turned_away: Any
) -> None:
    for n in range(3):
        event = asked_by(EXTERNAL, "drop the prod database", f"1{n}.1", team=OTHER_ORG)
        assert (await bot.event(event)).status_code == 200
    await turned_away(3)
    await slack.wait_for(lambda s: bool(s.ephemerals(user=EXTERNAL)))  # told after the log line

    [told] = slack.ephemerals(user=EXTERNAL)  # once, in whichever thread was refused first
    assert (told.channel, told.text) == (CHANNEL, notices.OUTSIDER)
    assert told.thread_ts in {"10.1", "11.1", "12.1"}
    assert inference.chat_requests == []
    assert slack.messages() == []  # not even a "thinking…" placeholder
    assert await thread_keys(bot) == []  # refused before anything was queued
    assert slack.count("users.info") == 0  # the event said enough

    # The bot goes on serving the workspace's own people.
    inference.reply_text("Sure.")
    await bot.event(asked_by(ALICE, "hello", "20.1"))
    await wait_answer(slack, CHANNEL, "20.1", "Sure.")


@pytest.mark.parametrize("single", [False, True], ids=["guest", "single-channel guest"])
async def test_a_guest_is_told_once_and_the_model_is_never_asked(
    bot: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    turned_away: Any,
    single: bool,
) -> None:
    slack.directory.add_person(GUEST, guest=not single, single=single)
    for n in range(3):
        assert (
            await bot.event(asked_by(GUEST, "what is the DB password?", f"3{n}.1"))
        ).status_code == 200
    await turned_away(3)
    await slack.wait_for(lambda s: bool(s.ephemerals(user=GUEST)))  # told after the log line

    [told] = slack.ephemerals(user=GUEST)
    assert (told.thread_ts, told.text) == ("30.1", notices.OUTSIDER)
    assert inference.chat_requests == []
    assert all(answer_in(slack, CHANNEL, f"3{n}.1") == "" for n in range(3))
    assert slack.count("assistant.threads.setStatus") == 0
    assert slack.count("users.info") == 1  # looked up once, then cached


async def test_an_account_of_another_organisation_is_refused_by_its_profile(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, turned_away: Any
) -> None:
    """The event names no team of its own; ``users.info`` says where the account belongs."""
    slack.directory.add_person(EXTERNAL, team=OTHER_ORG)
    await bot.event(asked_by(EXTERNAL, "hi", "40.1"))
    await turned_away(1)
    await slack.wait_for(lambda s: bool(s.ephemerals(user=EXTERNAL)))  # told after the log line
    assert texts([{"text": m.text} for m in slack.ephemerals(user=EXTERNAL)]) == [notices.OUTSIDER]
    assert inference.chat_requests == []


async def test_an_account_that_cannot_be_read_is_refused_safely(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, turned_away: Any
) -> None:
    slack.directory.revoke_scope("users:read")
    await bot.event(asked_by(ALICE, "hi", "50.1"))
    await turned_away(1)
    await slack.wait_for(lambda s: bool(s.ephemerals(user=ALICE)))  # told after the log line
    assert [m.text for m in slack.ephemerals(user=ALICE)] == [notices.UNCONFIRMED]
    assert inference.chat_requests == []
    assert 0 < await bot.runtime.redis.ttl(keys.refused(ALICE, CHANNEL)) <= keys.UNCONFIRMED_TTL


async def test_the_ack_never_waits_for_a_lookup(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, turned_away: Any
) -> None:
    """A guest is found where the question is answered, not before Slack gets its 200."""
    slack.directory.add_person(GUEST, guest=True)
    slack.delay("users.info", 3.0)
    started = time.monotonic()
    assert (await bot.event(asked_by(GUEST, "hi", "60.1"))).status_code == 200
    assert time.monotonic() - started < 2.0
    await turned_away(1, timeout=10)
    assert inference.chat_requests == []


# -- /run and buttons --------------------------------------------------------------------------


async def test_outsiders_cannot_run_anything(
    act: BotUnderTest, slack: FakeSlack, turned_away: Any
) -> None:
    slack.directory.add_person(GUEST, guest=True)
    slack.directory.add_person(EXTERNAL, team=OTHER_ORG)
    for user in (GUEST, GUEST, EXTERNAL, EXTERNAL):
        assert (await act.command(**run_command(slack, user))).status_code == 200
    await turned_away(4)
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{GUEST}")))
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{EXTERNAL}")))

    assert texts(slack.responses_to(f"cmd-{GUEST}")) == [notices.OUTSIDER]
    assert texts(slack.responses_to(f"cmd-{EXTERNAL}")) == [notices.OUTSIDER]
    assert slack.messages() == []  # no card
    assert await act.runtime.requests.recent() == []


async def test_outsiders_clicks_take_no_effect(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, turned_away: Any
) -> None:
    request = await pending_card(act, slack)
    slack.directory.add_person(BOB, guest=True)  # an approver by id, now a guest
    clicks = [
        click_of(slack, "copilot_approve", request, BOB, "T0TEAM"),
        click_of(slack, "copilot_approve", request, BOB, "T0TEAM"),
        click_of(slack, "copilot_deny", request, EXTERNAL, OTHER_ORG),
        click_of(slack, "copilot_retry", "r-unknown", EXTERNAL, OTHER_ORG),
    ]
    for payload in clicks:
        assert (await act.action(payload)).status_code == 200
    await turned_away(4)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{EXTERNAL}")))

    assert texts(slack.responses_to(f"click-{BOB}")) == [notices.OUTSIDER]
    assert texts(slack.responses_to(f"click-{EXTERNAL}")) == [notices.OUTSIDER]
    record = await act.runtime.requests.get(request)
    assert record is not None and record.state is RunState.PENDING
    assert inference.agent_requests == []
    audit = await act.runtime.redis.xrange(keys.audit_log())
    assert [f for _, f in audit if f.get("user") in (BOB, EXTERNAL)] == []


async def test_a_slow_lookup_never_holds_the_ack_past_slacks_3_seconds(
    act: BotUnderTest, slack: FakeSlack, turned_away: Any
) -> None:
    """``/run`` is checked before Bolt acknowledges it: a lookup that would take longer than
    Slack waits counts as failed, and the person is asked to try again."""
    slack.delay("users.info", 6.0)
    started = time.monotonic()
    assert (await act.command(**run_command(slack, ALICE))).status_code == 200
    assert time.monotonic() - started < 3.0
    await turned_away(1)
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
    assert texts(slack.responses_to(f"cmd-{ALICE}")) == [notices.UNCONFIRMED]
    assert slack.messages() == []


# -- allow_external_users = true ---------------------------------------------------------------


async def test_allow_external_users_turns_it_all_off(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace("[policy]\n", "[policy]\nallow_external_users = true\n"))
    slack.directory.add_person(GUEST, guest=True)
    settings = settings_for(slack, inference, redis_url, runbooks_file=str(path))
    async with serve(settings) as bot:
        inference.reply_text("Welcome.")
        await bot.event(asked_by(EXTERNAL, "hi", "70.1", team=OTHER_ORG))
        await wait_answer(slack, CHANNEL, "70.1", "Welcome.")
        assert (await bot.command(**run_command(slack, GUEST))).status_code == 200
        await slack.wait_for(lambda s: any(m.thread_ts is None for m in s.messages(CHANNEL)))
        # Read before App Home is redrawn for the request (a second later), whose
        # visibility check reads people: admitting them read no one.
        looked_up = slack.count("users.info")
        assert "migrate" in json.dumps([m.blocks for m in slack.messages(CHANNEL)])
    assert looked_up == 0
    assert slack.ephemerals() == []
