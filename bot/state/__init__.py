"""State shared by every process: Redis, or an embedded store when none is configured."""

from bot.state.connect import connect
from bot.state.store import ThreadStore

__all__ = ["ThreadStore", "connect"]
