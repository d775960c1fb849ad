"""What scenario tests say to the bot and read back: the people, the channel, the events
Slack sends, the sample runbooks, and how an answer, a card and a run look in the fake Slack."""

from __future__ import annotations

import json
import time
from typing import Any

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


async def run(bot: BotUnderTest, slack: FakeSlack, text: str, user: str = ALICE) -> Any:
    response = await bot.command(
        command="/run",
        text=text,
        user_id=user,
        team_id="T0TEAM",
        channel_id=CHANNEL,
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
