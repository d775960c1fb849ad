"""Who counts as an approver: listed by user id, or a member of a listed user group.

User-group members are read with ``usergroups.users.list`` and cached briefly
(``bot.state.usergroups``), so a burst of clicks costs one Slack call and a change of group
membership applies within minutes.
"""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.slack.calls import slack_errors
from bot.state.usergroups import UserGroupCache

log = logging.getLogger(__name__)


class Approvers:
    def __init__(self, slack: AsyncWebClient, groups: UserGroupCache) -> None:
        self._slack = slack
        self._groups = groups

    async def includes(self, user: str, approvers: list[str]) -> bool:
        """Is ``user`` one of ``approvers``, by id or through a user group?"""
        if user in approvers:
            return True
        for group in (a for a in approvers if a.startswith("S")):
            if user in await self.members(group):
                return True
        return False

    async def members(self, group: str) -> set[str]:
        cached = await self._groups.get(group)
        if cached is not None:
            return cached
        users = await self._fetch(group)
        if users is None:
            return set()
        await self._groups.put(group, users)
        return users

    async def _fetch(self, group: str) -> set[str] | None:
        try:
            async with slack_errors("usergroups.users.list"):
                response = await self._slack.usergroups_users_list(usergroup=group)
        except SlackError as exc:
            # An unreadable group grants nobody: refusing is the safe failure.
            log.warning("could not read user group %s: %s", group, exc.code)
            return None
        return {str(u) for u in response.get("users") or []}
