"""The fake workspace's agent surface: ``agents.sessions.setStatus`` and
``assistant.threads.setSuggestedPrompts``, as Slack answers an app depending on how it is set
up (``declared``: "Agent" turned on in the app settings; ``subscribed``: the bot event
``agent_session_stopped``; ``available``: the workspace offers agent sessions at all).

By default the app is a fully set up agent, so scenarios that never mention it behave as in
a workspace where the manifest was installed as generated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fakes.slack_model import Json, SlackError

STATUSES = ("active", "processing", "suspended", "closed")
NOT_SUBSCRIBED = "missing_agent_session_stopped_event_subscription"
MAX_PROMPTS = 4


@dataclass
class SuggestedPrompts:
    channel: str
    prompts: list[Json]
    title: str | None
    # The message they were attached to: the channel's latest when the call was made.
    after_ts: str | None


@dataclass
class AgentSurface:
    latest_ts: Callable[[str], str | None]
    declared: bool = True
    subscribed: bool = True
    available: bool = True
    sessions: dict[tuple[str, str], str] = field(default_factory=dict)
    titles: dict[tuple[str, str], str] = field(default_factory=dict)
    prompts: list[SuggestedPrompts] = field(default_factory=list)

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {
            "agents.sessions.setStatus": self._set_session_status,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
        }

    def prompts_in(self, channel: str) -> list[SuggestedPrompts]:
        return [p for p in self.prompts if p.channel == channel]

    def _set_session_status(self, params: Json) -> Json:
        if not self.available:
            raise SlackError("unknown_method")
        if not self.declared:
            raise SlackError("not_authorized")
        status = str(params.get("status") or "")
        channel = str(params.get("channel_id") or "")
        if status not in STATUSES or not channel:
            raise SlackError("invalid_arguments")
        thread = (channel, str(params.get("thread_ts") or ""))
        if thread not in self.sessions and params.get("title"):
            self.titles[thread] = str(params["title"])  # only used when creating
        self.sessions[thread] = status
        answer: Json = {"ok": True, "status": status, "title": self.titles.get(thread, "")}
        if not self.subscribed:
            # Slack puts warnings in both places.
            answer["warning"] = NOT_SUBSCRIBED
            answer["response_metadata"] = {"warnings": [NOT_SUBSCRIBED]}
        return answer

    def _set_suggested_prompts(self, params: Json) -> Json:
        if not self.declared:
            raise SlackError("missing_scope", needed="assistant:write", provided="chat:write")
        channel = str(params.get("channel_id") or "")
        if not channel:
            raise SlackError("channel_not_found")
        prompts = params.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_PROMPTS:
            raise SlackError("invalid_arguments")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not prompt.get("title") or not prompt.get("message"):
                raise SlackError("invalid_arguments")
        if params.get("thread_ts"):
            # Agent apps: Slack documents that a thread_ts makes the call silently do nothing.
            return {"ok": True}
        title = str(params["title"]) if params.get("title") else None
        latest = self.latest_ts(channel)
        self.prompts.append(SuggestedPrompts(channel, list(prompts), title, latest))
        return {"ok": True}
