"""A Slack Web API on 127.0.0.1 whose "workspace" is the terminal.

The shell points the bot's ``SLACK_API_URL`` here, so the real code (streaming replies,
cards, run progress, ephemeral answers through ``response_url``) makes its usual calls and
this server prints them. It also remembers which cards are on screen and their buttons, so
the REPL can click them, and when the bot last called, so the REPL knows when it is quiet.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.shell.render import Json, Screen, message_lines, plain

log = logging.getLogger(__name__)

TEAM_ID = "T0SHELL"
BOT_USER_ID = "U0COPILOT"
BOT_ID = "B0COPILOT"
_JSON_FIELDS = ("blocks", "files", "attachments")
SESSION_STATUSES = ("processing", "active", "suspended", "closed")


@dataclass
class Shown:
    """A message as the terminal last showed it."""

    channel: str
    thread_ts: str | None
    text: str = ""


@dataclass
class Card:
    """A run request card on screen; ``buttons`` maps action ids to the request id."""

    request_id: str
    channel: str
    ts: str
    buttons: dict[str, str] = field(default_factory=dict)


class ConsoleSlack:
    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.cards: dict[str, Card] = {}  # by request id, oldest first
        self.last_call = time.monotonic()
        self._shown: dict[str, Shown] = {}
        self._uploads: dict[str, tuple[str, bytes]] = {}
        self._clock = 0
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": self._status,
            # The console has no App Home tab: redraws after a request changes go nowhere.
            "views.publish": lambda _: {"ok": True},
            "agents.sessions.setStatus": self._session_status,
            "agents.sessions.rename": self._session_rename,
            "usergroups.users.list": self._usergroup,
            "users.info": self._user,
            "conversations.info": self._conversation,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{user}", self._handle_response)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/"

    def response_url(self, user: str) -> str:
        return f"{self.root_url}/response/{user}"

    def next_ts(self) -> str:
        """Message timestamps for the bot's posts and the person's messages, in one order.

        Microseconds of the clock, as Slack's are: a card another shell on the same Redis
        posted keeps a timestamp no message of this one takes.
        """
        self._clock = max(self._clock + 1, time.time_ns() // 1000)
        return f"{self._clock // 1_000_000}.{self._clock % 1_000_000:06d}"

    def watch(self, request_id: str, channel: str, ts: str) -> None:
        """Track a card another session posted, clicked for from here, as if it were on screen."""
        self.cards.setdefault(request_id, Card(request_id, channel, ts))

    # -- HTTP --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        self.last_call = time.monotonic()
        method = request.match_info["method"]
        handler = self._methods.get(method)
        if handler is None:
            log.warning("the shell's Slack does not implement %s", method)
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(await _params(request)))

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        name, _ = self._uploads.get(file_id, ("file", b""))
        self._uploads[file_id] = (name, await _upload_bytes(request))
        return web.Response(text="OK")

    async def _handle_response(self, request: web.Request) -> web.Response:
        self.last_call = time.monotonic()
        body = await request.json()
        lines = message_lines(str(body.get("text") or ""), body.get("blocks"))
        self.screen.show("(only you) copilot › ", lines)
        return web.Response(text="ok")

    # -- methods -----------------------------------------------------------------------

    def _auth_test(self, _: Json) -> Json:
        return {
            "ok": True,
            "url": "https://shell.invalid/",
            "team": "shell",
            "user": "copilot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }

    def _post(self, params: Json) -> Json:
        ts = self.next_ts()
        shown = Shown(str(params.get("channel")), params.get("thread_ts"))
        lines = message_lines(str(params.get("text") or ""), params.get("blocks"))
        shown.text = "\n".join(lines)
        self._shown[ts] = shown
        self._track_card(ts, shown.channel, params.get("blocks"))
        self.screen.show(_prefix(shown), lines)
        return {"ok": True, "channel": shown.channel, "ts": ts}

    def _update(self, params: Json) -> Json:
        ts = str(params.get("ts"))
        shown = self._shown.setdefault(ts, Shown(str(params.get("channel")), None))
        lines = message_lines(str(params.get("text") or ""), params.get("blocks"))
        self._track_card(ts, shown.channel, params.get("blocks"))
        if "\n".join(lines).rstrip() != shown.text.rstrip():
            self._show_change(shown, lines)
        return {"ok": True, "channel": shown.channel, "ts": ts}

    def _show_change(self, shown: Shown, lines: list[str]) -> None:
        """Show what an edit changed: added text, or the lines that are new (a card's status)."""
        old, new = shown.text, "\n".join(lines)
        shown.text = new
        if old and new.startswith(old):
            self.screen.show(" " * len(_prefix(shown)), new[len(old) :].lstrip("\n").splitlines())
            return
        before = set(old.splitlines())
        changed = [line for line in lines if line not in before]
        kept_some = len(changed) < len(lines)
        self.screen.show(_prefix(shown, edited=True), changed if kept_some else lines)

    def _ephemeral(self, params: Json) -> Json:
        lines = message_lines(str(params.get("text") or ""), params.get("blocks"))
        self.screen.show(f"(only @{params.get('user')}) copilot › ", lines)
        return {"ok": True, "message_ts": self.next_ts()}

    def _start_stream(self, params: Json) -> Json:
        ts = self.next_ts()
        shown = Shown(str(params.get("channel")), params.get("thread_ts"))
        self._shown[ts] = shown
        self._append_stream({**params, "ts": ts})
        return {"ok": True, "channel": shown.channel, "ts": ts}

    def _append_stream(self, params: Json) -> Json:
        ts = str(params.get("ts"))
        shown = self._shown.setdefault(ts, Shown(str(params.get("channel")), None))
        text = str(params.get("markdown_text") or "") + _chunk_text(params.get("chunks"))
        if text:
            self.screen.stream(ts, _prefix(shown), text)
            shown.text += plain(text)
        return {"ok": True, "channel": shown.channel, "ts": ts}

    def _stop_stream(self, params: Json) -> Json:
        self._append_stream(params)
        self.screen.end_stream(str(params.get("ts")))
        if params.get("session_status"):
            self.screen.note(f"session: {params['session_status']}")
        return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}

    def _status(self, params: Json) -> Json:
        if params.get("status"):
            self.screen.note(f"copilot {params['status']}")
        return {"ok": True}

    def _session_status(self, params: Json) -> Json:
        status = str(params.get("status") or "")
        if status not in SESSION_STATUSES:
            return {"ok": False, "error": "invalid_arguments"}
        title = f" · {params['title']}" if params.get("title") else ""
        self.screen.note(f"session: {status}{title}")
        return {"ok": True}

    def _session_rename(self, params: Json) -> Json:
        self.screen.note(f"session: {params.get('title')}")
        return {"ok": True}

    def _usergroup(self, params: Json) -> Json:
        # The console has no user groups: a group approver approves nobody here.
        return {"ok": True, "users": []}

    def _user(self, params: Json) -> Json:
        # Whoever types in the console is a full member of its one workspace.
        user = {"id": params.get("user"), "team_id": TEAM_ID, "is_restricted": False}
        return {"ok": True, "user": user}

    def _conversation(self, params: Json) -> Json:
        # The console's channels are public: everyone typing here can read them.
        channel = {"id": params.get("channel"), "is_channel": True, "is_private": False}
        return {"ok": True, "channel": channel}

    def _upload_url(self, params: Json) -> Json:
        file_id = f"F{len(self._uploads) + 1:08d}"
        self._uploads[file_id] = (str(params.get("filename") or "file"), b"")
        return {"ok": True, "upload_url": f"{self.root_url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: Json) -> Json:
        files = params.get("files") or []
        for entry in files:
            name, content = self._uploads.get(str(entry.get("id")), ("file", b""))
            text = content.decode("utf-8", errors="replace")
            self.screen.show(
                f"  ↳ copilot › file {name} ({len(content)} bytes): ", text.splitlines()
            )
        return {"ok": True, "files": [{"id": str(e.get("id"))} for e in files]}

    def _track_card(self, ts: str, channel: str, blocks: Any) -> None:
        for block in blocks or []:
            block_id = str(block.get("block_id") or "")
            if block.get("type") == "actions" and block_id.startswith("run:"):
                buttons = {str(b.get("action_id")): str(b.get("value")) for b in block["elements"]}
                self.cards[block_id[4:]] = Card(block_id[4:], channel, ts, buttons)
                return
        for card in self.cards.values():
            if card.ts == ts and blocks is not None:
                card.buttons = {}  # updated without buttons: decided, running or over


def _prefix(shown: Shown, *, edited: bool = False) -> str:
    mark = "↻ " if edited else ""
    if shown.thread_ts:
        return f"  ↳ {mark}copilot › "
    return f"{mark}copilot [#{shown.channel}] › "


async def _params(request: web.Request) -> Json:
    """Web API arguments, however slack_sdk sent them (query, form, or JSON body)."""
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.text()
        body = json.loads(raw) if raw.strip() else {}
        params.update(body if isinstance(body, dict) else {})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str) and params[key][:1] in "[{":
            params[key] = json.loads(params[key])
    return params


async def _upload_bytes(request: web.Request) -> bytes:
    if request.content_type != "multipart/form-data":
        return await request.read()
    async for part in await request.multipart():
        if getattr(part, "filename", None):
            return bytes(await part.read())  # type: ignore[union-attr]
    return b""


_TASK_MARKS = {"in_progress": "⚙", "complete": "✓", "error": "✗", "pending": "·"}


def _chunk_text(chunks: object) -> str:
    """Streamed chunks as terminal text: Markdown as is, a task update as one line."""
    if isinstance(chunks, str):
        try:
            chunks = json.loads(chunks)
        except ValueError:
            return ""
    text = ""
    for chunk in chunks if isinstance(chunks, list) else []:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
        elif chunk.get("type") == "task_update":
            mark = _TASK_MARKS.get(str(chunk.get("status")), "·")
            detail = chunk.get("output") or chunk.get("details") or ""
            text += (
                f"\n{mark} {chunk.get('title')} {str(detail).splitlines()[0] if detail else ''}\n"
            )
    return text
