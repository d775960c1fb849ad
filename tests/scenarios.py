"""What scenario tests say to the bot and read back: the people, the channel, the events
Slack sends, the sample runbooks, how an answer, a card and a run look in the fake Slack,
and what to wait for before asserting that something did not happen."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bot.state import keys
from tests.fakes import FakeSlack
from tests.fakes.inference import agent_completion, agent_tool_result
from tests.rig import BotUnderTest

CHANNEL = "C0OPS"
ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
USER = ALICE  # who asks, in the Ask scenarios

SAMPLE = """
[policy]
approvers = ["U0BOB", "S0OPS"]
approval_ttl_seconds = 600

[runbooks.migrate]
description = "Run database migrations"
prompt = "Run the pending database migrations on {app} and summarize the output."

[runbooks.migrate.params.app]
description = "Target Heroku app"
choices = ["shop-staging", "shop-production"]

[[runbooks.migrate.tools]]
type = "heroku_tool"
name = "dyno_run_command"
[runbooks.migrate.tools.runtime_params]
target_app_name = "{app}"
ttl_seconds = 120
max_calls = 1
[runbooks.migrate.tools.runtime_params.tool_params]
cmd = "python manage.py migrate"
description = "Runs the database migrations"
parameters = { type = "object", properties = {} }

[runbooks.logs]
description = "Read recent logs"
prompt = "Summarize errors in the last {lines} log lines of {app}."
approval = false

[runbooks.logs.params.app]
pattern = "^[a-z0-9-]+$"

[runbooks.logs.params.lines]
required = false
default = "200"
pattern = "^[0-9]{1,4}$"

[[runbooks.logs.tools]]
type = "mcp"
name = "mcp-logs/tail"
"""

# -- Ask -----------------------------------------------------------------------------------


def channel_message(
    text: str, ts: str, *, thread_ts: str | None = None, user: str = USER
) -> dict[str, Any]:
    event = {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": CHANNEL,
        "team": "T0TEAM",
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def mention(text: str, ts: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """The ``app_mention`` event: a channel message naming the bot, without ``channel_type``."""
    event = channel_message(f"<@U0BOT> {text}", ts, thread_ts=thread_ts)
    del event["channel_type"]
    return {**event, "type": "app_mention"}


def answer_in(slack: FakeSlack, channel: str, thread_ts: str) -> str:
    return "".join(slack.thread_bodies(channel, thread_ts))


async def wait_answer(slack: FakeSlack, channel: str, thread_ts: str, text: str) -> None:
    await slack.wait_for(lambda s: answer_in(s, channel, thread_ts) == text, timeout=10)


async def wait_answers(
    slack: FakeSlack,
    answers: dict[str, str],
    *,
    channels: dict[str, str] | None = None,
    timeout: float = 20.0,  # noqa: ASYNC109
) -> None:
    """Every thread of ``answers`` (thread ts → text; in ``channels[ts]``, else CHANNEL)
    shows a whole answer. The fake model answers concurrent questions in arrival order, so
    the texts are matched as a set."""
    where = channels or {}
    expected = sorted(answers.values())
    await slack.wait_for(
        lambda s: sorted(answer_in(s, where.get(ts, CHANNEL), ts) for ts in answers) == expected,
        timeout=timeout,
    )


# -- App Home ------------------------------------------------------------------------------


async def open_home(bot: BotUnderTest, slack: FakeSlack, user: str, tab: str = "home") -> None:
    slack.home_views.pop(user, None)
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": f"D0{user[2:]}",
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    assert (await bot.event(event)).status_code == 200


# -- Act -----------------------------------------------------------------------------------


async def run(
    bot: BotUnderTest, slack: FakeSlack, text: str, user: str = ALICE, *, channel: str = CHANNEL
) -> Any:
    response = await bot.command(
        command="/run",
        text=text,
        user_id=user,
        team_id="T0TEAM",
        channel_id=channel,
        response_url=slack.response_url(f"cmd-{user}"),
        trigger_id="1.2",
    )
    assert response.status_code == 200
    return response


async def click(bot: BotUnderTest, slack: FakeSlack, action_id: str, value: str, user: str) -> None:
    card = slack.messages(CHANNEL)[0] if slack.messages(CHANNEL) else None
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "message_ts": card.ts if card else "0"},
        "response_url": slack.response_url(f"click-{user}"),
        "trigger_id": "1.3",
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"run:{value}",
                "value": value,
                "type": "button",
                "action_ts": "1.4",
            }
        ],
    }
    response = await bot.action(payload)
    assert response.status_code == 200


def card_of(slack: FakeSlack) -> Any:
    return next(m for m in slack.messages(CHANNEL) if m.thread_ts is None)


def request_id(slack: FakeSlack) -> str:
    for block in card_of(slack).blocks:
        if block["type"] == "actions":
            return str(block["elements"][0]["value"])
    raise AssertionError("the card has no buttons")


def run_display(slack: FakeSlack) -> str:
    """Everything the run's thread shows: message text and native task steps."""
    messages = slack.messages(CHANNEL, card_of(slack).ts)
    return " ".join(m.body + json.dumps(m.tasks) for m in messages)


