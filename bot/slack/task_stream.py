"""A run's steps as Slack's native task timeline (``chat.startStream`` task chunks).

Each tool call is a ``task_update`` chunk that goes ``in_progress`` → ``complete`` (or
``error``) in place, and notes and the answer stream in as Markdown below them. Any refusal
returns False, and the caller shows the rest as plain messages: nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.markdown import byte_len
from bot.slack.blocks import MESSAGE_BYTES
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors

log = logging.getLogger(__name__)


@dataclass
class Recipient:
    user: str
    team: str


class TaskStream:
    def __init__(
        self,
        slack: AsyncWebClient,
        channel: str,
        thread_ts: str,
        recipient: Recipient,
        budget: SlackBudget,
    ) -> None:
        self._slack = slack
        self._channel = channel
        self._thread_ts = thread_ts
        self._recipient = recipient
        self._budget = budget
        self._ts: str | None = None
        self._failed = False
        self._bytes = 0

    async def task(self, task_id: str, title: str, status: str, **more: str) -> bool:
        chunk: dict[str, Any] = {"type": "task_update", "id": task_id, "title": title,
                                 "status": status}  # fmt: skip
        chunk.update({k: v for k, v in more.items() if v})
        return await self._send([chunk])

    async def markdown(self, text: str) -> bool:
        """Append Markdown, if it still fits this message; False means post it instead."""
        if self._bytes + byte_len(text) > MESSAGE_BYTES:
            return False
        if await self._send([{"type": "markdown_text", "text": text}]):
            self._bytes += byte_len(text)
            return True
        return False

    async def close(self) -> None:
        """Stop the stream, even one that stopped taking chunks, so it shows as finished."""
        if self._ts is None:
            return
        self._failed = False
        await self._call("chat.stopStream", channel=self._channel, ts=self._ts)
        self._ts = None

    async def _send(self, chunks: list[dict[str, Any]]) -> bool:
        if self._failed:
            return False
        if self._ts is None:
            return await self._open(chunks)
        return await self._call("chat.appendStream", channel=self._channel, ts=self._ts,
                                chunks=chunks)  # fmt: skip

    async def _open(self, chunks: list[dict[str, Any]]) -> bool:
        response = await self._request(
            "chat.startStream",
            channel=self._channel,
            thread_ts=self._thread_ts,
            recipient_user_id=self._recipient.user,
            recipient_team_id=self._recipient.team,
            task_display_mode="timeline",
            chunks=chunks,
        )
        if response is not None:
            self._ts = str(response["ts"])
        return response is not None

    async def _call(self, method: str, **params: Any) -> bool:
        return await self._request(method, **params) is not None

    async def _request(self, method: str, **params: Any) -> Any:
        await self._budget.take(method)
        try:
            async with slack_errors(method):
                return await self._slack.api_call(method, json=params)
        except SlackError as exc:
            log.info("native run display stopped (%s: %s); plain messages follow", method, exc.code)
            self._failed = True
            return None
