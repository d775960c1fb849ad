"""The fake workspace's people and conversations: ``users.info``, ``conversations.info`` and
``conversations.members``, with Slack's shapes, paging and errors (``user_not_found``,
``channel_not_found``, ``missing_scope``).

Anyone not described is a full member of the workspace, and a ``C…`` channel not described
is public, so scenarios that never mention people or channels behave as before. Tests add
guests, people from other organisations, private channels and DMs with their members.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fakes.slack_model import Json, SlackError

# Every scope the bot asks for in its manifest is granted unless a test revokes one.
GRANTED = {
    *("users:read", "channels:read", "groups:read", "im:read", "mpim:read"),
    *("channels:history", "groups:history", "im:history", "mpim:history"),
}


@dataclass
class Conversation:
    id: str
    kind: str = "channel"  # "channel", "im" or "mpim"
    private: bool = False
    members: list[str] = field(default_factory=list)

    @property
    def scope(self) -> str:
        if self.kind in ("im", "mpim"):
            return f"{self.kind}:read"
        return "groups:read" if self.private else "channels:read"

    def info(self) -> Json:
        found: Json = {"id": self.id, "is_archived": False}
        if self.kind == "channel":
            found.update(is_channel=True, is_group=self.private, is_private=self.private)
        elif self.kind == "im":
            found.update(is_im=True, is_channel=False, user=(self.members or [""])[0])
        else:
            found.update(is_mpim=True, is_channel=False, is_group=True, is_private=True)
        return found


class SlackDirectory:
    """People and conversations of the fake workspace, and the methods that read them."""

    def __init__(self, team_id: str, channel_of: Callable[[Json], str]) -> None:
        self.team_id = team_id
        self.people: dict[str, Json] = {}
        self.conversations: dict[str, Conversation] = {}
        self.scopes = set(GRANTED)
        self._channel_of = channel_of

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "users.info": self._user_info,
            "conversations.info": self._conversation_info,
            "conversations.members": self._conversation_members,
        }

    # -- configuration used by tests -------------------------------------------------------

    def add_person(
        self, user: str, *, team: str | None = None, guest: bool = False, single: bool = False
    ) -> None:
        """A guest (``is_restricted``; ``single``: single-channel, ``is_ultra_restricted``),
        or someone from another organisation (``team``)."""
        self.people[user] = {
            **self._profile(user),
            "team_id": team or self.team_id,
            "is_restricted": guest or single,
            "is_ultra_restricted": single,
        }

    def add_channel(
        self, channel: str, members: list[str], *, private: bool = False, kind: str = "channel"
    ) -> None:
        self.conversations[channel] = Conversation(channel, kind, private, list(members))

    def revoke_scope(self, scope: str) -> None:
        self.scopes.discard(scope)

    # -- methods ---------------------------------------------------------------------------

    def _user_info(self, params: Json) -> Json:
        self._needs("users:read")
        user = str(params.get("user") or "")
        if user in self.people:
            return {"ok": True, "user": self.people[user]}
        if user[:1] in ("U", "W"):
            return {"ok": True, "user": self._profile(user)}
        raise SlackError("user_not_found")

    def _conversation_info(self, params: Json) -> Json:
        found = self._conversation(params)
        return {"ok": True, "channel": found.info()}

    def _conversation_members(self, params: Json) -> Json:
        found = self._conversation(params)
        limit = int(params.get("limit") or 100)
        start = offset(str(params.get("cursor") or ""))
        page = found.members[start : start + limit]
        more = start + limit < len(found.members)
        next_cursor = cursor(start + limit) if more else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": next_cursor}}

    # -- helpers ---------------------------------------------------------------------------

    def _profile(self, user: str) -> Json:
        return {
            "id": user,
            "team_id": self.team_id,
            "name": user.lower(),
            "deleted": False,
            "is_bot": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
        }

    def _conversation(self, params: Json, scope: str = "read") -> Conversation:
        channel = self._channel_of(params)
        found = self.conversations.get(channel) or _default(channel)
        if found is None:
            raise SlackError("channel_not_found")
        self._needs(found.scope.replace(":read", f":{scope}"))
        return found

    def readable(self, params: Json) -> str:
        """The channel whose messages a call reads; ``missing_scope`` without its history
        scope (``channels:history``, ``groups:history``…)."""
        return self._conversation(params, "history").id

    def _needs(self, scope: str) -> None:
        if scope not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            raise SlackError("missing_scope", needed=scope, provided=provided)


def _default(channel: str) -> Conversation | None:
    if channel.startswith("C"):
        return Conversation(channel)
    return None


def cursor(start: int) -> str:
    """Slack's opaque ``next_cursor``: here, where the next page starts."""
    return base64.b64encode(f"offset:{start}".encode()).decode()


def offset(raw: str) -> int:
    if not raw:
        return 0
    try:
        return int(base64.b64decode(raw).decode().removeprefix("offset:"))
    except ValueError:
        raise SlackError("invalid_cursor") from None
