"""``python -m bot shell`` driven through piped stdin, answering from FakeInference."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.shell.render import message_lines, plain
from tests.fakes import FakeInference
from tests.processes import spawn_bot
from tests.rig import INFERENCE_KEY
from tests.scenarios import SAMPLE, migrate_events

# Several subprocesses, each starting the whole bot: give them room on a slow machine.
pytestmark = pytest.mark.timeout(120)


async def shell(
    tmp_path: Path, inference: FakeInference | None, *lines: str, args: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    """Run the shell with ``lines`` on stdin until EOF; returns exit code, stdout, stderr."""
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(SAMPLE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "INFERENCE_", "REDIS_", "RUNBOOKS_"))
    }
    env["RUNBOOKS_FILE"] = str(runbooks)
    if inference is not None:
        env |= {"INFERENCE_URL": inference.base_url, "INFERENCE_KEY": INFERENCE_KEY}
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
