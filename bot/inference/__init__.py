"""Heroku Managed Inference: chat completions and the Agents API, as typed event streams.

Every failure surfaces as a ``bot.errors.InferenceError`` subclass; httpx never leaks out.
"""

from bot.inference.agents import AgentsClient
from bot.inference.chat import InferenceClient
from bot.inference.events import (
    AgentError,
    AgentEvent,
    AgentMessage,
    AgentToolCall,
    AgentToolResult,
    AgentUnknown,
    ChatEvent,
    Finish,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "AgentError",
    "AgentEvent",
    "AgentMessage",
    "AgentToolCall",
    "AgentToolResult",
    "AgentUnknown",
    "AgentsClient",
    "ChatEvent",
    "Finish",
    "InferenceClient",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
]
