"""Reading Slack message events into questions, and deciding which ones are for us.

Slack sends both ``app_mention`` and ``message`` for one @mention, and retries slow
deliveries with the same ``event_id``; every question carries dedupe keys for both, so
whichever copy arrives first is answered and the rest are dropped.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from bot.conversation import Question
from bot.state import keys

log = logging.getLogger(__name__)

# Why a top-level channel message (the plain copy of an @mention, or chatter) is ignored.
TOP_LEVEL = "top-level channel message: only an @mention (its app_mention event) is answered"
# Edits, deletions, joins and bot posts are not questions; file shares and broadcasts are.
_ANSWERED_SUBTYPES = {None, "file_share", "thread_broadcast"}


@dataclass(frozen=True)
class Incoming:
    question: Question
    dedupe: list[str]
    # True when the message is only ours to answer if we already take part in its thread.
    needs_active_thread: bool


@dataclass(frozen=True)
class Identity:
    """Who the bot is in this workspace, resolved once at start-up."""

    user_id: str
    bot_id: str
    team_id: str


def read_event(body: dict[str, Any], identity: Identity) -> Incoming | None:
    event = body.get("event") or {}
    noise = _noise(event, identity)
    if noise is not None:
        _ignored(event, noise, quietly=True)
        return None
    kind = event.get("type")
    channel_type = event.get("channel_type") or ("channel" if kind == "app_mention" else "")
    thread_ts = event.get("thread_ts")
    if kind == "message" and channel_type != "im" and thread_ts is None:
        # A channel message outside a thread only reaches us by mention, which Slack also
        # sends as its own app_mention event: that one is answered.
        _ignored(event, TOP_LEVEL)
        return None
    # Threads belong to the workspace that received the event; in a Slack Connect channel
    # ``event.team`` is the author's organisation, which differs from one person to the next.
    team = str(body.get("team_id") or identity.team_id)
    question = Question(
        team=team,
        channel=str(event.get("channel", "")),
        thread_ts=str(thread_ts or event.get("ts", "")),
        ts=str(event.get("ts", "")),
        user=str(event.get("user", "")),
        text=strip_mention(str(event.get("text") or ""), identity.user_id),
        channel_type=channel_type or "channel",
        user_team=str(event.get("user_team") or event.get("team") or team),
    )
    if kind == "app_mention" and thread_ts and thread_ts != question.ts:
        # Called into a thread someone else started: what was said there is context.
        question = replace(question, context_channel=question.channel, context_ts=str(thread_ts))
    elif channel_type == "im" and (linked := linked_thread(question.text)):
        question = replace(question, context_channel=linked[0], context_ts=linked[1])
    if not question.channel or not question.ts or not question.user:
        _ignored(event, "no channel, ts or user")
        return None
    dedupe = [keys.seen_message(question.channel, question.ts)]
    if body.get("event_id"):
        dedupe.append(keys.seen_event(str(body["event_id"])))
    follow_up = kind == "message" and channel_type != "im"
    return Incoming(question=question, dedupe=dedupe, needs_active_thread=follow_up)


def _noise(event: dict[str, Any], identity: Identity) -> str | None:
    """Why the event is no person's new message (a bot's post, an edit, a join), or None."""
    if event.get("bot_id") or event.get("user") == identity.user_id:
        return "a bot's post"
    if event.get("subtype") not in _ANSWERED_SUBTYPES:
        return f"subtype {event.get('subtype')}"
    return None


def _ignored(event: dict[str, Any], reason: str, *, quietly: bool = False) -> None:
    """Log why a message gets no answer: the first thing to look for when someone asks why
    the bot stayed silent. Bots' posts and edits (every streamed answer makes some) are only
    worth a debug line."""
    where = {"channel": event.get("channel"), "message_ts": event.get("ts"), "reason": reason}
    log.log(logging.DEBUG if quietly else logging.INFO, "message ignored", extra=where)


# A link to a channel message: https://<workspace>.slack.com/archives/C…/p1700000000123456,
# with ``?thread_ts=…`` when the message is a reply.
_MESSAGE_LINK = re.compile(
    r"https://[^\s/|>]*slack\.com/archives/([CG][A-Z0-9]{2,})/p(\d{10})(\d{6})([^\s|>]*)"
)
_THREAD_TS = re.compile(r"[?&]thread_ts=(\d+\.\d+)")


def linked_thread(text: str) -> tuple[str, str] | None:
    """The channel and thread of the first channel message ``text`` links to."""
    found = _MESSAGE_LINK.search(text)
    if found is None:
        return None
    parent = _THREAD_TS.search(found[4])
    return found[1], parent[1] if parent else f"{found[2]}.{found[3]}"


def strip_mention(text: str, bot_user_id: str) -> str:
    return re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text).strip()
