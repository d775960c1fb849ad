"""What Slack would send for what the person typed: events, slash commands, button clicks.

The bodies have the shape Socket Mode delivers (the same dicts Bolt gets from Slack), so
the listeners that handle them cannot tell the shell from a workspace.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bot.shell.console import TEAM_ID

Json = dict[str, Any]
APP_ID = "A0SHELL"
_ids = itertools.count(1)


def direct_message(user: str, channel: str, text: str, ts: str, thread_ts: str | None) -> Json:
    """A DM to the bot; in a thread when ``thread_ts`` is given, so history carries over."""
    event: Json = {
        "type": "message",
        "channel_type": "im",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "team": TEAM_ID,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return _delivered(event)


def session_stopped(user: str, channel: str, thread_ts: str) -> Json:
    """The stop button of the session in ``thread_ts`` pressed by ``user``."""
    event: Json = {
        "type": "agent_session_stopped",
        "channel": channel,
        "thread_ts": thread_ts,
        "streaming_message_ts": [],
        "user": user,
        "event_ts": f"{time.time():.6f}",
    }
    return _delivered(event)


def _delivered(event: Json) -> Json:
    """An event as the Events API wraps it."""
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event_id": f"EvSHELL{next(_ids):06d}",
        "event_time": int(time.time()),
        "event": event,
    }


def slash_command(user: str, channel: str, text: str, response_url: str) -> Json:
    return {
        "command": "/run",
        "text": text,
        "user_id": user,
        "user_name": user,
        "team_id": TEAM_ID,
        "channel_id": channel,
        "api_app_id": APP_ID,
        "response_url": response_url,
        "trigger_id": f"shell.{next(_ids)}",
    }


def button_click(
    user: str, channel: str, card_ts: str, action_id: str, value: str, response_url: str
) -> Json:
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": TEAM_ID},
        "team": {"id": TEAM_ID},
        "api_app_id": APP_ID,
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": card_ts, "channel_id": channel},
        "response_url": response_url,
        "trigger_id": f"shell.{next(_ids)}",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": f"run:{value}",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
