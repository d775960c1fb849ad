"""The test fakes, with the per-question scripts, timestamps and limits the benchmark needs.

``tests/fakes`` is used as is. ``TieredSlack`` adds per-channel token buckets (FakeSlack's
``limit`` is per method, but Slack limits chat.postMessage per channel) and notes, for each
thread whose answer it was told (``expect_answer``), the first accepted call after which the
thread reads as that answer (``completed``). ``TimedInference`` adds two things in a subclass:

* each question gets its own scripted answer (the test fake's scripts are first-in first-out,
  which cannot tell concurrent questions apart), looked up by the question's text;
* the moment the first model token left the fake. The fake writes a stream by iterating the
  reply's list of SSE parts (part 0 is the role chunk, part 1 the first text), awaiting each
  write before it asks for the next part. The list is wrapped so the request for part 2,
  i.e. the moment the write of the first text chunk returned, is stamped with
  ``time.monotonic()``: the clock ``FakeSlack`` stamps ``SlackCall.at`` with, in this process.

This leans on the fake's private ``_next_reply``/``_Reply``: there is no public hook for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from bench.rig import BOT_TOKEN, INFERENCE_KEY
from tests.fakes import FakeInference, FakeSlack, Message
from tests.fakes.inference import _Reply
from tests.fakes.slack_model import Json as SlackJson

Json = dict[str, object]

# The methods that change what a thread shows (the bot's answers use no others).
BODY_METHODS = (
    "chat.postMessage",
    "chat.update",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
)


@dataclass(frozen=True)
class Script:
    """One answer: ``text`` streamed in ``pieces`` chunks, ``delay`` seconds apart."""

    text: str
    pieces: int
    delay: float


@dataclass
class StreamTimes:
    requested: float
    first_token: float | None = None
    ended: float | None = None
    parts_sent: int = 0


class TimedInference(FakeInference):
    def __init__(self) -> None:
        super().__init__(key=INFERENCE_KEY)
        self.scripts: dict[str, Script] = {}
        self.times: dict[str, list[StreamTimes]] = {}
        self.open_streams = 0
        self.peak_open = 0

    def expect(self, question: str, script: Script) -> None:
        self.scripts[question] = script

    def tokens_sent(self) -> int:
        """Text chunks written, over every stream (a chunk is one 'token' here)."""
        total = 0
        for question, streams in self.times.items():
            pieces = self.scripts[question].pieces if question in self.scripts else 0
            total += sum(min(max(0, s.parts_sent - 1), pieces) for s in streams)
        return total

    def _next_reply(self, path: str, body: Json) -> _Reply:
        question = _last_user_text(body)
        script = self.scripts.get(question)
        if script is not None:
            self.reply_text(script.text, pieces=script.pieces, delay=script.delay)
        reply = super()._next_reply(path, body)
        stamp = StreamTimes(requested=time.monotonic())
        self.times.setdefault(question, []).append(stamp)
        build = reply.parts
        reply.parts = lambda b: _StampedParts(build(b), stamp, self)
        return reply

    def _opened(self) -> None:
        self.open_streams += 1
        self.peak_open = max(self.peak_open, self.open_streams)

    def _closed(self) -> None:
        self.open_streams -= 1


class _StampedParts(list[bytes]):
    def __init__(self, parts: list[bytes], stamp: StreamTimes, owner: TimedInference) -> None:
        super().__init__(parts)
        self._stamp = stamp
        self._owner = owner

    def __iter__(self) -> Iterator[bytes]:
        return self._stamped()

    def _stamped(self) -> Iterator[bytes]:
        self._owner._opened()
        try:
            for index, part in enumerate(list.__iter__(self)):
                if index == 2:
                    self._stamp.first_token = time.monotonic()
                self._stamp.parts_sent = index
                yield part
            self._stamp.parts_sent = len(self)
        finally:
            self._stamp.ended = time.monotonic()
            self._owner._closed()


def _last_user_text(body: Json) -> str:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content"))
    return ""


@dataclass
class Bucket:
    per_minute: float
    burst: float
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """Take a token: 0.0, or the seconds until one is available (nothing taken)."""
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_minute / 60)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / self.per_minute


class TieredSlack(FakeSlack):
    """FakeSlack with optional per-channel rate limits, answered like its own (429), and the
    moment each expected answer first reads whole in its thread."""

    def __init__(self) -> None:
        super().__init__(token=BOT_TOKEN)
        self._per_channel: dict[str, tuple[float, int]] = {}
        self._channel_buckets: dict[tuple[str, str], Bucket] = {}
        # (channel, thread_ts) -> the model's whole answer, and -> SlackCall.at of the call
        # after which the thread's bodies, joined, first equalled it.
        self._expected: dict[tuple[str, str], str] = {}
        self.completed: dict[tuple[str, str], float] = {}
        # The bot's messages by thread and by ts, indexed as they are posted (the fake only
        # ever appends to its message list), so each check reads one thread, not all.
        self._indexed = 0
        self._thread_messages: dict[tuple[str, str], list[Message]] = {}
        self._message_thread: dict[tuple[str, str], tuple[str, str]] = {}
        self.last_body_call = time.monotonic()  # arrival of the latest BODY_METHODS call

    def limit_per_channel(self, method: str, per_minute: float, burst: int) -> None:
        self._per_channel[method] = (per_minute, burst)

    def expect_answer(self, channel: str, thread_ts: str, text: str) -> None:
        self._expected[(channel, thread_ts)] = text

    def _respond(
        self, method: str, params: SlackJson, request: web.Request
    ) -> tuple[int, SlackJson, dict[str, str]]:
        status, body, headers = self._limited(method, params, request)
        if method in BODY_METHODS:
            self.last_body_call = time.monotonic()
            if status == 200 and body.get("ok"):
                self._note_completion(params)
        return status, body, headers

    def _limited(
        self, method: str, params: SlackJson, request: web.Request
    ) -> tuple[int, SlackJson, dict[str, str]]:
        tier = self._per_channel.get(method)
        if tier is not None:
            key = (method, str(params.get("channel") or ""))
            bucket = self._channel_buckets.setdefault(key, Bucket(*tier))
            wait = bucket.take()
            if wait:
                self.rate_limited[method] = self.rate_limited.get(method, 0) + 1
                retry_after = str(max(1, math.ceil(wait)))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after}
        return super()._respond(method, params, request)

    def _note_completion(self, params: SlackJson) -> None:
        """After an accepted call that may change what a thread shows: when its thread now
        reads as the expected answer for the first time, stamp it with the call's arrival."""
        thread = self._thread_of(params)
        if thread is None or thread in self.completed or thread not in self._expected:
            return
        shown = "".join(m.body for m in self._thread_messages.get(thread, []))
        if shown == self._expected[thread]:
            self.completed[thread] = self._arrival(params)

    def _thread_of(self, params: SlackJson) -> tuple[str, str] | None:
        for message in self._messages[self._indexed :]:
            if message.thread_ts is not None:
                thread = (message.channel, message.thread_ts)
                self._thread_messages.setdefault(thread, []).append(message)
                self._message_thread[(message.channel, message.ts)] = thread
        self._indexed = len(self._messages)
        channel = str(params.get("channel") or "")
        if params.get("thread_ts"):
            return channel, str(params["thread_ts"])
        return self._message_thread.get((channel, str(params.get("ts") or "")))

    def _arrival(self, params: SlackJson) -> float:
        # FakeSlack records the call (with its arrival stamp) before it answers it; its
        # params are the very dict handed to ``_respond``.
        for call in reversed(self.calls):
            if call.params is params:
                return call.at
        raise LookupError("a call answered that FakeSlack did not record")
