"""FakeSlack: the Slack Web API on loopback, with recorded calls and injectable faults.

Message bodies (``Message.body``): a native stream shows the concatenation of every
``markdown_text`` (and ``markdown_text`` chunk) from startStream/appendStream/stopStream; a
posted or updated message shows its ``markdown`` blocks joined, else its section texts, else
``text``. A chat.update on a stream replaces the streamed body. ``thread_bodies`` lists the bot's
replies in a thread in posting order, so ``"".join(...)`` can be compared with a whole answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.loopback import Loopback, LoopbackFake
from tests.fakes.slack_methods import SlackWorkspace
from tests.fakes.slack_model import Json, SlackCall, SlackError
from tests.fakes.socket_mode import SocketModeEndpoint

JSON_FIELDS = ("blocks", "chunks", "files", "view", "attachments")
STREAM_STATE_METHODS = ("chat.appendStream", "chat.stopStream")


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    times: int


@dataclass
class _Bucket:
    per_second: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token; return 0 on success, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second


class FakeSlack(SlackWorkspace, LoopbackFake):
    """A fake Slack workspace served over HTTP; point ``AsyncWebClient(base_url=...)`` at it."""

    def __init__(
        self,
        token: str = "xoxb-test",
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_token: str = "xapp-test",
    ) -> None:
        super().__init__(token, team_id, bot_user_id, bot_id)
        self.app_token = app_token
        self.socket = SocketModeEndpoint()
        self.handlers["apps.connections.open"] = self._open_socket
        self.calls: list[SlackCall] = []
        self.rate_limited: dict[str, int] = {}
        self.responses: dict[str, list[Json]] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._buckets: dict[str, _Bucket] = {}
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # slack_sdk sends a few methods as GET
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self.socket.handle)
        self._server = Loopback(app)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        self.upload_root = self.root_url

    async def stop(self) -> None:
        await self.socket.close()
        await super().stop()

    def _open_socket(self, params: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self._server.port}/socket"}

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/"

    def response_url(self, key: str) -> str:
        """A ``response_url`` for slash commands/actions; posts to it land in responses_to(key)."""
        return f"{self.root_url}/response/{key}"

    # -- queries ---------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def count(self, method: str) -> int:
        return len(self.calls_to(method))

    def responses_to(self, key: str) -> list[Json]:
        return list(self.responses.get(key, []))

    # A plain ``timeout`` argument reads best in scenario tests, hence the noqa.
    async def wait_for(
        self,
        predicate: Callable[[FakeSlack], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Poll every 10 ms until ``predicate(self)``; on timeout fail with a call summary."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                summary = self.summary()
                raise AssertionError(f"timed out after {timeout}s waiting on Slack\n{summary}")
            await asyncio.sleep(0.01)

    def summary(self, last: int = 40) -> str:
        """The recent calls and messages, one line each, for failure messages."""
        lines = [f"calls ({len(self.calls)}, last {last}):"]
        lines += [f"  {_describe(call)}" for call in self.calls[-last:]]
        lines.append(f"messages ({len(self._messages)}):")
        lines += [
            f"  {m.channel} ts={m.ts} thread={m.thread_ts} streaming={m.streaming} "
            f"stopped={m.stream_stopped} body={m.body[:80]!r}"
            for m in self._messages
        ]
        return "\n".join(lines)

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls to ``method`` fail; status=429 sends Retry-After."""
        if status >= 500 and error == "ratelimited":
            error = "internal_error"
        self._faults.setdefault(method, []).append(_Fault(error, status, retry_after, times))

    def delay(self, method: str, seconds: float) -> None:
        """Hold every response to ``method`` for ``seconds`` (0 to stop)."""
        self._delays[method] = seconds

    def limit(self, method: str, per_minute: float, burst: int = 1) -> None:
        """Enforce a token-bucket rate limit on ``method``; excess calls get 429."""
        self._buckets[method] = _Bucket(per_minute / 60, burst, burst, time.monotonic())

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = SlackCall(method, await _read_params(request), time.monotonic())
        self.calls.append(call)
        await self._server.pause(self._delays.get(method, 0.0))
        status, body, headers = self._respond(method, call.params, request)
        call.status, call.response = status, body
        return web.json_response(body, status=status, headers=headers)

    def _respond(
        self, method: str, params: Json, request: web.Request
    ) -> tuple[int, Json, dict[str, str]]:
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_response(method, fault, params)
        wait = self._take_token(method)
        if wait:
            return self._ratelimited(method, math.ceil(wait))
        try:
            self._authorize(method, params, request)
            handler = self.handlers.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            return 200, handler(params), {}
        except SlackError as failure:
            return 200, {"ok": False, "error": failure.error, **failure.extra}, {}

    def _authorize(self, method: str, params: Json, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header else str(params.get("token", ""))
        if not token:
            raise SlackError("not_authed")
        # Socket Mode connections are opened with the app-level token, everything else not.
        expected = self.app_token if method == "apps.connections.open" else self.token
        if token != expected:
            raise SlackError("invalid_auth")

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _fault_response(
        self, method: str, fault: _Fault, params: Json
    ) -> tuple[int, Json, dict[str, str]]:
        if fault.status == 429:
            return self._ratelimited(method, fault.retry_after or 1)
        if fault.error == "message_not_in_streaming_state" and method in STREAM_STATE_METHODS:
            # Keep the state consistent with the error, as if Slack had closed the stream.
            for message in self._messages:
                if message.ts == params.get("ts") and message.stop_reason is None:
                    message.stop_reason = "expired"
        return fault.status, {"ok": False, "error": fault.error}, {}

    def _take_token(self, method: str) -> float:
        bucket = self._buckets.get(method)
        return bucket.take(time.monotonic()) if bucket else 0.0

    def _ratelimited(self, method: str, retry_after: int) -> tuple[int, Json, dict[str, str]]:
        self.rate_limited[method] = self.rate_limited.get(method, 0) + 1
        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(max(1, retry_after))}

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self.files.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="file not found")
        upload.content = await _upload_bytes(request)
        return web.Response(text=f"OK - {len(upload.content)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw}
        self.responses.setdefault(request.match_info["key"], []).append(body)
        return web.Response(text="ok", content_type="text/plain")


async def _read_params(request: web.Request) -> Json:
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.text()
        decoded = json.loads(raw) if raw.strip() else {}
        params.update(decoded if isinstance(decoded, dict) else {})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in JSON_FIELDS:
        if key in params:
            params[key] = _maybe_json(params[key])
    return params


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def _upload_bytes(request: web.Request) -> bytes:
    if request.content_type != "multipart/form-data":
        return await request.read()
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "filename", None):
            return bytes(await part.read())  # type: ignore[union-attr]
    return b""


def _describe(call: SlackCall) -> str:
    keys = ("channel", "channel_id", "ts", "thread_ts", "markdown_text", "text")
    shown = {k: str(call.params[k])[:60] for k in keys if k in call.params}
    outcome = f"error={call.error}" if call.error else "ok"
    return f"{call.method} {shown} -> {call.status} {outcome}"
