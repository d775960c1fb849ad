"""One answer's messages as Slack shows them, and the sends that change them.

``Sender`` keeps what the current message is confirmed to show and what is still pending,
and makes each kind of send: post a new message, append to a native stream, stop it with
the rest, edit, and close the last message. ``bot.slack.reply`` decides when a send is due
and which one; the Slack calls themselves are in ``bot.slack.messages``, the cuts in
``bot.slack.cuts``, and which budget the finishing text of an edited message goes by in
``bot.slack.turns``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import SlackError
from bot.markdown import open_fence
from bot.slack import blocks, cuts, messages, turns
from bot.slack.budget import SlackBudget
from bot.slack.cuts import Cut
from bot.slack.messages import PERMANENT_REFUSALS, STREAM_GONE, Place
from bot.text import clip

# The answer's log lines keep the one logger name operators filter on.
log = logging.getLogger("bot.slack.reply")


@dataclass
class Outbox:
    """What one process's answers share: the client and budget, the settings, the channels
    that refused native streaming (so we ask once), and the counts answers go by."""

    client: AsyncWebClient
    budget: SlackBudget
    limit_bytes: int = blocks.MESSAGE_BYTES
    native: bool = True
    no_stream_channels: set[str] = field(default_factory=set)
    # Slack closes a native stream after about 5 minutes; move on before it does.
    stream_max_age: float = 270.0
    # Waiting longer than this for a chat.startStream slot, an answer posts a message instead.
    start_wait: float = 1.0
    # A mid-answer send that would wait longer than this is skipped; its text goes next time.
    update_wait: float = 0.25
    # At most one mid-answer send per message this often (Slack asks for about one a second).
    update_interval: float = 1.0
    # Feedback buttons for a finished answer, given its id (``bot.render.buttons.feedback``).
    feedback: Callable[[str], blocks.Block] | None = None
    # Answers being written by this process now: they share the mid-answer budget.
    writing: int = 0
    # Per channel, this process's answers that will need a post of the channel's to show
    # their first text: a continuation waits while there are any (they come first).
    unshown: Counter[str] = field(default_factory=Counter)

    async def pace(self, method: str, scope: str = "", max_wait: float | None = None) -> bool:
        return await self.budget.take(method, scope, max_wait)


class Sender:
    """The messages of one answer and the sends that write them."""

    def __init__(self, outbox: Outbox, place: Place) -> None:
        self._r = outbox
        self._client = outbox.client
        self._place = place
        self._native = outbox.native and place.channel not in outbox.no_stream_channels
        self._ts: str | None = None  # the message now being written
        self._messages = 0  # messages this answer has opened (a placeholder counts)
        self._opened = 0.0
        self._sent = ""  # what the current message is confirmed to show
        self._reopen: str | None = None  # a code block the next message must open again
        self._pending = ""
        self._done = False
        self._last_send = 0.0
        self._unshown = False  # counted in the outbox's ``unshown`` until it shows text
        self._busy = False  # the workspace had no chat.startStream slot for this answer
        # Messages to end (a stream to stop, a failed one to freeze) once the text has gone
        # on below them: started after the next post, awaited before the answer is done.
        self._behind: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._cleanups: list[asyncio.Task[None]] = []
        # Blocks for under the answer's last message (footer, feedback buttons): the call
        # that carries the last text carries them too, so they cost no call of their own.
        self._closing: list[blocks.Block] = []
        self._closing_shown = False
        # The agent session status to set with the last chat.stopStream (saves a call),
        # once ``session_live`` says the session exists; ``session_sent`` says it went.
        self.session_status: str | None = None
        self.session_live = False
        self.session_sent = False

    def _shown(self) -> None:
        if self._unshown:
            self._unshown = False
            self._r.unshown[self._place.channel] -= 1
            if not self._r.unshown[self._place.channel]:
                del self._r.unshown[self._place.channel]

    async def _open(self) -> None:
        """Post a new message (its slot is reserved) with everything there is now."""
        if self._reopen is not None:
            # The message above ends inside a code block: this one carries it on.
            self._pending = self._reopen + "\n" + self._pending.lstrip("\n")
            self._reopen = None
        cut = self._take("")
        closing = self._closing if cut.last else []
        message_blocks = [blocks.markdown(cut.head), *closing]
        self._ts = await messages.post(self._client, self._place, message_blocks, clip(cut.head))
        self._messages += 1
        self._shown()
        self._native = False  # a continuation is a message of its own
        self._start_behind()
        self._sent_now(cut, closing)

    async def _append_native(self) -> None:
        if self._done:
            await self._stop_with_rest()
            return
        if not await self._r.pace("chat.appendStream", max_wait=self._r.update_wait):
            self._last_send = time.monotonic()  # skipped: the text goes next time
            return
        cut = self._take(self._sent)
        try:
            channel, ts = self._place.channel, self._ts or ""
            await messages.append_stream(self._client, channel, ts, cut.head)
        except SlackError as exc:
            self._stream_failed(exc)
            return
        self._sent_now(cut, [])

    async def _stop_with_rest(self) -> None:
        """The last text, the closing blocks and the session status in one chat.stopStream."""
        await self._r.pace("chat.stopStream")
        cut = self._take(self._sent)
        closing = self._closing if cut.last else []
        status = self.session_status if cut.last and self.session_live else None
        try:
            await messages.stop_stream(
                self._client, self._place.channel, self._ts or "", cut.head, closing, status
            )
        except SlackError as exc:
            self._stream_failed(exc)
            return
        self.session_sent = status is not None
        self._native = False  # stopped: nothing to stop again, even when it is full
        self._sent_now(cut, closing)
        self._reset()  # anything left goes on in a new message

    async def _append_edit(self) -> None:
        cut = self._take(self._sent)
        method = await (self._finishing_turn(cut.head) if cut.last else self._edit_turn())
        if method is None:
            self._last_send = time.monotonic()  # skipped: the text goes next time
            return
        if method == "chat.postMessage":
            self._reset()
            await self._open()  # the rest, continued below from the channel's budget
            return
        cut = self._take(self._sent)  # everything there is now that the slot has come
        closing = self._closing if cut.last else []
        try:
            await self._update(self._sent + cut.head, closing)
        except SlackError as exc:
            log.warning("could not edit the answer (%s); continuing in a new message", exc.code)
            self._reset()
            return
        self._sent_now(cut, closing)

    async def _edit_turn(self) -> str | None:
        if await self._r.pace("chat.update", max_wait=self._r.update_wait):
            return "chat.update"
        return None

    async def _finishing_turn(self, tail: str) -> str | None:
        unshown, channel = self._r.unshown, self._place.channel
        return await turns.finishing_turn(
            self._r.budget, unshown, channel, placeholder=not self._sent, tail=tail
        )

    def _take(self, sent: str) -> Cut:
        limit = self._r.limit_bytes
        return cuts.cut(sent, self._pending, limit, done=self._done, first=not self._messages)

    def _sent_now(self, cut: Cut, closing: list[blocks.Block]) -> None:
        self._sent += cut.head
        # Text written while the call was on its way stays pending behind the cut's rest.
        self._pending = (cut.rest or "") + self._pending[cut.taken :]
        self._closing_shown = bool(closing)
        self._last_send = time.monotonic()
        if cut.full:
            self._end_behind()

    def _stream_failed(self, exc: SlackError) -> None:
        """A stream that takes no more text keeps what it shows; the text goes on below."""
        log.warning("native stream ended early (%s); continuing in a new message", exc.code)
        if exc.code not in STREAM_GONE and self._ts is not None:
            self._behind.append(functools.partial(self._freeze, self._ts, self._sent))
        self._reset()

    def _end_behind(self) -> None:
        """Leave the current message as it is and go on in a new one; a native stream is
        stopped once the continuation is up, so no workspace-wide call comes first."""
        if self._native and self._ts is not None:
            self._behind.append(functools.partial(self._stop_left, self._ts))
        self._reset()

    def _start_behind(self) -> None:
        for cleanup in self._behind:
            self._cleanups.append(asyncio.create_task(cleanup()))
        self._behind.clear()

    async def _stop_left(self, ts: str) -> None:
        await messages.stop_left(self._client, self._r.budget, self._place.channel, ts)

    async def _freeze(self, ts: str, text: str) -> None:
        await messages.freeze(self._client, self._r.budget, self._place.channel, ts, text)

    def _stream_too_old(self) -> bool:
        return time.monotonic() - self._opened > self._r.stream_max_age

    async def _close_message(self) -> None:
        """The end of the answer: close a stream still open, and add the closing blocks
        if no call has carried them yet."""
        if self._ts is None:
            return
        if self._native:
            await self._stop_with_rest()
        elif self._closing and not self._closing_shown:
            await self._r.pace("chat.update")
            try:
                await self._update(self._sent, self._closing)
            except SlackError as exc:
                log.warning("could not add the footer (%s)", exc.code)
        self._reset()

    def _reset(self) -> None:
        # A cut by ``fit`` closes the code block it is in; any other leaves it open.
        fence = open_fence(self._sent) if self._sent else None
        self._reopen = fence or self._reopen
        self._ts = None
        self._sent = ""
        self._closing_shown = False
        self._native = False

    async def _start_stream(self) -> bool:
        place = self._place
        if not await self._r.pace("chat.startStream", max_wait=self._r.start_wait):
            self._busy = True
            return False
        try:
            self._ts = await messages.start_stream(self._client, place)
        except SlackError as exc:
            log.info(
                "native streaming refused in %s (%s); editing messages", place.channel, exc.code
            )
            if exc.code in PERMANENT_REFUSALS:
                self._r.no_stream_channels.add(place.channel)
            self._native = False
            return False
        self._messages += 1
        self._opened = time.monotonic()
        return True

    async def _update(self, text: str, extra: list[blocks.Block]) -> None:
        await messages.update(self._client, self._place.channel, self._ts or "", text, extra)
