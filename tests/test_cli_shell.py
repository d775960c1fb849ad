"""``python -m bot shell`` driven through piped stdin, answering from FakeInference."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import redis.asyncio as redis

from bot.runs import RunRecord
from bot.runs.requests import Requests
from bot.shell.render import message_lines, plain
from bot.state import keys
from bot.state.requests import RequestStore
from tests.fakes import FakeInference
from tests.fakes.sse import agent_completion
from tests.processes import spawn_bot
from tests.rig import INFERENCE_KEY
from tests.scenarios import SAMPLE, migrate_events

# The runbooks file the repository ships: U012ALICE approves, migrate needs approval.
SHIPPED = (Path(__file__).parent.parent / "runbooks.toml").read_text()
ALICE, CAROL, DAVE = "U012ALICE", "U0CAROL", "U0DAVE"

# Several subprocesses, each starting the whole bot: give them room on a slow machine.
pytestmark = pytest.mark.timeout(120)


async def shell(
    tmp_path: Path,
    inference: FakeInference | None,
    *lines: str,
    args: tuple[str, ...] = (),
    redis_url: str | None = None,
    runbooks_text: str = SAMPLE,
) -> tuple[int, str, str]:
    """Run the shell with ``lines`` on stdin until EOF; returns exit code, stdout, stderr."""
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(runbooks_text)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "INFERENCE_", "REDIS_", "RUNBOOKS_"))
    }
    env["RUNBOOKS_FILE"] = str(runbooks)
    if inference is not None:
        env |= {"INFERENCE_URL": inference.base_url, "INFERENCE_KEY": INFERENCE_KEY}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    pipe = asyncio.subprocess.PIPE
    # In tmp_path, where no .env file is: the settings are env's alone.
    proc = await spawn_bot(
        "shell", *args, env=env, cwd=tmp_path, stdin=pipe, stdout=pipe, stderr=pipe
    )
    stdin = "".join(f"{line}\n" for line in lines).encode()
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_question_streams_the_answer_and_follow_ups_keep_history(
    tmp_path: Path, inference: FakeInference
) -> None:
    inference.reply_text("Roll back with `heroku releases:rollback v41 -a shop`.", pieces=5)
    inference.reply_text("Then watch `heroku logs --tail`.")
    code, out, err = await shell(tmp_path, inference, "how do I roll back?", "and then?")
    assert code == 0, err
    assert "Roll back with `heroku releases:rollback v41 -a shop`." in out
    assert "Then watch `heroku logs --tail`." in out
    follow_up = [m["content"] for m in inference.chat_requests[1].json["messages"][1:]]
    assert follow_up[:3] == [
        "how do I roll back?",
        "Roll back with `heroku releases:rollback v41 -a shop`.",
        "and then?",
    ]
    assert "Traceback" not in err


async def test_run_help_lists_the_runbooks(tmp_path: Path, inference: FakeInference) -> None:
    code, out, err = await shell(tmp_path, inference, "/run help")
    assert code == 0, err
    assert "`migrate`" in out
    assert "shop-staging | shop-production" in out
    assert "`logs`" in out


async def test_run_approved_by_another_user_shows_the_agents_answer(
    tmp_path: Path, inference: FakeInference
) -> None:
    # Pauses longer than the shell's quiet period: it must wait for the run, not for silence.
    inference.agent_events(migrate_events(), delay=0.6)
    code, out, err = await shell(
        tmp_path,
        inference,
        "/run migrate app=shop-staging",
        "/approve",  # the requester may not approve their own request
        "/as U0BOB",
        "/approve",
        args=("--user", "U0ALICE"),
    )
    assert code == 0, err
    assert "requests runbook *migrate*" in out
    assert "/approve" in out  # the card says how to click its buttons
    assert "can't approve or deny your own request" in out
    assert "approved by @U0BOB" in out.lower().replace("@u0bob", "@U0BOB")
    assert "All 3 migrations applied to shop-staging." in out
    assert "Succeeded" in out
    assert "hunter22" not in out
    [run] = inference.agent_requests
    assert run.json["tools"][0]["runtime_params"]["target_app_name"] == "shop-staging"


async def test_refused_value_prints_the_refusal_and_runs_nothing(
    tmp_path: Path, inference: FakeInference
) -> None:
    code, out, err = await shell(tmp_path, inference, "/run migrate app=shop-evil", "/approve")
    assert code == 0, err
    assert "must be one of shop-staging, shop-production" in out
    assert "no card on screen offers /approve" in out
    assert inference.agent_requests == []


async def test_without_inference_key_it_says_how_to_get_one(tmp_path: Path) -> None:
    code, out, err = await shell(tmp_path, None, "hello")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "heroku addons:create heroku-inference:standard -a APP" in err
    assert "heroku config:get INFERENCE_KEY -a APP" in err
    assert "Traceback" not in err


def test_slack_markup_is_readable_in_a_terminal() -> None:
    date = "<!date^1700000000^{date_short_pretty}|2023-11-14 22:13 UTC>"
    text = f"<@U0BOB> approved at {date} in <#C0OPS>"
    assert plain(text) == "@U0BOB approved at 2023-11-14 22:13 UTC in #C0OPS"
    assert plain("see <https://x.example/a|the docs>") == "see the docs (https://x.example/a)"
    blocks = [
        {"type": "markdown", "text": "**Done**"},
        {
            "type": "actions",
            "elements": [{"action_id": "copilot_cancel", "text": {"text": "Cancel"}}],
        },
    ]
    assert message_lines("fallback", blocks) == ["**Done**", "[Cancel]  → type /cancel"]


# -- two people, two terminals, one Redis ------------------------------------------------


async def session(
    tmp_path: Path, inference: FakeInference, redis_url: str, user: str, *lines: str
) -> str:
    """One person's shell on the shared Redis, with the shipped runbooks; its stdout."""
    code, out, err = await shell(
        tmp_path,
        inference,
        *lines,
        args=("--user", user),
        redis_url=redis_url,
        runbooks_text=SHIPPED,
    )
    assert code == 0, err
    assert "Traceback" not in err
    return out


