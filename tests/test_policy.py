"""The ``[policy]`` rules of who may ask and who may decide, each exercised through the
signed endpoint: ``requesters``, ``channels``, ``allow_self_approval`` and a runbook's own
``approvers``, and an approver who asked for the run themself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    SAMPLE,
    card_text,
    click,
    ephemeral_texts,
    migrate_events,
    pending_card,
    request_id,
    run,
)

DAVE = "U0DAVE"


@asynccontextmanager
async def serving(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str, runbooks: str
) -> AsyncIterator[BotUnderTest]:
    path = tmp_path / "runbooks.toml"
    path.write_text(runbooks)
    slack.usergroups["S0OPS"] = [CAROL]
    async with serve(settings_for(slack, inference, redis_url, runbooks_file=str(path))) as bot:
        yield bot


def with_policy(line: str) -> str:
    return SAMPLE.replace("[policy]\n", f"[policy]\n{line}\n", 1)


async def refused_click(bot: BotUnderTest, slack: FakeSlack, rid: str, user: str) -> str:
    await click(bot, slack, "copilot_approve", rid, user)
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{user}")))
    return ephemeral_texts(slack, user)


async def test_an_approver_cannot_approve_their_own_request(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.agent_events(migrate_events())
    async with serving(tmp_path, slack, inference, redis_url, SAMPLE) as bot:
        await run(bot, slack, "migrate app=shop-staging", user=BOB)
        await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
        rid = request_id(slack)
        assert "your own request" in await refused_click(bot, slack, rid, BOB)
        assert inference.agent_requests == []
        await click(bot, slack, "copilot_approve", rid, CAROL)  # another approver
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert len(inference.agent_requests) == 1


async def test_self_approval_when_the_file_allows_it(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.agent_events(migrate_events())
    runbooks = with_policy("allow_self_approval = true")
    async with serving(tmp_path, slack, inference, redis_url, runbooks) as bot:
        await run(bot, slack, "migrate app=shop-staging", user=BOB)
        await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
        await click(bot, slack, "copilot_approve", request_id(slack), BOB)
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert f"approved by <@{BOB}>" in card_text(slack)


async def test_only_the_listed_requesters_may_ask(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = with_policy(f'requesters = ["{BOB}"]')
    async with serving(tmp_path, slack, inference, redis_url, runbooks) as bot:
        await run(bot, slack, "migrate app=shop-staging", user=ALICE)
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
        assert "not on the list of people who may use `/run`" in ephemeral_texts(slack, ALICE)
        assert slack.messages(CHANNEL) == []
        await run(bot, slack, "migrate app=shop-staging", user=BOB)
        await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
    assert f"<@{BOB}>" in card_text(slack)


async def test_run_works_only_in_the_listed_channels(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    runbooks = with_policy(f'channels = ["{CHANNEL}"]')
    async with serving(tmp_path, slack, inference, redis_url, runbooks) as bot:
        await run(bot, slack, "migrate app=shop-staging", channel="C0ELSEWHERE")
        await slack.wait_for(lambda s: bool(s.responses_to(f"cmd-{ALICE}")))
        assert f"`/run` works only in <#{CHANNEL}>" in ephemeral_texts(slack, ALICE)
        assert slack.messages("C0ELSEWHERE") == []
        await pending_card(bot, slack)  # in the listed channel, the card goes up
    assert "Waiting for approval" in card_text(slack)


async def test_a_runbooks_own_approvers_replace_the_policys(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    inference.agent_events(migrate_events())
    runbooks = SAMPLE.replace(
        'prompt = "Run the pending database migrations',
        f'approvers = ["{DAVE}"]\nprompt = "Run the pending database migrations',
        1,
    )
    assert runbooks != SAMPLE
    async with serving(tmp_path, slack, inference, redis_url, runbooks) as bot:
        rid = await pending_card(bot, slack)
        assert "not an approver" in await refused_click(bot, slack, rid, BOB)
        assert inference.agent_requests == []
        await click(bot, slack, "copilot_approve", rid, DAVE)
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    assert f"approved by <@{DAVE}>" in card_text(slack)
