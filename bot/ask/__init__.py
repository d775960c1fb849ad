"""Ask: answering questions in a thread, one at a time and in order, with its history.

Two parts: ``ThreadScheduler`` (``scheduler.py``) decides when and where a thread's
questions are answered (the per-thread queue and lock, answer slots, taking over threads
from processes that went away), and ``Answerer`` (``answerer.py``) answers one question,
streaming it from Heroku chat completions into the thread. The scheduler is given the
answerer; everything outside this package talks to the scheduler.
"""

from bot.ask.answerer import Answerer, AskSettings
from bot.ask.scheduler import ThreadScheduler, traced
from bot.state.store import Accepted

__all__ = ["Accepted", "Answerer", "AskSettings", "ThreadScheduler", "traced"]
