"""The fake Slack's people and conversations behave like Slack's: shapes, paging by
cursor, and the errors the bot must survive (``user_not_found``, ``channel_not_found``,
``missing_scope``)."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack


def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.base_url, token="xoxb-test")


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as failed:
        await call  # type: ignore[misc]
    return str(failed.value.response["error"])


async def test_people_are_full_members_unless_described(slack: FakeSlack) -> None:
    web = client(slack)
    slack.directory.add_person("U0G", guest=True)
    slack.directory.add_person("U0X", team="T0OTHER")
    plain = (await web.users_info(user="U0A"))["user"]
    assert (plain["team_id"], plain["is_restricted"]) == ("T0TEAM", False)
    assert (await web.users_info(user="U0G"))["user"]["is_restricted"] is True
    assert (await web.users_info(user="U0X"))["user"]["team_id"] == "T0OTHER"
    assert await error_of(web.users_info(user="nobody")) == "user_not_found"
    slack.directory.revoke_scope("users:read")
    assert await error_of(web.users_info(user="U0A")) == "missing_scope"


async def test_conversations_say_who_can_read_them(slack: FakeSlack) -> None:
    web = client(slack)
    slack.directory.add_channel("C0P", ["U1"], private=True)
    slack.directory.add_channel("D0A", ["U1", "U0BOT"], kind="im")
    public = (await web.conversations_info(channel="C0OPS"))["channel"]
    assert (public["is_channel"], public["is_private"]) == (True, False)
    assert (await web.conversations_info(channel="C0P"))["channel"]["is_private"] is True
    assert (await web.conversations_info(channel="D0A"))["channel"]["is_im"] is True
    assert await error_of(web.conversations_info(channel="G0GONE")) == "channel_not_found"
    slack.directory.revoke_scope("groups:read")
    assert await error_of(web.conversations_members(channel="C0P")) == "missing_scope"
    assert (await web.conversations_members(channel="C0OPS"))["members"] == []


async def test_members_come_in_pages(slack: FakeSlack) -> None:
    web = client(slack)
    slack.directory.add_channel("C0BIG", [f"U{n}" for n in range(5)])
    seen, cursor = [], None
    while True:
        page = await web.conversations_members(channel="C0BIG", limit=2, cursor=cursor)
        seen += page["members"]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == [f"U{n}" for n in range(5)]
    failed = web.conversations_members(channel="C0BIG", cursor="not-a-cursor")
    assert await error_of(failed) == "invalid_cursor"
