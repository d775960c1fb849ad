"""Message events in: read, dedupe and queue a question, then let Slack know we have it.

Over HTTP this is the fast path in front of Bolt for the one kind of request that comes in
bursts, message events: the signature is checked, the question is queued in Redis, and only
then does Slack get its 200, so an acknowledged question is never lost with the process.
That is one HMAC and one Redis round trip per event; everything else (slash commands,
buttons, App Home, URL verification) goes through Bolt. In Socket Mode, Bolt acknowledges
and calls ``take`` from its listener.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import notices
from bot.ask import Accepted, ThreadScheduler, traced
from bot.background import Background
from bot.conversation import Question
from bot.errors import BotError, SlackError
from bot.inflight import InFlight
from bot.slack.calls import slack_errors
from bot.slack.events import Identity, read_event

log = logging.getLogger(__name__)

MESSAGE_EVENTS = frozenset({"app_mention", "message"})


class Intake:
    def __init__(
        self,
        scheduler: ThreadScheduler,
        client: AsyncWebClient,
        identity: Identity,
        inflight: InFlight,
        background: Background,
        signing_secret: str | None,
    ) -> None:
        self._scheduler = scheduler
        self._client = client
        self._identity = identity
        self._inflight = inflight
        self._background = background
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None

    async def take(self, body: dict[str, Any]) -> None:
        """Queue the question in a message event, or drop it when it is not for us. A
        question the limits refuse gets one short reply in its thread (at most one a
        minute); a failure is told to the person in the thread, never raised."""
        incoming = read_event(body, self._identity)
        if incoming is None:
            return
        question = incoming.question
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

    async def http(self, headers: Mapping[str, str], body: bytes) -> int | None:
        """The HTTP status for a signed Events API delivery of a message event, once its
        question is queued; None leaves the request to Bolt."""
        if self._verifier is None or not body.startswith(b"{"):
            return None  # slash commands and buttons are form-encoded
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not _is_message_event(payload):
            return None
        if not _signed(self._verifier, headers, body):
            return 401
        await self.take(payload)
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


def _signed(verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes) -> bool:
    try:
        return verifier.is_valid(
            body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        )
    except ValueError:  # a timestamp that is not a number
        return False


def _is_message_event(payload: object) -> bool:
    if not isinstance(payload, dict) or payload.get("type") != "event_callback":
        return False
    event = payload.get("event")
    return isinstance(event, dict) and event.get("type") in MESSAGE_EVENTS
