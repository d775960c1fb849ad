"""Where to cut an answer's pending text for one call, so each message reads well."""

from __future__ import annotations

from dataclasses import dataclass

from bot.markdown import fit, open_fence

# A first message is posted once it reads as something (two words and this many characters,
# or a whole line), or once the first text has waited FIRST_POST_WAIT (``bot.slack.reply``).
MIN_HEAD = 12


@dataclass(frozen=True)
class Cut:
    """What one call sends: ``head``, with ``rest`` still pending behind it, out of the
    ``taken`` characters that were pending; ``full``: the message can take no more;
    ``last``: the head ends the answer."""

    head: str
    rest: str | None
    taken: int
    full: bool
    last: bool


def cut(sent: str, pending: str, limit_bytes: int, *, done: bool, first: bool) -> Cut:
    """What to send now: all that fits in the message, or, for the first message of an
    answer still coming, up to where it reads well."""
    head, rest = fit(sent, pending, limit_bytes)
    full = rest is not None
    if not full and not done and first:
        # Waited long enough for a readable head: at least end on a word.
        keep = readable_head(head) or max(head.rfind(" "), head.rfind("\n")) + 1 or len(head)
        head, rest = head[:keep], head[keep:] or None
    return Cut(head, rest, len(pending), full, done and rest is None)


def readable_head(text: str) -> int:
    """How much of ``text`` reads well as a first message on its own: up to its last line
    break, or to its last word, once that makes two words and ``MIN_HEAD`` characters (no
    one-word messages) and closes any code block it opens; 0 when not yet."""
    for end in (text.rfind("\n") + 1, text.rfind(" ") + 1):
        head = text[:end]
        if len(head) >= MIN_HEAD and len(head.split()) >= 2 and open_fence(head) is None:
            return end
    return 0
