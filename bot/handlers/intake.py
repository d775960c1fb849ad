"""Message events in: read, dedupe and queue a question, then let Slack know we have it.

Over HTTP every request passes the gate first (``bot.slack.inbound``: signature, then a
well-formed body; 401 or 400 and one log line otherwise). Message events, the one kind that
comes in bursts, then take the fast path: the question is queued in Redis, and only then
does Slack get its 200, so an acknowledged question is never lost with the process. That is
one HMAC and one Redis round trip per event; everything else (slash commands, buttons, App
Home, URL verification) goes on to Bolt, which checks the signature again. In Socket Mode,
Bolt acknowledges and calls ``take`` from its listener.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot import notices
from bot.access import Access
from bot.ask import Accepted, ThreadScheduler, traced
from bot.background import Background
from bot.conversation import Question
from bot.errors import BotError, DeliveryRefused, SlackError
from bot.inflight import InFlight
from bot.slack.calls import slack_errors
from bot.slack.events import Identity, read_event
from bot.slack.inbound import Delivery, Gate

log = logging.getLogger(__name__)


class Intake:
    def __init__(
        self,
        scheduler: ThreadScheduler,
        client: AsyncWebClient,
        identity: Identity,
        inflight: InFlight,
        background: Background,
        signing_secret: str | None,
        access: Access,
    ) -> None:
        self._scheduler = scheduler
        self._client = client
        self._identity = identity
        self._inflight = inflight
        self._background = background
        self._gate = Gate(signing_secret)
        self._access = access

    async def take(self, body: dict[str, Any]) -> None:
        """Queue the question in a message event, or drop it when it is not for us. A
        question the limits refuse gets one short reply in its thread (at most one a
        minute); a failure is told to the person in the thread, never raised."""
        incoming = read_event(body, self._identity)
        if incoming is None:
            return
        question = incoming.question
        if self._access.foreign(question.user_team) and not incoming.needs_active_thread:
            # Someone from another organisation asked: turned away here, before anything is
            # queued (and with no lookup, so the ack stays fast). Guests, and outsiders in
            # threads we answer, are found where the question is answered.
            self._background.spawn(self._access.admits(question), "turning away an outsider")
            return
        async with self._inflight.hold():
            with traced(question):
                try:
                    accepted = await self._scheduler.submit(
                        question, incoming.dedupe, follow_up=incoming.needs_active_thread
                    )
                    if accepted.to_tell:
                        self._background.spawn(self._refuse(question, accepted), "refusing")
                except BotError as exc:
                    log.error("could not take a question in %s: %s", question.channel, exc)
                    if incoming.needs_active_thread:
                        return  # maybe not our thread at all: stay quiet rather than guess
                    self._background.spawn(
                        self._tell(question.channel, question.thread_ts, notices.describe(exc)),
                        "telling the user",
                    )

    async def http(self, headers: Mapping[str, str], body: bytes) -> int | Delivery:
        """The HTTP status for a request refused at the gate, or for a message event once
        its question is queued; any other admitted request is returned for Bolt."""
        try:
            delivery = self._gate.admit(headers, body)
        except DeliveryRefused as exc:
            log.warning("refused a request to /slack/events (%d): %s", exc.status, exc)
            return exc.status
        if not delivery.is_message_event:
            return delivery
        await self.take(delivery.body)
        return 200

    async def _refuse(self, question: Question, accepted: Accepted) -> None:
        """One short reply in the thread for a question the limits refused."""
        text = await self._scheduler.refusal(question, accepted)
        await self._tell(question.channel, question.thread_ts, text)

    async def _tell(self, channel: str, thread_ts: str, text: str) -> None:
        """Best effort: when even this fails, the log is all that is left."""
        try:
            async with slack_errors("chat.postMessage"):
                await self._client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except SlackError as exc:
            log.error("could not tell the user in %s: %s", channel, exc)
