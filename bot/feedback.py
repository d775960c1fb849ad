"""Feedback on answers: a person's thumbs up or down on one answer, and the week's counts.

An answer is named by its trace id, so a vote can be read beside the answer's ``answered``
log line. Each click is audited (``copilot:audit``, action ``feedback``) and logged as one
``feedback`` line; only the latest vote of each person on each answer counts.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from bot.state.feedback import FeedbackStore, Tally

__all__ = ["Feedback", "Tally", "Vote"]

log = logging.getLogger(__name__)


class Vote(StrEnum):
    UP = "up"
    DOWN = "down"


class Feedback:
    def __init__(self, store: FeedbackStore, model: str) -> None:
        self._store = store
        # The bot answers with one configured model; a vote is on an answer it wrote.
        self._model = model

    async def record(self, answer: str, user: str, vote: Vote) -> None:
        """Make ``vote`` ``user``'s vote on ``answer``, replacing an earlier one."""
        replaced = await self._store.vote(answer, user, vote.value)
        fields = {
            "answer": answer,
            "user": user,
            "vote": vote.value,
            "model": self._model,
            "replaced": replaced,
        }
        await self._store.audit(**fields)
        log.info("feedback", extra={**fields, "replaced": replaced or None})

    async def tally(self) -> Tally:
        """Votes standing from the last 7 days."""
        return await self._store.tally()
