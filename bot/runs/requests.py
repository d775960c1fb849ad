"""Run requests as typed records, every move checked against the table in ``states``.

The Redis store applies a move only from the source states that ``TRANSITIONS`` allows for
its target, and stamps who made it and when in the same step; callers get a ``MoveResult``.
"""

from __future__ import annotations

import time

from bot.runs.record import RunRecord, from_fields, stamps, to_fields
from bot.runs.states import (
    BEFORE_EXPIRY,
    Expired,
    Missing,
    Moved,
    MoveResult,
    RunState,
    WrongState,
    sources,
)
from bot.state import keys
from bot.state.requests import RequestStore


class Requests:
    def __init__(self, store: RequestStore) -> None:
        self._store = store

    async def create(self, record: RunRecord) -> None:
        expires_at = record.expires_at if record.state.waiting else 0.0
        await self._store.create(
            record.id, to_fields(record), created_at=record.created_at, expires_at=expires_at
        )

    async def get(self, request_id: str) -> RunRecord | None:
        fields = await self._store.get(request_id)
        return from_fields(request_id, fields) if fields else None

    async def recent(self, limit: int = keys.RECENT_REQUESTS_MAX) -> list[RunRecord]:
        """The newest requests first."""
        return [from_fields(i, fields) for i, fields in await self._store.recent(limit)]

    async def set_card(self, request_id: str, card_ts: str) -> None:
        await self._store.set_field(request_id, "card_ts", card_ts)

    async def move(
        self, request_id: str, target: RunState, who: str, *, reason: str | None = None
    ) -> MoveResult:
        """Move the request to ``target`` if the table allows it from where it is;
        ``reason`` is stored with a move to ``outdated``."""
        now = time.time()
        verdict, state = await self._store.move(
            request_id,
            target=target.value,
            sources=[s.value for s in sources(target)],
            stamps=stamps(target, who, now, reason=reason),
            before_expiry=target in BEFORE_EXPIRY,
            now=now,
            # An approved run waits to start; the index lets a sweep find it if its
            # hand-over is lost.
            to_start=target is RunState.APPROVED,
        )
        if verdict == "moved":
            return Moved(RunState(state))
        if verdict == "expired":
            return Expired()
        if verdict == "wrong_state":
            return WrongState(RunState(state))
        return Missing()

    async def due_for_expiry(self) -> list[str]:
        return await self._store.due_for_expiry(time.time())

    async def approved_before(self, cutoff: float) -> list[str]:
        """Approved requests waiting to start since before ``cutoff`` (epoch seconds)."""
        return await self._store.approved_before(cutoff)

    async def forget_approved(self, request_id: str) -> None:
        await self._store.forget_approved(request_id)

    async def forget_pending(self, request_id: str) -> None:
        await self._store.forget_pending(request_id)

    async def audit(self, what: str, **fields: str) -> None:
        await self._store.audit(what, **fields)

    async def refused(self, what: str, **fields: str) -> None:
        """A refusal, audited apart so a flood of them cannot push decisions out."""
        await self._store.refused(what, **fields)