async def requests_in(redis_url: str) -> dict[str, RunRecord]:
    """The requests stored in the shared Redis, by their app value (or runbook)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        records = await Requests(RequestStore(client)).recent()
    finally:
        await client.aclose()
    return {r.values.get("app", r.runbook): r for r in records}


async def audit_users(redis_url: str) -> list[tuple[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange(keys.audit_log())
    finally:
        await client.aclose()
    return [(fields.get("action", ""), fields.get("user", "")) for _, fields in entries]


async def test_a_second_session_approves_the_one_request_waiting(
    tmp_path: Path, inference: FakeInference, redis_url: str
) -> None:
    out_a = await session(tmp_path, inference, redis_url, CAROL, "/run migrate app=shop-staging")
    assert "requests runbook *migrate*" in out_a
    assert inference.agent_requests == []

    inference.agent_events(migrate_events(), delay=0.4)
    out_b = await session(tmp_path, inference, redis_url, ALICE, "/approve")
    request = (await requests_in(redis_url))["shop-staging"]
    assert f"· approving {request.id[:8]} migrate app=shop-staging · @U0CAROL in #C0SHELL" in out_b
    # The card, updated by this session's decision, shows here with the run it started.
    assert "approved by @U012ALICE" in out_b
    assert "All 3 migrations applied to shop-staging." in out_b
    [run] = inference.agent_requests
    assert run.json["tools"][0]["runtime_params"]["target_app_name"] == "shop-staging"
    assert request.state == "succeeded"
    assert request.decided_by == ALICE
    assert ("approved", ALICE) in await audit_users(redis_url)


async def test_several_waiting_are_listed_oldest_first_and_picked_by_number_or_id(
    tmp_path: Path, inference: FakeInference, redis_url: str
) -> None:
    await session(
        tmp_path,
        inference,
        redis_url,
        CAROL,
        "/run migrate app=shop-staging",
        "/run migrate app=shop-production",
    )
    waiting = await requests_in(redis_url)
    staging, production = waiting["shop-staging"], waiting["shop-production"]

    inference.agent_events([("message", agent_completion("Migrated.")), ("done", "[DONE]")])
    out = await session(
        tmp_path,
        inference,
        redis_url,
        ALICE,
        "/approve 2",  # no list shown yet: a number means nothing
        "/approve",
        "/approve 2",
        f"/deny {staging.id[:5]}",
    )
    assert "no request 2 on a list shown here: type /approve to list them" in out
    listed = out.index("2 requests wait for your approval")
    assert out.index("type /approve N or /deny N with a number from this list") > listed
    first = out.index(f"  1. {staging.id[:8]} migrate app=shop-staging · @U0CAROL")
    second = out.index(f"  2. {production.id[:8]} migrate app=shop-production · @U0CAROL")
    approving = out.index(f"· approving {production.id[:8]} migrate app=shop-production")
    assert listed < first < second < approving
    assert f"· denying {staging.id[:8]} migrate app=shop-staging" in out
    [run] = inference.agent_requests
    assert run.json["tools"][0]["runtime_params"]["target_app_name"] == "shop-production"
    after = await requests_in(redis_url)
    assert (after["shop-production"].state, after["shop-production"].decided_by) == (
        "succeeded",
        ALICE,
    )
    assert (after["shop-staging"].state, after["shop-staging"].decided_by) == ("denied", ALICE)


async def test_nothing_waiting_is_said_plainly_and_own_requests_can_be_withdrawn(
    tmp_path: Path, inference: FakeInference, redis_url: str
) -> None:
    # Alice approves others' requests but not her own (allow_self_approval = false).
    await session(tmp_path, inference, redis_url, ALICE, "/run migrate app=shop-staging")
    out = await session(
        tmp_path, inference, redis_url, ALICE, "/approve", "/deny", "/start", "/withdraw"
    )
    assert "no card on screen offers /approve, and no request is waiting for your approval" in out
    assert "no card on screen offers /deny, and no request is waiting for your approval" in out
    # migrate needs an approver: Run is for requests that don't.
    assert "no card on screen offers /start, and you have no request waiting for Run" in out
    request = (await requests_in(redis_url))["shop-staging"]
    assert f"· withdrawing {request.id[:8]} migrate app=shop-staging · @U012ALICE" in out
    assert (request.state, request.decided_by) == ("withdrawn", ALICE)
    assert "Withdrawn by @U012ALICE" in out  # the card, updated where the click came from
    assert inference.agent_requests == []


async def test_non_approvers_in_a_second_session_change_nothing(
    tmp_path: Path, inference: FakeInference, redis_url: str
) -> None:
    await session(tmp_path, inference, redis_url, CAROL, "/run migrate app=shop-staging")
    inference.agent_events(migrate_events())
    out = await session(
        tmp_path,
        inference,
        redis_url,
        DAVE,
        "/approve",
        "/deny",
        "/as U0CAROL",  # the requester in another terminal: not an approver either
        "/approve",
        "/as U012ALICE",
        "/approve",
    )
    nothing = "no request is waiting for your approval"
    assert out.count(nothing) == 3
    assert out.rindex(nothing) < out.index("· approving")  # it was still waiting for Alice
    request = (await requests_in(redis_url))["shop-staging"]
    assert (request.state, request.decided_by) == ("succeeded", ALICE)
    assert len(inference.agent_requests) == 1
    deciders = {user for action, user in await audit_users(redis_url) if action != "requested"}
    assert DAVE not in deciders
    assert CAROL not in deciders


async def test_a_proposal_is_started_from_the_askers_other_session(
    tmp_path: Path, inference: FakeInference, redis_url: str
) -> None:
    inference.reply_tool_calls(
        [("db-health", '{"app": "shop-staging"}')], text="A health check would tell."
    )
    out_a = await session(tmp_path, inference, redis_url, CAROL, "is staging's database slow?")
    assert "[Run] [Withdraw]" in out_a

    inference.agent_events([("message", agent_completion("No slow queries.")), ("done", "[DONE]")])
    out_b = await session(tmp_path, inference, redis_url, CAROL, "/start")
    request = (await requests_in(redis_url))["shop-staging"]
    assert f"· starting {request.id[:8]} db-health app=shop-staging · @U0CAROL" in out_b
    assert "No slow queries." in out_b
    [run] = inference.agent_requests
    assert run.json["tools"][0]["name"] == "postgres_run_query"
    assert (request.state, request.decided_by) == ("succeeded", CAROL)
