"""What the inference streams yield: small frozen records, one class per kind of event.

Chat (``InferenceClient.stream_chat``) yields deltas as the model writes; the Agents API
(``AgentsClient.stream_agent``) yields whole messages, one per step of the run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text; never empty."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: ``id`` and ``name`` come once, ``arguments`` in JSON fragments.

    Join the fragments of the same ``index`` to get the call's arguments.
    """

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens one request used. Both APIs send it in the same shape, so it reads itself."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def parse(cls, value: object) -> Usage | None:
        """``usage`` as Heroku sends it; None when absent or empty (``{}``)."""
        if not isinstance(value, dict) or not value:
            return None
        prompt, completion = _int(value.get("prompt_tokens")), _int(value.get("completion_tokens"))
        total = value.get("total_tokens")
        return cls(prompt, completion, _int(total) if total is not None else prompt + completion)


@dataclass(frozen=True)
class Finish:
    """Why the model stopped: ``"stop"``, ``"length"``, ``"tool_calls"`` or what Heroku says."""

    reason: str


ChatEvent = TextDelta | ToolCallDelta | Usage | Finish


@dataclass(frozen=True)
class AgentToolCall:
    id: str
    name: str
    arguments: str  # a JSON document, as Heroku sent it


@dataclass(frozen=True)
class AgentMessage:
    """The assistant speaking; ``finish_reason`` is ``"tool_calls"`` before tools run."""

    content: str
    tool_calls: tuple[AgentToolCall, ...]
    finish_reason: str
    usage: Usage | None


@dataclass(frozen=True)
class AgentToolResult:
    """A tool's result, as Heroku reports it (``Tool '<name>' returned result: …``)."""

    tool_call_id: str
    name: str
    content: str


@dataclass(frozen=True)
class AgentError:
    """The run reported an error; the stream may go on, so this is an event to show."""

    message: str


@dataclass(frozen=True)
class AgentUnknown:
    """An event or object this client does not know; ``raw`` is its data, to log and show."""

    raw: str


AgentEvent = AgentMessage | AgentToolResult | AgentError | AgentUnknown


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
