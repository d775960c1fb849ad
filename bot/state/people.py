"""People and channels, cached briefly (``keys.PERSON_TTL``, ``keys.CHANNEL_TTL``): a burst
of questions or App Home views costs one Slack lookup each, and a change in Slack applies
within a minute or five. Also the mark that an outsider was told, once an hour."""

from __future__ import annotations

import json

import redis.asyncio as redis

from bot.people import Channel, Person
from bot.state import keys
from bot.state.connect import redis_errors


class PeopleCache:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def person(self, user: str) -> Person | None:
        raw = await self._get(keys.person(user))
        return None if raw is None else Person.from_json(raw)

    async def keep_person(self, person: Person) -> None:
        await self._set(keys.person(person.id), person.to_json(), keys.PERSON_TTL)

    async def channel(self, channel: str) -> Channel | None:
        raw = await self._get(keys.channel(channel))
        return None if raw is None else Channel.from_json(raw)

    async def keep_channel(self, channel: Channel) -> None:
        await self._set(keys.channel(channel.id), channel.to_json(), keys.CHANNEL_TTL)

    async def members(self, channel: str) -> frozenset[str] | None:
        raw = await self._get(keys.channel_members(channel))
        return None if raw is None else frozenset(json.loads(raw))

    async def keep_members(self, channel: str, members: frozenset[str]) -> None:
        raw = json.dumps(sorted(members))
        await self._set(keys.channel_members(channel), raw, keys.CHANNEL_TTL)

    async def first_refusal(self, user: str, channel: str, ttl: int) -> bool:
        """True the first time within ``ttl`` seconds that ``user`` is refused in ``channel``."""
        async with redis_errors():
            return bool(await self._redis.set(keys.refused(user, channel), "1", nx=True, ex=ttl))

    async def _get(self, key: str) -> str | bytes | None:
        async with redis_errors():
            value: str | bytes | None = await self._redis.get(key)
        return value

    async def _set(self, key: str, value: str, ttl: int) -> None:
        async with redis_errors():
            await self._redis.set(key, value, ex=ttl)
