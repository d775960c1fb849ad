"""Asking Slack how the app is set up, with only a bot token.

``apps.manifest.export`` would say it directly but needs an app configuration token, which a
deployment does not have. ``agents.sessions.setStatus`` tells enough: it fails
``not_authorized`` for an app that is not declared an agent, and carries the warning
``missing_agent_session_stopped_event_subscription`` when the stop button's event is not
subscribed. The probe closes a session on a thread that cannot exist, so it changes nothing
anyone sees; its error (the thread is not found) is expected and ignored, its warnings kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

METHOD = "agents.sessions.setStatus"
NOT_SUBSCRIBED = "missing_agent_session_stopped_event_subscription"
# A well-formed channel and thread no workspace has.
_NOWHERE = "C00000000"
_NO_THREAD = "0000000000.000000"


@dataclass(frozen=True)
class AgentProbe:
    error: str | None  # None when Slack answered ok
    warnings: frozenset[str]

    @property
    def subscribed(self) -> bool:
        return NOT_SUBSCRIBED not in self.warnings


async def probe_agent(client: AsyncWebClient) -> AgentProbe:
    """Raises ``aiohttp.ClientError`` or ``TimeoutError`` when Slack cannot be reached."""
    try:
        response = await client.agents_sessions_setStatus(
            channel_id=_NOWHERE, thread_ts=_NO_THREAD, status="closed"
        )
    except SlackApiError as exc:
        data = exc.response.data if exc.response is not None else {}
        body = data if isinstance(data, dict) else {}
        return AgentProbe(str(body.get("error") or "unknown_error"), _warnings(body))
    body = response.data if isinstance(response.data, dict) else {}
    return AgentProbe(None, _warnings(body))


def _warnings(body: dict[str, Any]) -> frozenset[str]:
    """Slack lists warnings comma-separated in ``warning`` and in ``response_metadata``."""
    found = {w.strip() for w in str(body.get("warning") or "").split(",") if w.strip()}
    metadata = body.get("response_metadata")
    if isinstance(metadata, dict):
        found |= {str(w) for w in metadata.get("warnings") or []}
    return frozenset(found)


UNREACHABLE = (aiohttp.ClientError, TimeoutError)
