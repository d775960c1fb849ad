"""Threads of the fake workspace as ``conversations.replies`` reads them: the bot's messages
and what people (or other apps) said, oldest first, paged with a cursor, bounded by
``latest`` / ``oldest`` (exclusive unless ``inclusive``), with Slack's errors
(``thread_not_found``, ``missing_scope``, ``not_in_channel``, ``channel_not_found``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.slack_model import Json, SlackError
from tests.fakes.slack_people import cursor, offset


@dataclass
class Said:
    """A message someone other than the bot posted (tests put them there)."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    bot_id: str | None = None

    def payload(self, team: str) -> Json:
        found: Json = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        found["team"] = team
        if self.thread_ts:
            found["thread_ts"] = self.thread_ts
        if self.bot_id:
            found["bot_id"] = self.bot_id
        return found


class SlackThreads:
    def __init__(
        self,
        team_id: str,
        readable: Callable[[Json], str],
        bot_messages: Callable[[str], list[Json]],
    ) -> None:
        self.team_id = team_id
        self.said: list[Said] = []
        self._readable = readable
        self._bot_messages = bot_messages

    def handlers(self) -> dict[str, Callable[[Json], Json]]:
        return {"conversations.replies": self._replies}

    def say(
        self,
        channel: str,
        ts: str,
        text: str,
        *,
        user: str,
        thread_ts: str | None = None,
        bot_id: str | None = None,
    ) -> None:
        self.said.append(Said(channel, ts, user, text, thread_ts, bot_id))

    def _replies(self, params: Json) -> Json:
        channel = self._readable(params)
        parent = str(params.get("ts") or "")
        thread = [m for m in self._thread(channel) if parent in (m["ts"], m.get("thread_ts"))]
        if not parent or not any(m["ts"] == parent for m in thread):
            raise SlackError("thread_not_found")
        inclusive = str(params.get("inclusive") or "").lower() in ("1", "true")
        thread = [m for m in thread if _within(m["ts"], params, inclusive)]
        limit = int(params.get("limit") or 1000)
        start = offset(str(params.get("cursor") or ""))
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": cursor(start + limit) if more else ""},
        }

    def _thread(self, channel: str) -> list[Json]:
        found = [s.payload(self.team_id) for s in self.said if s.channel == channel]
        found += self._bot_messages(channel)
        return sorted(found, key=lambda m: _order(m["ts"]))


def _within(ts: str, params: Json, inclusive: bool) -> bool:
    at = _order(ts)
    latest, oldest = params.get("latest"), params.get("oldest")
    before_latest = not latest or (at <= _order(latest) if inclusive else at < _order(latest))
    after_oldest = not oldest or (at >= _order(oldest) if inclusive else at > _order(oldest))
    return before_latest and after_oldest


def _order(ts: object) -> tuple[int, int]:
    seconds, _, micros = str(ts).partition(".")
    return int(seconds or 0), int(micros.ljust(6, "0")[:6] or 0)
