"""Writing one answer into a Slack thread while it is generated.

Native streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``) is used where
the workspace allows it; where Slack refuses it, the answer is written by editing one
message (``chat.update``). Either way an answer that outgrows a message continues in the
next one, and a message Slack stops accepting (an expired stream, an error) is frozen with
what it already shows and the text goes on in a new message: nothing is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.markdown import fit
from bot.slack import blocks
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors
from bot.text import clip

log = logging.getLogger(__name__)

EMPTY_ANSWER = "_The model returned an empty answer._"
# Refusals that will not change: the channel edits messages from now on. Anything else
# (a rate limit, a network error) only sends this answer down the editing path.
PERMANENT_REFUSALS = {
    "channel_type_not_supported",
    "not_allowed",
    "not_allowed_token_type",
    "missing_scope",
    "unknown_method",
    "method_not_supported_for_channel_type",
    "feature_not_enabled",
    "team_not_allowed",
}


@dataclass(frozen=True)
class Place:
    """Where an answer goes, and who it is for (native streams need the recipient)."""

    channel: str
    thread_ts: str
    user: str
    team: str
    is_dm: bool


@dataclass
class Replier:
    """Opens replies; remembers channels that refused native streaming, so we ask once."""

    client: AsyncWebClient
    budget: SlackBudget
    limit_bytes: int = blocks.MESSAGE_BYTES
    native: bool = True
    no_stream_channels: set[str] = field(default_factory=set)
    # Slack closes a native stream after about 5 minutes; move on before it does.
    stream_max_age: float = 270.0
    # Waiting longer than this for a chat.startStream slot, an answer edits a message instead.
    start_wait: float = 1.0
    # A mid-answer update that would wait longer than this is skipped; its text goes next time.
    update_wait: float = 0.25
    # Feedback buttons for a finished answer, given its id (``bot.render.buttons.feedback``).
    feedback: Callable[[str], blocks.Block] | None = None

    async def pace(self, method: str, scope: str = "", max_wait: float | None = None) -> bool:
        return await self.budget.take(method, scope, max_wait)

    def open(self, place: Place) -> ThreadReply:
        return ThreadReply(self, place)


class ThreadReply:
    def __init__(self, replier: Replier, place: Place) -> None:
        self._r = replier
        self._client = replier.client
        self._place = place
        self._native = replier.native and place.channel not in replier.no_stream_channels
        self._ts: str | None = None
        self._busy = False  # the workspace had no chat.startStream slot for this answer
        self._opened = 0.0
        self._sent = ""
        self._pending = ""
        self.text = ""
        # Blocks for under the answer's last message (footer, feedback buttons): the edit
        # that carries the last text carries them too, so they cost no call of their own.
        self._closing: list[blocks.Block] = []
        self._closing_shown = False
        # The agent session status to set with the last chat.stopStream (saves a call),
        # once ``session_live`` says the session exists; ``session_sent`` says it went.
        self.session_status: str | None = None
        self.session_live = False
        self.session_sent = False

    async def begin(self) -> None:
        """Show that the bot is working before the first token arrives."""
        if self._place.is_dm:
            # Only assistant threads (DMs) have a status; in channels the message shows it.
            await self._set_status("is thinking…")
        if self._native and await self._start_stream(None):
            return
        busy, self._native = self._busy, False
        if not busy:
            self._ts = await self._post(blocks.thinking(), "Thinking…")
        # When busy, a placeholder would only queue its first edit behind every other answer's
        # chat.update; the first text is posted instead, from the channel's own budget.

    async def write(self, text: str) -> None:
        """Add text to the answer; it reaches Slack now, or with the next call if the
        workspace's budget for this method is busy (text is coalesced, never dropped)."""
        self.text += text
        self._pending += text
        await self._flush(wait=False)

    async def finish(self, footer: str | None = None, answer: str | None = None) -> None:
        """Send what is left; ``footer`` goes in a context block under the last message, and
        so do feedback buttons naming ``answer`` when it is given."""
        if not self.text:
            self.text = self._pending = EMPTY_ANSWER
        extra = [blocks.context(footer)] if footer else []
        if answer and self._r.feedback is not None:
            extra.append(self._r.feedback(answer))
        self._closing = extra
        await self._flush(wait=True)
        await self._close_message(extra, last=True)

    async def fail(self, notice: str) -> None:
        """End the answer with a plain notice, keeping whatever was already written."""
        addition = f"\n\n{notice}" if self.text else notice
        self.text += addition
        self._pending += addition
        await self.finish()

    async def _flush(self, *, wait: bool) -> None:
        while self._pending:
            head, rest = fit(self._sent, self._pending, self._r.limit_bytes)
            closing = self._closing if wait and rest is None else []
            if head and not await self._append(head, wait=wait, closing=closing):
                return
            self._pending = rest or ""
            if rest is not None:
                await self._close_message()

    async def _append(
        self, text: str, *, wait: bool, closing: list[blocks.Block] | None = None
    ) -> bool:
        if self._native and self._ts is not None and self._stream_too_old():
            await self._close_message()
        if self._ts is None:
            await self._open_with(text, closing)
            return True
        max_wait = None if wait else self._r.update_wait
        if self._native:
            return await self._append_native(text, max_wait)
        return await self._append_edit(text, max_wait, closing)

    async def _open_with(self, text: str, closing: list[blocks.Block] | None = None) -> None:
        if self._native and await self._start_stream(text):
            self._sent = text
            return
        self._native = False
        self._ts = await self._post([blocks.markdown(text), *(closing or [])], clip(text))
        self._sent = text
        self._closing_shown = bool(closing)

    def _stream_too_old(self) -> bool:
        return time.monotonic() - self._opened > self._r.stream_max_age

    async def _append_native(self, text: str, max_wait: float | None) -> bool:
        if not await self._r.pace("chat.appendStream", max_wait=max_wait):
            return False
        try:
            async with slack_errors("chat.appendStream"):
                await self._client.chat_appendStream(
                    channel=self._place.channel, ts=self._ts or "", markdown_text=text
                )
            self._sent += text
        except SlackError as exc:
            # An expired or stopped stream takes no more text: freeze it, go on below it.
            log.warning("native stream ended early (%s); continuing in a new message", exc.code)
            await self._freeze()
            await self._open_with(text)
        return True

    async def _append_edit(
        self, text: str, max_wait: float | None, closing: list[blocks.Block] | None = None
    ) -> bool:
        if not await self._r.pace("chat.update", max_wait=max_wait):
            return False
        try:
            await self._update(self._sent + text, paced=True, extra=closing)
            self._sent += text
            self._closing_shown = bool(closing)
        except SlackError as exc:
            log.warning("could not edit the answer (%s); continuing in a new message", exc.code)
            self._reset()
            await self._open_with(text)
        return True

    async def _close_message(
        self, extra: list[blocks.Block] | None = None, *, last: bool = False
    ) -> None:
        if self._ts is None:
            return
        extra = extra or None
        if self._native:
            status = self.session_status if last and self.session_live else None
            await self._r.pace("chat.stopStream")
            try:
                async with slack_errors("chat.stopStream"):
                    await self._client.chat_stopStream(
                        channel=self._place.channel, ts=self._ts, blocks=extra,
                        session_status=status,
                    )  # fmt: skip
                self.session_sent = status is not None
            except SlackError as exc:
                log.warning("could not stop the stream (%s); freezing it instead", exc.code)
                await self._freeze()
        elif extra and not self._closing_shown:
            await self._add_footer(extra)
        self._reset()

    async def _add_footer(self, extra: list[blocks.Block]) -> None:
        try:
            await self._update(self._sent, extra=extra)
        except SlackError as exc:
            log.warning("could not add the footer (%s)", exc.code)

    async def _freeze(self) -> None:
        """Make a message show exactly the text it was confirmed to hold; an empty stream
        is stopped instead, so no blank "typing" message stays above the continuation."""
        try:
            if self._sent:
                await self._update(self._sent)
            elif self._native and self._ts is not None:
                async with slack_errors("chat.stopStream"):
                    await self._client.chat_stopStream(channel=self._place.channel, ts=self._ts)
        except SlackError as exc:
            log.warning("could not freeze a message (%s)", exc.code)
        self._reset()

    def _reset(self) -> None:
        self._ts = None
        self._sent = ""
        self._closing_shown = False

    async def _start_stream(self, text: str | None) -> bool:
        place = self._place
        if not await self._r.pace("chat.startStream", max_wait=self._r.start_wait):
            self._busy = True  # this answer edits a message instead of streaming
            return False
        try:
            async with slack_errors("chat.startStream"):
                response = await self._client.chat_startStream(
                    channel=place.channel,
                    thread_ts=place.thread_ts,
                    markdown_text=text,
                    recipient_user_id=None if place.is_dm else place.user,
                    recipient_team_id=None if place.is_dm else place.team,
                )
        except SlackError as exc:
            log.info(
                "native streaming refused in %s (%s); editing messages", place.channel, exc.code
            )
            if exc.code in PERMANENT_REFUSALS:
                self._r.no_stream_channels.add(place.channel)
            return False
        self._ts = str(response["ts"])
        self._opened = time.monotonic()
        return True

    async def _post(self, message_blocks: list[blocks.Block], text: str) -> str:
        await self._r.pace("chat.postMessage", self._place.channel)
        async with slack_errors("chat.postMessage"):
            response = await self._client.chat_postMessage(
                channel=self._place.channel,
                thread_ts=self._place.thread_ts,
                blocks=message_blocks,
                text=text,
            )
        return str(response["ts"])

    async def _update(
        self, text: str, *, paced: bool = False, extra: list[blocks.Block] | None = None
    ) -> None:
        if not paced:
            await self._r.pace("chat.update")
        async with slack_errors("chat.update"):
            await self._client.chat_update(
                channel=self._place.channel,
                ts=self._ts or "",
                blocks=[blocks.markdown(text), *(extra or [])],
                text=clip(text),
            )

    async def _set_status(self, status: str) -> None:
        # Only assistant threads accept a status; elsewhere the streaming message shows it.
        try:
            async with slack_errors("assistant.threads.setStatus"):
                await self._client.assistant_threads_setStatus(
                    channel_id=self._place.channel, thread_ts=self._place.thread_ts, status=status
                )
        except SlackError as exc:
            log.debug("no thread status here (%s)", exc.code)
