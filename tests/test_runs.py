"""Act, end to end: /run, the approval card, and the agent run streamed into its thread."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import redis

from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    MALLORY,
    SAMPLE,
    card_of,
    card_text,
    click,
    clicks_refused,
    ephemeral_texts,
    migrate_events,
    pending_card,
    run,
    run_display,
)


def has_buttons(slack: FakeSlack) -> bool:
    return any(b["type"] == "actions" for b in card_of(slack).blocks)


async def test_help_lists_runbooks_only_to_the_requester(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    await run(act, slack, "help")
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
    [reply] = slack.responses_to(f"cmd-{ALICE}")
    assert reply["response_type"] == "ephemeral"
    assert "`migrate`" in reply["text"]
    assert "needs approval" in reply["text"]
    assert "shop-staging | shop-production" in reply["text"]
    assert "runs at once" in reply["text"]
    assert slack.messages(CHANNEL) == []


async def test_refused_value_starts_nothing(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    await run(act, slack, "migrate app=shop-evil")
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
    assert "must be one of shop-staging, shop-production" in ephemeral_texts(slack, ALICE)
    assert slack.messages(CHANNEL) == []
    assert inference.agent_requests == []


async def test_approved_run_sends_the_exact_body_and_streams_progress(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    rid = await pending_card(act, slack)
    text = card_text(slack)
    assert ALICE in text
    assert "migrate" in text
    assert "shop-staging" in text
    assert "python manage.py migrate" in text
    assert "Approve" in text
    assert inference.agent_requests == []

    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)

    [request] = inference.agent_requests
    assert request.json["tools"][0]["runtime_params"]["target_app_name"] == "shop-staging"
    assert request.json["tools"][0]["runtime_params"]["tool_params"]["cmd"] == (
        "python manage.py migrate"
    )
    assert request.json["messages"][-1]["content"].endswith(
        "on shop-staging and summarize the output."
    )
    thread = run_display(slack)
    assert "dyno_run_command" in thread
    assert "Applied 3 migrations" in thread
    [stream] = slack.messages(CHANNEL, card_of(slack).ts)  # one native timeline
    assert stream.tasks["call_1"]["status"] == "complete"
    assert stream.stream_stopped
    assert "All 3 migrations applied to shop-staging." in thread
    assert "hunter22" not in thread
    assert "hunter22" not in json.dumps([c.params for c in slack.calls])
    assert not has_buttons(slack)
    assert BOB in card_text(slack)
    audit = redis.Redis.from_url(act.runtime.settings.redis_url.get_secret_value())  # type: ignore[union-attr]
    actions = [e[1][b"action"] for e in audit.xrange("copilot:audit")]
    audit.close()
    assert actions == [b"requested", b"approved", b"run_started", b"run_ended"]


async def test_self_approval_and_outsiders_are_refused(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, ALICE)
    await click(act, slack, "copilot_approve", rid, MALLORY)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{MALLORY}")))
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{ALICE}")))
    assert "your own request" in ephemeral_texts(slack, ALICE)
    assert "not an approver" in ephemeral_texts(slack, MALLORY)
    assert has_buttons(slack)
    assert inference.agent_requests == []


async def test_user_group_member_may_approve(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, CAROL)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert slack.count("usergroups.users.list") == 1


async def test_concurrent_approvals_start_exactly_one_run(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    inference.agent_events(migrate_events())
    rid = await pending_card(act, slack)
    await asyncio.gather(
        *(click(act, slack, "copilot_approve", rid, who) for who in (BOB, BOB, CAROL, BOB, CAROL))
    )
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    # Every click is decided: the four that lost are told so, and the bot is idle.
    await slack.wait_for(lambda s: len(clicks_refused(s, BOB, CAROL)) == 4)
    await act.idle()
    assert all("already approved" in r["text"] for r in clicks_refused(slack, BOB, CAROL))
    assert len(inference.agent_requests) == 1


async def test_deny_updates_the_card_and_runs_nothing(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_deny", rid, BOB)
    await slack.wait_for(lambda s: "Denied by" in card_text(s))
    assert not has_buttons(slack)
    await click(act, slack, "copilot_approve", rid, CAROL)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{CAROL}")))
    assert "already denied" in ephemeral_texts(slack, CAROL)
    assert inference.agent_requests == []


async def test_made_up_request_id_is_refused(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    await click(act, slack, "copilot_approve", "f" * 32, BOB)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
    assert "don't know this request" in ephemeral_texts(slack, BOB)
    assert inference.agent_requests == []


async def test_requester_can_withdraw(act: BotUnderTest, slack: FakeSlack) -> None:
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_withdraw", rid, BOB)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
    assert has_buttons(slack)
    await click(act, slack, "copilot_withdraw", rid, ALICE)
    await slack.wait_for(lambda s: "Withdrawn by" in card_text(s))


async def test_agent_error_event_fails_the_run_visibly(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(
        [("error", json.dumps({"message": "dyno quota exceeded"})), ("done", "[DONE]")]
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Failed after" in card_text(s), timeout=10)
    assert "dyno quota exceeded" in run_display(slack)


async def test_runbook_without_approval_runs_at_once(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(
        [("message", agent_completion("No errors in the last 50 lines.")), ("done", "[DONE]")]
    )
    await run(act, slack, "logs app=shop lines=50")
    await slack.wait_for(
        lambda s: bool(s.messages(CHANNEL)) and "Succeeded" in card_text(s), timeout=10
    )
    assert "lines of shop" in inference.agent_requests[0].json["messages"][-1]["content"]


async def test_channel_the_bot_is_not_in_tells_the_requester(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    slack.set_channel_error(CHANNEL, "not_in_channel")
    await run(act, slack, "migrate app=shop-staging")
    await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
    assert "/invite @copilot" in ephemeral_texts(slack, ALICE)
    assert inference.agent_requests == []


def expiring(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str, sweep: float
) -> serve:
    """The bot with requests that expire after one second, swept every ``sweep`` seconds."""
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace("approval_ttl_seconds = 600", "approval_ttl_seconds = 1"))
    return serve(
        settings_for(
            slack, inference, redis_url, runbooks_file=str(path), copilot_sweep_interval=sweep
        )
    )


async def test_expiry_without_a_click_updates_the_card(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    async with expiring(tmp_path, slack, inference, redis_url, sweep=0.2) as bot:
        rid = await pending_card(bot, slack)
        await slack.wait_for(lambda s: "Expired" in card_text(s), timeout=5)
        assert not has_buttons(slack)
        await click(bot, slack, "copilot_approve", rid, BOB)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
        assert "expired before your click; nothing ran" in ephemeral_texts(slack, BOB)
    assert inference.agent_requests == []


async def test_late_click_after_expiry_is_refused(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    # No sweep comes in time: the click itself finds the request expired.
    async with expiring(tmp_path, slack, inference, redis_url, sweep=60) as bot:
        rid = await pending_card(bot, slack)
        await asyncio.sleep(1.2)
        await click(bot, slack, "copilot_approve", rid, BOB)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
        assert "expired" in ephemeral_texts(slack, BOB)
        await slack.wait_for(lambda s: "Expired" in card_text(s))
    assert inference.agent_requests == []
