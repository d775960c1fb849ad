"""What operators see: one JSON summary line per answer and per run, carrying its trace,
no secret in any line, and the optional cost footer under answers."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import logs
from bot.config import load_settings
from tests.fakes import FakeInference, FakeSlack
from tests.processes import bot_env, signed
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    BOB,
    CHANNEL,
    USER,
    card_text,
    click,
    mention,
    migrate_events,
    request_id,
    run,
    wait_answer,
)

MODEL = "claude-4-5-sonnet"
FOOTER = re.compile(rf"^{MODEL} · 46 tokens · \d+\.\d s$")  # the fakes report 12 + 34 tokens


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]

    def find(self, msg: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["msg"] == msg]


@pytest.fixture
def captured(bot_settings: Any) -> Iterator[Captured]:
    """Everything the process logs, down to DEBUG, through the formatter ``serve`` uses."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(logs.secrets_of(bot_settings)))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield Captured(stream)
    root.removeHandler(handler)
    root.setLevel(level)


def secrets(settings: Any) -> list[str]:
    found = logs.secrets_of(settings)
    assert found  # the test would prove nothing without them
    return found


async def answered(captured: Captured, slack: FakeSlack) -> dict[str, Any]:
    await slack.wait_for(lambda _: bool(captured.find("answered")))
    [line] = captured.find("answered")
    return line


async def test_an_answer_logs_one_summary_line_with_its_trace(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, captured: Captured
) -> None:
    inference.reply_text("Roll back with heroku releases:rollback.")
    await bot.event(mention("how do I roll back?", "100.1"))
    line = await answered(captured, slack)

    assert line["level"] == "info" and line["logger"] == "bot.ask" and line["ts"]
    assert (line["team"], line["channel"], line["thread"], line["user"]) == (
        "T0TEAM",
        CHANNEL,
        "100.1",
        USER,
    )
    assert (line["prompt_tokens"], line["completion_tokens"], line["tokens"]) == (12, 34, 46)
    assert line["model"] == MODEL and line["finish"] == "stop" and line["slack_429"] == 0
    assert 0 < line["first_text_seconds"] <= line["seconds"] < 10
    # Every line logged inside the request carries its context.
    traced = [entry for entry in captured.lines() if entry.get("trace_id") == line["trace_id"]]
    assert len(traced) > 1
    assert all(entry["channel"] == CHANNEL and entry["thread"] == "100.1" for entry in traced)


async def test_slack_429s_are_counted_on_the_request_that_met_them(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, captured: Captured
) -> None:
    slack.fail_next("chat.startStream", status=429, retry_after=1)
    inference.reply_text("Fine.")
    await bot.event(mention("status?", "110.1"))
    line = await answered(captured, slack)
    assert line["slack_429"] == 1


async def test_an_agent_run_logs_one_summary_line(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, captured: Captured
) -> None:
    inference.agent_events(migrate_events())
    await run(act, slack, "migrate app=shop-staging")
    await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
    rid = request_id(slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    await slack.wait_for(lambda _: bool(captured.find("run finished")))

    [line] = captured.find("run finished")
    assert line["trace_id"] == line["run_id"] == rid
    assert line["runbook"] == "migrate" and line["outcome"] == "succeeded"
    assert line["channel"] == CHANNEL and line["thread"] == slack.messages(CHANNEL)[0].ts
    assert line["started_by"] == BOB and line["user"] == "U0ALICE"
    assert line["tokens"] == 2 * 46  # two agent completions, each reporting usage
    assert line["slack_429"] == 0 and line["seconds"] > 0


async def test_no_configured_secret_reaches_the_log(
    bot: BotUnderTest,
    bot_settings: Any,
    slack: FakeSlack,
    inference: FakeInference,
    captured: Captured,
) -> None:
    inference.reply_text("Done.")
    await bot.event(mention("hello", "120.1"))
    await answered(captured, slack)
    hidden = secrets(bot_settings)
    # A careless line: secrets in the message, in a field and in a traceback.
    log = logging.getLogger("bot.careless")
    with logs.trace(user=hidden[0]):
        try:
            raise RuntimeError(f"refused: {' '.join(hidden)}")
        except RuntimeError:
            log.exception("key %s", hidden[-1], extra={"token": hidden[1]})

    text = captured.text()
    assert '"msg": "key ••••"' in text and "refused: ••••" in text
    assert not [secret for secret in hidden if secret in text]


def test_the_password_inside_a_redis_url_is_a_secret_on_its_own() -> None:
    settings = load_settings(redis_url="rediss://:p4ssw0rd-kvs@ec2.example:6380", _env_file=None)
    formatter = logs.JsonFormatter(logs.secrets_of(settings))
    record = logging.makeLogRecord({"msg": "AUTH failed with p4ssw0rd-kvs", "name": "redis"})
    assert "p4ssw0rd-kvs" not in formatter.format(record)


async def test_serve_writes_json_lines(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: Any
) -> None:
    inference.reply_text("Yes.")
    bot = await start(bot_env(slack, inference, redis_url))
    line = json.loads(await bot.wait_for_line("serving HTTP"))
    assert line["level"] == "info" and line["msg"].startswith("serving HTTP on port")
    body, headers = signed(mention("up?", "130.1"))
    async with httpx.AsyncClient() as http:
        await http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    summary = json.loads(await bot.wait_for_line('"answered"'))
    assert summary["thread"] == "130.1" and summary["tokens"] == 46
    entries = [json.loads(raw) for raw in bot.lines]
    # A clean start and answer, web and worker alike, leave nothing for an operator to chase.
    assert [e["msg"] for e in entries if e["level"] in ("warning", "error")] == []


# -- the footer -------------------------------------------------------------------------


@pytest.fixture
async def footed(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> AsyncIterator[BotUnderTest]:
    async with serve(settings_for(slack, inference, redis_url, copilot_footer=True)) as bot:
        yield bot


def footer_of(blocks: list[dict[str, Any]]) -> str:
    """The text of the message's last context block ("Thinking…" is one too, at first)."""
    contexts = [block for block in blocks if block["type"] == "context"]
    return str(contexts[-1]["elements"][0]["text"]) if contexts else ""


async def test_footer_closes_a_native_stream(
    footed: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("All good.")
    await footed.event(mention("ok?", "140.1"))
    await wait_answer(slack, CHANNEL, "140.1", "All good.")
    await slack.wait_for(lambda s: s.count("chat.stopStream") == 1)
    [stop] = slack.calls_to("chat.stopStream")
    assert FOOTER.match(footer_of(stop.params["blocks"]))


async def test_footer_goes_under_an_edited_answer(
    footed: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL)
    inference.reply_text("All good, edited.")
    await footed.event(mention("ok?", "150.1"))
    await slack.wait_for(lambda s: any(FOOTER.match(footer_of(m.blocks)) for m in s.messages()))
    [message] = slack.messages(CHANNEL, "150.1")
    assert message.body == "All good, edited."


async def test_no_footer_by_default(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Plain.")
    await bot.event(mention("ok?", "160.1"))
    await slack.wait_for(lambda s: s.count("chat.stopStream") == 1)
    # The answer ends with its feedback buttons only: no footer.
    blocks = slack.calls_to("chat.stopStream")[0].params["blocks"]
    assert [b["type"] for b in blocks] == ["context_actions"]
