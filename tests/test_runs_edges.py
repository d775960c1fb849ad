"""Act at its edges: cancel, forged buttons, DMs, and failures mid-run."""

from __future__ import annotations

import json

from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.rig import BotUnderTest
from tests.scenarios import (
    ALICE,
    BOB,
    MALLORY,
    card_of,
    card_text,
    click,
    ephemeral_texts,
    pending_card,
    run_display,
    run_state,
)


def thread_text(slack: FakeSlack) -> str:
    return run_display(slack)


async def test_cancel_stops_watching_and_only_allowed_people_may(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
) -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "dyno_run_command", "arguments": "{}"},
    }
    inference.agent_events(
        [
            (
                "message",
                agent_completion("Migrating…", tool_calls=[call], finish_reason="tool_calls"),
            ),
            ("message", agent_completion("never shown")),
        ],
        delay=5,
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "copilot_cancel" in card_text(s))
    await click(act, slack, "copilot_cancel", rid, MALLORY)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{MALLORY}")))
    assert "Only the requester or an approver" in ephemeral_texts(slack, MALLORY)

    await click(act, slack, "copilot_cancel", rid, ALICE)
    await slack.wait_for(lambda s: "Cancelled by" in card_text(s), timeout=10)
    # Cancel says what it does, to the canceller, on the card and in the run's thread.
    said = "Stopped watching; Heroku may still finish the run."
    await slack.wait_for(lambda s: said in ephemeral_texts(s, ALICE))
    assert said in card_text(slack)
    assert said in thread_text(slack)
    assert "never shown" not in thread_text(slack)
    assert "copilot_cancel" not in card_text(slack)


async def test_a_forged_run_button_cannot_skip_approval(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
) -> None:
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_run", rid, ALICE)  # the requester, on a needs-approval card
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{ALICE}")))
    assert "needs an approver's click" in ephemeral_texts(slack, ALICE)
    await act.idle()
    assert await run_state(act.runtime.redis, rid) == "pending"
    assert inference.agent_requests == []
    assert "Waiting for approval" in card_text(slack)


async def test_approval_requests_are_refused_in_direct_messages(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
) -> None:
    response = await act.command(
        command="/run",
        text="migrate app=shop-staging",
        user_id=ALICE,
        team_id="T0TEAM",
        channel_id="D0ALICE",
        response_url=slack.response_url(f"cmd-{ALICE}"),
    )
    assert response.status_code == 200
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
    assert "direct message" in ephemeral_texts(slack, ALICE)
    assert slack.messages() == []


async def test_a_run_that_breaks_off_says_to_check_before_rerunning(
    act: BotUnderTest,
    slack: FakeSlack,
    inference: FakeInference,
) -> None:
    inference.reply_error(
        503, {"error": "server_error", "message": "upstream down"}, path="/v1/agents/heroku"
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Failed after" in card_text(s), timeout=10)
    thread = thread_text(slack)
    assert "check the app before running it again" in thread
    assert "Please try again" not in thread
    assert "the run broke off" in card_text(slack)


async def test_socket_mode_health_app_has_no_events_route(act: BotUnderTest) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.server import web_app

    async with TestClient(TestServer(web_app(act.runtime, slack_events_route=False))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.post("/slack/events", data=json.dumps({}))).status in (404, 405)


def _tool_run(output: str) -> list[tuple[str, str]]:
    from tests.fakes.inference import agent_tool_result

    call = {"id": "c1", "type": "function",
            "function": {"name": "dyno_run_command", "arguments": "{}"}}  # fmt: skip
    return [
        ("message", agent_completion("Running.", tool_calls=[call], finish_reason="tool_calls")),
        ("message", agent_tool_result("c1", "dyno_run_command", output)),
        ("message", agent_completion("Final answer: all good.")),
        ("done", "[DONE]"),
    ]


async def test_long_tool_output_goes_up_as_a_masked_file(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    output = "\n".join(f"migration {i:04d} applied" for i in range(400))
    output += "\nDATABASE_URL=postgres://u:s3cr3tpw@db.internal/x"
    inference.agent_events(_tool_run(output))
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    [upload] = slack.files.values()
    content = upload.content.decode()
    assert "migration 0399 applied" in content
    assert "s3cr3tpw" not in content
    assert upload.thread_ts == card_of(slack).ts
    assert "migration 0000 applied" in thread_text(slack)  # the start is shown inline


async def test_a_failed_progress_post_does_not_lose_the_final_answer(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(_tool_run("ok"))
    rid = await pending_card(act, slack)
    slack.fail_next("chat.postMessage", "internal_error", status=500, times=3)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=15)
    assert "Final answer: all good." in thread_text(slack)


async def test_runs_fall_back_to_plain_messages_where_streaming_is_refused(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.refuse_streaming("C0OPS")
    inference.agent_events(_tool_run("3 migrations applied"))
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    steps = slack.messages("C0OPS", card_of(slack).ts)
    assert not any(m.streaming for m in steps)
    bodies = " ".join(m.body for m in steps)
    assert "dyno_run_command" in bodies
    assert "3 migrations applied" in bodies
    assert "Final answer: all good." in bodies


async def test_a_run_wrongly_taken_for_dead_ends_with_its_real_outcome(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # Another process may take a live one for dead (it missed heartbeats) and mark its run
    # interrupted; when the run then finishes, the real outcome wins on the card.
    call = {"id": "c1", "type": "function",
            "function": {"name": "dyno_run_command", "arguments": "{}"}}  # fmt: skip
    inference.agent_events(
        [
            (
                "message",
                agent_completion("Working.", tool_calls=[call], finish_reason="tool_calls"),
            ),
            ("message", agent_completion("Done for real.")),
            ("done", "[DONE]"),
        ],
        delay=2.0,
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Running" in card_text(s))
    await act.runtime.runs.interrupted(rid)  # what a survivor's sweep does
    await slack.wait_for(lambda s: "interrupted by a restart" in card_text(s))
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert "ignore the restart notice" in thread_text(slack)
    assert "Done for real." in thread_text(slack)
