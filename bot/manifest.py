"""The Slack app manifest for this bot, built from the runbooks file.

``python -m bot manifest --url https://APP.herokuapp.com`` prints it as JSON (Slack's
"From a manifest" dialog takes JSON or YAML). Events, the ``/run`` command and buttons all
point at the one ``/slack/events`` URL; with ``--socket`` there are no URLs at all, because
Socket Mode delivers everything over the app's WebSocket.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.runbooks import Catalog
from bot.suggestions import from_catalog

EVENTS_PATH = "/slack/events"
DEFAULT_NAME = "Ops Copilot"
BOT_DISPLAY_NAME = "copilot"
AGENT_DESCRIPTION = "Ask about your Heroku apps, or /run a runbook."

# What the bot calls or receives; ``python -m bot check`` compares the token's scopes to these.
REQUIRED_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "commands",
    "im:history",
    "channels:history",
    "usergroups:read",
    "files:write",
    # Who is a guest or from another organisation (users.info), and who can read a public
    # channel's runs in App Home (conversations.info / .members).
    "users:read",
    "channels:read",
)
# Threads in private channels and group DMs, agent sessions and suggested prompts
# (assistant:write, which Slack grants to apps declared as agents), and who can read a
# private channel's, group DM's or DM's runs in App Home.
EXTRA_SCOPES = (
    "assistant:write",
    "groups:history",
    "mpim:history",
    "groups:read",
    "im:read",
    "mpim:read",
)
BOT_EVENTS = (
    # The stop button of an agent session; without it Slack shows a loader nobody can click.
    "agent_session_stopped",
    # Also the Messages tab: agent apps get it (tab "messages") instead of
    # assistant_thread_started.
    "app_home_opened",
    "app_mention",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
)

# Slack's manifest schema limits.
_NAME_LIMIT = 35
_USAGE_HINT_LIMIT = 1000
_GENERIC_HINT = "<runbook> key=value … (or: help)"

Manifest = dict[str, Any]


def build(catalog: Catalog, *, url: str | None, socket: bool, name: str = DEFAULT_NAME) -> Manifest:
    """The manifest for an app served at ``url``, or for Socket Mode when ``socket``."""
    if socket == (url is not None):
        raise ConfigError("give either --url https://APP.herokuapp.com or --socket.")
    endpoint = None if socket else events_url(url or "")
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": _display(name),
        "features": _features(catalog, endpoint),
        "oauth_config": {"scopes": {"bot": sorted({*REQUIRED_SCOPES, *EXTRA_SCOPES})}},
        "settings": _settings(endpoint),
    }


def render(manifest: Manifest) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def events_url(url: str) -> str:
    """``https://host[/prefix]`` → ``https://host[/prefix]/slack/events``; Slack wants HTTPS."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError(
            f"--url must be the app's public https:// address, e.g. https://APP.herokuapp.com "
            f"(got {url!r})."
        )
    base = f"https://{parts.netloc}{parts.path.rstrip('/')}"
    return base if base.endswith(EVENTS_PATH) else base + EVENTS_PATH


def usage_hint(catalog: Catalog) -> str:
    """What Slack shows while someone types ``/run``: the runbook names, so they need no docs."""
    names = list(catalog.runbooks)
    if not names:
        return _GENERIC_HINT
    hint = f"<runbook> key=value … (runbooks: {', '.join(names)}; or: help)"
    return hint if len(hint) <= _USAGE_HINT_LIMIT else _GENERIC_HINT


def _display(name: str) -> dict[str, str]:
    if not 1 <= len(name) <= _NAME_LIMIT:
        raise ConfigError(f"--name must be 1 to {_NAME_LIMIT} characters (got {len(name)}).")
    return {
        "name": name,
        "description": "Answers ops questions and runs approved runbooks on Heroku.",
        "background_color": "#2c2d30",
    }


def _features(catalog: Catalog, endpoint: str | None) -> dict[str, Any]:
    command: dict[str, Any] = {
        "command": "/run",
        "description": "Run an approved runbook on Heroku",
        "usage_hint": usage_hint(catalog),
        "should_escape": False,
    }
    if endpoint:
        command["url"] = endpoint
    return {
        "bot_user": {"display_name": BOT_DISPLAY_NAME, "always_online": True},
        "app_home": {
            "home_tab_enabled": True,
            "messages_tab_enabled": True,
            "messages_tab_read_only_enabled": False,
        },
        # Declares the app an agent (sessions, the stop button, the Messages tab greeting);
        # Slack retires assistant_view. The prompts are the defaults before any greeting.
        "agent_view": {
            "agent_description": AGENT_DESCRIPTION,
            "suggested_prompts": [p.to_slack() for p in from_catalog(catalog)],
        },
        "slash_commands": [command],
    }


def _settings(endpoint: str | None) -> dict[str, Any]:
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if endpoint:
        events["request_url"] = endpoint
        interactivity["request_url"] = endpoint
    return {
        "event_subscriptions": events,
        "interactivity": interactivity,
        "org_deploy_enabled": False,
        "socket_mode_enabled": endpoint is None,
        "token_rotation_enabled": False,
    }
