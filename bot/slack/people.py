"""Reading people and channels from the Web API: ``users.info``, ``conversations.info``
and ``conversations.members`` (paged). Failures are ``SlackError``s, like every call here;
what a failed lookup means is the caller's to decide (``bot.access`` hides or refuses)."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.people import Channel, Person
from bot.slack.calls import slack_errors

# Slack's largest page; a channel with more members than this many pages is not read whole,
# so it counts as a failed lookup rather than a partial list.
MEMBERS_PAGE = 1000
MEMBERS_PAGES = 50


async def read_person(client: AsyncWebClient, user: str) -> Person:
    async with slack_errors("users.info"):
        response = await client.users_info(user=user)
    found = response.get("user") or {}
    return Person(
        id=user,
        team=str(found.get("team_id") or ""),
        guest=bool(found.get("is_restricted") or found.get("is_ultra_restricted")),
    )


async def read_channel(client: AsyncWebClient, channel: str) -> Channel:
    async with slack_errors("conversations.info"):
        response = await client.conversations_info(channel=channel)
    found = response.get("channel") or {}
    # Public only when Slack says so in as many words; anything unclear is members-only.
    public = (
        found.get("is_channel") is True
        and found.get("is_private") is False
        and not found.get("is_im")
        and not found.get("is_mpim")
    )
    return Channel(id=channel, public=public)


async def read_members(client: AsyncWebClient, channel: str) -> frozenset[str]:
    members: set[str] = set()
    cursor = ""
    for _ in range(MEMBERS_PAGES):
        async with slack_errors("conversations.members"):
            response = await client.conversations_members(
                channel=channel, limit=MEMBERS_PAGE, cursor=cursor or None
            )
        members.update(str(m) for m in response.get("members") or [])
        cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return frozenset(members)
    raise SlackError("conversations.members", "too_many_members")
