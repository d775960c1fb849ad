"""Who may use the bot, and who may see a channel's runs.

Outsiders: with ``allow_external_users = false`` (the default), people from another
organisation (Slack Connect: their team differs from the bot's, by the event or by
``users.info``) and guests (``is_restricted`` / ``is_ultra_restricted``) get one polite
refusal per channel per hour and nothing else. A person whose account cannot be read is
refused too (the safe failure), with words that say so. ``true`` turns all of this off.

Channels: App Home shows a run only to people who can read the channel it was asked in.
A public channel is readable by every full member of the workspace (they can open it), so
its member list is only read for guests and outsiders; private channels, group DMs and
DMs are readable by their members only (``conversations.members``). A lookup that fails
hides the run.

Both look-ups are cached briefly in Redis (``bot.state.people``); a cache that cannot be
reached is skipped rather than trusted, so nothing here raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot import notices
from bot.conversation import Question
from bot.errors import SlackError, StateError
from bot.people import Channel, Person
from bot.slack.calls import slack_errors
from bot.slack.people import read_channel, read_members, read_person
from bot.state import keys
from bot.state.people import PeopleCache

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    """The bot will not act for this person here. ``text`` is what to tell them; None when
    they were told within the hour."""

    text: str | None


class Access:
    def __init__(
        self, slack: AsyncWebClient, cache: PeopleCache, *, team: str, allow_external: bool
    ) -> None:
        self._slack = slack
        self._cache = cache
        self._team = team
        self._allow_external = allow_external
        self._lookups: dict[str, asyncio.Future[Person | None]] = {}

    # -- outsiders ------------------------------------------------------------------------

    def foreign(self, team: str) -> bool:
        """Does an event's ``team`` alone make its author an outsider (no lookup needed)?"""
        return not self._allow_external and bool(team) and team != self._team

    async def check(
        self, user: str, channel: str, *, team: str = "", within: float | None = None
    ) -> Refusal | None:
        """None when ``user`` may use the bot; ``team`` is the one a payload names, if any.
        ``within``: seconds a Slack lookup may take (one that takes longer counts as failed)."""
        if self._allow_external:
            return None
        if self.foreign(team):
            return await self._refuse(user, channel, notices.OUTSIDER, keys.REFUSAL_TTL)
        person = await self.person(user, within=within)
        if person is None:
            return await self._refuse(user, channel, notices.UNCONFIRMED, keys.UNCONFIRMED_TTL)
        if not self._full_member(person):
            return await self._refuse(user, channel, notices.OUTSIDER, keys.REFUSAL_TTL)
        return None

    async def admits(self, question: Question) -> bool:
        """May the asker have an answer? If not, they are told in the thread (only they
        see it), once."""
        refusal = await self.check(question.user, question.channel, team=question.user_team)
        if refusal is None:
            return True
        if refusal.text is not None:
            await self._tell(question, refusal.text)
        return False

    async def _refuse(self, user: str, channel: str, text: str, ttl: int) -> Refusal:
        try:
            first = await self._cache.first_refusal(user, channel, ttl)
        except StateError:
            first = True  # better told twice than never
        log.info("turned away", extra={"outsider": user, "in_channel": channel, "told": first})
        return Refusal(text if first else None)

    async def _tell(self, question: Question, text: str) -> None:
        try:
            async with slack_errors("chat.postEphemeral"):
                await self._slack.chat_postEphemeral(
                    channel=question.channel,
                    user=question.user,
                    thread_ts=question.thread_ts,
                    text=text,
                )
        except SlackError as exc:
            log.warning("could not tell %s why they were turned away: %s", question.user, exc)

    # -- channels -------------------------------------------------------------------------

    async def can_see(self, user: str, channel: str) -> bool:
        """Can ``user`` read ``channel``? False when Slack cannot tell us."""
        try:
            found = await self._channel(channel)
            if found.public:
                person = await self.person(user)
                if person is not None and self._full_member(person):
                    return True
            return user in await self._members(channel)
        except SlackError as exc:
            log.warning("could not tell who can see %s (%s): its runs stay hidden", channel, exc)
            return False

    def _full_member(self, person: Person) -> bool:
        return person.team == self._team and not person.guest

    # -- look-ups through the cache -------------------------------------------------------

    async def person(self, user: str, *, within: float | None = None) -> Person | None:
        """``users.info`` for ``user``, cached; None when Slack cannot say (in time).
        Concurrent look-ups of one person in this process share one call: a burst of
        questions from a few people costs a few calls, not one per question."""
        cached = await _quietly(self._cache.person(user))
        if cached is not None:
            return cached
        lookup = self._lookups.get(user)
        if lookup is None:
            lookup = asyncio.ensure_future(self._read_person(user))
            self._lookups[user] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(user, None))
        try:
            async with asyncio.timeout(within):
                # Shielded: a waiter that gives up does not cancel the others' look-up.
                return await asyncio.shield(lookup)
        except TimeoutError:
            log.warning("could not look up %s in %ss", user, within)
            return None

    async def _read_person(self, user: str) -> Person | None:
        try:
            found = await read_person(self._slack, user)
        except SlackError as exc:
            log.warning("could not look up %s: %r", user, exc)
            return None
        await _quietly(self._cache.keep_person(found))
        return found

    async def _channel(self, channel: str) -> Channel:
        cached = await _quietly(self._cache.channel(channel))
        if cached is not None:
            return cached
        found = await read_channel(self._slack, channel)
        await _quietly(self._cache.keep_channel(found))
        return found

    async def _members(self, channel: str) -> frozenset[str]:
        cached = await _quietly(self._cache.members(channel))
        if cached is not None:
            return cached
        found = await read_members(self._slack, channel)
        await _quietly(self._cache.keep_members(channel, found))
        return found


async def _quietly(step: Awaitable[T]) -> T | None:
    """A cache step; an unreachable cache is a miss (and a write that did not happen)."""
    try:
        return await step
    except StateError as exc:
        log.warning("people cache unavailable: %s", exc)
        return None
