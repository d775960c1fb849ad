"""``python -m bot check`` against the fakes and a real Redis, breaking one thing at a time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import check
from bot.check import Finding
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.loopback import Loopback
from tests.ports import reserve_port
from tests.processes import spawn_bot
from tests.rig import BOT_TOKEN, INFERENCE_KEY, SIGNING_SECRET, connections
from tests.scenarios import SAMPLE

SECRETS = (BOT_TOKEN, INFERENCE_KEY, SIGNING_SECRET, "hunter2")


@pytest.fixture
def runbooks(tmp_path: Path) -> Path:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    return path


@pytest.fixture
def values(
    slack: FakeSlack, inference: FakeInference, redis_url: str, runbooks: Path
) -> dict[str, Any]:
    """Settings for a deployment where everything works; each test breaks one of them."""
    return {
        **connections(slack, inference, redis_url),
        "runbooks_file": str(runbooks),
        "_env_file": None,
    }


def row(findings: list[Finding], name: str) -> Finding:
    return next(f for f in findings if f.name == name)


def failed(findings: list[Finding]) -> list[str]:
    return [f.name for f in check.problems(findings)]


def assert_no_secrets(findings: list[Finding]) -> None:
    text = check.table(findings)
    for secret in SECRETS:
        assert secret not in text


async def test_all_ok(values: dict[str, Any], inference: FakeInference) -> None:
    findings = await check.diagnose(**values)
    assert failed(findings) == []
    assert [f.status for f in findings if f.name != "Slack scopes"] == ["ok"] * 6
    assert row(findings, "Slack agent").detail == (
        "declared an agent; agent_session_stopped subscribed"
    )
    assert "migrate, logs" in row(findings, "runbooks").detail
    assert "T0TEAM" in row(findings, "Slack").detail
    [probe] = inference.chat_requests
    assert probe.json["max_tokens"] == 1
    assert "All checks passed." in check.table(findings)
    assert_no_secrets(findings)


async def test_bad_slack_token(values: dict[str, Any]) -> None:
    findings = await check.diagnose(**{**values, "slack_bot_token": "xoxb-revoked"})
    assert failed(findings) == ["Slack"]
    assert "invalid_auth" in row(findings, "Slack").detail
    assert "Bot User OAuth Token" in row(findings, "Slack").fix


async def test_an_app_not_declared_an_agent_is_told_how_to_fix_it(
    values: dict[str, Any], slack: FakeSlack
) -> None:
    slack.agent.declared = False
    findings = await check.diagnose(**values)
    assert failed(findings) == ["Slack agent"]
    agent = row(findings, "Slack agent")
    assert "not declared an agent" in agent.detail
    assert "turn on Agent in the app settings" in agent.fix
    assert "python -m bot manifest" in agent.fix
    [probe] = slack.calls_to("agents.sessions.setStatus")
    assert probe.params["status"] == "closed"  # nothing anyone sees is left processing
    assert slack.messages() == []


async def test_an_agent_not_subscribed_to_the_stop_event_is_told(
    values: dict[str, Any], slack: FakeSlack
) -> None:
    slack.agent.subscribed = False
    findings = await check.diagnose(**values)
    assert failed(findings) == ["Slack agent"]
    agent = row(findings, "Slack agent")
    assert "not subscribed to agent_session_stopped" in agent.detail
    assert "agent_session_stopped" in agent.fix
    assert "python -m bot manifest" in agent.fix
    assert "fix: add the bot event agent_session_stopped" in check.table(findings)


async def test_a_workspace_without_agent_sessions_is_only_a_warning(
    values: dict[str, Any], slack: FakeSlack
) -> None:
    slack.agent.available = False
    findings = await check.diagnose(**values)
    assert failed(findings) == []
    agent = row(findings, "Slack agent")
    assert agent.status == "warn"
    assert "unknown_method" in agent.detail


async def test_socket_mode_app_token_is_checked(values: dict[str, Any]) -> None:
    good = await check.diagnose(**{**values, "slack_app_token": "xapp-test"})
    assert row(good, "Socket Mode").status == "ok"
    bad = await check.diagnose(**{**values, "slack_app_token": "xapp-revoked"})
    assert failed(bad) == ["Socket Mode"]
    assert "invalid_auth" in row(bad, "Socket Mode").detail
    assert "App-Level Tokens" in row(bad, "Socket Mode").fix
    assert_no_secrets(bad)
    assert "xapp-revoked" not in check.table(bad)


async def test_redis_on_a_closed_port(values: dict[str, Any]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{reserve_port()}/0"
    findings = await check.diagnose(**{**values, "redis_url": url})
    assert failed(findings) == ["Redis"]
    assert "REDIS_URL" in row(findings, "Redis").fix
    assert_no_secrets(findings)


async def test_inference_key_refused(values: dict[str, Any]) -> None:
    findings = await check.diagnose(**{**values, "inference_key": "inf-wrong"})
    assert failed(findings) == ["Inference"]
    assert "HTTP 401" in row(findings, "Inference").detail
    assert "heroku config:get INFERENCE_KEY" in row(findings, "Inference").fix


async def test_broken_runbooks_file_names_the_line(values: dict[str, Any], runbooks: Path) -> None:
    broken = SAMPLE.replace("approval = false", "aproval = false")
    runbooks.write_text(broken)  # noqa: ASYNC240 (a small file before the code under test)
    findings = await check.diagnose(**values)
    assert failed(findings) == ["runbooks"]
    detail = row(findings, "runbooks").detail
    assert "runbook 'logs'" in detail
    assert "aproval" in detail
    assert f"{runbooks}:" in detail


async def test_an_optional_placeholder_without_a_default_is_named(
    values: dict[str, Any], runbooks: Path
) -> None:
    runbooks.write_text(SAMPLE.replace('default = "200"\n', ""))  # noqa: ASYNC240
    findings = await check.diagnose(**values)
    assert failed(findings) == ["runbooks"]
    detail = row(findings, "runbooks").detail
    assert f"{runbooks}:35: runbook 'logs', parameter 'lines'" in detail
    assert "has no default" in detail


async def test_missing_and_malformed_settings_are_rows(values: dict[str, Any]) -> None:
    broken = {**values, "slack_bot_token": None, "inference_key": None, "port": "abc"}
    findings = await check.diagnose(**broken)
    assert failed(findings) == ["PORT", "SLACK_BOT_TOKEN", "INFERENCE_KEY"]
    assert row(findings, "Slack").status == "skip"
    assert row(findings, "Inference").status == "skip"
    assert "heroku addons:create heroku-inference" in row(findings, "INFERENCE_KEY").fix
    assert row(findings, "Redis").status == "ok"


async def test_malformed_token_is_reported_not_raised(values: dict[str, Any]) -> None:
    findings = await check.diagnose(**{**values, "slack_bot_token": "xoxp-user-token"})
    assert failed(findings) == ["SLACK_BOT_TOKEN"]
    assert "xoxb-" in row(findings, "SLACK_BOT_TOKEN").detail
    assert "xoxp-user-token" not in check.table(findings)


@pytest.fixture
async def scoped_slack() -> AsyncIterator[str]:
    """auth.test as real Slack answers it: the token's scopes in ``x-oauth-scopes``."""

    async def auth_test(_: web.Request) -> web.Response:
        body = {"ok": True, "user": "copilot", "team": "Acme", "team_id": "T1", "user_id": "U1"}
        scopes = "app_mentions:read,chat:write,commands,im:history,channels:history"
        return web.json_response(body, headers={"x-oauth-scopes": scopes})

    app = web.Application()
    app.router.add_route("*", "/api/auth.test", auth_test)
    server = Loopback(app)
    await server.start()
    yield f"http://127.0.0.1:{server.port}/api/"
    await server.stop()


async def test_missing_scopes_are_named(values: dict[str, Any], scoped_slack: str) -> None:
    findings = await check.diagnose(**{**values, "slack_api_url": scoped_slack})
    assert failed(findings) == ["Slack scopes"]
    assert "files:write, usergroups:read" in row(findings, "Slack scopes").detail
    assert "reinstall" in row(findings, "Slack scopes").fix


async def run_cli(env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    pipe = asyncio.subprocess.PIPE
    proc = await spawn_bot("check", env=env, cwd=cwd, stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


def cli_env(values: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    env.update({k.upper(): str(v) for k, v in values.items() if not k.startswith("_")})
    return env


async def test_command_exit_codes_and_output(values: dict[str, Any], tmp_path: Path) -> None:
    code, out, err = await run_cli(cli_env(values), tmp_path)
    assert (code, err) == (0, "")
    assert "All checks passed." in out

    code, out, err = await run_cli(cli_env({**values, "inference_key": "inf-wrong"}), tmp_path)
    assert code == 1
    assert "FAIL  Inference" in out
    assert "Traceback" not in out + err
    for secret in SECRETS:
        assert secret not in out + err