def card_text(slack: FakeSlack) -> str:
    return json.dumps(card_of(slack).blocks)


def ephemeral_texts(slack: FakeSlack, user: str) -> str:
    return " ".join(json.dumps(r) for r in slack.responses_to(f"click-{user}")) + " ".join(
        json.dumps(r) for r in slack.responses_to(f"cmd-{user}")
    )


def clicks_refused(slack: FakeSlack, *users: str) -> list[Any]:
    """The ephemeral replies to ``users``' clicks, each a refusal saying why nothing changed."""
    return [reply for user in users for reply in slack.responses_to(f"click-{user}")]


async def pending_card(bot: BotUnderTest, slack: FakeSlack) -> str:
    await run(bot, slack, "migrate app=shop-staging")
    await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
    return request_id(slack)


def migrate_events() -> list[tuple[str, str]]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "dyno_run_command", "arguments": "{}"},
    }
    return [
        (
            "message",
            agent_completion("Running migrations.", tool_calls=[call], finish_reason="tool_calls"),
        ),
        (
            "message",
            agent_tool_result(
                "call_1",
                "dyno_run_command",
                "Applied 3 migrations. DATABASE_URL=postgres://u:hunter22@db.internal:5432/x",
            ),
        ),
        ("message", agent_completion("All 3 migrations applied to shop-staging.")),
        ("done", "[DONE]"),
    ]


# -- Waiting for the end -------------------------------------------------------------------
# "Nothing else happened" only means something once the bot is known to be done: wait for a
# sign that it is (a log line, a recorded call, a Redis state), never for a fixed time.


class BotLog(logging.Handler):
    """Every line the bot logs in this process (the ``bot`` logger, down to DEBUG), for
    tests to wait on the one that says the bot is done with an input."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, msg: str, **fields: object) -> list[logging.LogRecord]:
        """The records whose message is ``msg`` and whose extra fields include ``fields``."""
        return [
            r
            for r in self.records
            if r.getMessage() == msg and all(getattr(r, k, None) == v for k, v in fields.items())
        ]

    # A plain ``timeout`` argument reads best in scenario tests, hence the noqa.
    async def wait_for(
        self,
        msg: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
        **fields: object,
    ) -> list[logging.LogRecord]:
        """Poll every 10 ms until ``count`` lines match; on timeout fail listing the last ones."""
        deadline = time.monotonic() + timeout
        while len(found := self.lines(msg, **fields)) < count:
            if time.monotonic() >= deadline:
                seen = "\n".join(f"  {r.name}: {r.getMessage()}" for r in self.records[-30:])
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} x {msg!r} {fields}; "
                    f"{len(found)} seen. Last lines:\n{seen}"
                )
            await asyncio.sleep(0.01)
        return found


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> None:
    """Poll ``check`` every 10 ms until it holds; on timeout fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.01)


async def thread_settled(redis: aioredis.Redis, thread_ts: str, channel: str = CHANNEL) -> bool:
    """No one answers in the thread and no question waits in it: the end of every answer."""
    thread = keys.thread_id("T0TEAM", channel, thread_ts)
    locked = await redis.exists(keys.lock(thread))
    waiting = await redis.llen(keys.queue(thread))
    return not locked and waiting == 0


async def wait_settled(redis: aioredis.Redis, thread_ts: str, channel: str = CHANNEL) -> None:
    """Wait until the thread's answers are over: its queue empty and its lock let go."""
    await wait_until(
        lambda: thread_settled(redis, thread_ts, channel),
        f"thread {thread_ts} has no question waiting and no answer in progress",
        timeout=10,
    )


async def run_state(redis: aioredis.Redis, rid: str) -> str | None:
    """The state the run request is stored in."""
    state = await redis.hget(keys.request(rid), "state")
    return None if state is None else str(state)
