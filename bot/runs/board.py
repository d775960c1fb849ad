"""Where run requests are shown to people: a card per request, kept in step with its state.

The Slack implementation (``bot.render.card_writer.CardWriter``) renders the record as
Block Kit; the run services only hand it records, so they know nothing of layout or of
button action ids.
"""

from __future__ import annotations

from typing import Protocol

from bot.runs.record import RunRecord


class Board(Protocol):
    async def post(self, record: RunRecord) -> str:
        """Show a new request; returns the card's message ts. Raises SlackError."""
        ...

    async def update(self, record: RunRecord, note: str | None = None) -> None:
        """Show ``record`` as it is now; a failure is logged, never raised."""
        ...
