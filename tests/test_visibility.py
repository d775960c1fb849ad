"""App Home shows a run, and its parameters, only to people who can read the channel it was
asked in: members of a private channel, group DM or DM; every full member of the workspace
for a public channel (guests and outsiders only if they are in it). A lookup that fails
hides the run. Drawn on ``app_home_opened`` through the real endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.state import keys
from tests.fakes import FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import ALICE, BOB, CAROL, CHANNEL, run

PRIVATE = "C0SECRET"
DM = "D0ALICE"
TO_DECIDE = "Waiting for your approval"
ASKED = "Your requests waiting for approval"
LATEST = "Latest runs"


async def run_in(bot: BotUnderTest, slack: FakeSlack, channel: str, text: str, user: str) -> str:
    """``/run`` typed in ``channel``; the ts of the card it posted."""
    cards = len(slack.messages(channel))
    await run(bot, slack, text, user, channel=channel)
    await slack.wait_for(lambda s: len([m for m in s.messages(channel) if not m.thread_ts]) > cards)
    return [m for m in slack.messages(channel) if not m.thread_ts][-1].ts


def request_of(slack: FakeSlack, channel: str) -> str:
    card = next(m for m in slack.messages(channel) if not m.thread_ts)
    for block in card.blocks:
        if block["type"] == "actions":
            return str(block["elements"][0]["value"])
    raise AssertionError("the card has no buttons")


async def click(bot: BotUnderTest, slack: FakeSlack, action_id: str, value: str, user: str) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "response_url": slack.response_url(f"click-{user}"),
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }
    assert (await bot.action(payload)).status_code == 200


async def home_of(bot: BotUnderTest, slack: FakeSlack, user: str) -> dict[str, str]:
    """The tab as Slack received it: each list's title mapped to its lines."""
    slack.home_views.pop(user, None)
    event = {"type": "app_home_opened", "user": user, "tab": "home", "event_ts": f"{time.time()}"}
    assert (await bot.event(event)).status_code == 200
    await slack.wait_for(lambda s: user in s.home_views)
    lists = {}
    for block in slack.home_views[user]["blocks"]:
        if block["type"] == "section":
            title, _, lines = block["text"]["text"].partition("\n")
            lists[title.strip("*")] = lines
    return lists


def everything(home: dict[str, str]) -> str:
    return json.dumps(home)


async def test_a_private_channels_run_shows_only_to_its_members(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    slack.directory.add_channel(PRIVATE, [ALICE, BOB, "U0BOT"], private=True)
    await run_in(act, slack, PRIVATE, "migrate app=shop-staging", ALICE)

    bob = await home_of(act, slack, BOB)  # an approver, and in the channel
    assert "*migrate* `app=shop-staging`" in bob[TO_DECIDE]
    carol = await home_of(act, slack, CAROL)  # an approver through S0OPS, not in the channel
    assert "migrate" not in everything(carol) and "shop-staging" not in everything(carol)
    alice = await home_of(act, slack, ALICE)
    assert "*migrate*" in alice[ASKED]

    await click(act, slack, "copilot_deny", request_of(slack, PRIVATE), BOB)
    await slack.wait_for(lambda s: "Denied" in json.dumps(s.messages(PRIVATE)[0].blocks))
    assert "denied" in (await home_of(act, slack, BOB))[LATEST]
    assert "migrate" not in everything(await home_of(act, slack, CAROL))


async def test_a_public_channels_run_shows_to_every_full_member(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    """Carol is not in #ops, but can open it: she sees what waits there for her."""
    await run_in(act, slack, CHANNEL, "migrate app=shop-staging", ALICE)
    carol = await home_of(act, slack, CAROL)
    assert "*migrate* `app=shop-staging`" in carol[TO_DECIDE]
    assert slack.count("conversations.members") == 0  # a public channel needs no member list


async def test_a_guest_sees_a_public_channels_run_only_as_its_member(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    slack.directory.add_person(CAROL, guest=True)
    slack.directory.add_channel(CHANNEL, [ALICE, BOB])
    await run_in(act, slack, CHANNEL, "migrate app=shop-staging", ALICE)
    assert "migrate" not in everything(await home_of(act, slack, CAROL))

    slack.directory.add_channel(CHANNEL, [ALICE, BOB, CAROL])
    await act.runtime.redis.delete(keys.channel_members(CHANNEL))  # as after its TTL
    assert "*migrate*" in (await home_of(act, slack, CAROL))[TO_DECIDE]


async def test_a_dm_run_shows_only_to_the_people_in_the_dm(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    """Bob may approve ``logs``, so the latest runs showed him Alice's DM run before."""
    slack.directory.add_channel(DM, [ALICE, "U0BOT"], kind="im")
    await run_in(act, slack, DM, "logs app=shop", ALICE)
    await slack.wait_for(lambda s: "Succeeded" in json.dumps(s.messages(DM)[0].blocks))

    assert "*logs* `app=shop" in (await home_of(act, slack, ALICE))[LATEST]
    assert "logs" not in everything(await home_of(act, slack, BOB))


async def test_a_failed_lookup_hides_the_run(act: BotUnderTest, slack: FakeSlack) -> None:
    slack.directory.add_channel(PRIVATE, [ALICE, BOB, "U0BOT"], private=True)
    await run_in(act, slack, PRIVATE, "migrate app=shop-staging", ALICE)
    slack.directory.revoke_scope("groups:read")  # an install from before the scope

    assert "migrate" not in everything(await home_of(act, slack, BOB))
    assert [c.error for c in slack.calls_to("conversations.info")] == ["missing_scope"]

    slack.directory.scopes.add("groups:read")
    slack.set_channel_error(PRIVATE, "channel_not_found")  # archived and deleted since
    assert "migrate" not in everything(await home_of(act, slack, BOB))


async def test_lookups_are_cached_briefly(act: BotUnderTest, slack: FakeSlack) -> None:
    slack.directory.add_channel(PRIVATE, [ALICE, BOB, "U0BOT"], private=True)
    await run_in(act, slack, PRIVATE, "migrate app=shop-staging", ALICE)
    for _ in range(3):
        assert "*migrate*" in (await home_of(act, slack, BOB))[TO_DECIDE]
    assert slack.count("conversations.info") == 1
    assert slack.count("conversations.members") == 1
    redis: Any = act.runtime.redis
    for key in (keys.channel(PRIVATE), keys.channel_members(PRIVATE)):
        assert 0 < await redis.ttl(key) <= keys.CHANNEL_TTL


async def test_a_long_member_list_is_read_page_by_page(act: BotUnderTest, slack: FakeSlack) -> None:
    members = [f"U{n:07d}" for n in range(2500)] + [BOB]
    slack.directory.add_channel(PRIVATE, [ALICE, *members, "U0BOT"], private=True)
    await run_in(act, slack, PRIVATE, "migrate app=shop-staging", ALICE)
    assert "*migrate*" in (await home_of(act, slack, BOB))[TO_DECIDE]
    assert slack.count("conversations.members") == 3
