"""Keeping outsiders out of ``/run`` and the buttons: one Bolt middleware in front of every
slash command and interaction, after Bolt has checked the signature.

A guest, or someone from another organisation, gets one polite ephemeral refusal per
channel per hour (``bot.access``) and the request goes no further: no card, no decision, no
retry. Message events are judged where their question is answered (``bot.ask``), so the
fast intake path stays one Redis step; App Home shows each person only what they can see.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse

from bot.access import Access
from bot.slack.calls import ephemeral

log = logging.getLogger(__name__)

# Slack wants its ack within 3 seconds and this check comes first: a lookup slower than
# this (Slack rate-limiting users.info, say) counts as failed, and the person is asked to
# try again.
LOOKUP_SECONDS = 2.0

# Interactive payloads that carry a person's click or submission.
_INTERACTIONS = frozenset(
    {"block_actions", "interactive_message", "view_submission", "shortcut", "message_action"}
)


@dataclass(frozen=True)
class _Actor:
    user: str
    channel: str
    team: str  # the person's own workspace, when the payload says


def register(app: AsyncApp, access: Access) -> None:
    async def keep_outsiders_out(
        body: dict[str, Any],
        respond: AsyncRespond | None,
        next_: Callable[[], Awaitable[None]],
    ) -> BoltResponse | None:
        actor = _actor(body)
        refusal = None
        if actor is not None:
            refusal = await access.check(
                actor.user, actor.channel, team=actor.team, within=LOOKUP_SECONDS
            )
        if refusal is None:
            await next_()
            return None
        if refusal.text is not None and respond is not None:
            await ephemeral(respond)(refusal.text)
        return BoltResponse(status=200, body="")  # acknowledged, and nothing else happens

    app.middleware(keep_outsiders_out)


def _actor(body: dict[str, Any]) -> _Actor | None:
    """Who typed the command or clicked; None for events (judged elsewhere)."""
    if "command" in body:
        # A command names the workspace it was typed in, not the typist's: users.info says.
        return _Actor(str(body.get("user_id") or ""), str(body.get("channel_id") or ""), "")
    if body.get("type") in _INTERACTIONS:
        user = body.get("user")
        user = user if isinstance(user, dict) else {}
        channel = body.get("channel")
        channel = channel.get("id") if isinstance(channel, dict) else channel
        return _Actor(
            user=str(user.get("id") or ""),
            channel=str(channel or ""),
            team=str(user.get("team_id") or ""),
        )
    return None
