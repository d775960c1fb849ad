"""User-group members, cached briefly: a burst of approval clicks costs one Slack call, and
a change of membership applies within ``keys.USERGROUP_TTL`` seconds."""

from __future__ import annotations

import json

import redis.asyncio as redis

from bot.state import keys
from bot.state.connect import redis_errors


class UserGroupCache:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def get(self, group: str) -> set[str] | None:
        """The members last put for ``group``, or None when they have expired."""
        async with redis_errors():
            cached = await self._redis.get(keys.usergroup_members(group))
        return None if cached is None else set(json.loads(cached))

    async def put(self, group: str, members: set[str]) -> None:
        async with redis_errors():
            await self._redis.set(
                keys.usergroup_members(group), json.dumps(sorted(members)), ex=keys.USERGROUP_TTL
            )
