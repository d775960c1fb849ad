"""Approvals re-check the runbooks file in force: a request made under one file and clicked
after a restart with another runs only if the new file would run it exactly as stored.

Each test serves the bot twice on the same Redis, like a restart: the first runtime takes
the ``/run`` and posts the card, the second (with an edited runbooks file) takes the click.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.runbooks import Catalog, agent_body, load_catalog
from bot.runs import RunRecord, RunState
from bot.runs.invocation import parse
from bot.runs.rules import in_force, outdated
from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest, serve, settings_for
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    MALLORY,
    SAMPLE,
    answer_in,
    card_text,
    click,
    ephemeral_texts,
    mention,
    migrate_events,
    request_id,
    run,
)

APPROVE = "copilot_approve"


class Restart:
    """The bot before and after a restart with another runbooks file, on one Redis."""

    def __init__(
        self, tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
    ) -> None:
        self._tmp = tmp_path
        self._slack = slack
        self._inference = inference
        self._redis_url = redis_url
        self._files = 0
        slack.usergroups["S0OPS"] = [CAROL]

    @asynccontextmanager
    async def serving(self, runbooks: str, **settings: Any) -> AsyncIterator[BotUnderTest]:
        self._files += 1
        path = self._tmp / f"runbooks-{self._files}.toml"
        path.write_text(runbooks)
        with_file = settings_for(
            self._slack, self._inference, self._redis_url, runbooks_file=str(path), **settings
        )
        async with serve(with_file) as bot:
            yield bot

    async def requested(self, runbooks: str, text: str, user: str = ALICE) -> str:
        """Serve ``runbooks``, ``/run text`` as ``user``, and stop: the card's request id."""
        async with self.serving(runbooks) as before:
            await run(before, self._slack, text, user=user)
            await self._slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
            return request_id(self._slack)


def audit(redis_url: str, action: str) -> list[dict[str, str]]:
    """Entries of ``action`` in the audit log (refusals in the refused stream)."""
    stream = keys.refused_log() if action.endswith("_refused") else keys.audit_log()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = client.xrange(stream)
    finally:
        client.close()
    return [fields for _, fields in entries if fields["action"] == action]  # type: ignore[union-attr]


