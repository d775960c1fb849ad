"""The Web API methods of the fake Slack workspace, with Slack's response shapes and errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.fakes.slack_agent import STATUSES, AgentSurface
from tests.fakes.slack_model import (
    MAX_TEXT,
    MAX_UPDATE_TEXT,
    Json,
    Message,
    SlackError,
    UploadedFile,
    check_blocks,
    stream_pieces,
)
from tests.fakes.slack_people import SlackDirectory
from tests.fakes.slack_threads import SlackThreads

Handler = Callable[[Json], Json]
POSTING = ("chat.postMessage", "chat.postEphemeral", "chat.startStream")
SESSION_STATUSES = ("processing", "active", "suspended", "closed")


class SlackWorkspace:
    """State and method handlers; FakeSlack puts them behind HTTP."""

    def __init__(self, token: str, team_id: str, bot_user_id: str, bot_id: str) -> None:
        self.token, self.team_id = token, team_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.stream_ttl = 300.0
        self.usergroups: dict[str, list[str]] = {}
        self.home_views: dict[str, Json] = {}
        self.files: dict[str, UploadedFile] = {}
        self.statuses: dict[tuple[str, str], str] = {}
        self.channel_errors: dict[str, str] = {}
        self.streaming_refusals: dict[str, str] = {}
        # Every status an agent session went through, by (channel, thread_ts), and its title.
        self.sessions: dict[tuple[str, str], list[str]] = {}
        self.session_titles: dict[tuple[str, str], str] = {}
        self.sessions_refusal: str | None = None
        self.session_stopped_subscribed = True
        self.upload_root = ""
        self._messages: list[Message] = []
        self._ephemerals: list[Message] = []
        self._clock = 0
        self.handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": self._set_status,
            "agents.sessions.setStatus": self._set_session_status,
            "agents.sessions.rename": self._rename_session,
            "usergroups.users.list": self._usergroup_users,
            "views.publish": self._publish_view,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }
        # users.info, conversations.info and conversations.members
        self.directory = SlackDirectory(team_id, self._channel)
        self.handlers.update(self.directory.handlers())
        # agents.sessions.setStatus and assistant.threads.setSuggestedPrompts
        self.agent = AgentSurface(self._latest_ts)
        self.handlers.update(self.agent.handlers())
        # One setStatus for both: the app's set-up (``agent``) decides refusals and warnings,
        # and every status a session goes through is kept (``session_statuses``).
        self.handlers["agents.sessions.setStatus"] = self._set_session_status
        # conversations.replies: the bot's messages and what people said (``threads.say``)
        self.threads = SlackThreads(team_id, self.directory.readable, self._bot_payloads)
        self.handlers.update(self.threads.handlers())

    # -- configuration used by tests -------------------------------------------------------

    def set_channel_error(self, channel: str, error: str = "not_in_channel") -> None:
        """Posting to ``channel`` fails with ``error`` (e.g. not_in_channel, channel_not_found)."""
        self.channel_errors[channel] = error

    def refuse_streaming(self, channel: str, error: str = "channel_type_not_supported") -> None:
        self.streaming_refusals[channel] = error

    def refuse_sessions(self, error: str = "not_authorized") -> None:
        """The app is not an agent here: every session call fails with ``error``."""
        self.sessions_refusal = error

    def expire_stream(self, ts: str) -> None:
        """End a stream as Slack does after its lifetime: append/stop then fail."""
        self._find(None, ts).stop_reason = "expired"

    # -- queries ---------------------------------------------------------------------------

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[Message]:
        return [m for m in self._messages if _matches(m, channel, thread_ts)]

    def thread_bodies(self, channel: str, thread_ts: str) -> list[str]:
        return [m.body for m in self.messages(channel, thread_ts)]

    def session_statuses(self, channel: str, thread_ts: str) -> list[str]:
        return list(self.sessions.get((channel, thread_ts), []))

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[Message]:
        found = [m for m in self._ephemerals if _matches(m, channel, None)]
        return [m for m in found if user is None or m.ephemeral_user == user]

    # -- helpers ---------------------------------------------------------------------------

    def _latest_ts(self, channel: str) -> str | None:
        found = self.messages(channel)
        return found[-1].ts if found else None

    def _next_ts(self) -> str:
        self._clock += 1
        return f"1700000000.{self._clock:06d}"

    def _find(self, channel: str | None, ts: Any) -> Message:
        for message in self._messages:
            if message.ts == ts and channel in (None, message.channel):
                return message
        raise SlackError("message_not_found")

    def _channel(self, params: Json, key: str = "channel", method: str = "") -> str:
        channel = str(params.get(key) or "")
        if not channel:
            raise SlackError("channel_not_found")
        error = self.channel_errors.get(channel)
        if error and (method in POSTING or error == "channel_not_found"):
            raise SlackError(error)
        return channel

    def _payload(self, message: Message) -> Json:
        payload: Json = {
            "type": "message",
            "text": message.text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": message.ts,
            "team": self.team_id,
        }
        if message.thread_ts:
            payload["thread_ts"] = message.thread_ts
        if message.blocks:
            payload["blocks"] = message.blocks
        return payload

    def _bot_payloads(self, channel: str) -> list[Json]:
        return [
            {**self._payload(m), "text": m.body} for m in self._messages if m.channel == channel
        ]

    def _add(self, message: Message) -> Message:
        self._messages.append(message)
        if message.thread_ts:
            # Slack clears the assistant status when the app replies in the thread.
            self.statuses.pop((message.channel, message.thread_ts), None)
        return message

    # -- methods ---------------------------------------------------------------------------

    def _auth_test(self, params: Json) -> Json:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "copilot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _post_message(self, params: Json) -> Json:
        channel = self._channel(params, method="chat.postMessage")
        text, blocks = _content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        message = self._add(Message(channel, self._next_ts(), thread_ts, text[:MAX_TEXT], blocks))
        return {"ok": True, "channel": channel, "ts": message.ts, "message": self._payload(message)}

    def _update(self, params: Json) -> Json:
        channel = self._channel(params, method="chat.update")
        message = self._find(channel, params.get("ts"))
        text, blocks = _content(params)
        if len(text) > MAX_UPDATE_TEXT:
            raise SlackError("msg_too_long")
        message.text = text if "text" in params else message.text
        # Like Slack: blocks not sent are kept; an empty list removes them.
        message.blocks = blocks if "blocks" in params else message.blocks
        message.updates += 1
        if message.streaming:
            message.replaced = True
            message.stop_reason = message.stop_reason or "updated"
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._payload(message),
        }

    def _post_ephemeral(self, params: Json) -> Json:
        channel = self._channel(params, method="chat.postEphemeral")
        if not params.get("user"):
            raise SlackError("user_not_in_channel")
        text, blocks = _content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        message = Message(
            channel,
            self._next_ts(),
            thread_ts,
            text[:MAX_TEXT],
            blocks,
            ephemeral_user=str(params["user"]),
        )
        self._ephemerals.append(message)
        return {"ok": True, "message_ts": message.ts}

    def _start_stream(self, params: Json) -> Json:
        channel = self._channel(params, method="chat.startStream")
        if channel in self.streaming_refusals:
            raise SlackError(self.streaming_refusals[channel])
        recipient = (params.get("recipient_user_id"), params.get("recipient_team_id"))
        if not params.get("thread_ts") or (not channel.startswith("D") and not all(recipient)):
            raise SlackError("invalid_arguments")
        pieces, chunks = stream_pieces(params.get("markdown_text"), params.get("chunks"))
        message = self._add(
            Message(
                channel,
                self._next_ts(),
                str(params["thread_ts"]),
                streaming=True,
                stream_pieces=pieces,
                chunks=chunks,
                recipient=recipient,
                expires_at=time.monotonic() + self.stream_ttl,
            )
        )
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _open_stream(self, params: Json) -> Message:
        message = self._find(self._channel(params), params.get("ts"))
        if not message.stream_open:
            raise SlackError("message_not_in_streaming_state")
        return message

    def _append_stream(self, params: Json) -> Json:
        message = self._open_stream(params)
        if not params.get("markdown_text") and not params.get("chunks"):
            raise SlackError("invalid_arguments")
        pieces, chunks = stream_pieces(params.get("markdown_text"), params.get("chunks"))
        message.stream_pieces += pieces
        message.chunks += chunks
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _stop_stream(self, params: Json) -> Json:
        message = self._open_stream(params)
        if params.get("session_status"):
            self._move_session(message.channel, message.thread_ts or "", params["session_status"])
        pieces, chunks = stream_pieces(params.get("markdown_text"), params.get("chunks"))
        blocks = _blocks(params)
        check_blocks(blocks)
        message.stream_pieces += pieces
        message.chunks += chunks
        message.blocks += blocks
        message.stop_reason = "stopped"
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "message": self._payload(message),
        }

    def _set_status(self, params: Json) -> Json:
        channel = self._channel(params, key="channel_id")
        if not params.get("thread_ts"):
            raise SlackError("invalid_arguments")
        self.statuses[(channel, str(params["thread_ts"]))] = str(params.get("status") or "")
        return {"ok": True}

    def _set_session_status(self, params: Json) -> Json:
        if not self.agent.available:
            raise SlackError("unknown_method")
        if not self.agent.declared:
            raise SlackError("not_authorized")
        subscribed = self.session_stopped_subscribed and self.agent.subscribed
        if params.get("status") not in STATUSES:
            raise SlackError("invalid_arguments")
        channel = self._channel(params, key="channel_id")
        if not params.get("thread_ts"):
            raise SlackError("invalid_arguments")
        thread = (channel, str(params["thread_ts"]))
        self._move_session(*thread, params.get("status"))
        if params.get("title"):
            self.session_titles[thread] = str(params["title"])
        if not subscribed:
            # Slack's hint that users see a stop button that does nothing.
            return {
                "ok": True,
                "warning": "missing_agent_session_stopped_event_subscription",
                "response_metadata": {
                    "warnings": ["missing_agent_session_stopped_event_subscription"]
                },
            }
        return {"ok": True}

    def _rename_session(self, params: Json) -> Json:
        if self.sessions_refusal:
            raise SlackError(self.sessions_refusal)
        thread = (self._channel(params, key="channel_id"), str(params.get("thread_ts") or ""))
        if thread not in self.sessions or not params.get("title"):
            raise SlackError("invalid_arguments")
        self.session_titles[thread] = str(params["title"])
        return {"ok": True}

    def _move_session(self, channel: str, thread_ts: str, status: Any) -> None:
        if self.sessions_refusal:
            raise SlackError(self.sessions_refusal)
        if status not in SESSION_STATUSES:
            raise SlackError("invalid_arguments")  # free text is refused
        self.sessions.setdefault((channel, thread_ts), []).append(str(status))

    def _usergroup_users(self, params: Json) -> Json:
        group = str(params.get("usergroup") or "")
        if group not in self.usergroups:
            raise SlackError("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    def _publish_view(self, params: Json) -> Json:
        user, view = params.get("user_id"), params.get("view")
        if not user or not isinstance(view, dict):
            raise SlackError("invalid_arguments")
        self.home_views[str(user)] = view
        return {"ok": True, "view": {**view, "id": f"V{len(self.home_views):08d}"}}

    def _upload_url(self, params: Json) -> Json:
        filename, length = params.get("filename"), str(params.get("length") or "")
        if not filename or not length.isdigit():
            raise SlackError("invalid_arguments")
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = UploadedFile(file_id, str(filename), int(length))
        return {
            "ok": True,
            "upload_url": f"{self.upload_root}/upload/{file_id}",
            "file_id": file_id,
        }

    def _complete_upload(self, params: Json) -> Json:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        channel = (
            self._channel(params, "channel_id", "chat.postMessage")
            if params.get("channel_id")
            else None
        )
        done = [self._complete_one(entry, channel, params) for entry in entries]
        return {
            "ok": True,
            "files": [{"id": f.file_id, "title": f.title, "name": f.filename} for f in done],
        }

    def _complete_one(self, entry: Any, channel: str | None, params: Json) -> UploadedFile:
        upload = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
        if upload is None or upload.content is None:
            raise SlackError("file_not_found")
        upload.title = str(entry.get("title") or upload.filename)
        upload.channel, upload.thread_ts = channel, params.get("thread_ts")
        upload.initial_comment = params.get("initial_comment")
        return upload


def _matches(message: Message, channel: str | None, thread_ts: str | None) -> bool:
    return channel in (None, message.channel) and thread_ts in (None, message.thread_ts)


def _blocks(params: Json) -> list[Json]:
    blocks = params.get("blocks") or []
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    return blocks


def _content(params: Json) -> tuple[str, list[Json]]:
    text, blocks = str(params.get("text") or ""), _blocks(params)
    if not text and not blocks:
        raise SlackError("no_text")
    check_blocks(blocks)
    return text, blocks
