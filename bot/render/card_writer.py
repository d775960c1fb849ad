"""The run board in Slack: posting a run request's card and keeping it in step with the
request's state (``bot.runs.board.Board``)."""

from __future__ import annotations

import logging

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.render import cards
from bot.runs import RunRecord
from bot.slack.calls import slack_errors

log = logging.getLogger(__name__)


class CardWriter:
    def __init__(self, slack: AsyncWebClient) -> None:
        self._slack = slack

    async def post(self, record: RunRecord) -> str:
        """Post the card (in its thread, for proposals); raises SlackError."""
        card_blocks, text = cards.card(record)
        async with slack_errors("chat.postMessage"):
            response = await self._slack.chat_postMessage(
                channel=record.channel,
                thread_ts=record.thread_ts or None,
                blocks=card_blocks,
                text=text,
            )
        return str(response["ts"])

    async def update(self, record: RunRecord, note: str | None = None) -> None:
        """Show ``record`` as it is now; a failure is logged, the request goes on."""
        card_blocks, text = cards.card(record, note=note)
        try:
            async with slack_errors("chat.update"):
                await self._slack.chat_update(
                    channel=record.channel, ts=record.card_ts, blocks=card_blocks, text=text
                )
        except SlackError as exc:
            log.warning("could not update the card of %s: %s", record.id, exc.code)