def stored(redis_url: str, rid: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return client.hgetall(keys.request(rid))  # type: ignore[return-value]
    finally:
        client.close()


async def approve_outdated(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, redis_url: str, rid: str
) -> str:
    """Bob approves; the request must become outdated with nothing run. Returns the reason."""
    await click(bot, slack, APPROVE, rid, BOB)
    await slack.wait_for(lambda s: "Outdated" in ephemeral_texts(s, BOB))
    await slack.wait_for(lambda s: "Outdated" in card_text(s))
    [entry] = audit(redis_url, "outdated")
    reason = entry["reason"]
    assert entry["user"] == BOB and entry["id"] == rid
    assert reason in ephemeral_texts(slack, BOB)
    assert "Nothing ran" in ephemeral_texts(slack, BOB)
    assert reason in card_text(slack)
    assert "Ask again with `/run`" in card_text(slack)
    assert APPROVE not in card_text(slack)  # no buttons left on an outdated card
    record = stored(redis_url, rid)
    assert record["state"] == "outdated" and record["outdated_reason"] == reason
    assert audit(redis_url, "approved") == [] and audit(redis_url, "run_started") == []

    # Another approver's click on the same card changes nothing either.
    await click(bot, slack, APPROVE, rid, CAROL)
    await slack.wait_for(lambda s: "already outdated" in ephemeral_texts(s, CAROL))
    assert inference.agent_requests == []
    return reason


EVIL_ALLOWED = SAMPLE.replace('"shop-production"]', '"shop-production", "shop-evil"]')
STAGING = "migrate app=shop-staging"


@pytest.mark.parametrize(
    ("before", "text", "after", "settings", "reason"),
    [
        pytest.param(
            SAMPLE, STAGING, SAMPLE.replace("runbooks.migrate", "runbooks.migrate-v2"), {},
            "the runbooks file changed since this request "
            "(the runbook `migrate` is no longer in it)",
            id="runbook removed",
        ),
        pytest.param(
            EVIL_ALLOWED, "migrate app=shop-evil", SAMPLE, {},
            "the runbooks file changed since this request "
            "(the value app=shop-evil is no longer allowed)",
            id="value no longer allowed",
        ),
        pytest.param(
            SAMPLE, STAGING, SAMPLE.replace("manage.py migrate", "manage.py flush"), {},
            "the runbooks file changed since this request (the runbook's tools are different now)",
            id="tool command edited",
        ),
        pytest.param(
            SAMPLE, STAGING, SAMPLE, {"inference_model_id": "claude-other"},
            "the model changed since this request (INFERENCE_MODEL_ID is now claude-other)",
            id="model changed",
        ),
    ],
)  # fmt: skip
async def test_a_changed_file_outdates_the_request(
    tmp_path: Path,
    slack: FakeSlack,
    inference: FakeInference,
    redis_url: str,
    before: str,
    text: str,
    after: str,
    settings: dict[str, Any],
    reason: str,
) -> None:
    restart = Restart(tmp_path, slack, inference, redis_url)
    rid = await restart.requested(before, text)
    assert text.split("=")[1] in card_text(slack)  # the card showed what was asked
    async with restart.serving(after, **settings) as bot:
        assert await approve_outdated(bot, slack, inference, redis_url, rid) == reason


async def test_a_removed_approver_is_refused_and_the_request_keeps_waiting(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    restart = Restart(tmp_path, slack, inference, redis_url)
    rid = await restart.requested(SAMPLE, "migrate app=shop-staging")
    without_bob = SAMPLE.replace('approvers = ["U0BOB", "S0OPS"]', 'approvers = ["S0OPS"]')
    assert without_bob != SAMPLE
    inference.agent_events(migrate_events())
    async with restart.serving(without_bob) as bot:
        await click(bot, slack, APPROVE, rid, BOB)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{BOB}")))
        assert "not an approver" in ephemeral_texts(slack, BOB)
        [refused] = audit(redis_url, "click_refused")
        assert refused["user"] == BOB and refused["decision"] == "approve"
        assert "Waiting for approval" in card_text(slack)
        assert stored(redis_url, rid)["state"] == "pending"
        assert inference.agent_requests == []

        # Someone who is still an approver runs the request exactly as stored.
        await click(bot, slack, APPROVE, rid, CAROL)
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    [sent] = inference.agent_requests
    assert sent.json["tools"][0]["runtime_params"]["target_app_name"] == "shop-staging"
    assert audit(redis_url, "outdated") == []


async def test_the_requesters_run_click_is_rechecked_too(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    """A proposal of a runbook that needed no approval waits for the asker's Run; if the
    file now says it needs approval, that Run click starts nothing."""
    restart = Restart(tmp_path, slack, inference, redis_url)
    inference.reply_tool_calls([("logs", '{"app": "shop"}')])
    async with restart.serving(SAMPLE) as before:
        await before.event(mention("any errors in shop logs?", "50.1"))
        await slack.wait_for(lambda s: any(is_card(m) for m in s.messages(CHANNEL, "50.1")))
    [proposal] = [m for m in slack.messages(CHANNEL, "50.1") if is_card(m)]
    buttons = next(b for b in proposal.blocks if b["type"] == "actions")["elements"]
    rid = buttons[0]["value"]
    assert buttons[0]["action_id"] == "copilot_run"

    needs_approval = SAMPLE.replace("approval = false", "approval = true")
    async with restart.serving(needs_approval) as bot:
        await click(bot, slack, "copilot_run", rid, ALICE)
        await slack.wait_for(lambda s: "Outdated" in ephemeral_texts(s, ALICE))
    assert "`logs` now needs an approver's click" in ephemeral_texts(slack, ALICE)
    [entry] = audit(redis_url, "outdated")
    assert entry["user"] == ALICE
    assert stored(redis_url, rid)["state"] == "outdated"
    assert inference.agent_requests == []
    assert "No errors" not in answer_in(slack, CHANNEL, "50.1")


async def test_a_second_approval_is_refused_and_the_first_approver_kept(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    restart = Restart(tmp_path, slack, inference, redis_url)
    alice_approves = SAMPLE.replace(
        'approvers = ["U0BOB", "S0OPS"]', 'approvers = ["U0BOB", "U0ALICE"]'
    )
    inference.agent_events(migrate_events())
    async with restart.serving(alice_approves) as bot:
        await run(bot, slack, "migrate app=shop-staging", user=MALLORY)
        await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
        rid = request_id(slack)
        await click(bot, slack, APPROVE, rid, BOB)
        await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
        await click(bot, slack, APPROVE, rid, ALICE)
        await slack.wait_for(lambda s: bool(s.responses_to(f"click-{ALICE}")))
    assert "already approved" in ephemeral_texts(slack, ALICE)
    assert stored(redis_url, rid)["decided_by"] == BOB
    assert [e["user"] for e in audit(redis_url, "approved")] == [BOB]
    assert len(inference.agent_requests) == 1
    assert BOB in card_text(slack) and ALICE not in card_text(slack)


# -- the rule itself, without Slack --------------------------------------------------------


def record_under(catalog: Catalog, text: str, *, requester: str = ALICE) -> RunRecord:
    """A pending request as the bot stores it under ``catalog``."""
    invocation = parse(text, catalog)
    runbook = catalog.runbooks[invocation.runbook]
    return RunRecord(
        id="r1", runbook=invocation.runbook, description="", requester=requester,
        team="T0TEAM", channel=CHANNEL, card_ts="1.1", thread_ts="",
        values=invocation.values, body=agent_body(runbook, invocation.values, "m"),
        approvers=catalog.approvers_for(invocation.runbook), allow_self_approval=False,
        needs_approval=runbook.approval, proposed=False, created_at=0.0, expires_at=1.0,
        state=RunState.PENDING,
    )  # fmt: skip


def edited(tmp_path: Path, *changes: tuple[str, str]) -> Catalog:
    text = SAMPLE
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "edited.toml"
    path.write_text(text)
    return load_catalog(path)


def test_an_unchanged_file_outdates_nothing(catalog: Catalog) -> None:
    for text in ("migrate app=shop-staging", "logs app=shop", "logs app=shop lines=5"):
        assert outdated(record_under(catalog, text), catalog, "m") is None


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ([("[runbooks.logs.params.lines]", "[runbooks.logs.params.count]"),
          ("{lines}", "{count}")], "the runbook has no parameter `lines` any more"),
        ([("[[runbooks.logs.tools]]", '[runbooks.logs.params.since]\npattern = "^[0-9]+h$"\n'
           "[[runbooks.logs.tools]]")], "the runbook now needs `since`"),
        ([('default = "200"', 'default = "500"')], None),  # the stored value is kept
        ([("last {lines} log lines", "last {lines} lines")],
         "the runbook's prompt is different now"),
        ([("[policy]\n", '[policy]\nrequesters = ["U0BOB"]\n')],
         "<@U0ALICE> is no longer on the list of people who may use `/run`"),
        ([("[policy]\n", '[policy]\nchannels = ["C0ELSEWHERE"]\n')],
         "`/run` no longer works in <#C0OPS>"),
    ],
)  # fmt: skip
def test_what_outdates_a_request(
    catalog: Catalog, tmp_path: Path, changes: list[tuple[str, str]], detail: str | None
) -> None:
    reason = outdated(record_under(catalog, "logs app=shop"), edited(tmp_path, *changes), "m")
    if detail is None:
        assert reason is None
    else:
        assert reason == f"the runbooks file changed since this request ({detail})"


def test_who_decides_follows_the_file_in_force(catalog: Catalog, tmp_path: Path) -> None:
    record = record_under(catalog, "migrate app=shop-staging")
    now = edited(
        tmp_path,
        ('approvers = ["U0BOB", "S0OPS"]', 'approvers = ["U0ALICE"]\nallow_self_approval = true'),
    )
    assert in_force(record, now).approvers == ["U0ALICE"]
    assert in_force(record, now).allow_self_approval
    gone = edited(tmp_path, ("runbooks.migrate", "runbooks.migrate-v2"))
    assert in_force(record, gone).approvers == ["U0BOB", "S0OPS"]  # the policy's


def is_card(message: Any) -> bool:
    """A run card has buttons; an answer's feedback buttons are no card."""
    return any(b["type"] == "actions" for b in message.blocks)
