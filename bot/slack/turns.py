"""Which budget the finishing text of an edited message goes by: an edit or a post.

Edits share one budget for the whole workspace, posts have one per channel; the finishing
text takes the sooner, so a busy workspace never holds up a quiet channel.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bot.slack.budget import SlackBudget

# The finishing text of a message being edited waits up to EDIT_WAIT for an edit, then goes
# by the sooner of an edit and a continuation below; one shorter than MIN_TAIL is not worth
# a message of its own and waits up to TAIL_EDIT_WAIT for the edit.
EDIT_WAIT = 2.0
MIN_TAIL = 24
TAIL_EDIT_WAIT = 8.0
# A continuation lets answers that show nothing yet go first in its channel, asking again
# every TURN_WAIT, for YIELD_MAX at most (a busy channel never starves it).
TURN_WAIT = 1.0
YIELD_MAX = 5.0


async def finishing_turn(
    budget: SlackBudget, unshown: Counter[str], channel: str, *, placeholder: bool, tail: str
) -> str | None:
    """The finishing text goes by whichever comes first: an edit (one budget for the
    whole workspace) or a continuation posted from the channel's own budget; ``unshown``
    counts, per channel, the answers that wait for a post to show their first text."""
    if placeholder:
        return "chat.update" if await budget.take("chat.update") else None
    # An edit keeps the answer in one message: worth a short wait, and a long one for a
    # tail too short to read well as a message of its own.
    short = len(tail.strip()) < MIN_TAIL
    if await budget.take("chat.update", max_wait=TAIL_EDIT_WAIT if short else EDIT_WAIT):
        return "chat.update"
    # Then whichever budget has a slot soon. The channel's posts go first to answers
    # that show nothing yet: while any are waiting, this one, which shows its first
    # part, asks only for an edit, turn by turn, for YIELD_MAX at most.
    yield_until = time.monotonic() + YIELD_MAX
    while True:
        choices = [("chat.update", "")]
        yielding = unshown[channel] and time.monotonic() < yield_until
        if not yielding:
            choices.append(("chat.postMessage", channel))
        method = await budget.take_first(choices, max_wait=TURN_WAIT if yielding else None)
        if method is not None:
            return method
        await asyncio.sleep(TURN_WAIT)
