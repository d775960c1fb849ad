"""What the bot knows of a person and a channel: enough to say who is an outsider, and who
can see a channel's runs.

Read from Slack by ``bot.slack.people``, cached briefly by ``bot.state.people``, and
judged by ``bot.access``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Person:
    """One Slack user, as ``users.info`` describes them."""

    id: str
    team: str  # the workspace the account belongs to; another one's in Slack Connect
    guest: bool  # a multi- or single-channel guest (is_restricted, is_ultra_restricted)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Person:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Channel:
    """Who may read a conversation, as ``conversations.info`` describes it."""

    id: str
    # A public channel: every full member of the workspace can open and read it. Private
    # channels, group DMs and DMs are readable by their members only.
    public: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Channel:
        return cls(**json.loads(raw))
