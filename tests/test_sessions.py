"""Agent sessions and the stop button, end to end through signed events and the fake Slack."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.rig import BotUnderTest, serve, settings_for, working
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    answer_in,
    card_of,
    card_text,
    click,
    mention,
    migrate_events,
    pending_card,
    run_display,
    wait_answer,
)

STOPPED = "_Stopped by <@U0BOB>._"


def stopped(channel: str, thread_ts: str, user: str = BOB) -> dict[str, Any]:
    """The event Slack sends when ``user`` presses the stop button of a session."""
    return {
        "type": "agent_session_stopped",
        "channel": channel,
        "thread_ts": thread_ts,
        "streaming_message_ts": [],
        "user": user,
        "event_ts": f"{time.time():.6f}",
    }


async def running(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, *, approver: str
) -> Any:
    """A migrate run approved by ``approver`` and being watched (its next event is 5 s
    away); returns its card."""
    call = {"id": "c1", "type": "function", "function": {"name": "dyno_run_command"}}
    inference.agent_events(
        [
            (
                "message",
                agent_completion("Working.", tool_calls=[call], finish_reason="tool_calls"),
            ),
            ("message", agent_completion("never shown")),
            ("done", "[DONE]"),
        ],
        delay=5,
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, approver)
    await slack.wait_for(lambda s: "copilot_cancel" in card_text(s))
    return card_of(slack)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_a_question_is_processing_then_active_with_its_title(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_text("Check the release log.", pieces=4)
    await bot.event(mention("why did shop-staging restart last night?", "300.1"))
    await wait_answer(slack, CHANNEL, "300.1", "Check the release log.")
    await slack.wait_for(lambda s: s.session_statuses(CHANNEL, "300.1") == ["processing", "active"])
    assert slack.session_titles[(CHANNEL, "300.1")] == "why did shop-staging restart last night?"
    # "active" rode on the stream's last call: one setStatus per answer.
    assert slack.count("agents.sessions.setStatus") == 1
    [stop] = slack.calls_to("chat.stopStream")
    assert stop.params["session_status"] == "active"


async def test_an_edited_answer_sets_active_with_its_own_call(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming(CHANNEL)
    inference.reply_text("Edited in place.")
    await bot.event(mention("status?", "301.1"))
    await wait_answer(slack, CHANNEL, "301.1", "Edited in place.")
    await slack.wait_for(lambda s: s.session_statuses(CHANNEL, "301.1") == ["processing", "active"])
    assert slack.count("agents.sessions.setStatus") == 2


async def test_a_run_waiting_for_approval_is_suspended_then_processing_then_active(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    rid = await pending_card(act, slack)
    card = card_of(slack)
    await slack.wait_for(lambda s: s.session_statuses(CHANNEL, card.ts) == ["suspended"])
    assert slack.session_titles[(CHANNEL, card.ts)] == "migrate · shop-staging"
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    await slack.wait_for(
        lambda s: s.session_statuses(CHANNEL, card.ts) == ["suspended", "processing", "active"]
    )


async def test_the_stop_button_stops_an_answer_streaming_in_a_worker(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_text("word " * 200, pieces=200, delay=0.05)  # ten seconds of answer
    inference.reply_text("The next answer.", pieces=5, delay=0.2)  # outlasts a stop poll
    settings = settings_for(slack, inference, redis_url)
    async with serve(settings, announce=True) as web, working(settings):
        await web.event(mention("tell me everything", "310.1"))
        await slack.wait_for(lambda s: "word word" in answer_in(s, CHANNEL, "310.1"))
        pressed = time.monotonic()
        response = await web.event(stopped(CHANNEL, "310.1"))
        assert response.status_code == 200
        await slack.wait_for(lambda s: answer_in(s, CHANNEL, "310.1").endswith(STOPPED))
        assert time.monotonic() - pressed < 3  # polled every 0.3 s; about a second with Slack
        await slack.wait_for(lambda s: len(inference.closed_early) == 1)
        shown = answer_in(slack, CHANNEL, "310.1")
        assert shown.startswith("word word")
        assert shown.count("word") < 200
        await slack.wait_for(
            lambda s: s.session_statuses(CHANNEL, "310.1") == ["processing", "active"]
        )

        # The thread goes on: the next question is answered, knowing what was cut short.
        await web.event(mention("and now?", "310.2", thread_ts="310.1"))
        await slack.wait_for(lambda s: "The next answer." in answer_in(s, CHANNEL, "310.1"))
    history = inference.chat_requests[1].json["messages"]
    assert history[-2]["role"] == "assistant"
    assert history[-2]["content"].endswith(STOPPED)
    assert not answer_in(slack, CHANNEL, "310.1").endswith(STOPPED + "The next answer." + STOPPED)


async def test_the_stop_button_stops_watching_a_run(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    card = await running(act, slack, inference, approver=BOB)
    await act.event(stopped(CHANNEL, card.ts, user=ALICE))
    said = "Stopped watching; Heroku may still finish the run."
    await slack.wait_for(lambda s: said in card_text(s), timeout=10)
    assert said in run_display(slack)
    assert "never shown" not in run_display(slack)
    await slack.wait_for(
        lambda s: s.session_statuses(CHANNEL, card.ts) == ["suspended", "processing", "active"]
    )
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        audit = [fields for _, fields in await client.xrange(keys.audit_log())]
    finally:
        await client.aclose()
    [entry] = [a for a in audit if a["action"] == "cancel_requested"]
    assert (entry["user"], entry["via"]) == (ALICE, "stop_button")


async def test_the_stop_button_of_a_run_obeys_who_may_cancel(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    card = await running(act, slack, inference, approver=CAROL)
    await act.event(stopped(CHANNEL, card.ts, user="U0MALLORY"))
    await _wait_logged(caplog, "stop button refused")
    assert "Stopped watching" not in card_text(slack)


async def test_an_idle_thread_has_nothing_to_stop(
    bot: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    inference.reply_text("Done.")
    await bot.event(mention("quick one", "320.1"))
    await wait_answer(slack, CHANNEL, "320.1", "Done.")
    await slack.wait_for(lambda s: s.session_statuses(CHANNEL, "320.1")[-1:] == ["active"])
    thread = keys.thread_id("T0TEAM", CHANNEL, "320.1")
    client = aioredis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 5
        while await client.exists(keys.lock(thread)):  # the answerer lets go of the thread
            assert time.monotonic() < deadline, "the thread stayed locked"
            await asyncio.sleep(0.02)
        calls = len(slack.calls)
        response = await bot.event(stopped(CHANNEL, "320.1"))
        assert response.status_code == 200
        await _wait_logged(caplog, "nothing to stop")
        assert len(slack.calls) == calls
        assert not await client.exists(keys.stop(thread))
    finally:
        await client.aclose()

    # A later question in the thread is answered as usual.
    inference.reply_text(" Again.")
    await bot.event(mention("again", "320.2", thread_ts="320.1"))
    await wait_answer(slack, CHANNEL, "320.1", "Done. Again.")


@pytest.mark.parametrize("error", ["not_authorized", "unknown_method"])
async def test_refused_sessions_are_logged_once_and_not_asked_again(
    bot: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    caplog: pytest.LogCaptureFixture,
    error: str,
) -> None:
    caplog.set_level(logging.INFO)
    slack.refuse_sessions(error)
    for n in range(3):  # three streams: the workspace's burst of chat.startStream
        inference.reply_text(f"answer {n}")
        await bot.event(mention(f"question {n}", f"33{n}.1"))
        await wait_answer(slack, CHANNEL, f"33{n}.1", f"answer {n}")
        await slack.wait_for(lambda s, n=n: s.count("chat.stopStream") == n + 1)
    assert slack.count("agents.sessions.setStatus") == 1
    assert not any(c.params.get("session_status") for c in slack.calls_to("chat.stopStream"))
    [line] = logged(caplog, "Slack refuses agent sessions")
    assert error in line.getMessage()


async def _wait_logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + 5
    while not logged(caplog, text):
        assert time.monotonic() < deadline, f"no log line {text!r}"
        await asyncio.sleep(0.02)


async def test_a_stop_button_nobody_hears_is_logged_once(
    bot: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    slack.session_stopped_subscribed = False
    for n in range(3):
        inference.reply_text(f"answer {n}")
        await bot.event(mention(f"question {n}", f"34{n}.1"))
        await wait_answer(slack, CHANNEL, f"34{n}.1", f"answer {n}")
    await slack.wait_for(lambda s: s.count("agents.sessions.setStatus") == 3)
    [line] = logged(caplog, "agent_session_stopped bot event")
    assert "missing_agent_session_stopped_event_subscription" in line.getMessage()
